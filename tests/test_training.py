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


def test_action_boost_multiplies_the_named_actions_and_rides_in_the_recipe():
    from kmm.training.common import action_balance_weights
    from kmm.training.recipe import Recipe

    caps = [["a person walks forward"]] * 40 + [["a person kicks high"]] * 2 + [["a person squats down"]] * 2
    w = action_balance_weights(caps, [40] * len(caps), 1.0)
    b = action_balance_weights(caps, [40] * len(caps), 1.0, {"squat": 3.0})
    assert abs(b.mean() - 1) < 1e-9
    assert np.isclose(b[42] / b[40], 3 * w[42] / w[40]) and np.isclose(b[40] / b[0], w[40] / w[0])
    with pytest.raises(ValueError, match="unknown actions \\['squats'\\]"):
        action_balance_weights(caps, [40] * len(caps), 1.0, {"squats": 2.0})
    r = Recipe(action_balance=1.0, action_boost={"squat": 2.5})
    assert Recipe.from_dict(r.to_dict()).action_boost == {"squat": 2.5}


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


def test_limb_term_sees_only_the_limb_ends():
    """reconstruction_loss(limb_weight): an error on a wrist's position adds the L1 limb term; an error on the
    pelvis height (not a limb end) leaves it at 0; off by default."""
    import torch

    from kmm.motion.features import joints_to_features
    from kmm.motion.skeleton import FEATURE_SLICES
    from kmm.training.common import LIMB_ENDS, limb_channels, reconstruction_loss

    chans = limb_channels()
    ric, vel = FEATURE_SLICES["ric"], FEATURE_SLICES["velocity"]
    assert len(chans) == 2 * 3 * len(LIMB_ENDS) and len(set(chans)) == len(chans)
    assert all(ric.start <= c < ric.stop or vel.start <= c < vel.stop for c in chans)
    # moving the right wrist alone changes position/velocity channels that are all limb channels
    rng = np.random.default_rng(0)
    joints = rng.normal(0, 0.3, (10, 22, 3)) + np.array([0, 1.0, 0])
    moved = joints.copy()
    moved[4, 21] += [0.0, 0.2, 0.1]
    diff = np.abs(joints_to_features(moved) - joints_to_features(joints)).max(0)            # (263,)
    changed = {c for c in range(ric.start, vel.stop) if diff[c] > 1e-6 and not (67 <= c < 193)}
    assert changed and changed <= set(chans)
    x = torch.zeros(2, 8, 263)
    wrist = ric.start + 3 * (21 - 1) + 1                       # right wrist height
    assert wrist in chans
    bad_wrist, bad_root = x.clone(), x.clone()
    bad_wrist[..., wrist] = 0.5
    bad_root[..., 3] = 0.5
    assert "limb" not in reconstruction_loss(bad_wrist, x)[1]
    loss_w, parts_w = reconstruction_loss(bad_wrist, x, limb_weight=2.0)
    assert parts_w["limb"].item() == pytest.approx(0.5 / len(chans))
    assert loss_w.item() == pytest.approx(reconstruction_loss(bad_wrist, x)[0].item() + 2.0 * 0.5 / len(chans))
    assert reconstruction_loss(bad_root, x, limb_weight=2.0)[1]["limb"].item() == 0.0
