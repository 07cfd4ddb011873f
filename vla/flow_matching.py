"""Flow matching as in GR00T N1.5: t = 1 is data, Beta-skewed training times, bucketed timesteps, Euler sampling."""

from __future__ import annotations

from collections.abc import Callable

import torch


def sample_time(batch: int, alpha: float, beta: float, s: float, device=None, generator=None) -> torch.Tensor:
    """t = (s - u) / s with u ~ Beta(alpha, beta): most samples near t = 0 (noisy), where the velocity is hardest."""
    # Beta via two Gammas so an explicit generator (reproducible tests) can be used; torch's Beta takes none.
    ga = torch._standard_gamma(torch.full((batch,), float(alpha)), generator=generator)
    gb = torch._standard_gamma(torch.full((batch,), float(beta)), generator=generator)
    u = ga / (ga + gb)
    return ((s - u) / s).to(device)


def time_bucket(t: torch.Tensor, num_buckets: int) -> torch.Tensor:
    """Integer timestep for the DiT's embedding; t slightly below 0 (u > s) maps to bucket 0."""
    return (t * num_buckets).long().clamp(0, num_buckets - 1)


def interpolate(noise: torch.Tensor, action: torch.Tensor, t: torch.Tensor):
    """(x_t, target velocity): x_t = (1 - t) noise + t action, v = action - noise."""
    t = t.view(-1, *([1] * (action.ndim - 1))).to(action.dtype)
    return (1 - t) * noise + t * action, action - noise


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the True entries of mask only (padded dims and steps contribute nothing)."""
    mask = mask.to(pred.dtype)
    return ((pred - target) ** 2 * mask).sum() / mask.sum().clamp_min(1)


def euler_sample(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    steps: int,
    num_buckets: int,
) -> torch.Tensor:
    """Integrate dx/dt = v(x, bucket) from noise at t = 0 to t = 1 in `steps` equal Euler steps."""
    x, dt = noise, 1.0 / steps
    for i in range(steps):
        bucket = torch.full((x.shape[0],), int(i * dt * num_buckets), dtype=torch.long, device=x.device)
        x = x + dt * velocity(x, bucket)
    return x
