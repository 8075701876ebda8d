"""SharedBiMambaBlock (kmm/model/shared_mamba.py): one pair of projections for both scan directions.
The reference against its written-out steps, padding, gradients, cost, the generator config round trip and the CUDA
path (the C-kernel CPU path against the reference: tests/test_scan.py)."""
from __future__ import annotations

import pytest
import torch

from kmm.config import GeneratorConfig
from kmm.generators.kmm.model import MaskedGenerator
from kmm.model.mamba import BiMambaBlock, causal_conv1d_kernel
from kmm.model.shared_mamba import SharedBiMambaBlock
from kmm.ops import cpu_kernel
from kmm.ops.scan import fused_available, reference_scan

needs_kernel = pytest.mark.skipif(cpu_kernel.load() is None, reason="no C compiler: the CPU kernel is not built")
KERNEL_ATOL = 1e-4


def _block(seed=0, d=16, **kw):
    torch.manual_seed(seed)
    return SharedBiMambaBlock(d, d_state=4, expand=1, dropout=0.0, **kw).eval()


def test_reference_mix_is_forward_plus_reversed_backward_scan():
    # step 3 of the module docstring written out: the backward branch on the reversed valid part only
    blk = _block(2)
    x, lengths = torch.randn(2, 9, 16), torch.tensor([9, 5])
    with torch.no_grad(), reference_scan():
        y = blk.mix(x, lengths)
        for b, n in enumerate(lengths.tolist()):
            one = x[b:b + 1, :n]
            xz = blk.in_proj(one).transpose(1, 2)
            xs, z = xz.chunk(2, dim=1)
            y_f = blk.fwd.scan(xs, z)
            y_b = blk.bwd.scan(xs.flip(-1), z.flip(-1)).flip(-1)
            expect = blk.out_proj((y_f + y_b).transpose(1, 2))
            assert torch.allclose(y[b:b + 1, :n], expect, atol=1e-5), b


def test_padding_is_never_read():
    blk = _block(3)
    x = torch.randn(1, 6, 16)
    padded = torch.cat([x, torch.randn(1, 3, 16)], dim=1)
    for ref in (False, True):
        with torch.no_grad():
            if ref:
                with reference_scan():
                    a, b = blk(x, torch.tensor([6])), blk(padded, torch.tensor([6]))[:, :6]
            else:
                a, b = blk(x, torch.tensor([6])), blk(padded, torch.tensor([6]))[:, :6]
        assert torch.allclose(a, b, atol=1e-5)


@needs_kernel
def test_fused_weights_follow_parameter_changes():
    blk = _block(4)
    x, lengths = torch.randn(1, 6, 16), torch.tensor([6])
    with torch.no_grad():
        before = blk(x, lengths)
        blk.bwd.dt_proj.weight.mul_(2.0)
        blk.out_proj.weight.mul_(0.5)
        after = blk(x, lengths)
        with reference_scan():
            ref = blk(x, lengths)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, ref, atol=KERNEL_ATOL)
    assert not any("fused" in k for k in blk.state_dict())


def test_training_reaches_every_parameter():
    blk = _block(5).train()
    x = torch.randn(2, 5, 16, requires_grad=True)
    blk(x, torch.tensor([5, 3])).sum().backward()            # training never takes the kernel (no backward)
    assert x.grad is not None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in blk.parameters())


def test_half_the_projection_weights_of_the_two_mamba_block():
    d = 32
    shared, two = SharedBiMambaBlock(d, d_state=8, expand=1), BiMambaBlock(d, d_state=8, expand=1)
    proj = lambda m: sum(p.numel() for n, p in m.named_parameters() if "in_proj" in n or "out_proj" in n)  # noqa: E731
    assert proj(shared) * 2 == proj(two) == 6 * d * d
    rest = lambda m: sum(p.numel() for p in m.parameters()) - proj(m)  # noqa: E731
    assert rest(shared) == rest(two)                         # same scans, convolutions, norms and feed-forward


def _tiny_config(**kw):
    return GeneratorConfig(n_codes=16, d_model=32, n_layers=2, d_state=4, align_dim=16, max_tokens=12,
                           max_length_tokens=12, **kw)


def test_generator_config_round_trip_and_old_configs(tmp_path):
    gen = MaskedGenerator(_tiny_config(shared_proj=True)).eval()
    assert all(isinstance(b, SharedBiMambaBlock) for b in gen.blocks)
    gen.save_pretrained(tmp_path / "g")
    back = MaskedGenerator.from_pretrained(tmp_path / "g").eval()
    assert back.config.shared_proj and all(isinstance(b, SharedBiMambaBlock) for b in back.blocks)
    tokens, lengths = torch.randint(0, 16, (2, 10)), torch.tensor([10, 6])
    text, seg = torch.randn(2, 1, 384), torch.zeros(2, 10, dtype=torch.long)
    with torch.no_grad():
        assert torch.equal(gen(tokens, lengths, text, seg), back(tokens, lengths, text, seg))
    old = _tiny_config().to_dict()
    old.pop("shared_proj")                                   # a config written before the field existed
    assert not GeneratorConfig.from_dict(old).shared_proj


@pytest.mark.skipif(not (torch.cuda.is_available() and fused_available() and causal_conv1d_kernel()),
                    reason="needs CUDA + mamba-ssm + causal-conv1d")
def test_cuda_fused_path_matches_cpu_reference():
    blk = _block(6, d=64)
    x, lengths = torch.randn(2, 40, 64), torch.tensor([40, 23])
    with torch.no_grad():
        with reference_scan():
            ref = blk(x, lengths)
        fused = blk.cuda()(x.cuda(), lengths.cuda()).cpu()
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(fused[b, :n], ref[b, :n], atol=1e-3), b


def test_pruning_refuses_shared_blocks():
    from kmm.training.prune import collect_importance

    with pytest.raises(TypeError, match="shared_proj"):
        with collect_importance(MaskedGenerator(_tiny_config(shared_proj=True))):
            pass
