"""Tokenizer, quantiser, generator and residual predictor: shapes, round trips, config JSON, determinism."""
import dataclasses

import pytest
import torch

from kmm.config import GeneratorConfig, ResidualConfig, TokenizerConfig
from kmm.generators.kmm.model import MaskedGenerator, info_nce
from kmm.model.quantizer import ResidualVQ
from kmm.model.residual import ResidualPredictor
from kmm.model.tokenizer import MotionTokenizer
from kmm.model.weights import WeightsError
from kmm.generators.kmm.sampling import guided, mask_predict, residual_layers, window_plan

TOK = TokenizerConfig(width=32, code_dim=16, n_quantizers=3, n_codes=32)
GEN = GeneratorConfig(n_codes=32, d_model=32, n_layers=1, align_dim=16, max_tokens=16, max_length_tokens=20)


@pytest.mark.parametrize("cfg", [TOK, GEN, ResidualConfig(d_model=24)])
def test_config_json_round_trip(cfg, tmp_path):
    cfg.save(tmp_path / "c.json")
    assert type(cfg).load(tmp_path / "c.json") == cfg


def test_tokenizer_shapes_and_code_round_trip():
    torch.manual_seed(0)
    tok = MotionTokenizer(TOK)
    x = torch.randn(2, 24, 263)
    tok.train()
    recon, codes, commit = tok(x)                 # initialises the codebooks
    assert recon.shape == x.shape and codes.shape == (2, 6, 3) and torch.isfinite(commit)
    tok.eval()
    codes = tok.encode(x)
    assert codes.shape == (2, 6, 3) and codes.min() >= 0 and codes.max() < 32
    out = tok.decode(codes)
    assert out.shape == (2, 24, 263)
    assert torch.equal(tok.encode(x), codes)      # deterministic


def test_residual_vq_layers_reduce_error():
    torch.manual_seed(0)
    rvq = ResidualVQ(4, 64, 8, dropout_p=0.0)
    x = torch.randn(512, 8)
    rvq.train()
    for _ in range(30):
        rvq(x)
    rvq.eval()
    codes = rvq.encode(x)
    errs = [float((rvq.decode(codes[:, :q]) - x).pow(2).mean()) for q in range(1, 5)]
    assert errs == sorted(errs, reverse=True) and errs[-1] < errs[0]


def test_save_load_round_trip_and_corrupt_file(tmp_path):
    torch.manual_seed(0)
    gen = MaskedGenerator(GEN).eval()
    gen.save_pretrained(tmp_path / "g")
    back = MaskedGenerator.from_pretrained(tmp_path / "g")
    assert back.config == gen.config
    for (n, a), (_, b) in zip(gen.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), n
    (tmp_path / "g" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="corrupt"):
        MaskedGenerator.from_pretrained(tmp_path / "g")
    with pytest.raises(WeightsError, match="missing"):
        MaskedGenerator.from_pretrained(tmp_path / "nothing")


@pytest.mark.parametrize("backbone", ["mamba", "transformer"])
def test_generator_segments_condition_their_own_tokens(backbone):
    torch.manual_seed(0)
    gen = MaskedGenerator(dataclasses.replace(GEN, backbone=backbone, dropout=0.0)).eval()
    tokens = torch.randint(0, 32, (1, 10))
    lengths = torch.tensor([10])
    text = torch.randn(1, 2, 384)
    seg = torch.tensor([[0] * 5 + [1] * 5])
    text2 = text.clone()
    text2[:, 1] += 1.0
    with torch.no_grad():
        a, b = gen(tokens, lengths, text, seg), gen(tokens, lengths, text2, seg)
    assert a.shape == (1, 10, 32)
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_info_nce_prefers_aligned_pairs():
    e = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    scale = torch.tensor(2.0)
    assert info_nce(e, e, scale) < info_nce(e, e.roll(1, 0), scale)


def test_mask_predict_deterministic_and_respects_fixed_tokens():
    torch.manual_seed(0)
    gen = MaskedGenerator(GEN).eval()
    lengths = torch.tensor([12])
    fn = guided(gen, lengths, torch.randn(1, 1, 384), torch.zeros(1, 12, dtype=torch.long), 2.0)
    fixed = torch.randint(0, 32, (1, 12))
    fmask = torch.zeros(1, 12, dtype=torch.bool)
    fmask[:, :4] = True
    run = lambda seed: mask_predict(fn, lengths, 12, gen.mask_id, 5, torch.Generator().manual_seed(seed),
                                    fixed=fixed, fixed_mask=fmask)
    a, b = run(0), run(0)
    assert torch.equal(a, b)
    assert torch.equal(a[:, :4], fixed[:, :4])
    assert (a < 32).all()                                          # nothing left masked


def test_remask_per_group_keeps_each_groups_schedule():
    from kmm.generators.kmm.sampling import _remask_per_group

    inf = float("inf")
    #             group 0: 4 sampled + 1 fixed     group 1: 3 sampled       padding
    conf = torch.tensor([[0.9, 0.1, 0.5, 0.3, inf, 0.2, 0.8, 0.05, inf, inf]])
    is_mask = torch.isfinite(conf)
    free = torch.tensor([[1, 1, 1, 1, 0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    groups = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, 0, 0]])
    remask = _remask_per_group(conf, is_mask, free, groups, keep=0.5)
    # ⌊4 · 0.5⌋ = 2 least confident of group 0 (0.1, 0.3), ⌊3 · 0.5⌋ = 1 of group 1 (0.05)
    assert remask.nonzero()[:, 1].tolist() == [1, 3, 7]
    # one schedule over everything (no groups): the 3 least confident of 7 overall would be 0.1, 0.2, 0.05
    one = _remask_per_group(conf, is_mask, free, torch.zeros_like(groups), keep=0.5)
    rank = conf.argsort(dim=1).argsort(dim=1)
    assert torch.equal(one, (rank < 3) & is_mask) and one.nonzero()[:, 1].tolist() == [1, 5, 7]


def test_mask_predict_with_groups_decodes_everything_deterministically():
    torch.manual_seed(0)
    gen = MaskedGenerator(GEN).eval()
    lengths = torch.tensor([12])
    seg = torch.tensor([[0] * 5 + [1] * 7])
    fn = guided(gen, lengths, torch.randn(1, 2, 384), seg, 2.0)
    run = lambda: mask_predict(fn, lengths, 12, gen.mask_id, 5, torch.Generator().manual_seed(0), groups=seg)
    a = run()
    assert torch.equal(a, run()) and (a < 32).all()


def test_residual_layers_shape_and_fixed():
    torch.manual_seed(0)
    res = ResidualPredictor(ResidualConfig(n_codes=32, n_quantizers=3, code_dim=16, d_model=16, n_layers=1)).eval()
    tok = MotionTokenizer(TOK).eval()
    base = torch.randint(0, 32, (1, 9))
    codes = residual_layers(res, tok.code_vectors, base, torch.tensor([9]), torch.randn(1, 1, 384),
                            torch.zeros(1, 9, dtype=torch.long), 3)
    assert codes.shape == (1, 9, 3) and torch.equal(codes[..., 0], base)


def test_window_plan_covers_with_overlap():
    assert window_plan(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert window_plan(3, 4, 1) == [(0, 3)]
    spans = window_plan(1000, 64, 16)
    assert spans[0][0] == 0 and spans[-1][1] == 1000
    assert all(b[0] == a[1] - 16 for a, b in zip(spans, spans[1:]))
