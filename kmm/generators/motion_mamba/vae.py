"""Motion VAE of the Motion Mamba baseline (Zhang et al., ECCV 2024, §3 "motion latent", after MLD).

Motion Mamba denoises in the latent space of a motion VAE (MLD, Chen et al., CVPR 2023). Ours departs from
the paper in the shape of that latent: MLD/Motion Mamba encode a whole clip into one 1×256 latent with a
transformer VAE; we use the conv stack of our tokenizer (kmm.model.tokenizer, ×4 downsampling in time) with a
Gaussian posterior instead of a quantiser, so there is one `latent_dim`-d latent per 4 frames. This keeps the
time grid of the other generators (lengths, segments, editing by inpainting all work per latent step) and is
sized for a CPU training budget.

`encode(x) -> mu, logvar (B, T/4, C)`, `decode(z) -> (B, T, F)`, `forward(x) -> recon, mu, logvar`.
Features are normalised (kmm.motion.features.Normalizer) before they reach this module.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from kmm.config import MotionVAEConfig
from kmm.model.tokenizer import conv_decoder, conv_encoder
from kmm.model.weights import PretrainedMixin


class MotionVAE(PretrainedMixin, nn.Module):
    config_class = MotionVAEConfig

    def __init__(self, config: MotionVAEConfig):
        super().__init__()
        self.config = c = config
        W = c.width
        self.encoder = nn.Sequential(*conv_encoder(c.feature_dim, W, c.n_down, c.res_depth))
        # posterior heads: mean and log-variance of q(z | x), one Gaussian per latent step
        self.to_mu = nn.Conv1d(W, c.latent_dim, 3, padding=1)
        self.to_logvar = nn.Conv1d(W, c.latent_dim, 3, padding=1)
        self.decoder = nn.Sequential(*conv_decoder(c.latent_dim, W, c.n_down, c.res_depth, c.feature_dim))

    @property
    def downsample(self) -> int:
        return 2 ** self.config.n_down

    def encode(self, x):  # (B, T, F) normalised, T a multiple of 4 -> mu (B, T/4, C), logvar (B, T/4, C)
        h = self.encoder(rearrange(x, "b t f -> b f t"))                       # (B, W, T/4)
        mu = rearrange(self.to_mu(h), "b c n -> b n c")
        logvar = rearrange(self.to_logvar(h), "b c n -> b n c").clamp(-30.0, 20.0)
        return mu, logvar

    def decode(self, z):  # (B, N, C) -> (B, 4N, F)
        return rearrange(self.decoder(rearrange(z, "b n c -> b c n")), "b f t -> b t f")

    @torch.no_grad()
    def reconstruct(self, x):  # (B, T, F) -> (B, T, F) through the posterior mean (used to measure MPJPE)
        return self.decode(self.encode(x)[0])

    def forward(self, x, generator: torch.Generator | None = None):  # -> recon (B, T, F), mu, logvar
        """Training: z = mu + σ·ε (reparameterisation, ε from `generator`); eval: z = mu."""
        mu, logvar = self.encode(x)
        z = mu
        if self.training:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mu, logvar


def kl_divergence(mu, logvar):
    """KL(q(z|x) ‖ N(0, I)), mean over latent elements (MLD's reduction)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()
