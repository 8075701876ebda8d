"""Motion Mamba latent denoiser (Zhang et al., ECCV 2024, §3.2–3.3): a U-Net of Hierarchical Temporal Mamba
(HTM) and Bidirectional Spatial Mamba (BSM) blocks, trained as a latent diffusion model (kmm.generators.motion_mamba.diffusion).

Architecture (per forward call, latents z_t (B, N, C) of the motion VAE, normalised per channel):
- U-Net over time with `len(level_scans)` levels, outer (full resolution) first. On the way down each level
  runs an HTM block followed by a BSM block; between levels time is halved by a learned pair-merge and
  doubled back by a learned pair-split; skips are concatenated and fused. Ours: the way up is lighter than
  the paper's symmetric U-Net (one bidirectional temporal scan per level, no BSM), which keeps a training
  step of the default config near 2.5 s on one CPU thread (symmetric: ~4.5 s).
- HTM (§3.2): the paper gives the outer, high-resolution levels more scans and the inner ones fewer
  (e.g. 3, 2, 1). Ours: a level's `level_scans[i]` scans are stacked bidirectional Mamba blocks
  (kmm.model.mamba.BiMambaBlock: forward + reversed-valid scan, so padding is never read by valid steps);
  the paper runs its isolated SSM scans in parallel inside one block.
- BSM (§3.3): at each level the d_model channels of every latent step are scanned as a sequence of
  `bsm_groups` groups of d_model / bsm_groups channels, forward and reversed (batch B·N, length bsm_groups),
  merged by summation, pre-norm and residual: channels exchange information, time steps do not.
- A small self-attention mixer at the bottleneck (key padding mask).
- Conditioning: sinusoidal timestep embedding + MLP; text (ours, as kmm.generators.kmm.model): each segment's
  frozen pooled sentence embedding is projected and added to every latent of that segment (seg_ids), so one
  sequence can carry several texts; a learned null text replaces it for classifier-free guidance. The
  conditioning is added at the input and again (through a per-block projection) at every HTM block.
Departures from the paper, besides the above: the latent is one 16-d vector per 4 frames (not MLD's single
clip latent), the text encoder is frozen MiniLM (not frozen CLIP), the model is sized for CPU training, and a
length head predicts the latent count from the text (ours: the paper takes the length as given).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kmm.config import MotionMambaConfig
from kmm.generators.kmm.masking import valid_mask
from kmm.generators.kmm.model import sinusoid
from kmm.model.mamba import BiMambaBlock, Mamba
from kmm.model.weights import PretrainedMixin


class BSMBlock(nn.Module):
    """Bidirectional Spatial Mamba: scans each step's channel groups forward and backward. (B, N, d) -> same."""

    def __init__(self, d_model: int, groups: int, d_state: int, d_conv: int, expand: int, dropout: float):
        super().__init__()
        if d_model % groups:
            raise ValueError(f"d_model {d_model} is not divisible by bsm_groups {groups}")
        self.groups = groups
        self.norm = nn.LayerNorm(d_model)
        self.fwd = Mamba(d_model // groups, d_state, d_conv, expand)
        self.bwd = Mamba(d_model // groups, d_state, d_conv, expand)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):  # (B, N, d) -> (B, N, d)
        B = x.shape[0]
        # 1. every latent step becomes a sequence of channel groups
        h = rearrange(self.norm(x), "b n (g e) -> (b n) g e", g=self.groups)      # (B·N, G, d/G)
        # 2. scan the groups both ways (no padding along channels: a plain flip)
        y = self.fwd(h) + self.bwd(h.flip(1)).flip(1)
        # 3. residual
        return x + self.drop(rearrange(y, "(b n) g e -> b n (g e)", b=B))


class HTMBlock(nn.Module):
    """Hierarchical Temporal Mamba block of one U-Net level: `scans` bidirectional temporal scans + BSM."""

    def __init__(self, c: MotionMambaConfig, scans: int, spatial: bool = True):
        super().__init__()
        self.cond = nn.Linear(c.d_model, c.d_model)
        self.scans = nn.ModuleList(BiMambaBlock(c.d_model, c.d_state, c.d_conv, c.expand, dropout=c.dropout)
                                   for _ in range(scans))
        self.bsm = BSMBlock(c.d_model, c.bsm_groups, c.d_state, c.d_conv, c.expand, c.dropout) if spatial else None

    def forward(self, x, cond, lengths):  # (B, L, d), (B, L, d), (B,) -> (B, L, d)
        x = x + self.cond(cond)
        for scan in self.scans:
            x = scan(x, lengths)
        return self.bsm(x) if self.bsm is not None else x


class AttentionMixer(nn.Module):
    """Pre-norm self-attention + feed-forward at the bottleneck; padding keys are masked."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout, batch_first=True,
                                                norm_first=True, activation="gelu")

    def forward(self, x, lengths):  # (B, L, d), (B,) -> (B, L, d)
        return self.layer(x, src_key_padding_mask=~valid_mask(lengths, x.shape[1]))


def _pair_mean(x, valid):
    """Masked mean over pairs of steps. x (B, L, d), valid (B, L) with L even -> (B, L/2, d)."""
    m = valid.to(x.dtype)[..., None]
    s = rearrange(x * m, "b (n two) d -> b n two d", two=2).sum(2)
    return s / rearrange(m, "b (n two) d -> b n two d", two=2).sum(2).clamp(min=1.0)


class MotionMambaDenoiser(PretrainedMixin, nn.Module):
    config_class = MotionMambaConfig

    def __init__(self, config: MotionMambaConfig):
        super().__init__()
        self.config = c = config
        d, L = c.d_model, len(c.level_scans)
        if c.prediction not in ("epsilon", "sample", "v_prediction"):
            raise ValueError(f"unknown prediction {c.prediction!r}")
        self.in_proj = nn.Linear(c.latent_dim, d)
        self.register_buffer("t_table", sinusoid(c.diffusion_steps, d), persistent=False)   # (T, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.text_proj = nn.Sequential(nn.Linear(c.text_dim, d), nn.GELU(), nn.Linear(d, d))
        self.null_text = nn.Parameter(torch.zeros(c.text_dim))
        self.down = nn.ModuleList(HTMBlock(c, s) for s in c.level_scans)
        self.merge = nn.ModuleList(nn.Linear(2 * d, d) for _ in range(L - 1))     # time ×½: a pair -> one step
        self.mid = AttentionMixer(d, c.n_heads, c.dropout)
        self.split = nn.ModuleList(nn.Linear(d, 2 * d) for _ in range(L - 1))     # time ×2: one step -> a pair
        self.fuse = nn.ModuleList(nn.Linear(2 * d, d) for _ in range(L - 1))      # [upsampled, skip] -> d
        self.up = nn.ModuleList(HTMBlock(c, 1, spatial=False) for _ in c.level_scans[:-1])
        self.norm_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, c.latent_dim)
        # length head (ours): latent count 1..max_length_tokens from the pooled text
        self.length_head = nn.Sequential(nn.Linear(c.text_dim, 256), nn.GELU(), nn.Linear(256, c.max_length_tokens))
        # latent statistics of the VAE posterior means over the training set (set by the trainer)
        self.register_buffer("latent_mean", torch.zeros(c.latent_dim))
        self.register_buffer("latent_std", torch.ones(c.latent_dim))

    def _condition(self, t, text, seg_ids, drop):  # -> (B, N, d): timestep + per-segment text
        if drop is not None:
            text = torch.where(drop[:, None, None], self.null_text.to(text.dtype).expand_as(text), text)
        cond = self.text_proj(text)                                                    # (B, S, d)
        cond = torch.gather(cond, 1, seg_ids.unsqueeze(-1).expand(-1, -1, cond.shape[-1]))  # (B, N, d)
        return cond + self.time_mlp(self.t_table[t])[:, None, :]

    def forward(self, z_t, t, lengths, text, seg_ids, drop=None):
        """z_t (B, N, C) noisy normalised latents, t (B,) long, lengths (B,) valid latent counts,
        text (B, S, 384) pooled per segment, seg_ids (B, N) long, drop (B,) bool -> (B, N, C) prediction."""
        B, N, _ = z_t.shape
        n_levels = len(self.config.level_scans)
        # 1. conditioning and input embedding; pad time to a multiple of 2^(levels−1)
        cond = self._condition(t, text, seg_ids, drop)                                 # (B, N, d)
        x = self.in_proj(z_t) + cond                                                   # (B, N, d)
        pad = (-N) % (2 ** (n_levels - 1))
        if pad:
            x, cond = F.pad(x, (0, 0, 0, pad)), F.pad(cond, (0, 0, 0, pad))
        lens = lengths
        # 2. down path: HTM (+BSM) per level, then merge pairs of steps (padding zeroed first)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x, cond, lens)
            if i + 1 < n_levels:
                skips.append((x, cond, lens))
                valid = valid_mask(lens, x.shape[1])
                x = self.merge[i](rearrange(x * valid[..., None], "b (n two) d -> b n (two d)", two=2))
                cond = _pair_mean(cond, valid)
                lens = (lens + 1) // 2
        # 3. bottleneck attention
        x = self.mid(x, lens)
        # 4. up path: split each step into a pair, fuse with the skip, HTM (+BSM)
        for i in reversed(range(n_levels - 1)):
            skip, cond, lens = skips[i]
            x = rearrange(self.split[i](x), "b n (two d) -> b (n two) d", two=2)
            x = self.fuse[i](torch.cat([x, skip], -1))
            x = self.up[i](x, cond, lens)
        # 5. output head, crop the padding
        return self.head(self.norm_out(x))[:, :N]

    def length_logits(self, pooled):  # (B, 384) -> (B, max_length_tokens); class k = k+1 latent steps
        return self.length_head(pooled)
