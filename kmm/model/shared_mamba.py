"""Bidirectional Mamba block with shared projections — a leaner §3.2 backbone (ours, issue #16; the layout of
Vision Mamba's bidirectional block, Zhu et al. 2024).

`BiMambaBlock` (kmm/model/mamba.py) gives each direction its own Mamba: two input projections d → 2·D_in and two
output projections D_in → d, about 6·d² multiply-adds per token at D_in = d. Here both directions read one input
projection and write through one output projection; each keeps its own convolution, Δ/B/C projections, A and D:

1. x, z = in_proj(h)                                  (B, L, D_in) each
2. y_f = scan_f(x, z)                                 forward in time
3. y_b = reverse(scan_b(reverse(x), reverse(z)))      backward over each sequence's valid part
4. out = out_proj(y_f + y_b)                          (B, L, d)

That is 3·d² per token at D_in = d, half of `BiMambaBlock`'s, with the same scan width. A feed-forward layer
follows, pre-norm and residual throughout, as in `BiMambaBlock`.
Paths: `mix` is the reference (autograd; on CUDA the scan and the convolution use the fused kernels when
installed); CPU inference runs both directions as one two-group C kernel call (`_both_cpu`), tested for
parity in tests/test_shared_mamba.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kmm.model.mamba import PARALLEL_ROWS, BiMambaBlock, ScanBranch, reverse_valid
from kmm.ops import cpu_kernel


class SharedBiMambaBlock(BiMambaBlock):
    """`BiMambaBlock`'s norms, feed-forward and forward; its two Mambas replaced by one pair of projections around
    two scan branches (`mix`, `_both_cpu`)."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, ff_mult: int = 2,
                 dropout: float = 0.1, d_inner: int | None = None, ff_dim: int | None = None):
        nn.Module.__init__(self)
        d_inner = d_inner or expand * d_model
        self.norm = nn.LayerNorm(d_model)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.fwd = ScanBranch(d_model, d_inner, d_state, d_conv)
        self.bwd = ScanBranch(d_model, d_inner, d_state, d_conv)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self._add_feed_forward(d_model, ff_dim or ff_mult * d_model, dropout)

    def mix(self, h, lengths):  # (B, L, d), (B,) -> (B, L, d); steps 1-4 of the module docstring, reference
        xz = self.in_proj(h)                                                        # (B, L, 2 D_in)
        x, z = rearrange(xz, "b l d -> b d l").chunk(2, dim=1)
        y_f = rearrange(self.fwd.scan(x, z), "b d l -> b l d")
        xr, zr = rearrange(reverse_valid(xz, lengths), "b l d -> b d l").chunk(2, dim=1)
        y_b = reverse_valid(rearrange(self.bwd.scan(xr, zr), "b d l -> b l d"), lengths)
        return self.out_proj(y_f + y_b)

    def _both_cpu(self, h, lengths, residual):  # (B, L, d), (B,), (B, L, d) -> residual + mix (B, L, d)
        """`mix` plus the residual with the C kernels: both branches are one two-group call that reads the same
        x and z columns (group offset 0), group 1 backward within each valid part. Valid positions match `mix`
        to float rounding; padding positions differ (nothing valid reads them)."""
        w = self._fused_weights()
        f = self.fwd
        Din, R, N = f.d_inner, f.dt_rank, f.d_state
        threads = min(2, torch.get_num_threads()) if h.shape[0] * h.shape[1] >= PARALLEL_ROWS else 1
        lengths = lengths.to("cpu")
        xz = F.linear(h, self.in_proj.weight)                                      # (B, L, 2 D_in): [x | z]
        x = cpu_kernel.conv_silu(xz, w["conv_w"], w["conv_b"], groups=2, offset=0, lengths=lengths,
                                 reverse=(0, 1), threads=threads, weight_t=w["conv_w_t"])   # (B, L, 2 D_in)
        x_dbl = F.linear(x, w["x"])                                                # (B, L, 2R + 4N)
        dt = F.linear(x_dbl[..., :2 * R], w["dt"])                                 # (B, L, 2 D_in)
        y = cpu_kernel.scan_fwd(x, dt, w["A_t"], x_dbl[..., 2 * R:], x_dbl[..., 2 * R + N:], w["D"],
                                xz[..., Din:], w["dt_b"], True, groups=2,
                                offsets={"B": 2 * N, "C": 2 * N, "z": 0}, lengths=lengths,
                                reverse=(0, 1), threads=threads)                   # (B, L, 2 D_in)
        y = y[..., :Din] + y[..., Din:]                                            # (B, L, D_in)
        d = residual.shape[-1]
        return torch.addmm(residual.reshape(-1, d), y.reshape(-1, Din), w["out_t"]).view(residual.shape)

    def _build_fused(self) -> dict:
        """`BiMambaBlock`'s side-by-side scan branches and the one output projection (the input projection is
        used as it is)."""
        w = self._branch_weights()
        w["out_t"] = self.out_proj.weight.float().t()
        return w
