"""A test-sized recipe trains every stage, writes resumable checkpoints, and the losses go down."""
import json

import numpy as np
import pytest


def _rows(bundle, stage):
    rows = [json.loads(line) for line in (bundle / "train_log.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("stage") == stage and "step" in r]


def test_tiny_training_losses_go_down(tiny_bundle):
    tok = _rows(tiny_bundle, "tokenizer")
    assert tok[-1]["rec"] < tok[0]["rec"]
    for name in ("kmm", "kmm-random", "transformer"):
        rows = _rows(tiny_bundle, name)
        assert rows and np.isfinite(rows[-1]["loss"])
        assert rows[-1]["len"] < rows[0]["len"], name        # length head learns
    bamm = _rows(tiny_bundle, "bamm")
    assert bamm and bamm[-1]["loss"] < bamm[0]["loss"] and "val_acc_causal" in bamm[-1]
    for stage in ("motion-vae", "motion-mamba"):
        rows = _rows(tiny_bundle, stage)
        assert rows and np.isfinite(rows[-1]["loss"]), stage
    for sub in ("tokenizer", "residual", "kmm", "kmm-random", "transformer", "bamm", "motion-vae", "motion-mamba"):
        assert (tiny_bundle / sub / "model.safetensors").is_file()
        assert (tiny_bundle / sub / "trainer_state.json").is_file()


def test_training_resumes_from_checkpoint(tiny_bundle, mini_dir, tmp_path):
    """Running the same recipe again finds every stage finished and does no step twice."""
    import shutil

    from kmm.data import load_dataset
    from kmm.train import tiny_recipe, train_all

    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run)
    before = len((run / "train_log.jsonl").read_text().splitlines())
    train_all(load_dataset(mini_dir), run, tiny_recipe(), stages=("tokenizer",), cache_dir=tmp_path / "c")
    rows = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()[before:]]
    assert not [r for r in rows if r.get("stage") == "tokenizer" and "step" in r]


def test_action_balance_weights_lift_rare_actions():
    from kmm.training.common import action_balance_weights, sample_by_length

    caps = [["a person walks forward"]] * 40 + [["a person kicks high"]] * 2 + [["Story"]] * 3
    assert action_balance_weights(caps, [40] * len(caps), 0.0) is None           # off: plain sqrt(length)
    w = action_balance_weights(caps, [40] * len(caps), 0.5)
    assert abs(w.mean() - 1) < 1e-9 and w[40] > 3 * w[0] and w[42] > w[0]       # kick >> walk; unlabelled in between
    rng = np.random.default_rng(0)
    draws = np.concatenate([sample_by_length([40] * len(caps), 16, rng, w) for _ in range(200)])
    assert 0.5 < (draws < 40).mean() < 40 / 45                                  # walking drawn less than its share


def test_warm_start_loads_a_bundle_and_refuses_a_missing_one(tmp_path):
    import torch
    from safetensors.torch import save_file

    from kmm.training.common import warm_start

    src, dst = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    (tmp_path / "kmm").mkdir()
    save_file(src.state_dict(), str(tmp_path / "kmm" / "model.safetensors"))
    assert not warm_start(dst, "", "kmm")                                       # no init_from: untouched
    assert warm_start(dst, str(tmp_path), "kmm") and torch.equal(dst.weight, src.weight)
    with pytest.raises(FileNotFoundError, match="no weights for 'bamm'"):
        warm_start(dst, str(tmp_path), "bamm")


def test_base_decoder_stage_keeps_the_codes_and_decodes_the_base_layer_better(tiny_bundle, mini_dir, tmp_path):
    """The base-decoder stage trains the decoder alone: encoder and codebooks (so every code a generator was
    trained on) stay bit-identical, base-layer reconstruction of held-out clips improves, and it resumes."""
    import dataclasses
    import shutil

    import torch

    from kmm.data import load_dataset
    from kmm.model.tokenizer import MotionTokenizer
    from kmm.train import tiny_recipe, train_all

    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run)
    before = MotionTokenizer.from_pretrained(run / "tokenizer").state_dict()
    recipe = dataclasses.replace(tiny_recipe(), decoder_steps=40, decoder_lr=1e-3, decoder_action_balance=1.0)
    train_all(load_dataset(mini_dir), run, recipe, stages=("base-decoder",), cache_dir=tmp_path / "c")
    torch.set_num_threads(1)
    after = MotionTokenizer.from_pretrained(run / "tokenizer").state_dict()
    for k, v in before.items():
        if k.startswith("decoder."):
            continue
        assert torch.equal(v, after[k]), k                               # encoder + codebooks untouched
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    rows = _rows(run, "base-decoder")
    assert rows[0]["step"] == 0 and rows[-1]["step"] == 40
    assert rows[-1]["val_base_mpjpe_mm"] < rows[0]["val_base_mpjpe_mm"]
    n = len((run / "train_log.jsonl").read_text().splitlines())
    train_all(load_dataset(mini_dir), run, recipe, stages=("base-decoder",), cache_dir=tmp_path / "c")
    torch.set_num_threads(1)
    again = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()[n:]]
    assert not [r for r in again if r.get("stage") == "base-decoder" and "step" in r]   # resumed: no step twice
