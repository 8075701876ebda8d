"""Residual-layer predictor — paper §3.1 / MoMask's residual transformer (METHOD.md §3).

Given the sum of code vectors of layers 0..q−1 and the text, predicts the ids of layer q (q ≥ 1). A small
bidirectional Mamba, one model for all layers (a learned layer embedding says which).
"""
from __future__ import annotations

import torch
from torch import nn

from kmm.config import ResidualConfig
from kmm.model.mamba import BiMambaBlock
from kmm.model.weights import PretrainedMixin


class ResidualPredictor(PretrainedMixin, nn.Module):
    config_class = ResidualConfig

    def __init__(self, config: ResidualConfig):
        super().__init__()
        self.config = c = config
        self.in_proj = nn.Linear(c.code_dim, c.d_model)
        self.layer_emb = nn.Embedding(c.n_quantizers, c.d_model)
        self.text_proj = nn.Linear(c.text_dim, c.d_model)
        self.null_text = nn.Parameter(torch.zeros(c.text_dim))
        self.blocks = nn.ModuleList(BiMambaBlock(c.d_model, c.d_state, expand=c.expand, dropout=c.dropout) for _ in range(c.n_layers))
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.n_codes)

    def forward(self, partial_sum, layer, lengths, text, seg_ids, drop=None):
        # partial_sum (B, T, code_dim), layer (B,), text (B, S, 384), seg_ids (B, T) -> logits (B, T, K)
        if drop is not None:
            text = torch.where(drop[:, None, None], self.null_text.expand_as(text), text)
        cond = torch.gather(self.text_proj(text), 1, seg_ids.unsqueeze(-1).expand(-1, -1, self.config.d_model))
        x = self.in_proj(partial_sum) + cond + self.layer_emb(layer)[:, None, :]
        for block in self.blocks:
            x = block(x, lengths)
        return self.head(self.norm(x))
