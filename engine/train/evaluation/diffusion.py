"""Gaussian diffusion math: noise schedules, the forward process q(x_t | x_0), and the DDPM and
DDIM reverse steps and samplers (Ho et al. 2020 "DDPM"; Song et al. 2021 "DDIM"; Nichol &
Dhariwal 2021 for the cosine schedule).

Conventions: timesteps are 0-based, t = 0 .. T-1, so `alpha_bars[t]` is the paper's
alpha_bar_{t+1} and "alpha_bar before the first step" is 1. The models predict the noise eps.
Tables are float64 and cast per use to the input's dtype, because 1 - alpha_bar and
sqrt(alpha_bar) lose most of their digits in float32 (or worse in half) near the ends of a schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

SCHEDULES = ("linear", "cosine")
SAMPLERS = ("ddpm", "ddim")


def make_betas(schedule: str, timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02,
               cosine_s: float = 0.008) -> Tensor:
    """Noise schedule beta_0 .. beta_{T-1} as a float64 tensor of length `timesteps`.

    "linear" (Ho et al. 2020, sec. 4): beta_t = linspace(beta_start, beta_end, T).
    "cosine" (Nichol & Dhariwal 2021, eq. 17): alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2),
    beta_t = 1 - alpha_bar(t+1) / alpha_bar(t), clipped to <= 0.999 (their choice, so the last
    step, where alpha_bar(T) = 0, does not have beta = 1 and a singular reverse step).
    """
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    if schedule == "linear":
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"linear schedule needs 0 < beta_start <= beta_end < 1, "
                             f"got beta_start={beta_start}, beta_end={beta_end}")
        return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    if schedule == "cosine":
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        alpha_bar = torch.cos((steps + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown noise schedule {schedule!r}; known: {', '.join(SCHEDULES)}")


def _at(table: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """table[t] cast to like's dtype and device, shaped [B, 1, ...] to broadcast over like."""
    t = torch.as_tensor(t, device=table.device).long()
    values = table[t].to(device=like.device, dtype=like.dtype)
    return values.reshape(-1, *([1] * (like.dim() - 1)))


class Schedule:
    """Precomputed float64 tables (betas, alphas, alpha_bars) for T steps; index with long t [B]."""

    def __init__(self, betas: Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must all lie in (0, 1); clip them (cosine clips to 0.999)")
        self.betas = betas
        self.alphas = 1 - betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)
        self.timesteps: int = betas.numel()

    def to(self, device: torch.device | str | None) -> Schedule:
        """The same schedule with its tables on `device` (self when they are already there)."""
        if device is None or torch.device(device) == self.betas.device:
            return self
        # MPS has no float64: there the tables travel as float32, everywhere else as computed
        dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
        moved = object.__new__(Schedule)
        for name in ("betas", "alphas", "alpha_bars"):
            setattr(moved, name, getattr(self, name).to(device=device, dtype=dtype))
        moved.timesteps = self.timesteps
        return moved

    def _alpha_bar(self, t: int) -> float:
        """alpha_bar at 0-based step t as a Python float; 1 before the first step (t < 0)."""
        return 1.0 if t < 0 else float(self.alpha_bars[t])

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Draw x_t ~ q(x_t | x_0) (Ho et al. 2020, eq. 4): sqrt(ab_t) x0 + sqrt(1 - ab_t) noise.

        t is long [B] (one step per sample); the result has x0's dtype.
        """
        ab = self.alpha_bars
        return (_at(ab.sqrt(), t, x0) * x0 + _at((1 - ab).sqrt(), t, x0) * noise).to(x0.dtype)

    def predict_x0(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x0 implied by a noise prediction (eq. 4): (x_t - sqrt(1-ab_t) eps) / sqrt(ab_t)."""
        ab = self.alpha_bars
        return (x_t - _at((1 - ab).sqrt(), t, x_t) * eps) / _at(ab.sqrt(), t, x_t)

    def predict_eps(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """Noise implied by an x0 prediction (eq. 4): (x_t - sqrt(ab_t) x0) / sqrt(1-ab_t)."""
        ab = self.alpha_bars
        return (x_t - _at(ab.sqrt(), t, x_t) * x0) / _at((1 - ab).sqrt(), t, x_t)

    def ddpm_step(self, x_t: Tensor, t: int, eps: Tensor, noise: Tensor | None) -> Tensor:
        """One ancestral step x_t -> x_{t-1} (Ho et al. 2020, eq. 11 and sec. 3.2).

        mean = (x_t - beta_t / sqrt(1 - ab_t) * eps) / sqrt(alpha_t),
        sigma_t^2 = beta_t (1 - ab_{t-1}) / (1 - ab_t) (the posterior variance "beta tilde",
        so that with the true eps this is exactly q(x_{t-1} | x_t, x_0), eq. 6-7);
        x_{t-1} = mean + sigma_t * noise, and no noise at t == 0 (the output is x_0).
        """
        beta, alpha = float(self.betas[t]), float(self.alphas[t])
        ab, ab_prev = self._alpha_bar(t), self._alpha_bar(t - 1)
        # Python-float coefficients: computed in float64, and they keep x_t's dtype
        mean = (x_t - beta / math.sqrt(1 - ab) * eps) / math.sqrt(alpha)
        if t == 0 or noise is None:
            return mean
        sigma = math.sqrt(beta * (1 - ab_prev) / (1 - ab))
        return mean + sigma * noise

    def ddim_step(self, x_t: Tensor, t: int, t_prev: int, eps: Tensor, eta: float,
                  noise: Tensor | None) -> Tensor:
        """One DDIM step x_t -> x_{t_prev} (Song et al. 2021, eq. 12 and 16).

        x0 = predict_x0(x_t, t, eps); sigma = eta * sqrt((1-ab_prev)/(1-ab_t) * (1 - ab_t/ab_prev));
        x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma * noise,
        with ab_prev = 1 when t_prev < 0. eta = 0 is deterministic; eta = 1 with t_prev = t-1
        is exactly the DDPM step.
        """
        ab, ab_prev = self._alpha_bar(t), self._alpha_bar(t_prev)
        x0 = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
        sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
        # max(0, .) only guards rounding: sigma^2 <= 1 - ab_prev whenever eta <= 1
        x_prev = math.sqrt(ab_prev) * x0 + math.sqrt(max(0.0, 1 - ab_prev - sigma**2)) * eps
        if sigma == 0 or noise is None:
            return x_prev
        return x_prev + sigma * noise


def ddim_timesteps(steps: int, timesteps: int) -> list[int]:
    """`steps` evenly spaced 0-based timesteps, descending and ending at 0 (Song et al. 2021,
    sec. 4.2 / appendix D.2, "linear" sub-sequence tau_i = i * (T // steps)).

    e.g. steps=100, T=1000 -> [990, 980, ..., 0]; always exactly `steps` entries.
    """
    if not 1 <= steps <= timesteps:
        raise ValueError(f"DDIM steps must be between 1 and the schedule's {timesteps} timesteps, "
                         f"got {steps}; write steps: {max(1, min(steps, timesteps))} "
                         f"(or use sampler: ddpm for all {timesteps})")
    stride = timesteps // steps
    return [i * stride for i in reversed(range(steps))]


@torch.no_grad()
def sample(model: Callable[[Tensor, Tensor], Tensor], schedule: Schedule, shape: tuple[int, ...], *,
           sampler: str = "ddpm", steps: int | None = None, eta: float = 0.0,
           generator: torch.Generator | None = None, device: torch.device | str | None = None,
           progress: Callable[[int], None] | None = None, clip_x0: bool = False) -> Tensor:
    """Generate a batch of `shape` by running the reverse process from x_T ~ N(0, I).

    model(x_t, t) -> predicted eps, with t a long [B] tensor. "ddpm": all T ancestral steps
    (Ho et al. 2020, Algorithm 2). "ddim": the `steps` (default 50) timesteps of ddim_timesteps,
    with noise scale eta (Song et al. 2021, eq. 12). Every random draw comes from `generator`
    (which must live on `device`), so a fixed seed gives identical samples. clip_x0 clamps the
    predicted x0 to [-1, 1] and re-derives eps from it before each step. progress(i) is called
    with the number of steps done after each step. Returns float32 x_0 in the model's range.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
    if eta < 0:
        raise ValueError(f"eta must be >= 0 (0 = deterministic DDIM, 1 = DDPM-like), got {eta}")
    T = schedule.timesteps
    if sampler == "ddpm":
        if steps is not None and steps != T:
            raise ValueError(f"the ddpm sampler runs all {T} timesteps, got steps={steps}; "
                             f"use sampler: ddim to sample in {steps} steps")
        times = list(range(T - 1, -1, -1))
    else:
        times = ddim_timesteps(50 if steps is None else steps, T)
    if device is None:
        device = generator.device if generator is not None else schedule.betas.device
    schedule = schedule.to(device)

    x = torch.randn(shape, generator=generator, device=device)
    for i, t in enumerate(times):
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)
        eps = model(x, t_batch)
        if clip_x0:
            x0 = schedule.predict_x0(x, t_batch, eps).clamp(-1, 1)
            eps = schedule.predict_eps(x, t_batch, x0)
        if sampler == "ddpm":
            # the last step adds no noise, so draw none (keeps the stream the same length as T - 1)
            noise = torch.randn(shape, generator=generator, device=device) if t > 0 else None
            x = schedule.ddpm_step(x, t, eps, noise)
        else:
            t_prev = times[i + 1] if i + 1 < len(times) else -1
            noise = torch.randn(shape, generator=generator, device=device) if eta > 0 else None
            x = schedule.ddim_step(x, t, t_prev, eps, eta, noise)
        if progress is not None:
            progress(i + 1)
    return x
