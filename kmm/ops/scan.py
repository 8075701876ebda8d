"""Selective scan (S6) of Mamba — paper §3.2 backbone (the Mamba recurrence of Gu & Dao, 2023).

Three twins with one recurrence, as in state-spaces/mamba:
- `selective_scan_ref`: pure PyTorch, always available, (B, D, L) layout. Training uses it (hand-written
  backward); it is the reference every other path is tested against.
- `selective_scan_cpu`: CPU inference (no gradients), channels-last (B, L, D) so the Mamba block needs no
  transposes. Runs the C kernel kmm/ops/scan_cpu.c (built once per machine by kmm.ops.cpu_kernel; about
  10× faster than the reference loop, see results/profile.md); without a C compiler it falls back to the
  reference. Outputs match the reference to float rounding (tests/test_scan.py).
- `selective_scan_fn`: the mamba-ssm CUDA kernel, used only when it imports and the tensors are on CUDA.
`selective_scan` dispatches per call.

Recurrence per channel d and state n (x = input u):
    h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t
    y_t = C_t · h_t + D u_t,  then y_t *= silu(z_t) when z is given.
"""
from __future__ import annotations

import contextlib
import warnings

import torch
import torch.nn.functional as F

_FUSED = None  # cached import result: the kernel function, or False


def _fused_kernel():
    global _FUSED
    if _FUSED is None:
        try:  # GPU-only package: importing it on a CPU machine fails, so it stays off the import path
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as fn

            _FUSED = fn
        except Exception:  # noqa: BLE001 - any import failure means "no fused kernel"
            _FUSED = False
    return _FUSED


def fused_available() -> bool:
    return bool(_fused_kernel())


class _ScanCore(torch.autograd.Function):
    """y = scan(u, Δ, A, B, C) with a hand-written backward (reverse-time recurrence).

    Used for training on the CPU: autograd through the step loop records ~L·4 graph nodes per scan and is
    3–10× slower. Forward keeps every state h_t (L, B, D, N); backward runs
        g_h_t = g_y_t C_t + exp(Δ_{t+1} A) ⊙ g_h_{t+1}
    and turns g_h into the gradients of Δ, u, A, B, C with vectorised reductions.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C):  # (B, D, L), (B, D, L), (D, N), (B, N, L), (B, N, L) -> (B, D, L)
        dt = delta.permute(2, 0, 1)                                        # (L, B, D)
        ut = u.permute(2, 0, 1)                                            # (L, B, D)
        dtu = dt * ut
        Bt, Ct = B.permute(2, 0, 1), C.permute(2, 0, 1)                    # (L, B, N)
        a = torch.exp(dt.unsqueeze(-1) * A)                                # (L, B, D, N)
        H = dtu.unsqueeze(-1) * Bt.unsqueeze(2)                            # (L, B, D, N), starts as Δ B u
        for t in range(1, H.shape[0]):
            H[t].addcmul_(a[t], H[t - 1])
        ctx.save_for_backward(dt, ut, dtu, A, Bt, Ct, a, H)
        return torch.einsum("lbdn,lbn->bdl", H, Ct)

    @staticmethod
    def backward(ctx, gy):
        dt, ut, dtu, A, Bt, Ct, a, H = ctx.saved_tensors
        gyt = gy.permute(2, 0, 1)                                          # (L, B, D)
        gC = torch.einsum("lbd,lbdn->bnl", gyt, H)
        G = gyt.unsqueeze(-1) * Ct.unsqueeze(2)                            # (L, B, D, N)
        for t in range(G.shape[0] - 2, -1, -1):
            G[t].addcmul_(a[t + 1], G[t + 1])
        Hprev = torch.cat([torch.zeros_like(H[:1]), H[:-1]])
        gda = G * Hprev * a                                                # d/d(Δ A)
        g_dt = (gda * A).sum(-1)                                           # (L, B, D)
        gA = (gda * dt.unsqueeze(-1)).sum((0, 1))                          # (D, N)
        g_dtu = (G * Bt.unsqueeze(2)).sum(-1)                              # (L, B, D)
        gB = torch.einsum("lbdn,lbd->bnl", G, dtu)
        g_dt = g_dt + g_dtu * ut
        g_u = g_dtu * dt
        return g_u.permute(1, 2, 0), g_dt.permute(1, 2, 0), gA, gB, gC


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Pure-PyTorch selective scan.

    u, delta, z: (B, D, L); A: (D, N); B, C: (B, N, L); D, delta_bias: (D,) -> y (B, D, L).
    With gradients enabled the core runs as `_ScanCore` (stored states, hand-written backward); without,
    as a loop that keeps only the current state (inference: memory does not grow with L).
    """
    dtype_in = u.dtype
    u, delta = u.float(), delta.float()
    # 1. discretisation step Δ (softplus keeps it positive)
    if delta_bias is not None:
        delta = delta + delta_bias.float()[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    A, B, C = A.float(), B.float(), C.float()
    if torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C)):
        y = _ScanCore.apply(u, delta, A, B, C)
        return _skip_and_gate(y, u, D, z, dtype_in)
    batch, dim, length = u.shape
    # 2. time-major views so each step reads contiguous memory
    dt = delta.permute(2, 0, 1).contiguous()                       # (L, B, D)
    dtu = (delta * u).permute(2, 0, 1).contiguous()                # (L, B, D)
    Bt = B.permute(2, 0, 1).contiguous()                           # (L, B, N)
    Ct = C.permute(2, 0, 1).contiguous()                           # (L, B, N)
    # 3. the recurrence, one fused step at a time
    h = u.new_zeros(batch, dim, A.shape[1])                        # (B, D, N)
    ys = []
    for t in range(length):
        h = torch.exp(dt[t].unsqueeze(-1) * A) * h + dtu[t].unsqueeze(-1) * Bt[t].unsqueeze(1)
        ys.append(torch.bmm(h, Ct[t].unsqueeze(-1)).squeeze(-1))  # (B, D)
    y = torch.stack(ys, dim=-1)                                    # (B, D, L)
    return _skip_and_gate(y, u, D, z, dtype_in)


def _skip_and_gate(y, u, D, z, dtype_in):
    # 4. skip connection and gate
    if D is not None:
        y = y + u * D.float()[None, :, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype_in)


_FORCE_REFERENCE = False


@contextlib.contextmanager
def reference_scan():
    """Within the block every CPU scan and Mamba block runs the reference path (A/B tests and benchmarks)."""
    global _FORCE_REFERENCE
    old, _FORCE_REFERENCE = _FORCE_REFERENCE, True
    try:
        yield
    finally:
        _FORCE_REFERENCE = old


def cpu_fast_path(*tensors) -> bool:
    """True when `selective_scan_cpu` may run its C kernel on these tensors: all float32 on the CPU, no
    gradient needed (the kernel has no backward), the kernel builds here and `reference_scan` is not active."""
    if _FORCE_REFERENCE or any(t.dtype != torch.float32 for t in tensors):
        return False
    if any(t.is_cuda or t.device.type != "cpu" for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    from kmm.ops import cpu_kernel

    return cpu_kernel.load() is not None


def cpu_scan_backend() -> str:
    """Which path CPU inference takes: "c-kernel" or "reference" (no compiler / build failed / disabled)."""
    from kmm.ops import cpu_kernel

    return "c-kernel" if cpu_kernel.load() is not None and not _FORCE_REFERENCE else "reference"


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Forward-only CPU scan, channels-last.

    u, delta, z: (B, L, D) (unit stride over D; z may be a strided view); A: (D, N); B, C: (B, L, N), any
    strides; D, delta_bias: (D,) -> y (B, L, D) float32. Without the C kernel: the reference, transposed.
    """
    if cpu_fast_path(*(x for x in (u, delta, A, B, C, D, z, delta_bias) if x is not None)):
        from kmm.ops import cpu_kernel

        unit = lambda x: x if x is None or x.stride(-1) == 1 else x.contiguous()  # noqa: E731
        return cpu_kernel.scan_fwd(unit(u), unit(delta), A.t(), unit(B), unit(C), D, unit(z), delta_bias,
                                   delta_softplus)
    t = lambda x: None if x is None else x.transpose(1, 2)  # noqa: E731
    return t(selective_scan_ref(t(u), t(delta), A, t(B), t(C), D, t(z), delta_bias, delta_softplus)).float()


_WARNED = False


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Dispatch, (B, D, L) layout: the fused CUDA kernel when importable and on CUDA, the C kernel for CPU
    inference, else the reference."""
    global _WARNED
    if not u.is_cuda and cpu_fast_path(*(x for x in (u, delta, A, B, C, D, z, delta_bias) if x is not None)):
        t = lambda x: None if x is None else x.transpose(1, 2)  # noqa: E731
        return t(selective_scan_cpu(t(u), t(delta), A, t(B), t(C), D, t(z), delta_bias,
                                    delta_softplus)).to(u.dtype)
    if u.is_cuda:
        fn = _fused_kernel()
        if fn:
            return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        if not _WARNED:
            warnings.warn("mamba-ssm is not installed: using the pure-PyTorch selective scan on CUDA")
            _WARNED = True
    return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
