"""Text → motion pipeline: token-grid lengths, determinism, joint multi-segment generation, editing, windows."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kmm.model.weights import WeightsError
from kmm.pipeline import DECODER_CONTEXT_TOKENS, GENERATOR_NAMES, Pipeline, seconds_to_tokens
from kmm.segment import TimelineError

SEGMENTS = [("walk forward", 3.0), ("turn left", 2.0), ("sit down", 4.0)]


@pytest.fixture(scope="module", params=GENERATOR_NAMES)
def pipe(tiny_bundle, request):
    """Every generator behind the same interface: KMM, its ablation, transformer, BAMM, Motion Mamba."""
    return Pipeline.from_pretrained(tiny_bundle, request.param)


def test_token_grid_rounding():
    assert [seconds_to_tokens(s) for s in (3.0, 2.0, 4.0, 2.5, 0.1)] == [15, 10, 20, 12, 1]


def test_timeline_lengths_and_boundaries(pipe):
    out = pipe.generate(SEGMENTS, seed=0)
    assert out.joints.shape == (180, 22, 3) and out.joints.dtype == np.float32
    assert np.isfinite(out.joints).all()
    assert out.boundaries == [0, 60, 100, 180]
    assert out.texts == ["walk forward", "turn left", "sit down"]


def test_same_seed_same_motion_other_seed_differs(pipe):
    a, b, c = (pipe.generate(SEGMENTS, seed=s) for s in (0, 0, 1))
    assert np.array_equal(a.joints, b.joints)
    assert not np.array_equal(a.joints, c.joints)


def test_auto_length_uses_the_models_length_and_keeps_given_lengths(pipe):
    out = pipe.generate([("walk forward", None), ("sit down", 2.0)], seed=0)
    n1 = out.boundaries[1]
    cap = getattr(pipe.generator.config, "max_length_tokens", pipe.generator.config.max_tokens)  # BAMM: window
    assert 4 <= n1 <= 4 * cap
    assert out.boundaries[2] - out.boundaries[1] == 40


def test_editing_keeps_other_segments_bit_identical(pipe):
    out = pipe.generate(SEGMENTS, seed=0)
    edit = pipe.regenerate_segment(out, 1, seed=7, text="jump")
    margin = (2 + DECODER_CONTEXT_TOKENS) * 4                  # transition tokens + decoder receptive field
    a, b = out.boundaries[1], out.boundaries[2]
    assert edit.texts == ["walk forward", "jump", "sit down"] and edit.boundaries == out.boundaries
    assert np.array_equal(edit.features[:a - margin], out.features[:a - margin])
    assert np.array_equal(edit.features[b + margin:], out.features[b + margin:])
    assert np.array_equal(edit.joints[:a - margin], out.joints[:a - margin])
    assert not np.array_equal(edit.features[a:b], out.features[a:b])
    assert np.array_equal(edit.codes[:a // 4 - 2], out.codes[:a // 4 - 2])
    assert np.array_equal(edit.codes[b // 4 + 2:], out.codes[b // 4 + 2:])


@pytest.mark.parametrize("window", ["training", "long"])
def test_long_timeline_runs_in_windows(pipe, window):
    # tiny model's training window is 16 tokens (3.2 s): 6 × 5 s needs several overlapping windows of that
    # length, or fewer long ones (kmm.backends.decode_window)
    from kmm.backends import decode_window

    default = pipe.backend.window
    if window == "long":
        pipe.backend.window = decode_window(pipe.generator.config, long=True)
    try:
        out = pipe.generate([("walk", 5.0)] * 6, seed=0)
    finally:
        pipe.backend.window = default
    assert out.joints.shape == (600, 22, 3) and np.isfinite(out.joints).all()


@pytest.mark.parametrize("segments, message", [
    ([], "segment"),
    ([("", 2.0)], "no text"),
    ([("walk", -1.0)], "positive"),
    ([("walk", 1e6)], "maximum"),
    ([("walk", 2.0)] * 65, "segments"),
])
def test_bad_timelines_fail_before_compute(pipe, segments, message):
    with pytest.raises(TimelineError, match=message):
        pipe.generate(segments)


def test_missing_weights_folder_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        Pipeline.from_pretrained(tmp_path / "nope")


@pytest.mark.parametrize("model", ["kmm", "bamm", "motion-mamba"])
def test_cli_generate_is_deterministic(tiny_bundle, tmp_path, model):
    cmd = [sys.executable, "-m", "kmm", "generate", "walk forward, then turn left, then sit down",
           "--lengths", "3,2,4", "--seed", "0", "--weights", str(tiny_bundle), "--model", model]
    outs = []
    for name in ("a.npz", "b.npz"):
        r = subprocess.run(cmd + ["--out", str(tmp_path / name)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "boundaries=[0, 60, 100, 180]" in r.stdout and "generate_seconds=" in r.stdout
        outs.append(np.load(tmp_path / name, allow_pickle=False))
    assert outs[0]["joints"].shape == (180, 22, 3)
    assert np.array_equal(outs[0]["joints"], outs[1]["joints"])
    assert list(outs[0]["segment_texts"]) == ["walk forward", "turn left", "sit down"]


# --- output clean-up, text normalisation, optional residual (shipped weights when present) -------------------

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "kmm"


def test_model_text_gives_subjectless_clauses_a_subject():
    from kmm.pipeline import model_text

    assert model_text("kicks with the right leg") == "a person kicks with the right leg"
    assert model_text("Walk forward") == "a person walks forward"
    assert model_text("bows") == "a person bows"
    assert model_text("punch") == "a person punches"
    assert model_text("a man waves") == "a man waves" and model_text("someone jumps") == "someone jumps"


def test_output_is_on_one_skeleton_and_foot_lock_is_a_switch(pipe):
    from kmm.motion.retarget import REST_OFFSETS, bone_lengths

    locked = pipe.generate(SEGMENTS, seed=0)
    free = pipe.generate(SEGMENTS, seed=0, foot_lock=False)
    rest = np.linalg.norm(REST_OFFSETS[1:], axis=-1)
    for out in (locked, free):
        assert np.abs(bone_lengths(out.joints) - rest).max() < 1e-4          # constant bones, the rest skeleton
    assert np.array_equal(locked.features, free.features)                    # the clean-up never touches features
    assert locked.foot_lock and not free.foot_lock
    edit = pipe.regenerate_segment(free, 1, seed=3, foot_lock=False)
    assert not edit.foot_lock and np.abs(bone_lengths(edit.joints) - rest).max() < 1e-3


def _bundle_without_residual(tmp_path, settings: dict | None):
    for name in ("normalizer.safetensors", "tokenizer", "kmm"):
        (tmp_path / name).symlink_to(SHIPPED / name)
    if settings is not None:
        (tmp_path / "pipeline.json").write_text(json.dumps(settings))
    return tmp_path


@pytest.mark.skipif(not (SHIPPED / "tokenizer").is_dir(), reason="shipped weights not present")
def test_residual_folder_is_optional(tmp_path):
    pipe = Pipeline.from_pretrained(_bundle_without_residual(tmp_path, None), "kmm")
    assert pipe.residual is None and pipe.residual_layers == 0
    out = pipe.generate([("a person walks forward", 2.0)], seed=0)
    assert out.joints.shape == (40, 22, 3) and (out.codes[:, 1:] == -1).all()


@pytest.mark.skipif(not (SHIPPED / "tokenizer").is_dir(), reason="shipped weights not present")
def test_asking_for_residual_layers_without_the_folder_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="residual"):
        Pipeline.from_pretrained(_bundle_without_residual(tmp_path, {"residual_layers": 2}), "kmm")


def _bundle_with_residual(tmp_path, settings: dict):
    """The shipped bundle's parts (residual/ included) with this pipeline.json."""
    for name in ("normalizer.safetensors", "tokenizer", "kmm", "residual"):
        (tmp_path / name).symlink_to(SHIPPED / name)
    (tmp_path / "pipeline.json").write_text(json.dumps(settings))
    return tmp_path


@pytest.mark.skipif(not (SHIPPED / "residual").is_dir(), reason="shipped residual predictor not present")
def test_residual_root_base_takes_the_path_from_the_base_layer_and_the_rest_from_all_layers(tmp_path):
    """With "residual_root": "base", the yaw and planar root velocities are those of the base layer decoded alone;
    every other channel is the all-layer decoding's; "all" decodes all channels from all layers."""
    import torch

    from kmm.backends import ROOT_PATH

    pipe = Pipeline.from_pretrained(_bundle_with_residual(tmp_path, {"residual_layers": 5, "residual_root": "base"}))
    b = pipe.backend
    assert b.root_from_base and pipe.residual_layers == 5
    codes = pipe.generate([("a person squats down", 3.0)], seed=0).codes                # (N, 6), all layers
    assert (codes >= 0).all()
    base = codes.clone()
    base[:, 1:] = -1
    whole, alone = (b.tokenizer.decode(c[None])[0] for c in (codes, base))
    mixed = b.decode(codes)
    assert torch.equal(mixed[:, ROOT_PATH], alone[:, ROOT_PATH])
    rest = torch.ones(mixed.shape[-1], dtype=torch.bool)
    rest[ROOT_PATH] = False
    assert torch.equal(mixed[:, rest], whole[:, rest])
    assert not torch.allclose(whole[:, ROOT_PATH], alone[:, ROOT_PATH])            # the layers do move the root
    assert torch.equal(b.decode(base), alone)                                        # base only: nothing to swap
    b.root_from_base = False
    assert torch.equal(b.decode(codes), whole)


@pytest.mark.skipif(not (SHIPPED / "residual").is_dir(), reason="shipped residual predictor not present")
def test_a_bad_residual_root_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="residual_root"):
        Pipeline.from_pretrained(_bundle_with_residual(tmp_path, {"residual_layers": 5, "residual_root": "pelvis"}))
