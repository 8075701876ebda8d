"""Sequence-level distillation data (kmm/training/teacher_set.py) and its use in generator training."""
import dataclasses
import json
import shutil
import zlib

import numpy as np
import pytest
import torch

from kmm.config import GeneratorConfig
from kmm.generators.kmm.model import MaskedGenerator
from kmm.training.teacher_set import TeacherSet, sample_teacher_set

torch.set_num_threads(1)
GEN = GeneratorConfig(n_codes=32, d_model=32, n_layers=1, align_dim=16, max_tokens=16, max_length_tokens=20)


def _backbone(texts):  # a deterministic stand-in for the frozen text backbone: hidden states from the text's hash
    hidden = torch.stack([torch.randn(5, GEN.text.dim, generator=torch.Generator().manual_seed(zlib.crc32(t.encode())))
                          for t in texts])
    return hidden, torch.ones(len(texts), 5, dtype=torch.bool)


def _sample(seed=0, n=20, pair_share=0.5):
    torch.manual_seed(0)
    teacher = MaskedGenerator(GEN).eval()
    lengths = [3, 9, 16, 30, 40]
    captions = [[f"a person does thing {k}"] for k in range(len(lengths))]
    return sample_teacher_set(teacher, _backbone, lengths, captions, n, np.random.default_rng(seed),
                              torch.Generator().manual_seed(seed), pair_share=pair_share, batch=8)


def test_teacher_windows_fit_the_window_hold_one_or_two_texts_and_are_reproducible():
    s = _sample()
    assert len(s) == 20
    two = [len(t) == 2 for t in s.texts]
    assert 0 < sum(two) < 20                                        # both kinds at pair_share 0.5
    for tok, texts, split in zip(s.tokens, s.texts, s.split):
        assert 1 <= len(tok) <= GEN.max_tokens
        assert ((tok >= 0) & (tok < GEN.n_codes)).all()             # every token decided, never [MASK]
        if len(texts) == 1:
            assert split == len(tok)
        else:
            assert GEN.max_tokens // 4 <= split < len(tok) or split == len(tok) <= 3 * GEN.max_tokens // 4
    again = _sample()
    assert all(torch.equal(a, b) for a, b in zip(s.tokens, again.tokens)) and s.texts == again.texts
    other = _sample(seed=1)
    assert not all(torch.equal(a, b) for a, b in zip(s.tokens, other.tokens))
    assert all(len(t) == 1 for t in _sample(pair_share=0.0).texts)


def test_teacher_set_state_round_trips_and_rows_leave_residual_layers_unused():
    s = _sample()
    tensors, meta = s.state()
    back = TeacherSet.from_state(tensors, json.loads(json.dumps(meta)))
    assert all(torch.equal(a, b) for a, b in zip(s.tokens, back.tokens))
    assert back.texts == s.texts and back.split == s.split
    crops, split, t1, t2 = s.rows([0, 3], n_quantizers=3)
    for c, i in zip(crops, (0, 3)):
        assert c.shape == (len(s.tokens[i]), 3) and torch.equal(c[:, 0], s.tokens[i]) and (c[:, 1:] == -1).all()
    assert split.tolist() == [s.split[0], s.split[3]] and t1[1] == s.texts[3][0] and t2[1] == s.texts[3][-1]


def test_generator_training_mixes_teacher_windows_stores_them_and_reuses_them_on_resume(tiny_bundle, mini_dir,
                                                                                       tmp_path):
    from kmm.data import load_dataset
    from kmm.train import tiny_recipe, train_all

    run = tmp_path / "run"
    run.mkdir()
    for part in ("tokenizer", "normalizer.safetensors"):
        src = tiny_bundle / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, run / part)
    recipe = dataclasses.replace(tiny_recipe(), generators=("kmm",), generator_steps=2, steps_per_check=2,
                                 distill_from=str(tiny_bundle), teacher_samples=6, teacher_share=0.5)
    try:
        train_all(load_dataset(mini_dir), run, recipe, stages=("generators",), cache_dir=tmp_path / "c")
        stored = (run / "kmm" / "teacher_set.safetensors").read_bytes()
        log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
        assert any(r.get("stage") == "teacher_set" and r.get("windows") == 6 for r in log)
        assert any(r.get("stage") == "kmm" and r.get("step") == 2 and r.get("kd") is not None for r in log)
        recipe = dataclasses.replace(recipe, generator_steps=4)
        train_all(load_dataset(mini_dir), run, recipe, stages=("generators",), cache_dir=tmp_path / "c")
    finally:
        torch.set_num_threads(1)
    assert (run / "kmm" / "teacher_set.safetensors").read_bytes() == stored   # resumed: the same windows
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert sum(r.get("stage") == "teacher_set" for r in log) == 1
    assert json.loads((run / "kmm" / "trainer_state.json").read_text())["step"] == 4


def test_predicted_lengths_are_the_teachers_length_head_and_pairs_fit_the_window():
    torch.manual_seed(0)
    teacher = MaskedGenerator(GEN).eval()
    captions = [[f"a person does thing {k}"] for k in range(5)]
    s = sample_teacher_set(teacher, _backbone, [3, 9, 16, 30, 40], captions, 16, np.random.default_rng(0),
                           torch.Generator().manual_seed(0), pair_share=0.5, batch=8, lengths="predicted")
    for tok, texts, split in zip(s.tokens, s.texts, s.split):
        want = [int(teacher.length_logits(teacher.encode_text(*_backbone([t]))).argmax(-1)) + 1 for t in texts]
        want = [min(w, GEN.max_tokens) for w in want]
        assert len(tok) <= GEN.max_tokens
        if len(texts) == 1:
            assert len(tok) == split == want[0]
        elif sum(want) <= GEN.max_tokens:
            assert (split, len(tok) - split) == tuple(want)
        else:
            assert len(tok) == GEN.max_tokens and 1 <= split < len(tok)
    with pytest.raises(ValueError, match="lengths"):
        sample_teacher_set(teacher, _backbone, [3], captions[:1], 1, np.random.default_rng(0),
                           torch.Generator(), lengths="other")
