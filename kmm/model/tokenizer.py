"""Motion tokenizer: a residual VQ-VAE over 263-d features — paper §3.1 (METHOD.md §2).

Time is downsampled ×4 by strided 1D convolutions; each latent step is quantised by a stack of residual
codebooks. `encode(features) -> codes (B, T/4, Q)` and `decode(codes) -> features (B, T, 263)`.
Features are normalised (see kmm.motion.features.Normalizer) before they reach this module.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kmm.config import TokenizerConfig
from kmm.model.quantizer import ResidualVQ
from kmm.model.weights import PretrainedMixin


class ResBlock(nn.Module):
    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(width, width, 1)

    def forward(self, x):  # (B, W, T) -> (B, W, T)
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def _res_stack(width: int, depth: int) -> list[nn.Module]:
    return [ResBlock(width, 3 ** i) for i in range(depth)]


def conv_encoder(in_dim: int, width: int, n_down: int, depth: int) -> list[nn.Module]:
    """Layers (B, in_dim, T) -> (B, width, T / 2**n_down): strided convolutions + dilated residual stacks."""
    layers = [nn.Conv1d(in_dim, width, 3, padding=1), nn.ReLU()]
    for _ in range(n_down):
        layers += [nn.Conv1d(width, width, 4, stride=2, padding=1), *_res_stack(width, depth)]
    return layers


def conv_decoder(latent_dim: int, width: int, n_down: int, depth: int, out_dim: int) -> list[nn.Module]:
    """Layers (B, latent_dim, N) -> (B, out_dim, N · 2**n_down): the encoder's mirror with nearest upsampling."""
    layers = [nn.Conv1d(latent_dim, width, 3, padding=1), nn.ReLU()]
    for _ in range(n_down):
        layers += [*_res_stack(width, depth), nn.Upsample(scale_factor=2, mode="nearest"),
                   nn.Conv1d(width, width, 3, padding=1)]
    return layers + [nn.Conv1d(width, width, 3, padding=1), nn.ReLU(), nn.Conv1d(width, out_dim, 3, padding=1)]


class MotionTokenizer(PretrainedMixin, nn.Module):
    config_class = TokenizerConfig

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = c = config
        W = c.width
        self.encoder = nn.Sequential(*conv_encoder(c.feature_dim, W, c.n_down, c.res_depth),
                                     nn.Conv1d(W, c.code_dim, 3, padding=1))
        self.decoder = nn.Sequential(*conv_decoder(c.code_dim, W, c.n_down, c.res_depth, c.feature_dim))
        self.rvq = ResidualVQ(c.n_quantizers, c.n_codes, c.code_dim, c.quantizer_dropout, c.ema_decay)

    @property
    def downsample(self) -> int:
        return 2 ** self.config.n_down

    def _latent(self, features):  # (B, T, F) -> (B, T/4, C)
        return rearrange(self.encoder(rearrange(features, "b t f -> b f t")), "b c t -> b t c")

    def forward(self, features):  # (B, T, F) -> recon (B, T, F), codes (B, T/4, Q), commitment
        z = self._latent(features)
        b = z.shape[0]
        q, codes, commit = self.rvq(rearrange(z, "b t c -> (b t) c"))
        q = rearrange(q, "(b t) c -> b t c", b=b)
        return self.decode_latent(q), rearrange(codes, "(b t) q -> b t q", b=b), commit

    def decode_latent(self, q):  # (B, T/4, C) -> (B, T, F)
        return rearrange(self.decoder(rearrange(q, "b t c -> b c t")), "b f t -> b t f")

    @torch.no_grad()
    def encode(self, features):  # (B, T, F) -> (B, T/4, Q)
        z = self._latent(features)
        b = z.shape[0]
        return rearrange(self.rvq.encode(rearrange(z, "b t c -> (b t) c")), "(b t) q -> b t q", b=b)

    @torch.no_grad()
    def decode(self, codes):  # (B, T/4, Q) -> (B, T, F)
        return self.decode_latent(self.rvq.decode(codes))

    @torch.no_grad()
    def reconstruct(self, features):  # (B, T, F) -> (B, T, F) through the codes (used to measure MPJPE)
        return self.decode(self.encode(features))

    def code_vectors(self, codes, layer: int):  # (...) ids of one layer -> (..., C)
        return self.rvq.layers[layer].codes_to_vectors(codes)
