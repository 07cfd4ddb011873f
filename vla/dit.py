"""Transformer pieces of the action head, built from diffusers blocks: the DiT and the VL self-attention adapter."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import Attention, FeedForward
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn


def _key_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, S) bool keep-mask -> (B, 1, S) as diffusers' attention processor expects (True = attend)."""
    return None if mask is None else mask[:, None, :].bool()


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine, modulated by the timestep embedding: x * (1 + scale) + shift."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.linear = nn.Linear(dim, 2 * dim)
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.linear(F.silu(temb)).chunk(2, dim=-1)
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None]


class TransformerBlock(nn.Module):
    """Pre-norm attention + GELU-tanh FFN block; AdaLN-conditioned in the DiT, plain LayerNorm in the VL adapter."""

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float, cross_dim: int | None, ada_norm: bool):
        super().__init__()
        self.ada_norm = ada_norm
        self.norm1 = AdaLayerNorm(dim) if ada_norm else nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = Attention(
            query_dim=dim, cross_attention_dim=cross_dim, heads=heads, dim_head=head_dim, dropout=dropout, bias=True,
            out_bias=True,
        )
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.ff = FeedForward(dim, dropout=dropout, activation_fn="gelu-approximate", final_dropout=True, bias=True)
        self.is_cross = cross_dim is not None

    def forward(self, x, temb=None, context=None, context_mask=None, self_mask=None):
        h = self.norm1(x, temb) if self.ada_norm else self.norm1(x)
        if self.is_cross:
            x = x + self.attn(h, encoder_hidden_states=context, attention_mask=_key_mask(context_mask))
        else:
            x = x + self.attn(h, attention_mask=_key_mask(self_mask))
        return x + self.ff(self.norm2(x))


class VLSelfAttention(nn.Module):
    """vlln + pre-LN self-attention blocks over the backbone tokens (padding masked as keys)."""

    def __init__(self, dim: int, layers: int, heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.vlln = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, head_dim, dropout, cross_dim=None, ada_norm=False) for _ in range(layers)
        )

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.vlln(features)
        for block in self.blocks:
            x = block(x, self_mask=mask)
        return x


class DiT(nn.Module):
    """Diffusion transformer: even blocks cross-attend to the VL tokens, odd ones self-attend; AdaLN on the timestep."""

    def __init__(self, dim, layers, heads, head_dim, cross_dim, out_dim, dropout, timestep_dim=256):
        super().__init__()
        # Sinusoidal features of the integer time bucket, then an MLP (diffusers' conventions, as in N1.5).
        self.time_proj = Timesteps(timestep_dim, flip_sin_to_cos=True, downscale_freq_shift=1)
        self.time_embed = TimestepEmbedding(timestep_dim, dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, head_dim, dropout, cross_dim=cross_dim if i % 2 == 0 else None, ada_norm=True)
            for i in range(layers)
        )
        self.norm_out = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)
        self.proj_out_1 = nn.Linear(dim, 2 * dim)
        self.proj_out_2 = nn.Linear(dim, out_dim)

    def forward(self, x, timestep, context, context_mask=None) -> torch.Tensor:
        """x (B, N, dim), timestep (B,) integer buckets, context (B, S, cross_dim), context_mask (B, S) bool."""
        temb = self.time_embed(self.time_proj(timestep).to(x.dtype))
        for block in self.blocks:
            x = block(x, temb=temb, context=context, context_mask=context_mask)
        shift, scale = self.proj_out_1(F.silu(temb)).chunk(2, dim=-1)
        x = self.norm_out(x) * (1 + scale[:, None]) + shift[:, None]
        return self.proj_out_2(x)
