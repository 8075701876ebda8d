"""BAMM baseline — "BAMM: Bidirectional Autoregressive Motion Model" (Pinyoanuntapong et al., ECCV 2024).

A conditional masked self-attention transformer over base-layer motion tokens in which the **attention mask**,
not a [MASK] token, decides what each position sees:
- unidirectional causal mask: motion position i sees positions j ≤ i (GPT-style);
- bidirectional causal mask: a position i that has to be predicted sees every j ≤ i plus every unmasked
  token, including those to its right; an unmasked token sees the unmasked tokens.
Rule (both cases, the unidirectional one is "nothing unmasked"):
    i may attend j  ⇔  (j ≤ i and i ∉ U) or j ∈ U            U = unmasked motion positions
Every position also sees the text token, which is sequence position 0.

Inputs (ours, one consistent way to make the rule leak-free): slot i ∈ [0, T] of a T-token clip is either
*known* (i ∈ U: it carries its own token m_i) or a *query* (it carries the previous token m_{i−1}, BOS for
i = 0, and predicts m_i). Slot T is the [END] slot: it carries m_{T−1} and predicts [END]. A query therefore
never sees its own answer: the slots it may see carry only tokens < i or tokens in U.

Departures from the paper (also in the model card): the same 4-layer, 256-wide size as our other generators
(paper: a larger CLIP-conditioned transformer); frozen MiniLM sentence embedding instead of CLIP; each slot
also gets its segment's text added, so one sequence can carry a multi-segment timeline.
"""
from __future__ import annotations

import torch
from torch import nn

from kmm.config import BammConfig
from kmm.generators.kmm.masking import valid_mask
from kmm.model.weights import PretrainedMixin


def bamm_attention_mask(unmasked, lengths):
    """Boolean attention mask (True = may attend) over [text, slot 0 .. slot T_max].

    unmasked (B, T+1) bool: motion slots whose own token is given (the [END] slot never is);
    lengths (B,): real tokens per clip, so slots 0..lengths[b] (the last one is [END]) are valid.
    -> (B, T+2, T+2). Example, T=2, U={1}: slot 0 sees text, slot 0, slot 1; slot 1 sees text, slot 1;
    slot 2 ([END]) sees text, slots 0-2.
    """
    B, S = unmasked.shape                                                   # S = T + 1 slots
    i = torch.arange(S, device=unmasked.device)
    causal = i[None, :] <= i[:, None]                                       # (S, S) j ≤ i
    motion = (causal[None] & ~unmasked[:, :, None]) | unmasked[:, None, :]  # (B, S, S)
    valid = valid_mask(lengths + 1, S)                                      # (B, S) incl. the [END] slot
    motion = motion & valid[:, None, :]
    full = torch.zeros(B, S + 1, S + 1, dtype=torch.bool, device=unmasked.device)
    full[:, :, 0] = True                                                    # everyone sees the text
    full[:, 1:, 1:] = motion
    full[:, 0, 1:] = unmasked & valid                                       # text sees known tokens only
    return full


class Bamm(PretrainedMixin, nn.Module):
    config_class = BammConfig

    def __init__(self, config: BammConfig):
        super().__init__()
        self.config = c = config
        self.end_id = c.n_codes                      # output class for [END]
        self.bos_id = c.n_codes                      # input id for "no previous token"
        self.tok_emb = nn.Embedding(c.n_codes + 1, c.d_model)
        self.role = nn.Embedding(2, c.d_model)       # 0 = query slot (carries m_{i-1}), 1 = known slot (m_i)
        self.pos = nn.Embedding(c.max_tokens + 1, c.d_model)
        self.text_in = nn.Sequential(nn.Linear(c.text_dim, c.d_model), nn.GELU(), nn.Linear(c.d_model, c.d_model))
        self.text_add = nn.Linear(c.text_dim, c.d_model)
        self.null_text = nn.Parameter(torch.zeros(c.text_dim))
        layer = nn.TransformerEncoderLayer(c.d_model, c.n_heads, 2 * c.d_model, c.dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, c.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.n_codes + 1)

    def slot_inputs(self, tokens, unmasked):
        """tokens (B, T) ids (anything where unknown), unmasked (B, T+1) -> input ids (B, T+1), roles (B, T+1)."""
        B, T = tokens.shape
        prev = torch.cat([torch.full((B, 1), self.bos_id, dtype=tokens.dtype, device=tokens.device), tokens], 1)
        own = torch.cat([tokens, torch.zeros(B, 1, dtype=tokens.dtype, device=tokens.device)], 1)
        return torch.where(unmasked, own, prev), unmasked.long()

    def forward(self, tokens, unmasked, lengths, text, seg_ids, drop=None):
        """tokens (B, T), unmasked (B, T+1) bool, lengths (B,), text (B, S, 384) per segment,
        seg_ids (B, T+1) segment of each slot, drop (B,) bool -> logits (B, T+1, n_codes+1) per slot."""
        T = tokens.shape[1]
        if T + 1 > self.pos.num_embeddings:
            raise ValueError(f"BAMM window is {self.config.max_tokens} tokens, got {T}")
        if drop is not None:
            text = torch.where(drop[:, None, None], self.null_text.expand_as(text), text)
        # 1. slots: previous or own token, role, position, the slot's segment text
        ids, roles = self.slot_inputs(tokens, unmasked)
        seg_text = torch.gather(text, 1, seg_ids.unsqueeze(-1).expand(-1, -1, text.shape[-1]))   # (B, T+1, 384)
        x = self.tok_emb(ids) + self.role(roles) + self.pos.weight[:T + 1] + self.text_add(seg_text)
        # 2. text token in front (a timeline's segments averaged)
        x = torch.cat([self.text_in(text.mean(1, keepdim=True)), x], 1)                        # (B, T+2, d)
        # 3. masked self-attention; nn.Transformer wants True = blocked, one mask per head
        allowed = bamm_attention_mask(unmasked, lengths)
        blocked = (~allowed).repeat_interleave(self.config.n_heads, 0)
        h = self.blocks(x, mask=blocked)
        return self.head(self.norm(h[:, 1:]))
