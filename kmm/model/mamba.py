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

from kmm.ops import cpu_kernel
from kmm.ops.scan import cpu_fast_path, selective_scan, selective_scan_cpu

PARALLEL_ROWS = 1024   # batch × length from which the CPU kernels use a second thread (BiMambaBlock._both_cpu)

_CAUSAL_CONV = None  # cached import result: causal_conv1d_fn, or False


def causal_conv1d_kernel():
    """`causal_conv1d.causal_conv1d_fn` when installed (GPU-only package, optional like mamba-ssm), else None."""
    global _CAUSAL_CONV
    if _CAUSAL_CONV is None:
        try:
            from causal_conv1d import causal_conv1d_fn

            _CAUSAL_CONV = causal_conv1d_fn
        except Exception:  # noqa: BLE001 - any import failure means "no fused kernel"
            _CAUSAL_CONV = False
    return _CAUSAL_CONV or None


def causal_conv1d(x, conv: nn.Conv1d, activation: bool = True):
    """Depthwise causal convolution + SiLU, (B, D, L) -> (B, D, L): one F.conv1d with left padding
    (the layer pads both sides; the right overhang is cut), or causal_conv1d_fn on CUDA when installed."""
    fn = causal_conv1d_kernel() if x.is_cuda else None
    if fn is not None:
        return fn(x, rearrange(conv.weight, "d 1 k -> d k"), conv.bias, activation="silu" if activation else None)
    y = F.conv1d(x, conv.weight, conv.bias, padding=conv.padding, groups=conv.groups)[..., :x.shape[-1]]
    return F.silu(y) if activation else y


class ScanBranch(nn.Module):
    """The selective-scan half of a Mamba block: depthwise causal convolution, input-dependent Δ, B, C and the
    scan itself, gated by z. `Mamba` adds its input and output projections; `SharedBiMambaBlock`
    (kmm/model/shared_mamba.py) runs two branches behind one pair of projections."""

    def __init__(self, d_model: int, d_inner: int, d_state: int = 16, d_conv: int = 4,
                 dt_min: float = 1e-3, dt_max: float = 0.1):
        super().__init__()
        self._build_branch(d_model, d_inner, d_state, d_conv, dt_min, dt_max)

    def _build_branch(self, d_model, d_inner, d_state, d_conv, dt_min, dt_max):
        self.d_inner, self.d_state = d_inner, d_state
        self.dt_rank = math.ceil(d_model / 16)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        # dt bias initialised so softplus(bias) is log-uniform in [dt_min, dt_max] (as in mamba-ssm)
        dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))                     # (D_in, N)
        self.D = nn.Parameter(torch.ones(d_inner))

    def scan(self, x, z):  # (B, D_in, L) each -> y (B, D_in, L); the reference / CUDA path
        length = x.shape[-1]
        # 1. causal depthwise convolution
        x = causal_conv1d(x, self.conv1d)
        # 2. input-dependent Δ, B, C
        x_dbl = self.x_proj(rearrange(x, "b d l -> (b l) d"))
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = rearrange(self.dt_proj.weight @ dt.t(), "d (b l) -> b d l", l=length)
        B = rearrange(B, "(b l) n -> b n l", l=length).contiguous()
        C = rearrange(C, "(b l) n -> b n l", l=length).contiguous()
        # 3. selective scan, gated by z (fused kernel on CUDA when installed)
        A = -torch.exp(self.A_log.float())
        return selective_scan(x, dt, A, B, C, self.D.float(), z=z, delta_bias=self.dt_proj.bias.float(),
                              delta_softplus=True)


class Mamba(ScanBranch):
    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_min: float = 1e-3, dt_max: float = 0.1, d_inner: int | None = None):
        nn.Module.__init__(self)
        d_inner = d_inner or expand * d_model                       # d_inner overrides expand (a pruned block, #16)
        # parameters made in mamba-ssm's order (in_proj first), so a seed gives the same weights as before
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self._build_branch(d_model, d_inner, d_state, d_conv, dt_min, dt_max)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, x):  # (B, L, d_model) -> (B, L, d_model)
        if cpu_fast_path(x, self.A_log):   # CPU inference: C kernels (kmm/ops/scan_cpu.c)
            return self._forward_cpu(x)
        # 1. input projection into the scanned branch x and the gate z; 2-4. convolution, Δ/B/C, scan
        xz = rearrange(self.in_proj(x), "b l d -> b d l")
        x, z = xz.chunk(2, dim=1)                                    # (B, D_in, L) each
        return self.out_proj(rearrange(self.scan(x, z), "b d l -> b l d"))

    def _forward_cpu(self, x):  # (B, L, d_model) -> (B, L, d_model); CPU inference, same math as forward
        # channels-last throughout: the kernels read strided views, so nothing is transposed or copied
        xz = self.in_proj(x)                                                   # (B, L, 2 D_in): [x | z]
        x = cpu_kernel.conv_silu(xz, self.conv1d.weight, self.conv1d.bias)    # (B, L, D_in)
        x_dbl = F.linear(x, self.x_proj.weight)                                # (B, L, R + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight)                                 # (B, L, D_in), bias in the scan
        A = -torch.exp(self.A_log.float())
        y = selective_scan_cpu(x, dt, A, B, C, self.D, z=xz[..., self.d_inner:], delta_bias=self.dt_proj.bias,
                               delta_softplus=True)
        return self.out_proj(y)


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
                 ff_mult: int = 2, dropout: float = 0.1, d_inner: int | None = None, ff_dim: int | None = None):
        super().__init__()
        ff_dim = ff_dim or ff_mult * d_model                # d_inner / ff_dim: widths of a pruned block (#16)
        self.norm = nn.LayerNorm(d_model)
        self.fwd = Mamba(d_model, d_state, d_conv, expand, d_inner=d_inner)
        self.bwd = Mamba(d_model, d_state, d_conv, expand, d_inner=d_inner)
        self._add_feed_forward(d_model, ff_dim, dropout)

    def _add_feed_forward(self, d_model: int, ff_dim: int, dropout: float):
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Linear(ff_dim, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, lengths):  # (B, L, d), (B,) -> (B, L, d)
        h = self.norm(x)
        if cpu_fast_path(h, self.fwd.A_log) and not self.training:
            x = self._both_cpu(h, lengths, residual=x)                     # x + both directions, one GEMM
        else:
            x = x + self.drop(self.mix(h, lengths))
        return x + self.drop(self.ff(self.norm_ff(x)))

    def mix(self, h, lengths):  # (B, L, d), (B,) -> (B, L, d): both directions summed, reference path
        return self.fwd(h) + reverse_valid(self.bwd(reverse_valid(h, lengths)), lengths)

    def _both_cpu(self, h, lengths, residual):  # (B, L, d), (B,), (B, L, d) -> residual + y (B, L, d)
        """The same sum as forward's, computed as one Mamba with 2·D_in channels in two groups: group 1 runs
        backward in time over each valid part inside the kernels (no reverse_valid copies), and the two
        directions' projections are single GEMMs with fused weights (`_fused_weights`), the last one adding the
        residual. Valid positions match the reference to float rounding; padding positions differ (nothing
        valid reads them). The kernels split the two directions over two threads only for batches of at least
        PARALLEL_ROWS rows: below that a thread start costs about what it saves, and far more on a busy machine."""
        w = self._fused_weights()
        Din, R, N = self.fwd.d_inner, self.fwd.dt_rank, self.fwd.d_state
        rows = h.shape[0] * h.shape[1]
        threads = min(2, torch.get_num_threads()) if rows >= PARALLEL_ROWS else 1
        lengths = lengths.to("cpu")
        # 1. both input projections in one GEMM: columns [x_f | z_f | x_b | z_b]
        xz = F.linear(h, w["in"])                                                   # (B, L, 4 D_in)
        # 2. causal convolution (group 1 anti-causal within the valid part) + SiLU
        x = cpu_kernel.conv_silu(xz, w["conv_w"], w["conv_b"], groups=2, offset=2 * Din, lengths=lengths,
                                 reverse=(0, 1), threads=threads, weight_t=w["conv_w_t"])  # (B, L, 2 D_in)
        # 3. Δ, B, C of both directions: block-diagonal projections, columns [dt_f dt_b | B_f C_f | B_b C_b]
        x_dbl = F.linear(x, w["x"])                                                 # (B, L, 2R + 4N)
        dt = F.linear(x_dbl[..., :2 * R], w["dt"])                                  # (B, L, 2 D_in)
        # 4. the scan, gated by z
        y = cpu_kernel.scan_fwd(x, dt, w["A_t"], x_dbl[..., 2 * R:], x_dbl[..., 2 * R + N:], w["D"],
                                xz[..., Din:], w["dt_b"], True, groups=2,
                                offsets={"B": 2 * N, "C": 2 * N, "z": 2 * Din}, lengths=lengths,
                                reverse=(0, 1), threads=threads)                    # (B, L, 2 D_in)
        # 5. both output projections, their sum and the residual in one GEMM
        d = residual.shape[-1]
        return torch.addmm(residual.reshape(-1, d), y.view(-1, 2 * Din), w["out_t"]).view(residual.shape)

    def _fused_weights(self) -> dict:
        """Both directions' weights laid side by side for `_both_cpu`; rebuilt whenever a parameter changes
        (its version counter or storage), so training, `load_state_dict` and `.to()` are all seen."""
        cache = self.__dict__.get("_fused_cache")
        if cache is not None and all(p.data_ptr() == ptr and p._version == v for p, ptr, v in cache[0]):
            return cache[1]
        with torch.no_grad():
            w = self._build_fused()
        self.__dict__["_fused_cache"] = ([(p, p.data_ptr(), p._version) for p in self.parameters()], w)
        return w

    def _build_fused(self) -> dict:
        """The two scan branches (`_branch_weights`) + both directions' projections, input and output."""
        f, b = self.fwd, self.bwd
        w = self._branch_weights()
        w["in"] = torch.cat([f.in_proj.weight, b.in_proj.weight]).float().contiguous()
        w["out_t"] = torch.cat([f.out_proj.weight, b.out_proj.weight], dim=1).float().t()
        return w

    def _branch_weights(self) -> dict:
        """The two scan branches side by side, block-diagonal where they act per branch."""
        f, b = self.fwd, self.bwd
        R = f.dt_rank
        xf, xb = f.x_proj.weight.float(), b.x_proj.weight.float()                    # (R + 2N, D_in)
        w = {"conv_w": torch.cat([f.conv1d.weight, b.conv1d.weight]).float().contiguous(),
             "conv_b": torch.cat([f.conv1d.bias, b.conv1d.bias]).float().contiguous(),
             "x": torch.cat([torch.block_diag(xf[:R], xb[:R]), torch.block_diag(xf[R:], xb[R:])]).contiguous(),
             "dt": torch.block_diag(f.dt_proj.weight.float(), b.dt_proj.weight.float()).contiguous(),
             "dt_b": torch.cat([f.dt_proj.bias, b.dt_proj.bias]).float().contiguous(),
             "A_t": (-torch.exp(torch.cat([f.A_log, b.A_log]).float())).t().contiguous(),
             "D": torch.cat([f.D, b.D]).float().contiguous()}
        w["conv_w_t"] = w["conv_w"].reshape(w["conv_w"].shape[0], -1).t().contiguous()         # (K, 2 D_in)
        return w
