"""GR00T-N1.5-style flow-matching action head (REFERENCE.md section 3): per-embodiment encoders/decoder around a DiT."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vla.config import ActionHeadConfig
from vla.dit import DiT, VLSelfAttention
from vla.flow_matching import euler_sample, interpolate, masked_mse, sample_time, time_bucket


class CategorySpecificLinear(nn.Module):
    """One Linear per embodiment slot, chosen per sample by embodiment id."""

    def __init__(self, num_categories: int, in_dim: int, out_dim: int):
        super().__init__()
        # nn.Linear's default init per slot: a 0.02-std init shrinks the signal ~5x per layer through the
        # encoder/decoder stacks, and the head then ignores x_t for hundreds of steps (measured on the toy test).
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(num_categories, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_categories, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, category: int | torch.Tensor) -> torch.Tensor:
        """x (B, N, in_dim); category: one int for the batch, or (B,) ids for mixed batches -> (B, N, out_dim)."""
        if isinstance(category, int):
            # One embodiment per batch (the usual case): a plain matmul, no per-sample weight copies.
            return x @ self.weight[category] + self.bias[category]
        out = x.new_empty(*x.shape[:-1], self.weight.shape[-1])
        for c in category.unique().tolist():
            rows = category == c
            out[rows] = x[rows] @ self.weight[c] + self.bias[c]
        return out


class CategorySpecificMLP(nn.Module):
    """Two per-embodiment Linears with a ReLU between (state encoder, action decoder)."""

    def __init__(self, num_categories: int, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.layer1 = CategorySpecificLinear(num_categories, in_dim, hidden_dim)
        self.layer2 = CategorySpecificLinear(num_categories, hidden_dim, out_dim)

    def forward(self, x: torch.Tensor, category: int | torch.Tensor) -> torch.Tensor:
        return self.layer2(F.relu(self.layer1(x, category)), category)


def sinusoidal_encoding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B, T) timesteps -> (B, T, dim) [sin, cos] features with log-spaced frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[..., None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ActionEncoder(nn.Module):
    """Noisy action chunk + time bucket -> tokens: W3(swish(W2([W1 a, sin(t)]))), all per embodiment."""

    def __init__(self, num_categories: int, action_dim: int, dim: int):
        super().__init__()
        self.dim = dim
        self.W1 = CategorySpecificLinear(num_categories, action_dim, dim)
        self.W2 = CategorySpecificLinear(num_categories, 2 * dim, dim)
        self.W3 = CategorySpecificLinear(num_categories, dim, dim)

    def forward(self, actions: torch.Tensor, bucket: torch.Tensor, category: int | torch.Tensor) -> torch.Tensor:
        """actions (B, T, A), bucket (B,) long, category int or (B,) -> (B, T, dim)."""
        tau = sinusoidal_encoding(bucket[:, None].expand(-1, actions.shape[1]), self.dim).to(actions.dtype)
        x = torch.cat([self.W1(actions, category), tau], dim=-1)
        return self.W3(F.silu(self.W2(x, category)), category)


class FlowMatchingActionHead(nn.Module):
    """VL tokens + padded state -> velocity field over padded action chunks; trained and sampled by flow matching."""

    def __init__(self, cfg: ActionHeadConfig):
        super().__init__()
        self.cfg = cfg
        d, n = cfg.input_embedding_dim, cfg.num_embodiments
        self.vl_self_attention = VLSelfAttention(cfg.backbone_dim, cfg.vl_layers, cfg.vl_heads, cfg.vl_head_dim, cfg.dropout)
        self.state_encoder = CategorySpecificMLP(n, cfg.max_state_dim, cfg.hidden_size, d)
        if cfg.state_dropout > 0:  # only then: checkpoints trained without it load unchanged
            self.state_mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.action_encoder = ActionEncoder(n, cfg.max_action_dim, d)
        self.future_tokens = nn.Embedding(cfg.num_future_tokens, d)
        self.position_embedding = nn.Embedding(cfg.max_seq_len, d)
        self.dit = DiT(
            d, cfg.num_layers, cfg.num_heads, cfg.head_dim, cross_dim=cfg.backbone_dim, out_dim=cfg.hidden_size,
            dropout=cfg.dropout, timestep_dim=cfg.timestep_embed_dim,
        )
        self.action_decoder = CategorySpecificMLP(n, cfg.hidden_size, cfg.hidden_size, cfg.max_action_dim)
        nn.init.normal_(self.future_tokens.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def adapt(self, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Backbone features (B, S, backbone_dim) -> conditioning tokens (vlln + VL self-attention)."""
        return self.vl_self_attention(features.to(self.future_tokens.weight.dtype), mask)

    def encode_state(self, state: torch.Tensor, category: int | torch.Tensor) -> torch.Tensor:
        """Padded state (B, max_state_dim) -> one token (B, 1, dim); computed once per chunk."""
        return self.state_encoder(state[:, None].to(self.future_tokens.weight.dtype), category)

    def drop_state(self, state_token: torch.Tensor, generator=None) -> torch.Tensor:
        """While training, each sample's state token becomes the mask token with probability cfg.state_dropout."""
        if not self.training or self.cfg.state_dropout == 0:
            return state_token
        draw = torch.rand(state_token.shape[0], 1, 1, generator=generator,
                          device=generator.device if generator else state_token.device).to(state_token.device)
        return torch.where(draw < self.cfg.state_dropout, self.state_mask_token.to(state_token.dtype), state_token)

    def velocity(self, vl, vl_mask, state_token, x_t, bucket, category) -> torch.Tensor:
        """Predicted velocity (B, T, max_action_dim) at noisy actions x_t and time bucket."""
        batch, horizon = x_t.shape[:2]
        actions = self.action_encoder(x_t, bucket, category)
        actions = actions + self.position_embedding.weight[:horizon][None]
        future = self.future_tokens.weight[None].expand(batch, -1, -1)
        tokens = torch.cat([state_token, future, actions], dim=1)
        out = self.dit(tokens, bucket, vl, vl_mask)
        return self.action_decoder(out, category)[:, -horizon:]

    def compute_loss(self, features, feature_mask, state, action, action_mask, category, generator=None) -> torch.Tensor:
        """Flow-matching MSE on one noisy sample per chunk, counted only where action_mask (B, T, A) is True."""
        vl = self.adapt(features, feature_mask)
        state_token = self.drop_state(self.encode_state(state, category), generator)
        action = action.to(vl.dtype)
        noise = torch.randn(action.shape, generator=generator, device=generator.device if generator else action.device)
        noise = noise.to(action.device, action.dtype)
        cfg = self.cfg
        t = sample_time(action.shape[0], cfg.noise_beta_alpha, cfg.noise_beta_beta, cfg.noise_s, action.device, generator)
        x_t, target = interpolate(noise, action, t)
        pred = self.velocity(vl, feature_mask, state_token, x_t, time_bucket(t, cfg.num_timestep_buckets), category)
        return masked_mse(pred.float(), target.float(), action_mask)

    @property
    def noise_shape(self) -> tuple[int, int]:
        """One sample's initial noise: (horizon, max_action_dim)."""
        return (self.cfg.action_horizon, self.cfg.max_action_dim)

    @torch.no_grad()
    def sample(self, features, feature_mask, state, category, steps: int | None = None, generator=None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Euler-integrate from Gaussian noise; returns padded chunks (B, horizon, max_action_dim).

        `noise` (B, *noise_shape): the starting points, drawn by the caller (one stream per sample); else drawn here.
        """
        cfg = self.cfg
        vl = self.adapt(features, feature_mask)
        state_token = self.encode_state(state, category)
        shape = (features.shape[0], *self.noise_shape)
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=generator.device if generator else vl.device)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must be {shape} (batch, horizon, max_action_dim); got {tuple(noise.shape)}")
        noise = noise.to(vl.device, vl.dtype)

        def velocity(x, bucket):
            return self.velocity(vl, feature_mask, state_token, x, bucket, category)

        return euler_sample(velocity, noise, steps or cfg.num_inference_steps, cfg.num_timestep_buckets)
