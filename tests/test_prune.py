"""Structured pruning of the KMM generator (kmm/training/prune.py): exactness when nothing that matters is cut,
fast path = reference at pruned widths, config round trip, the `prune` command."""
import json

import pytest
import torch

from kmm.cli import main
from kmm.config import GeneratorConfig
from kmm.generators.kmm.model import MaskedGenerator
from kmm.ops.scan import cpu_fast_path, reference_scan
from kmm.training.prune import collect_importance, prune_generator
from kmm.prune_cli import calibration_prompts

torch.set_num_threads(1)
GEN = GeneratorConfig(n_codes=32, d_model=32, n_layers=2, align_dim=16, max_tokens=16, max_length_tokens=20)


def _inputs(seed=0, B=3, T=12):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, GEN.n_codes + 1, (B, T), generator=g)
    lengths = torch.tensor([T, T - 3, 5])[:B]
    text = torch.randn(B, 1, GEN.text.dim, generator=g)
    return tokens, lengths, text, torch.zeros(B, T, dtype=torch.long)


def _importance(gen):
    with torch.no_grad(), collect_importance(gen) as imp:
        gen(*_inputs(1))
    return imp


def _valid(x, lengths):
    return torch.cat([x[b, :n] for b, n in enumerate(lengths.tolist())])


def test_keeping_every_channel_is_the_same_model():
    torch.manual_seed(0)
    gen = MaskedGenerator(GEN).eval()
    pruned = prune_generator(gen, _importance(gen), 32, 64)          # expand 1 · 32 = 32; ff 2 · 32 = 64
    x = _inputs()
    with torch.no_grad(), reference_scan():
        assert torch.allclose(_valid(gen(*x), x[1]), _valid(pruned(*x), x[1]), atol=1e-5)


def test_channels_that_contribute_nothing_are_the_ones_removed():
    """Zero the out_proj (and x_proj) columns of 12 Mamba channels per direction and 40 feed-forward units'
    output columns: their importance is 0, pruning to the rest leaves the logits unchanged."""
    torch.manual_seed(0)
    gen = MaskedGenerator(GEN).eval()
    dead = torch.randperm(32)[:12]
    dead_ff = torch.randperm(64)[:40]
    with torch.no_grad():
        for block in gen.blocks:
            for m in (block.fwd, block.bwd):   # x_proj too: a channel's x also feeds Δ, B, C of the others
                m.out_proj.weight[:, dead] = 0
                m.x_proj.weight[:, dead] = 0
            block.ff[2].weight[:, dead_ff] = 0
    imp = _importance(gen)
    assert float(imp["blocks.0.fwd"][dead].abs().max()) == 0 and float(imp["blocks.1.ff"][dead_ff].abs().max()) == 0
    assert float(imp["blocks.0.fwd"].max()) > 0
    pruned = prune_generator(gen, imp, 20, 24)
    assert pruned.blocks[0].fwd.in_proj.weight.shape == (40, 32) and pruned.blocks[0].ff[0].weight.shape == (24, 32)
    x = _inputs()
    with torch.no_grad(), reference_scan():
        assert torch.allclose(_valid(gen(*x), x[1]), _valid(pruned(*x), x[1]), atol=1e-5)
    # keeping fewer channels than the live ones changes the model
    smaller = prune_generator(gen, imp, 10, 24)
    with torch.no_grad(), reference_scan():
        assert not torch.allclose(_valid(gen(*x), x[1]), _valid(smaller(*x), x[1]), atol=1e-3)


def test_pruned_model_fast_path_matches_reference_and_round_trips(tmp_path):
    torch.manual_seed(0)
    gen = prune_generator(MaskedGenerator(GEN).eval(), _importance(MaskedGenerator(GEN).eval()), 20, 24)
    x = _inputs()
    with torch.no_grad():
        if not cpu_fast_path(torch.zeros(1), gen.blocks[0].fwd.A_log):
            pytest.skip("no C compiler: the CPU kernels are not built here")
        fast = gen(*x)
        with reference_scan():
            ref = gen(*x)
    assert torch.allclose(_valid(fast, x[1]), _valid(ref, x[1]), atol=1e-4)
    gen.save_pretrained(tmp_path / "g")
    back = MaskedGenerator.from_pretrained(tmp_path / "g")
    assert back.config.d_inner == 20 and back.config.ff_dim == 24
    assert json.loads((tmp_path / "g" / "config.json").read_text())["d_inner"] == 20


def test_importance_needs_a_pass_and_sizes_are_checked():
    gen = MaskedGenerator(GEN).eval()
    with pytest.raises(RuntimeError):
        with collect_importance(gen):
            pass
    with pytest.raises(ValueError):
        prune_generator(gen, _importance(gen), 33, 24)


def test_calibration_prompts_take_the_first_of_each_group_once():
    groups = {"sit": ["d"], "jump": ["a", "b", "c"], "hop": ["a", "e"]}
    assert calibration_prompts(groups, 2) == ["a", "e", "b", "d"]


def test_prune_command_writes_a_smaller_bundle_and_refuses_bad_input(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "pruned"
    cfg = MaskedGenerator.from_pretrained(tiny_bundle / "kmm").config
    width = cfg.d_inner or cfg.expand * cfg.d_model
    assert main(["prune", "--weights", str(tiny_bundle), "--out", str(out), "--d-inner", str(width // 2),
                 "--ff-dim", str(cfg.d_model), "--per-group", "1", "--seconds", "2"]) == 0
    small = MaskedGenerator.from_pretrained(out / "kmm")
    assert small.config.d_inner == width // 2 and (out / "tokenizer" / "model.safetensors").is_file()
    assert "parameters" in capsys.readouterr().out
    assert main(["prune", "--weights", str(tiny_bundle), "--out", str(out), "--d-inner", "1", "--ff-dim", "1"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["prune", "--weights", str(tiny_bundle), "--out", str(tmp_path / "x"), "--d-inner", "9999",
                 "--ff-dim", "1"]) == 2
    assert "--d-inner" in capsys.readouterr().err and not (tmp_path / "x").exists()


def _distill_batch(seed=0, B=4, T=12):
    from kmm.config import TokenizerConfig
    from kmm.model.tokenizer import MotionTokenizer

    g = torch.Generator().manual_seed(seed)
    tok = MotionTokenizer(TokenizerConfig(width=32, code_dim=16, n_quantizers=3, n_codes=GEN.n_codes)).eval()
    codes = torch.randint(0, GEN.n_codes, (B, T, 3), generator=g)
    lengths = torch.tensor([T, T - 2, 7, 5])[:B]
    hidden, tmask = torch.randn(B, 6, GEN.text.dim, generator=g), torch.ones(B, 6, dtype=torch.bool)
    return tok, codes, lengths, lengths.clone(), hidden, tmask, [f"text {b}" for b in range(B)]


def test_distillation_term_is_zero_against_an_identical_teacher_and_only_added_when_asked():
    """train.generator_step with a teacher: KL(teacher ‖ student) over the masked tokens; 0 when the teacher is
    the student itself (no dropout), > 0 for another model; without a teacher the loss is the plain one."""
    import copy
    import dataclasses

    from kmm.train import generator_step

    cfg = dataclasses.replace(GEN, dropout=0.0, cond_drop=0.0)
    torch.manual_seed(0)
    student = MaskedGenerator(cfg)
    batch = _distill_batch()
    run = lambda teacher: generator_step(student, *batch, torch.Generator().manual_seed(5),  # noqa: E731
                                         teacher=teacher, distill_weight=1.0)
    plain, parts_plain = run(None)
    same, parts_same = run(copy.deepcopy(student).eval())
    torch.manual_seed(1)
    other, parts_other = run(MaskedGenerator(cfg).eval())
    assert "kd" not in parts_plain
    assert parts_same["kd"] < 1e-5 and abs(same.item() - plain.item()) < 1e-4
    assert parts_other["kd"] > 1e-3 and other.item() == pytest.approx(plain.item() + parts_other["kd"], rel=1e-4)


def test_windows_of_drawn_lengths_for_generators_that_decode_long_windows():
    """Recipe.window_min_tokens > 0: every window's length is drawn in [min, max] (long clips cropped to it, short
    ones whole, joined rows filled to it); 0 keeps the fixed max_tokens crops, random stream included."""
    import numpy as np

    from kmm.train import TokenCorpus, generator_batch, pair_windows

    clips = [torch.arange(n * 3).reshape(n, 3) for n in (300, 300, 300, 10)]
    tc = TokenCorpus(clips, [["a"], ["b"], ["c"], ["d"]])
    lengths = [generator_batch(tc, [0, 1, 2], 256, np.random.default_rng(s), min_tokens=16)[1] for s in range(20)]
    drawn = torch.cat(lengths)
    assert 16 <= int(drawn.min()) < 100 and 200 < int(drawn.max()) <= 256 and len(set(drawn.tolist())) > 20
    assert generator_batch(tc, [3], 256, np.random.default_rng(0), min_tokens=16)[1].tolist() == [10]
    fixed = generator_batch(tc, [0, 1, 2], 256, np.random.default_rng(0))
    again = generator_batch(tc, [0, 1, 2], 256, np.random.default_rng(0), min_tokens=0)
    assert fixed[1].tolist() == [256] * 3 and torch.equal(fixed[0], again[0])
    _, n, _, split = pair_windows(tc, [0, 1], np.array([2, 2]), 256, np.random.default_rng(1), min_tokens=16)
    assert (n <= 256).all() and (split < n).all() and len(set(n.tolist())) == 2


def test_pairs_at_boundaries_join_the_end_of_one_clip_to_the_start_of_the_next():
    import numpy as np

    from kmm.train import TokenCorpus, pair_windows

    clips = [torch.arange(n * 3).reshape(n, 3) + 1000 * k for k, n in enumerate((30, 40, 5))]
    tc = TokenCorpus(clips, [["a"], ["b"], ["c"]])
    codes, lengths, _, split = pair_windows(tc, [0, 2], np.array([1, 1]), 16, np.random.default_rng(0),
                                            at_boundaries=True)
    for row, first_clip in enumerate((0, 2)):
        s, n = int(split[row]), int(lengths[row])
        assert torch.equal(codes[row, :s], clips[first_clip][-s:])          # clip i up to its last token
        assert torch.equal(codes[row, s:n], clips[1][:n - s])               # clip j from its first token
    assert int(split[1]) == 5                                                # a short clip i joins whole


def test_pair_windows_join_two_clips_and_a_second_text_conditions_the_second_part():
    """train.pair_windows: a joined row is a slice of clip i then a slice of clip j (split = the first token of j),
    within max_tokens and with no length target; a one-clip row has split = length. generator_step: with the
    second text equal to the first the token loss is the one-text loss; with another text it changes."""
    import dataclasses

    import numpy as np

    from kmm.train import TokenCorpus, generator_step, pair_windows

    g = torch.Generator().manual_seed(0)
    clips = [torch.arange(n * 3).reshape(n, 3) + 1000 * k for k, n in enumerate((30, 9, 40, 5))]
    tc = TokenCorpus(clips, [["a"], ["b"], ["c"], ["d"]])
    codes, lengths, full, split = pair_windows(tc, [0, 1, 2, 3], np.array([2, -1, 3, -1]), 16,
                                               np.random.default_rng(0))
    assert int(lengths.max()) <= 16 and split[1] == lengths[1] == 9 and split[3] == lengths[3] == 5
    for row, (i, j) in enumerate(((0, 2), (2, 3))):
        s, n = int(split[row * 2]), int(lengths[row * 2])
        first, second = codes[row * 2, :s], codes[row * 2, s:n]
        assert 4 <= s < n and (first // 1000 == i).all() and (second // 1000 == j).all()
        assert (first[1:, 0] - first[:-1, 0] == 3).all() and (second[1:, 0] - second[:-1, 0] == 3).all()
        assert full[row * 2] > 1000
    cfg = dataclasses.replace(GEN, dropout=0.0, cond_drop=0.0)
    torch.manual_seed(0)
    gen = MaskedGenerator(cfg)
    tok, codes, lengths, full, hidden, tmask, texts = _distill_batch()
    split = torch.tensor([4, 10, 3, 5])            # rows 0 and 2 joined, rows 1 and 3 one clip
    run = lambda **kw: generator_step(gen, tok, codes, lengths, full, hidden, tmask, texts,  # noqa: E731
                                      torch.Generator().manual_seed(3), **kw)[1]
    plain = run()
    same = run(split=split, hidden2=hidden, tmask2=tmask)
    other = run(split=split, hidden2=torch.randn_like(hidden, generator=g), tmask2=tmask)
    assert same["tok"] == pytest.approx(plain["tok"], rel=1e-5)
    assert abs(other["tok"] - plain["tok"]) > 1e-4
