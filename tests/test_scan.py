"""Selective scan: reference vs a naive step-by-step recurrence, custom backward vs autograd, fused vs ref."""
import pytest
import torch

from kmm.model.mamba import BiMambaBlock, Mamba, reverse_valid
from kmm.ops.scan import _ScanCore, fused_available, selective_scan, selective_scan_ref


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
