"""Masked bidirectional Mamba generator — paper §3.2–3.3 (METHOD.md §3).

Predicts base-layer motion tokens from a partly masked sequence. Text fusion (ours): each segment's text
embedding is projected and added to every motion token of that segment, so one sequence carries several
segments' texts; a learned null embedding replaces the text for classifier-free guidance.
The same class with `backbone="transformer"` is the MoMask-style masked-transformer baseline.
Guidance distillation (ours, issue #16): with `guidance_head` a second output head predicts the guidance
direction d ≈ cond − uncond from the same pass, so the guided logits (1 + w)·cond − w·uncond = cond + w·d come
from one pass for any scale w (trained against the two passes of a teacher: kmm.train.generator_step). Sampling
then needs one generator pass per step instead of two.
Side heads: a motion encoder + projections for the contrastive text–motion alignment (§3.3) and a length
head that predicts a segment's token count from its text.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kmm.config import GeneratorConfig
from kmm.generators.kmm.masking import valid_mask
from kmm.model.mamba import BiMambaBlock
from kmm.model.shared_mamba import SharedBiMambaBlock
from kmm.model.text import TextTop
from kmm.model.weights import PretrainedMixin


def sinusoid(T: int, d: int, device=None):  # -> (T, d)
    pos = torch.arange(T, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(T, d, device=device)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe


class TransformerBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float, ff_dim: int | None = None):
        super().__init__()
        ff_dim = ff_dim or 2 * d_model                     # feed-forward width, as the Mamba blocks' default
        self.layer = nn.TransformerEncoderLayer(d_model, n_heads, ff_dim, dropout, batch_first=True,
                                                norm_first=True, activation="gelu")

    def forward(self, x, lengths):  # (B, T, d), (B,) -> (B, T, d)
        return self.layer(x, src_key_padding_mask=~valid_mask(lengths, x.shape[1]))


def make_blocks(c, n_layers: int) -> nn.ModuleList:
    if c.backbone == "mamba":
        block = SharedBiMambaBlock if c.shared_proj else BiMambaBlock
        return nn.ModuleList(block(c.d_model, c.d_state, c.d_conv, c.expand, dropout=c.dropout,
                                   d_inner=c.d_inner or None, ff_dim=c.ff_dim or None)
                             for _ in range(n_layers))
    if c.backbone == "transformer":
        return nn.ModuleList(TransformerBlock(c.d_model, c.n_heads, c.dropout, ff_dim=c.ff_dim or None)
                             for _ in range(n_layers))
    raise ValueError(f"unknown backbone {c.backbone!r}")


class MaskedGenerator(PretrainedMixin, nn.Module):
    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = c = config
        self.mask_id = c.n_codes
        self.text_top = TextTop(c.text)
        self.tok_emb = nn.Embedding(c.n_codes + 1, c.d_model)
        self.text_proj = nn.Sequential(nn.Linear(c.text.dim, c.d_model), nn.GELU(), nn.Linear(c.d_model, c.d_model))
        self.null_text = nn.Parameter(torch.zeros(c.text.dim))
        self.blocks = make_blocks(c, c.n_layers)
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.n_codes)
        # contrastive alignment (§3.3): a light motion encoder over ground-truth tokens (ours: per-token MLP +
        # masked mean, so the alignment loss adds no scan to a training step)
        self.motion_enc = nn.Sequential(nn.Linear(c.d_model, c.d_model), nn.GELU(), nn.Linear(c.d_model, c.d_model))
        self.motion_proj = nn.Linear(c.d_model, c.align_dim)
        self.text_align = nn.Linear(c.text.dim, c.align_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        # length head: token count 1..max_length_tokens from the text
        self.length_head = nn.Sequential(nn.Linear(c.text.dim, 256), nn.GELU(), nn.Linear(256, c.max_length_tokens))
        # guidance distillation: the guidance direction, zero at first, so a student starts as its teacher's
        # conditional pass
        self.guide_head = None
        if c.guidance_head:
            self.guide_head = nn.Linear(c.d_model, c.n_codes)
            nn.init.zeros_(self.guide_head.weight)
            nn.init.zeros_(self.guide_head.bias)

    # --- text -------------------------------------------------------------------------------
    def encode_text(self, hidden, mask):  # (N, S, 384), (N, S) -> pooled (N, 384)
        return self.text_top(hidden, mask)[1]

    # --- token prediction ---------------------------------------------------------------------
    def _embed(self, tokens, lengths, text, seg_ids, drop):
        # tokens (B, T), text (B, S, 384), seg_ids (B, T), drop (B,) bool or None -> (B, T, d)
        if drop is not None:
            text = torch.where(drop[:, None, None], self.null_text.expand_as(text), text)
        cond = self.text_proj(text)                                                  # (B, S, d)
        cond = torch.gather(cond, 1, seg_ids.unsqueeze(-1).expand(-1, -1, cond.shape[-1]))  # (B, T, d)
        x = self.tok_emb(tokens) + cond
        if self.config.backbone == "transformer":
            x = x + sinusoid(x.shape[1], x.shape[2], x.device)
        return x

    def forward(self, tokens, lengths, text, seg_ids, drop=None, guidance=None):  # -> logits (B, T, K)
        """guidance (B,) scales w, only for a `guidance_head` model: cond + w·d, the guided logits in one pass."""
        x = self._embed(tokens, lengths, text, seg_ids, drop)
        for block in self.blocks:
            x = block(x, lengths)
        h = self.norm(x)
        if guidance is None:
            return self.head(h)
        if self.guide_head is None:
            raise ValueError("this generator was not trained to give guided logits in one pass (no guidance_head)")
        return self.head(h) + guidance.to(h.dtype)[:, None, None] * self.guide_head(h)

    # --- contrastive alignment ------------------------------------------------------------------
    def motion_embedding(self, tokens, lengths):  # (B, T) ground-truth ids -> (B, align_dim), unit norm
        x = self.motion_enc(self.tok_emb(tokens))
        m = valid_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
        return F.normalize(self.motion_proj((x * m).sum(1) / m.sum(1)), dim=-1)

    def text_embedding(self, pooled):  # (B, 384) -> (B, align_dim), unit norm
        return F.normalize(self.text_align(pooled), dim=-1)

    def length_logits(self, pooled):  # (B, 384) -> (B, max_length_tokens); class k = k+1 tokens
        return self.length_head(pooled)


def info_nce(text_emb, motion_emb, logit_scale, same_text=None):
    """Symmetric InfoNCE. Pairs whose captions are identical are not used as each other's negatives."""
    logits = logit_scale.exp().clamp(max=100) * text_emb @ motion_emb.t()          # (B, B)
    if same_text is not None:
        eye = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(same_text & ~eye, -1e4)
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
