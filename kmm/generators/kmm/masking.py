"""Key-frame masking and random masking — paper §3.2 ("Key Frame Masking"; METHOD.md §3).

Pure functions over token embeddings: no model, no I/O, randomness from an explicit torch.Generator.
Key frames are density peaks (Rodriguez & Laio clustering) of a clip's token embeddings:
    ρ_i = Σ_j exp(−‖e_i − e_j‖² / σ²),   δ_i = min_{j: ρ_j > ρ_i} ‖e_i − e_j‖ (densest: max distance),
    Γ_i = ρ_i · δ_i.
The masking budget comes from a cosine schedule; key frames fill `key_share` of it, random tokens the rest.
"""
from __future__ import annotations

import math

import torch


def valid_mask(lengths, T: int):
    """lengths [2, 3], T=4 -> [[1,1,0,0],[1,1,1,0]] (bool)."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def cosine_ratio(u):
    """Masking ratio from uniform u in [0, 1): cos(u·π/2) — most batches mask a lot (MaskGIT schedule)."""
    return torch.cos(u * math.pi / 2)


def density_peak_scores(emb, lengths, sigma=None):
    """Γ = ρ·δ per token. emb (B, T, C), lengths (B,) -> (B, T); padding gets -inf.

    σ (ours): the median pairwise distance of the clip's tokens, unless given.
    """
    B, T, _ = emb.shape
    valid = valid_mask(lengths, T)                                           # (B, T)
    pair = valid[:, :, None] & valid[:, None, :]                             # (B, T, T)
    # 1. pairwise distances
    dist = torch.cdist(emb.float(), emb.float())                             # (B, T, T)
    # 2. bandwidth σ per clip
    if sigma is None:
        big = torch.where(pair, dist, torch.full_like(dist, float("nan")))
        sigma = torch.nanmedian(big.flatten(1), dim=1).values.clamp(min=1e-6)  # (B,)
    else:
        sigma = torch.full((B,), float(sigma), device=emb.device)
    # 3. local density ρ (self term included for every token alike)
    rho = (torch.exp(-(dist / sigma[:, None, None]) ** 2) * pair).sum(-1)   # (B, T)
    # 4. distance to the nearest denser token (ties broken by index so exactly one token is densest)
    idx = torch.arange(T, device=emb.device)
    denser = (rho[:, None, :] > rho[:, :, None]) | (
        (rho[:, None, :] == rho[:, :, None]) & (idx[None, None, :] < idx[None, :, None]))
    denser &= pair
    inf = torch.full_like(dist, float("inf"))
    delta = torch.where(denser, dist, inf).min(-1).values                   # (B, T)
    max_d = torch.where(pair, dist, torch.zeros_like(dist)).amax(-1)        # (B, T)
    delta = torch.where(torch.isinf(delta), max_d, delta)
    # 5. score
    return torch.where(valid, rho * delta, torch.full_like(rho, -float("inf")))


def _budget(lengths, ratio):
    return torch.clamp(torch.ceil(ratio * lengths).long(), min=1) .minimum(lengths)


def _top_by_priority(priority, n):
    """Boolean mask of the n[b] largest entries per row. priority (B, T), n (B,)."""
    order = priority.argsort(dim=1, descending=True)
    rank = order.argsort(dim=1)
    return rank < n[:, None]


def random_mask(emb, lengths, ratio, generator=None, key_share: float = 0.0):
    """Random masking of ceil(ratio·length) valid tokens per clip. -> (B, T) bool. `emb`, `key_share` unused."""
    B, T = emb.shape[:2]
    valid = valid_mask(lengths, T)
    prio = torch.rand(B, T, generator=generator, device=emb.device)
    prio = torch.where(valid, prio, torch.full_like(prio, -1.0))
    return _top_by_priority(prio, _budget(lengths, ratio)) & valid


def key_frame_mask(emb, lengths, ratio, generator=None, key_share: float = 0.5):
    """Mask key frames first, fill the rest of the budget at random. -> (B, T) bool.

    1. budget n = ceil(ratio·length); 2. n_key = round(key_share·n) tokens with the largest Γ;
    3. the other n − n_key drawn uniformly from the remaining valid tokens. Padding is never masked.
    """
    B, T = emb.shape[:2]
    valid = valid_mask(lengths, T)
    n = _budget(lengths, ratio)
    n_key = torch.round(key_share * n.float()).long()
    is_key = _top_by_priority(density_peak_scores(emb, lengths), n_key) & valid
    prio = torch.rand(B, T, generator=generator, device=emb.device) + 2.0 * is_key
    prio = torch.where(valid, prio, torch.full_like(prio, -1.0))
    return _top_by_priority(prio, n) & valid


MASKERS = {"keyframe": key_frame_mask, "random": random_mask}
