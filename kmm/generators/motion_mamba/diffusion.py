"""Latent diffusion for the Motion Mamba baseline (Zhang et al., ECCV 2024, §3; DDPM/DDIM as in MLD).

Pure functions, no I/O; all randomness comes from the torch.Generator passed in.
- Noise schedule: MLD's "scaled linear" betas, β_t = (linspace(√0.00085, √0.012, T))², ᾱ_t = Π(1 − β_s).
  Chosen over the cosine schedule because ᾱ at the last step stays ≈ 0.005 (cosine: ≈ 1e-9), so an
  ε-prediction turned into x̂₀ at the first sampling step is not blown up by 1/√ᾱ.
- `q_sample`: x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε.
- Prediction targets: "epsilon" (ε, the paper's), "sample" (x₀) or "v_prediction" (v = √ᾱ ε − √(1−ᾱ) x₀).
- `guided_denoiser`: classifier-free guidance, pred = (1 + s)·cond − s·uncond in one doubled batch.
- `ddim_sample`: deterministic DDIM (η = 0) with optional inpainting of fixed latents (editing, window
  overlaps) and optional static thresholding of x̂₀ (`clip_prediction`, DDPM's `clip_sample`; the pipeline's
  Motion Mamba backend uses ±2 std: guided 10-step sampling otherwise leaves the decoder's latent range).
  Ours: 10 steps by default at inference (MLD/Motion Mamba: 50), for a CPU demo.
- `sample_latents`: the whole text → latents sampler of a MotionMambaDenoiser, in the VAE's latent space.
"""
from __future__ import annotations

from typing import Callable

import torch

PREDICTIONS = ("epsilon", "sample", "v_prediction")


def scaled_linear_alphas_cumprod(T: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012):
    """ᾱ_t for t = 0..T−1 (float32, (T,)). ᾱ_0 ≈ 0.99915, ᾱ_{T−1} ≈ 0.0047 for T = 1000."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, T, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


def _at(alphas_cumprod, t, like):  # ᾱ_t for t (B,) long, shaped to broadcast against `like` (B, ...)
    a = alphas_cumprod.to(like.device)[t].to(like.dtype)
    return a.view(-1, *([1] * (like.dim() - 1)))


def q_sample(x0, t, noise, alphas_cumprod):
    """Forward process: x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε. x0, noise (B, ...), t (B,) long."""
    a = _at(alphas_cumprod, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def prediction_target(x0, noise, t, alphas_cumprod, prediction: str = "epsilon"):
    """What the denoiser is trained to output for (x₀, ε, t)."""
    if prediction == "epsilon":
        return noise
    if prediction == "sample":
        return x0
    if prediction == "v_prediction":
        a = _at(alphas_cumprod, t, x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0
    raise ValueError(f"unknown prediction {prediction!r}; expected one of {PREDICTIONS}")


def split_prediction(x_t, pred, t, alphas_cumprod, prediction: str = "epsilon"):
    """(x_t, model output) -> (x̂₀, ε̂), the two quantities a DDIM step needs."""
    a = _at(alphas_cumprod, t, x_t)
    sa, s1a = a.sqrt(), (1 - a).sqrt()
    if prediction == "epsilon":
        return (x_t - s1a * pred) / sa, pred
    if prediction == "sample":
        return pred, (x_t - sa * pred) / s1a
    if prediction == "v_prediction":
        return sa * x_t - s1a * pred, s1a * x_t + sa * pred
    raise ValueError(f"unknown prediction {prediction!r}; expected one of {PREDICTIONS}")


def guided_denoiser(model, lengths, text, seg_ids, scale: float) -> Callable:
    """Returns (x_t (B, N, C), t (B,)) -> guided prediction (B, N, C) for a MotionMambaDenoiser-like model."""
    def fn(x_t, t):
        if scale == 0:
            return model(x_t, t, lengths, text, seg_ids)
        B = x_t.shape[0]
        drop = torch.cat([torch.zeros(B, dtype=torch.bool), torch.ones(B, dtype=torch.bool)]).to(x_t.device)
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([lengths, lengths]),
                     torch.cat([text, text]), torch.cat([seg_ids, seg_ids]), drop)
        cond, uncond = both[:B], both[B:]
        return (1 + scale) * cond - scale * uncond
    return fn


def clip_prediction(x_t, x0, t, alphas_cumprod, bound: float):
    """Static thresholding (DDPM's `clip_sample`): x̂₀ clamped to [−bound, bound], ε̂ recomputed from it so the
    DDIM step stays consistent with x_t. -> (x̂₀, ε̂)."""
    a = _at(alphas_cumprod, t, x_t)
    x0 = x0.clamp(-bound, bound)
    return x0, (x_t - a.sqrt() * x0) / (1 - a).sqrt()


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """`steps` evenly spaced timesteps from T−1 down to 0. T=1000, steps=4 -> [999, 666, 333, 0]."""
    steps = max(1, min(int(steps), T))
    if steps == 1:
        return [T - 1]
    return [int(round((T - 1) * (1 - i / (steps - 1)))) for i in range(steps)]


@torch.no_grad()
def ddim_sample(pred_fn, shape, alphas_cumprod, steps: int, generator: torch.Generator, *,
                prediction: str = "epsilon", fixed=None, fixed_mask=None, device=None, clip_x0: float | None = None):
    """Deterministic DDIM (η = 0). pred_fn(x_t (B, N, C), t (B,) long) -> prediction; shape (B, N, C).

    Inpainting: fixed (B, N, C) latents are kept where fixed_mask (B, N) is True. Returns x₀ (B, N, C).
    1. timesteps t_0 > t_1 > … > t_{S−1} = 0, evenly spaced over [0, T−1]
    2. x ~ N(0, I) from `generator`; fixed positions replaced by q_sample(fixed, t_0, fresh noise)
    3. each step: prediction at t_i -> (x̂₀, ε̂); x ← √ᾱ_{t_{i+1}} x̂₀ + √(1 − ᾱ_{t_{i+1}}) ε̂ (ᾱ = 1 after the last)
    4. after each step, fixed positions re-noised to the new level: q_sample(fixed, t_{i+1}, fresh noise)
    5. the result carries exactly `fixed` where fixed_mask
    """
    device = torch.device(device) if device is not None else alphas_cumprod.device
    ac = alphas_cumprod.to(device)
    B = shape[0]
    inpaint = fixed_mask is not None and bool(fixed_mask.any())
    if inpaint:
        fixed = fixed.to(device)
        keep = fixed_mask.to(device)[..., None]                                      # (B, N, 1)
    # 1.
    ts = ddim_timesteps(len(ac), steps)
    # 2.
    x = torch.randn(shape, generator=generator, device=device)
    if inpaint:
        t0 = torch.full((B,), ts[0], dtype=torch.long, device=device)
        x = torch.where(keep, q_sample(fixed, t0, torch.randn(shape, generator=generator, device=device), ac), x)
    for i, t in enumerate(ts):
        tt = torch.full((B,), t, dtype=torch.long, device=device)
        # 3.
        x0, eps = split_prediction(x, pred_fn(x, tt).float(), tt, ac, prediction)
        if clip_x0 is not None:
            x0, eps = clip_prediction(x, x0, tt, ac, clip_x0)
        if i + 1 == len(ts):
            x = x0
            break
        t_next = torch.full((B,), ts[i + 1], dtype=torch.long, device=device)
        a_next = _at(ac, t_next, x)
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
        # 4.
        if inpaint:
            noise = torch.randn(shape, generator=generator, device=device)
            x = torch.where(keep, q_sample(fixed, t_next, noise, ac), x)
    # 5.
    if inpaint:
        x = torch.where(keep, fixed, x)
    return x


@torch.no_grad()
def sample_latents(denoiser, text, seg_ids, generator: torch.Generator, *, guidance: float = 4.0, steps: int = 10,
                   fixed=None, fixed_mask=None, clip_x0: float | None = None):
    """Text -> latents (1, N, C) in the VAE's (un-normalised) space; decode them with MotionVAE.decode.

    text (1, S, 384) frozen pooled sentence embeddings, one per segment; seg_ids (1, N) segment of each
    latent step; fixed (1, N, C) VAE-space latents kept where fixed_mask (1, N) (inpainting).
    1. normalise `fixed` with the denoiser's latent statistics
    2. guided DDIM in normalised latent space (x̂₀ clamped to ±`clip_x0` there, when given)
    3. un-normalise; fixed positions returned exactly as given
    """
    p = next(denoiser.parameters())
    device = p.device
    mean = denoiser.latent_mean.to(device)
    std = denoiser.latent_std.to(device)
    N = seg_ids.shape[1]
    shape = (1, N, denoiser.config.latent_dim)
    # 1.
    fixed_n = None
    if fixed_mask is not None:
        fixed_mask = fixed_mask.to(device)
        fixed = fixed.to(device)
        fixed_n = (fixed - mean) / std
    # 2.
    lengths = torch.tensor([N], device=device)
    fn = guided_denoiser(denoiser, lengths, text.to(device).to(p.dtype), seg_ids.to(device), guidance)
    ac = scaled_linear_alphas_cumprod(denoiser.config.diffusion_steps).to(device)
    x = ddim_sample(fn, shape, ac, steps, generator, prediction=denoiser.config.prediction,
                    fixed=fixed_n, fixed_mask=fixed_mask, device=device, clip_x0=clip_x0)
    # 3.
    z = x * std + mean
    if fixed_mask is not None:
        z = torch.where(fixed_mask[..., None], fixed, z)
    return z
