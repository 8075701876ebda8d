"""Mamba and bidirectional Mamba blocks — paper §3.2 ("Mamba backbone"; METHOD.md §3).

`Mamba` keeps the parameter names of `mamba_ssm.Mamba` (in_proj, conv1d, x_proj, dt_proj, A_log, D,
out_proj) so weights load into either the fused CUDA path or our pure-PyTorch path.
`BiMambaBlock` runs one scan forward in time and one over the reversed valid part of each sequence
(padding stays at the end, so the backward scan never reads padding first), merges them by summation, and
adds a small feed-forward layer; pre-norm and residual throughout.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kmm.ops.scan import selective_scan


class Mamba(nn.Module):
    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_min: float = 1e-3, dt_max: float = 0.1):
        super().__init__()
        self.d_inner = expand * d_model
        self.d_state = d_state
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        # dt bias initialised so softplus(bias) is log-uniform in [dt_min, dt_max] (as in mamba-ssm)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))                     # (D_in, N)
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, x):  # (B, L, d_model) -> (B, L, d_model)
        length = x.shape[1]
        # 1. input projection into the scanned branch x and the gate z
        xz = rearrange(self.in_proj(x), "b l d -> b d l")
        x, z = xz.chunk(2, dim=1)                                    # (B, D_in, L) each
        # 2. causal depthwise convolution
        x = F.silu(self.conv1d(x)[..., :length])
        # 3. input-dependent Δ, B, C
        x_dbl = self.x_proj(rearrange(x, "b d l -> (b l) d"))
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = rearrange(self.dt_proj.weight @ dt.t(), "d (b l) -> b d l", l=length)
        B = rearrange(B, "(b l) n -> b n l", l=length).contiguous()
        C = rearrange(C, "(b l) n -> b n l", l=length).contiguous()
        # 4. selective scan (fused kernel on CUDA when installed)
        A = -torch.exp(self.A_log.float())
        y = selective_scan(x, dt, A, B, C, self.D.float(), z=z, delta_bias=self.dt_proj.bias.float(),
                           delta_softplus=True)
        return self.out_proj(rearrange(y, "b d l -> b l d"))


def reverse_valid(x, lengths):
    """Reverse each sequence's first `lengths[b]` steps, leaving padding in place.

    x (B, L, ...), lengths (B,). Example: [[1, 2, 3, 0]] with length 3 -> [[3, 2, 1, 0]]. Self-inverse.
    """
    L = x.shape[1]
    t = torch.arange(L, device=x.device)[None, :]                   # (1, L)
    n = lengths[:, None]                                             # (B, 1)
    idx = torch.where(t < n, n - 1 - t, t)                          # (B, L)
    idx = idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return torch.gather(x, 1, idx)


class BiMambaBlock(nn.Module):
    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 ff_mult: int = 2, dropout: float = 0.1):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.fwd = Mamba(d_model, d_state, d_conv, expand)
        self.bwd = Mamba(d_model, d_state, d_conv, expand)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_mult * d_model), nn.GELU(),
                                nn.Linear(ff_mult * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, lengths):  # (B, L, d), (B,) -> (B, L, d)
        h = self.norm(x)
        y = self.fwd(h) + reverse_valid(self.bwd(reverse_valid(h, lengths)), lengths)
        x = x + self.drop(y)
        return x + self.drop(self.ff(self.norm_ff(x)))
