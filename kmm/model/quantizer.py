"""EMA vector quantiser and its residual stack — paper §3.1 (motion tokenizer; METHOD.md §2).

`EMAQuantizer` keeps its codebook as exponential moving averages of the encoder outputs assigned to each
code (no codebook gradient) and re-seeds codes that fall out of use with random encoder outputs.
`ResidualVQ` quantises what the previous layers left over; in training it keeps only the first n layers of
a batch with probability `dropout_p` (quantiser dropout), so the base layer carries most of the motion.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EMAQuantizer(nn.Module):
    def __init__(self, n_codes: int, dim: int, decay: float = 0.99, dead_threshold: float = 1.0):
        super().__init__()
        self.n_codes, self.dim, self.decay, self.dead_threshold = n_codes, dim, decay, dead_threshold
        self.register_buffer("codebook", torch.zeros(n_codes, dim))
        self.register_buffer("cluster_size", torch.zeros(n_codes))
        self.register_buffer("embed_sum", torch.zeros(n_codes, dim))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def codes_to_vectors(self, idx):  # (...) -> (..., C)
        return F.embedding(idx, self.codebook)

    def nearest(self, x):  # (N, C) -> (N,)
        dist = (x.pow(2).sum(1, keepdim=True) - 2 * x @ self.codebook.t()
                + self.codebook.pow(2).sum(1)[None, :])
        return dist.argmin(dim=1)

    @torch.no_grad()
    def _random_rows(self, x, n):
        return x[torch.randint(0, x.shape[0], (n,), device=x.device)]

    @torch.no_grad()
    def _update(self, x, idx):
        # 1. first batch seeds the codebook with encoder outputs
        if not bool(self.initialised):
            self.codebook.copy_(self._random_rows(x, self.n_codes))
            self.embed_sum.copy_(self.codebook)
            self.cluster_size.fill_(1.0)
            self.initialised.fill_(True)
            return
        # 2. EMA of counts and sums
        onehot = F.one_hot(idx, self.n_codes).type(x.dtype)          # (N, K)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ x, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        size = (self.cluster_size + 1e-5) / (n + self.n_codes * 1e-5) * n
        self.codebook.copy_(self.embed_sum / size[:, None])
        # 3. dead codes (rarely chosen) restart at random encoder outputs
        dead = self.cluster_size < self.dead_threshold
        if dead.any():
            fresh = self._random_rows(x, int(dead.sum()))
            self.codebook[dead] = fresh
            self.embed_sum[dead] = fresh
            self.cluster_size[dead] = 1.0

    def forward(self, x):  # (N, C) -> quantised (N, C), idx (N,), commitment loss
        idx = self.nearest(x.detach())
        if self.training:
            self._update(x.detach(), idx)
            idx = self.nearest(x.detach())
        q = self.codes_to_vectors(idx)
        commit = F.mse_loss(x, q.detach())
        return x + (q - x).detach(), idx, commit


class ResidualVQ(nn.Module):
    def __init__(self, n_layers: int, n_codes: int, dim: int, dropout_p: float = 0.2, decay: float = 0.99):
        super().__init__()
        self.layers = nn.ModuleList(EMAQuantizer(n_codes, dim, decay) for _ in range(n_layers))
        self.dropout_p = dropout_p

    def forward(self, x):  # (N, C) -> quantised (N, C), codes (N, Q), commitment loss
        n_active = len(self.layers)
        if self.training and torch.rand(()) < self.dropout_p:
            n_active = int(torch.randint(1, len(self.layers) + 1, ()))
        residual, out, codes, commit = x, torch.zeros_like(x), [], x.new_zeros(())
        for i, layer in enumerate(self.layers):
            if i >= n_active:
                codes.append(torch.full_like(codes[0], -1))
                continue
            q, idx, c = layer(residual)
            residual = residual - q.detach()
            out = out + q
            codes.append(idx)
            commit = commit + c
        return out, torch.stack(codes, dim=-1), commit

    def encode(self, x):  # (N, C) -> (N, Q)
        residual, codes = x, []
        for layer in self.layers:
            idx = layer.nearest(residual)
            residual = residual - layer.codes_to_vectors(idx)
            codes.append(idx)
        return torch.stack(codes, dim=-1)

    def decode(self, codes):  # (..., Q) -> (..., C); code -1 means "layer not used"
        out = 0
        for i, layer in enumerate(self.layers[: codes.shape[-1]]):
            idx = codes[..., i]
            vec = layer.codes_to_vectors(idx.clamp(min=0))
            out = out + vec * (idx >= 0).unsqueeze(-1).to(vec.dtype)
        return out
