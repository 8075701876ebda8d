"""The frozen evaluator: shapes, padding, save/load round trip, InfoNCE, and a short training run."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from kmm.eval.evaluator import (EvaluatorConfig, TextMotionEvaluator, conv_lengths, info_nce, length_mask,
                                same_caption_matrix)

REPO = Path(__file__).resolve().parents[1]
MINI = Path(os.environ.get("KMM_DATA") or REPO.parent / "shared" / "data") / "cmu-desc-s01-07-mini"
TINY = EvaluatorConfig(width=16, embed_dim=32)

torch.set_num_threads(1)


def _batch(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), 263, generator=g)
    mask = length_mask(torch.tensor(lengths), max(lengths))
    return x * mask[..., None], mask


def test_forward_shapes_and_unit_norm():
    model = TextMotionEvaluator(TINY).eval()
    x, mask = _batch([37, 5, 1])
    motion, text = model(x, mask, torch.randn(3, 384))
    assert motion.shape == (3, 32) and text.shape == (3, 32)
    assert torch.allclose(motion.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(text.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_padding_does_not_change_the_embedding():
    model = TextMotionEvaluator(TINY).eval()
    x, mask = _batch([9, 20])
    alone = model.encode_motion(x[:1, :9], mask[:1, :9])
    with_pad = model.encode_motion(x, mask)[:1]
    garbage = x.clone()
    garbage[0, 9:] = 100.0
    assert torch.allclose(alone, with_pad, atol=1e-5)
    assert torch.allclose(model.encode_motion(garbage, mask)[:1], alone, atol=1e-5)


def test_helpers():
    assert length_mask(torch.tensor([2, 3]), 4).int().tolist() == [[1, 1, 0, 0], [1, 1, 1, 0]]
    assert conv_lengths(torch.tensor([1, 2, 5])).tolist() == [1, 1, 3]
    assert same_caption_matrix(["a", "b", "a"]).int().tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]


def test_info_nce_ignores_identical_captions():
    m = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    scale = torch.tensor(np.log(10.0), dtype=torch.float32)
    # rows 0 and 1 share a caption: the text of 0 equals the motion of 1 exactly (a perfect "negative")
    t = m.clone()
    t[0] = m[1]
    t[1] = m[1]
    same = same_caption_matrix(["x", "x", "y", "z"])
    assert info_nce(m, t, scale, same) < info_nce(m, t, scale)
    assert torch.isfinite(info_nce(m, t, scale, same))


def test_save_load_round_trip(tmp_path):
    model = TextMotionEvaluator(TINY).eval()
    model.save_pretrained(tmp_path)
    again = TextMotionEvaluator.from_pretrained(tmp_path)
    assert again.config == TINY
    x, mask = _batch([12, 7])
    s = torch.randn(2, 384)
    for a, b in zip(model(x, mask, s), again(x, mask, s)):
        assert torch.equal(a, b)


@pytest.mark.skipif(not (MINI / "motions.npz").exists(), reason=f"no test data at {MINI}")
def test_training_lowers_the_loss(tmp_path):
    from kmm.data import load_dataset
    from kmm.eval.evaluator import FrozenEvaluator
    from kmm.eval.train_evaluator import EvaluatorRecipe, train_evaluator

    recipe = EvaluatorRecipe(steps=40, batch=32, lr=3e-3, warmup=5, log_every=10, eval_seeds=1,
                             model={"width": 32, "embed_dim": 64})
    summary = train_evaluator(load_dataset(MINI), tmp_path, recipe, cache_dir=tmp_path / "cache", log=lambda m: None)
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]
    for name in ("config.json", "model.safetensors", "normalizer.safetensors", "README.md"):
        assert (tmp_path / name).is_file()
    assert "R-precision" in (tmp_path / "README.md").read_text()
    assert set(summary["eval"]["metrics"]) >= {"r_precision_top1", "mm_dist"}
    frozen = FrozenEvaluator.load(tmp_path)
    assert frozen.encode_texts(["a person walks."]).shape == (1, 64)


def test_low_rank_fid_matches_metrics_fid():
    from kmm.eval.evaluate import fid_low_rank
    from kmm.eval.metrics import fid

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 64)), rng.normal(0.3, 1.5, size=(90, 64))
    assert fid_low_rank(a, b) == pytest.approx(fid(a, b), rel=1e-6)
    few_a, few_b = a[:10], b[:20]                                   # N < D: singular covariances
    assert fid_low_rank(few_a, few_b) == pytest.approx(fid(few_a, few_b), rel=1e-4)
    assert fid_low_rank(a, a) == pytest.approx(0.0, abs=1e-8)
