"""Selective scan: reference vs a naive step-by-step recurrence, custom backward vs autograd, fused vs ref;
the CPU inference path (C kernel, channels-last, both directions at once) vs the reference."""
import pytest
import torch

from kmm.model import mamba as mamba_module
from kmm.model.mamba import BiMambaBlock, Mamba, causal_conv1d, causal_conv1d_kernel, reverse_valid
from kmm.model.shared_mamba import SharedBiMambaBlock
from kmm.ops import cpu_kernel
from kmm.ops.scan import (_ScanCore, cpu_scan_backend, fused_available, reference_scan, selective_scan,
                          selective_scan_cpu, selective_scan_ref)

needs_kernel = pytest.mark.skipif(cpu_kernel.load() is None, reason="no C compiler: the CPU kernel is not built")
# float32 kernels vs the float32 reference: vectorised exp/softplus and another summation order
KERNEL_ATOL = 1e-4


def naive_scan(u, delta, A, B, C, D, z, delta_bias):
    """The recurrence written out one (batch, channel) at a time, float64."""
    u, delta, A, B, C, D, z, delta_bias = (t.double() for t in (u, delta, A, B, C, D, z, delta_bias))
    delta = torch.nn.functional.softplus(delta + delta_bias[None, :, None])
    Bsz, Dim, L = u.shape
    y = torch.zeros(Bsz, Dim, L, dtype=torch.float64)
    for b in range(Bsz):
        for d in range(Dim):
            h = torch.zeros(A.shape[1], dtype=torch.float64)
            for t in range(L):
                h = torch.exp(delta[b, d, t] * A[d]) * h + delta[b, d, t] * B[b, :, t] * u[b, d, t]
                y[b, d, t] = (h * C[b, :, t]).sum() + D[d] * u[b, d, t]
    return y * torch.nn.functional.silu(z)


def _inputs(seed=0, Bsz=2, Dim=3, N=4, L=7):
    g = torch.Generator().manual_seed(seed)
    return dict(u=torch.randn(Bsz, Dim, L, generator=g), delta=torch.randn(Bsz, Dim, L, generator=g),
                A=-torch.rand(Dim, N, generator=g) - 0.1, B=torch.randn(Bsz, N, L, generator=g),
                C=torch.randn(Bsz, N, L, generator=g), D=torch.randn(Dim, generator=g),
                z=torch.randn(Bsz, Dim, L, generator=g), delta_bias=torch.randn(Dim, generator=g))


def test_reference_matches_naive_recurrence():
    x = _inputs()
    y = selective_scan_ref(**x, delta_softplus=True)
    assert torch.allclose(y.double(), naive_scan(**x), atol=1e-5)


def test_training_path_matches_inference_path():
    x = _inputs(seed=1, L=33)
    with torch.no_grad():
        y_loop = selective_scan_ref(**x, delta_softplus=True)
    leaves = {k: v.clone().requires_grad_() for k, v in x.items()}
    y_train = selective_scan_ref(**leaves, delta_softplus=True)
    assert torch.allclose(y_loop, y_train, atol=1e-5)
    y_train.square().sum().backward()
    assert all(torch.isfinite(v.grad).all() for v in leaves.values())


def test_custom_backward_gradcheck():
    g = torch.Generator().manual_seed(2)
    args = (torch.randn(2, 3, 5, generator=g, dtype=torch.float64),
            torch.rand(2, 3, 5, generator=g, dtype=torch.float64) * 0.5,
            -torch.rand(3, 4, generator=g, dtype=torch.float64),
            torch.randn(2, 4, 5, generator=g, dtype=torch.float64),
            torch.randn(2, 4, 5, generator=g, dtype=torch.float64))
    args = tuple(a.requires_grad_() for a in args)
    assert torch.autograd.gradcheck(_ScanCore.apply, args)


@pytest.mark.skipif(not (torch.cuda.is_available() and fused_available()), reason="needs CUDA + mamba-ssm")
def test_fused_matches_reference():
    x = {k: v.cuda() for k, v in _inputs(L=64).items()}
    y_fused = selective_scan(**x, delta_softplus=True)
    y_ref = selective_scan_ref(**x, delta_softplus=True)
    assert torch.allclose(y_fused, y_ref, atol=1e-3)


def test_mamba_parameter_names_match_mamba_ssm():
    names = {n.split(".")[0] for n, _ in Mamba(16).named_parameters()}
    assert names == {"in_proj", "conv1d", "x_proj", "dt_proj", "A_log", "D", "out_proj"}


def test_mamba_is_causal():
    torch.manual_seed(0)
    m = Mamba(8, d_state=4).eval()
    x = torch.randn(1, 10, 8)
    x2 = x.clone()
    x2[:, 6:] += 1.0
    with torch.no_grad():
        assert torch.allclose(m(x)[:, :6], m(x2)[:, :6], atol=1e-6)
        assert not torch.allclose(m(x)[:, 6:], m(x2)[:, 6:])


def test_reverse_valid_is_self_inverse_and_keeps_padding():
    x = torch.arange(8.0).view(2, 4, 1)
    lengths = torch.tensor([3, 4])
    r = reverse_valid(x, lengths)
    assert r[0, :, 0].tolist() == [2.0, 1.0, 0.0, 3.0]
    assert torch.equal(reverse_valid(r, lengths), x)


def test_bidirectional_block_ignores_padding():
    torch.manual_seed(0)
    blk = BiMambaBlock(8, d_state=4, expand=1, dropout=0.0).eval()
    x = torch.randn(1, 6, 8)
    padded = torch.cat([x, torch.randn(1, 3, 8)], dim=1)
    with torch.no_grad():
        a = blk(x, torch.tensor([6]))
        b = blk(padded, torch.tensor([6]))[:, :6]
    assert torch.allclose(a, b, atol=1e-5)


def _cl(x):  # (B, D, L) -> (B, L, D)
    return None if x is None else x.transpose(1, 2).contiguous()


@needs_kernel
@pytest.mark.parametrize("softplus,with_dz", [(True, True), (False, False)])
def test_cpu_kernel_matches_reference(softplus, with_dz):
    x = _inputs(seed=3, Bsz=2, Dim=19, N=5, L=41)
    if not softplus:
        x["delta"] = x["delta"].abs() * 0.3
    if not with_dz:
        x["D"], x["z"] = None, None
    ref = selective_scan_ref(**x, delta_softplus=softplus)
    fast = selective_scan_cpu(_cl(x["u"]), _cl(x["delta"]), x["A"], _cl(x["B"]), _cl(x["C"]), x["D"], _cl(x["z"]),
                              x["delta_bias"], softplus)
    assert cpu_scan_backend() == "c-kernel"
    assert torch.allclose(fast.transpose(1, 2), ref, atol=KERNEL_ATOL, rtol=1e-4)
    with torch.no_grad():  # the (B, D, L) dispatcher takes the kernel too
        assert torch.allclose(selective_scan(**x, delta_softplus=softplus), ref, atol=KERNEL_ATOL, rtol=1e-4)


def test_cpu_path_without_compiler_is_the_reference(monkeypatch):
    monkeypatch.setattr(cpu_kernel, "_LIB", False)          # as if the build had failed
    x = _inputs(seed=4)
    ref = selective_scan_ref(**x, delta_softplus=True)
    out = selective_scan_cpu(_cl(x["u"]), _cl(x["delta"]), x["A"], _cl(x["B"]), _cl(x["C"]), x["D"], _cl(x["z"]),
                             x["delta_bias"], True)
    assert cpu_scan_backend() == "reference"
    assert torch.equal(out.transpose(1, 2), ref)


def test_kernel_build_failure_falls_back(monkeypatch, tmp_path):
    monkeypatch.setattr(cpu_kernel, "_LIB", None)
    monkeypatch.setenv("KMM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setattr(cpu_kernel, "_compiler", lambda: "/bin/false")     # a "compiler" that always fails
    with pytest.warns(UserWarning, match="unavailable"):
        assert cpu_kernel.load() is None
    with torch.no_grad():
        m = Mamba(8, d_state=4).eval()
        assert m(torch.randn(1, 5, 8)).shape == (1, 5, 8)                  # the reference path still runs


@needs_kernel
def test_mamba_cpu_path_matches_reference():
    torch.manual_seed(0)
    m = Mamba(24, d_state=4, expand=2).eval()
    x = torch.randn(3, 17, 24)
    with torch.no_grad():
        fast = m(x)
        with reference_scan():
            ref = m(x)
    assert torch.allclose(fast, ref, atol=KERNEL_ATOL)


@needs_kernel
@pytest.mark.parametrize("block", [BiMambaBlock, SharedBiMambaBlock])   # two Mambas, or shared projections
def test_bidirectional_cpu_path_matches_reference_on_valid_positions(block):
    torch.manual_seed(1)
    blk = block(16, d_state=4, expand=2, dropout=0.0).eval()
    x = torch.randn(3, 12, 16)
    lengths = torch.tensor([12, 7, 1])
    with torch.no_grad():
        fast = blk(x, lengths)
        with reference_scan():
            ref = blk(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(fast[b, :n], ref[b, :n], atol=KERNEL_ATOL), b
    assert not torch.allclose(fast[1, :7], blk(torch.randn(3, 12, 16), lengths)[1, :7])


@needs_kernel
def test_bidirectional_fused_weights_follow_parameter_changes():
    torch.manual_seed(2)
    blk = BiMambaBlock(8, d_state=4, expand=1, dropout=0.0).eval()
    x, lengths = torch.randn(1, 6, 8), torch.tensor([6])
    with torch.no_grad():
        before = blk(x, lengths)
        blk.bwd.out_proj.weight.mul_(2.0)                                  # in place: version counter moves
        after = blk(x, lengths)
        with reference_scan():
            ref = blk(x, lengths)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, ref, atol=KERNEL_ATOL)
    assert "_fused_cache" not in blk.state_dict() and set(blk.state_dict()) == set(
        BiMambaBlock(8, d_state=4, expand=1).state_dict())


@needs_kernel
def test_training_never_takes_the_kernel():
    torch.manual_seed(3)
    blk = BiMambaBlock(8, d_state=4, expand=1, dropout=0.0)
    x = torch.randn(2, 5, 8, requires_grad=True)
    blk(x, torch.tensor([5, 3])).sum().backward()                           # the kernel has no backward
    assert x.grad is not None and all(p.grad is not None for p in blk.fwd.parameters())


@needs_kernel
def test_conv_kernel_matches_conv1d():
    torch.manual_seed(4)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3)
    x = torch.randn(2, 6, 9)                                               # (B, D, L)
    ref = causal_conv1d(x, conv)
    assert torch.allclose(ref, torch.nn.functional.silu(conv(x)[..., :9]))
    with torch.no_grad():
        fast = cpu_kernel.conv_silu(x.transpose(1, 2).contiguous(), conv.weight, conv.bias)
    assert torch.allclose(fast.transpose(1, 2), ref, atol=1e-5)


@pytest.mark.skipif(not (torch.cuda.is_available() and causal_conv1d_kernel()), reason="needs CUDA + causal-conv1d")
def test_causal_conv1d_fn_matches_conv1d():
    torch.manual_seed(5)
    conv = torch.nn.Conv1d(64, 64, 4, groups=64, padding=3).cuda()
    x = torch.randn(2, 64, 33, device="cuda")
    fused = causal_conv1d(x, conv)
    ref = torch.nn.functional.silu(conv(x)[..., :33])
    assert torch.allclose(fused, ref, atol=1e-4)


def test_no_python_loop_in_the_convolution(monkeypatch):
    calls = []
    real = torch.nn.functional.conv1d
    monkeypatch.setattr(mamba_module.F, "conv1d", lambda *a, **k: calls.append(1) or real(*a, **k))
    m = Mamba(8, d_state=4)
    with reference_scan():
        m(torch.randn(2, 30, 8))
    assert len(calls) == 1
