"""Decoding — paper §3.2 inference and §3.4 extended generation (METHOD.md §3–4).

- `mask_predict`: iterative mask-predict (MaskGIT/MoMask) with tokens that may be fixed in advance
  (inpainting: editing and window overlaps).
- `guided`: classifier-free guidance, logits = (1 + s)·cond − s·uncond, in one doubled batch; a
  guidance-distilled generator (`guidance_head`) gives them in one pass, cond + s·(its guidance direction).
- `residual_layers`: fills codebook layers 1..Q−1 from the base layer, greedily.
- `window_plan` / `sample_windows`: timelines longer than the training window are generated in overlapping
  windows whose overlap is fixed from the previous window, so time is linear and memory bounded.
- `sample_windows_batched`: the same windows, optionally in two batches (even windows, then odd windows
  in-painted between their neighbours): a 10-minute timeline takes 2 × steps generator passes instead of
  63 × steps (1.5× less CPU), but transitions get jerkier (results/profile.md), so it is off by default.
No I/O; all randomness comes from the torch.Generator passed in.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from kmm.generators.kmm.masking import valid_mask


def cfg_passes(model, tokens, lengths, text, seg_ids):
    """tokens (B, T) -> (cond, uncond) logits, each (B, T, K), from one doubled batch."""
    B = tokens.shape[0]
    drop = torch.cat([torch.zeros(B, dtype=torch.bool), torch.ones(B, dtype=torch.bool)]).to(tokens.device)
    both = model(torch.cat([tokens, tokens]), torch.cat([lengths, lengths]), torch.cat([text, text]),
                 torch.cat([seg_ids, seg_ids]), drop)
    return both[:B], both[B:]


def cfg_combine(cond, uncond, scale):
    """(1 + s)·cond − s·uncond; scale: a float, or (B,) scales, one per row."""
    if torch.is_tensor(scale):
        scale = scale.to(cond.dtype)[:, None, None]
    return (1 + scale) * cond - scale * uncond


def cfg_logits(model, tokens, lengths, text, seg_ids, scale):
    """(1 + s)·cond − s·uncond for tokens (B, T) -> (B, T, K), both passes in one doubled batch.
    scale: a float, or (B,) scales, one per row (the distillation teachers, kmm.train.generator_step)."""
    return cfg_combine(*cfg_passes(model, tokens, lengths, text, seg_ids), scale)


def guided(model, lengths, text, seg_ids, scale: float) -> Callable:
    """Returns tokens (B, T) -> guided logits (B, T, K) for a MaskedGenerator-like model."""
    def fn(tokens):
        if getattr(model.config, "guidance_head", False):
            w = torch.full((tokens.shape[0],), float(scale), device=tokens.device)
            return model(tokens, lengths, text, seg_ids, guidance=w)
        if scale == 0:
            return model(tokens, lengths, text, seg_ids)
        return cfg_logits(model, tokens, lengths, text, seg_ids, scale)
    return fn


def _gumbel(shape, generator, device):
    u = torch.rand(shape, generator=generator, device=device).clamp_(1e-10, 1 - 1e-10)
    return -torch.log(-torch.log(u))


def _top_k_filter(logits, keep: float):
    """Keep the top `keep` fraction of each row's logits (at least one), the rest -inf."""
    k = max(1, int(math.ceil(keep * logits.shape[-1])))
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -float("inf"))


@torch.no_grad()
def mask_predict(logits_fn, lengths, T: int, mask_id: int, steps: int, generator: torch.Generator, *,
                 fixed=None, fixed_mask=None, temperature: float = 1.0, top_k: float = 0.1, groups=None):
    """Iterative mask-predict. lengths (B,); fixed (B, T) ids kept where fixed_mask (B, T) -> ids (B, T).

    1. start with every free valid token masked; fixed tokens in place
    2. each step: (guided) logits, sample every masked token (Gumbel-max, top-k filtered)
    3. confidence = probability of the sampled id; fixed and already decided tokens are never re-masked
    4. re-mask the least confident ⌊n_free · cos(π/2 · (s+1)/steps)⌋ of the sampled ones
    `groups` (B, T) ids ≥ 0 (a timeline's segment ids): step 4 within each group, so every segment of a long
    window keeps its own schedule, as a clip in training does (kmm.backends.MaskedBackend; issue #16).
    """
    device = lengths.device
    B = lengths.shape[0]
    valid = valid_mask(lengths, T)
    if fixed_mask is None:
        fixed_mask = torch.zeros(B, T, dtype=torch.bool, device=device)
        fixed = torch.zeros(B, T, dtype=torch.long, device=device)
    free = valid & ~fixed_mask                                                      # (B, T)
    n_free = free.sum(1)                                                            # (B,)
    # 1.
    tokens = torch.where(fixed_mask, fixed, torch.full_like(fixed, mask_id))
    tokens = torch.where(valid, tokens, torch.zeros_like(tokens))
    for s in range(steps):
        is_mask = tokens == mask_id
        if not is_mask.any():
            break
        # 2.
        logits = logits_fn(tokens).float()                                          # (B, T, K)
        logits = _top_k_filter(logits / max(temperature, 1e-5), top_k)
        sampled = (logits + _gumbel(logits.shape, generator, device)).argmax(-1)   # (B, T)
        # 3.
        conf = torch.softmax(logits, -1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
        conf = conf.masked_fill(~is_mask, float("inf"))
        tokens = torch.where(is_mask, sampled, tokens)
        # 4.
        keep = math.cos(math.pi / 2 * (s + 1) / steps)
        if groups is None:
            n_next = torch.floor(n_free.float() * keep).long()
            rank = conf.argsort(dim=1).argsort(dim=1)                               # 0 = least confident
            remask = (rank < n_next[:, None]) & is_mask
        else:
            remask = _remask_per_group(conf, is_mask, free, groups, keep)
        tokens = tokens.masked_fill(remask, mask_id)
    return tokens


def _remask_per_group(conf, is_mask, free, groups, keep: float):
    """Step 4 of `mask_predict` within each group: the least confident ⌊n_free_g · keep⌋ sampled tokens of every
    group g. conf (B, T) (inf where not just sampled), is_mask / free (B, T) bool, groups (B, T) -> (B, T) bool."""
    B, T = conf.shape
    G = int(groups.max()) + 1
    g = groups.clamp(min=0)
    n_next = torch.floor(conf.new_zeros(B, G).scatter_add_(1, g, free.float()) * keep).long()   # (B, G)
    # rank inside a group: sort by (group, confidence); tokens of lower groups come first
    key = g.double() * 4.0 + conf.double().clamp(max=2.0)                           # conf ∈ [0, 1], else 2
    rank = key.argsort(dim=1).argsort(dim=1)                                        # (B, T)
    start = torch.cumsum(g.new_zeros(B, G).scatter_add_(1, g, torch.ones_like(g)), 1)
    start = torch.cat([start.new_zeros(B, 1), start[:, :-1]], 1)                    # (B, G) first rank of g
    return (rank - start.gather(1, g) < n_next.gather(1, g)) & is_mask


@torch.no_grad()
def residual_layers(predictor, code_vectors, base, lengths, text, seg_ids, n_quantizers: int,
                    scale: float = 0.0, fixed=None, fixed_mask=None):
    """base (B, T) -> codes (B, T, Q). code_vectors(ids (B, T), layer) -> (B, T, C).

    Fixed positions (fixed (B, T, Q)) keep their ids on every layer, so edits stay local.
    """
    codes = [base]
    partial = code_vectors(base, 0)
    for q in range(1, n_quantizers):
        layer = torch.full_like(lengths, q)
        logits = predictor(partial, layer, lengths, text, seg_ids)
        if scale:
            drop = torch.ones_like(lengths, dtype=torch.bool)
            logits = (1 + scale) * logits - scale * predictor(partial, layer, lengths, text, seg_ids, drop)
        ids = logits.argmax(-1)
        if fixed_mask is not None:
            ids = torch.where(fixed_mask, fixed[..., q], ids)
        codes.append(ids)
        partial = partial + code_vectors(ids, q)
    return torch.stack(codes, -1)


def window_plan(n_tokens: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Overlapping windows covering [0, n_tokens). n=10, window=4, overlap=1 -> [(0,4),(3,7),(6,10)]."""
    if n_tokens <= window:
        return [(0, n_tokens)]
    if not 0 <= overlap < window:
        raise ValueError("overlap must be in [0, window)")
    spans, start = [], 0
    while True:
        end = min(start + window, n_tokens)
        spans.append((start, end))
        if end == n_tokens:
            return spans
        start = end - overlap


@torch.no_grad()
def sample_windows(window_fn, n_tokens: int, window: int, overlap: int, *, fixed=None, fixed_mask=None,
                   empty=None):
    """Runs window_fn(start, end, fixed_win (1, W, ...), fixed_mask_win (1, W)) -> (1, W, ...) over window_plan.

    Each window's overlap with the previous one is fixed to what that window produced (inpainting), on top of
    any positions fixed by the caller. Token ids by default; `empty` (1, n_tokens, ...) sets another layout
    (e.g. continuous latents). Returns (1, n_tokens, ...).
    """
    if fixed is not None:
        ids = fixed.clone()
    else:
        ids = torch.zeros(1, n_tokens, dtype=torch.long) if empty is None else empty.clone()
    known = torch.zeros(1, n_tokens, dtype=torch.bool) if fixed_mask is None else fixed_mask.clone()
    for start, end in window_plan(n_tokens, window, overlap):
        out = window_fn(start, end, ids[:, start:end], known[:, start:end])
        ids[:, start:end] = out
        known[:, start:end] = True
    return ids


def window_phases(spans: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Spans -> batches that can be sampled at once: [even spans, odd spans] when the even spans are disjoint
    (window >= 2 · overlap), else one batch per span (each waits for its left neighbour).
    [(0,4),(3,7),(6,10)] (overlap 1) -> [[(0,4),(6,10)], [(3,7)]]."""
    even, odd = spans[0::2], spans[1::2]
    if all(a_end <= b_start for part in (even, odd) for (_, a_end), (b_start, _) in zip(part, part[1:])):
        return [even, odd] if odd else [even]
    return [[s] for s in spans]


@torch.no_grad()
def sample_windows_batched(batch_fn, n_tokens: int, window: int, overlap: int, *, fixed=None, fixed_mask=None,
                           batched: bool = True):
    """Token ids over window_plan, windows sampled in batches (`window_phases`), or one at a time in order when
    `batched` is False (then exactly `sample_windows`: each window's overlap fixed from the one before).

    batch_fn(spans [(start, end)] * B, fixed (B, W), fixed_mask (B, W), lengths (B,)) -> ids (B, W), W the
    longest span, rows padded at the end. The even windows are generated first, side by side and independent
    of each other (only the caller's fixed tokens constrain them); each odd window then in-paints the gap
    between its two neighbours with both overlaps fixed. Same windows and the same amount of generated tokens
    as `sample_windows`; with one window the two are the same call. Even windows start from nothing, like a
    training clip, and each odd window must end on the start of the next one: measured, that makes the
    transitions jerkier than one window after another. fixed (1, n_tokens), fixed_mask (1, n_tokens) -> ids
    (1, n_tokens).
    """
    ids = torch.zeros(1, n_tokens, dtype=torch.long) if fixed is None else fixed.clone()
    known = torch.zeros(1, n_tokens, dtype=torch.bool) if fixed_mask is None else fixed_mask.clone()
    spans_all = window_plan(n_tokens, window, overlap)
    for spans in window_phases(spans_all) if batched else [[s] for s in spans_all]:
        W = max(end - start for start, end in spans)
        fixed_b = torch.zeros(len(spans), W, dtype=torch.long)
        known_b = torch.zeros(len(spans), W, dtype=torch.bool)
        for i, (start, end) in enumerate(spans):
            fixed_b[i, :end - start] = ids[0, start:end]
            known_b[i, :end - start] = known[0, start:end]
        lengths = torch.tensor([end - start for start, end in spans])
        out = batch_fn(spans, fixed_b, known_b, lengths)
        for i, (start, end) in enumerate(spans):
            ids[0, start:end] = out[i, :end - start]
            known[0, start:end] = True
    return ids
