"""BAMM cascaded decoding (Pinyoanuntapong et al., ECCV 2024, §3.3 "cascaded motion decoding").

Round 1, autoregressive with the unidirectional causal mask: tokens are sampled left to right until the model
emits [END] (this predicts the length), or until the given length, where [END] is forced.
Round 2, with the bidirectional causal mask: every other token is masked and re-predicted from everything on its
left plus all the unmasked tokens on both sides.
Guidance: 4 in round 1, 3 in round 2 (the paper's defaults). Tokens fixed by the caller (window overlaps,
editing) are teacher-forced in round 1 and never re-predicted. No I/O; randomness from the torch.Generator.
"""
from __future__ import annotations

from typing import Callable

import torch

from kmm.generators.kmm.sampling import _gumbel, _top_k_filter


def bamm_guided(model, text, scale: float) -> Callable:
    """-> fn(tokens (B, T), unmasked (B, T+1), lengths (B,), seg_ids (B, T+1)) -> guided logits (B, T+1, K+1)."""
    def fn(tokens, unmasked, lengths, seg_ids):
        B = tokens.shape[0]
        txt = text.expand(B, -1, -1)
        if scale == 0:
            return model(tokens, unmasked, lengths, txt, seg_ids)
        drop = torch.cat([torch.zeros(B, dtype=torch.bool), torch.ones(B, dtype=torch.bool)]).to(tokens.device)
        both = model(torch.cat([tokens, tokens]), torch.cat([unmasked, unmasked]), torch.cat([lengths, lengths]),
                     torch.cat([txt, txt]), torch.cat([seg_ids, seg_ids]), drop)
        return (1 + scale) * both[:B] - scale * both[B:]
    return fn


def _sample(logits, generator, temperature: float, top_k: float):  # (B, K) -> (B,)
    logits = _top_k_filter(logits.float() / max(temperature, 1e-5), top_k)
    return (logits + _gumbel(logits.shape, generator, logits.device)).argmax(-1)


@torch.no_grad()
def cascaded_decode(model, text, generator: torch.Generator, *, length: int | None = None, seg_ids=None,
                    guidance: tuple[float, float] = (4.0, 3.0), fixed=None, fixed_mask=None,
                    temperature: float = 1.0, top_k: float = 0.1, refine: bool = True):
    """One sequence. text (1, S, 384) per segment; length: tokens, or None to let [END] decide;
    seg_ids (1, length+1) segment per slot (default all 0); fixed/fixed_mask (1, length) -> ids (1, n).

    1. round 1: for i = 0, 1, ...: logits of slot i given slots < i (unidirectional mask); [END] is forbidden
       at i = 0 and before a given length; fixed tokens are copied instead of sampled; stop at [END] / length /
       the training window
    2. round 2: mask the free odd positions, re-predict them in one pass with the bidirectional mask
    """
    device = text.device
    end = model.end_id
    cap = model.config.max_tokens if length is None else int(length)
    if length is not None and not 1 <= length <= model.config.max_tokens:
        raise ValueError(f"BAMM decodes 1..{model.config.max_tokens} tokens per window, got {length}")
    if seg_ids is None:
        seg_ids = torch.zeros(1, cap + 1, dtype=torch.long, device=device)
    if fixed_mask is None:
        fixed_mask = torch.zeros(1, cap, dtype=torch.bool, device=device)
        fixed = torch.zeros(1, cap, dtype=torch.long, device=device)
    tokens = torch.zeros(1, cap, dtype=torch.long, device=device)
    # 1.
    step1 = bamm_guided(model, text, guidance[0])
    n = cap
    for i in range(cap):
        if bool(fixed_mask[0, i]):
            tokens[0, i] = fixed[0, i]
            continue
        logits = step1(tokens[:, :i], torch.zeros(1, i + 1, dtype=torch.bool, device=device),
                       torch.tensor([i], device=device), seg_ids[:, :i + 1])[:, i]           # (1, K+1)
        if length is not None or i == 0:
            logits[:, end] = -float("inf")
        tok = _sample(logits, generator, temperature, top_k)
        if int(tok) == end:
            n = i
            break
        tokens[0, i] = tok
    tokens, fixed_mask = tokens[:, :n], fixed_mask[:, :n]
    if not refine or n < 2:
        return tokens
    # 2.
    odd = (torch.arange(n, device=device) % 2 == 1)[None] & ~fixed_mask                        # (1, n)
    unmasked = torch.cat([~odd, torch.zeros(1, 1, dtype=torch.bool, device=device)], 1)      # [END] slot: query
    seg = seg_ids[:, :n + 1] if length is not None else torch.zeros(1, n + 1, dtype=torch.long, device=device)
    logits = bamm_guided(model, text, guidance[1])(tokens, unmasked, torch.tensor([n], device=device), seg)
    logits = logits[:, :n]
    logits[..., end] = -float("inf")
    new = _sample(logits.reshape(n, -1), generator, temperature, top_k).view(1, n)
    return torch.where(odd, new, tokens)
