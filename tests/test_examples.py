"""examples/*.json and the kinematic checks (kmm.eval.kinematic_checks).

The checks are tested on synthetic motions and on real clips of the mini data. The last test generates every
example with the SHIPPED weights (assets/kmm) and runs the example's own checks on its segments: examples use
only actions the shipped model does well (results/breadth.json), and every one of them must pass, no xfails.
After a retrain, rerun `python -m pytest -q tests/test_examples.py -rA -k shipped` and fix the examples, not the
checks (`python -m kmm.eval.example_seeds --seeds 0-7` shows which seeds pass).
"""
from pathlib import Path

import numpy as np
import pytest

from kmm import app_logic as logic
from kmm.eval import kinematic_checks as K

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = logic.load_examples(ROOT / "examples")
SHIPPED = ROOT / "assets" / "kmm"


def _standing(T=40):
    """A static T-frame body from the skeleton's rest directions (feet on the floor, pelvis ~0.9 m)."""
    from kmm.motion.retarget import REST_OFFSETS
    from kmm.motion.skeleton import PARENTS

    pose = np.zeros((22, 3))
    for j, p in enumerate(PARENTS):
        if p >= 0:
            pose[j] = pose[p] + np.asarray(REST_OFFSETS)[j]
    pose[:, 1] -= pose[:, 1].min()
    return np.repeat(pose[None], T, axis=0)


def test_examples_are_valid_and_cover_what_the_model_does():
    assert len(EXAMPLES) >= 5
    checks = {name for e in EXAMPLES for _, name in e.checks}
    assert {"jump", "sit", "seated", "squat", "kick", "walk", "walk_backwards", "sidestep"} <= checks <= set(K.CHECKS)
    assert any(len(e.segments) == 1 for e in EXAMPLES) and any(len(e.segments) >= 3 for e in EXAMPLES)
    assert all(e.checks for e in EXAMPLES)                        # every example says what it should do
    for e in EXAMPLES:                                            # ... for every segment
        assert {k for k, _ in e.checks} == set(range(len(e.segments))), e.key


def test_standing_still_passes_nothing():
    j = _standing()
    assert not any(K.run_check(name, j) for name in K.CHECKS)


def test_synthetic_actions_pass_their_check():
    T = 40
    jump = _standing(T)
    jump[15:22, :, 1] += 0.25                                 # whole body in the air for 7 frames
    sit = _standing(T)
    sit[20:, [0, 1, 2, 3], 1] -= 0.3                          # pelvis and hips go down
    kick = _standing(T)
    kick[18:24, [8, 11], 1] += 0.45                           # right foot up
    kick[18:24, [8, 11], 2] += 0.3
    walk = _standing(T) + np.linspace(0, 1.5, T)[:, None, None] * np.array([0, 0, 1.0])
    turn = _standing(T)
    angle = np.linspace(0, np.pi, T)
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, z = turn[..., 0].copy(), turn[..., 2].copy()
    turn[..., 0], turn[..., 2] = c * x + s * z, -s * x + c * z
    backwards = _standing(T) + np.linspace(0, -1.2, T)[:, None, None] * np.array([0, 0, 1.0])   # facing +Z
    sideways = _standing(T) + np.linspace(0, 1.0, T)[:, None, None] * np.array([1.0, 0, 0])
    for name, motion in [("jump", jump), ("sit", sit), ("kick", kick), ("walk", walk), ("turn_around", turn),
                         ("walk_backwards", backwards), ("sidestep", sideways)]:
        result = K.run_check(name, motion)
        assert result.passed, result.message
        assert not K.run_check(name, _standing(T)).passed
    assert not K.walks_backwards(walk).passed and not K.sidesteps(walk).passed and not K.sidesteps(backwards).passed


def test_squat_and_seated_need_level_thighs():
    """FK of the rest skeleton with hips flexed 90 degrees and knees bent back for 1.5 s: a squat (pelvis
    lowered in place) passes `squat` and `seated`; the same pose while walking 2 m is no squat."""
    from kmm.motion import ik
    from kmm.motion.retarget import REST_OFFSETS
    from kmm.motion.rotations import euler_zxy_to_matrix

    T = 60
    angles = np.zeros((T, 22, 3))
    angles[20:50, 1, 1] = angles[20:50, 2, 1] = -np.pi / 2
    angles[20:50, 4, 1] = angles[20:50, 5, 1] = np.pi / 2
    root = np.zeros((T, 3))
    root[20:50, 1] = -0.4
    squat = ik.forward_kinematics(euler_zxy_to_matrix(angles), REST_OFFSETS, root)
    assert K.squats(squat).passed and K.seated(squat).passed, (K.squats(squat).message, K.seated(squat).message)
    assert not K.squats(_standing(T)).passed and not K.seated(_standing(T)).passed
    root[:, 2] = np.linspace(0, 2, T)
    assert not K.squats(ik.forward_kinematics(euler_zxy_to_matrix(angles), REST_OFFSETS, root)).passed


def test_checks_on_real_clips(mini_motions):
    walk = np.asarray(next(v for k, v in mini_motions.items()), np.float64)
    assert K.walks(walk).value >= 0 and K.sits(walk).value >= 0
    moved = [K.walks(np.asarray(v, np.float64)).passed for v in mini_motions.values()]
    assert any(moved)                                      # CMU walks cover metres


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="shape"):
        K.jumps(np.zeros((10, 21, 3)))
    with pytest.raises(ValueError, match="unknown check 'fly'"):
        K.run_check("fly", _standing())


@pytest.fixture(scope="module")
def shipped_pipeline():
    if not (SHIPPED / "kmm").is_dir():
        pytest.skip(f"no shipped weights in {SHIPPED}")
    from kmm.pipeline import Pipeline

    return Pipeline.from_pretrained(SHIPPED, generator="kmm")


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.key for e in EXAMPLES])
def test_example_with_shipped_weights(example, shipped_pipeline):
    """Each example, generated with its seed, does what its checks say (per segment)."""
    out = shipped_pipeline.generate([(s.text, s.seconds) for s in example.segments], seed=example.seed)
    failures = []
    for k, name in example.checks:
        a, b = out.boundaries[k], out.boundaries[k + 1]
        result = K.run_check(name, out.joints[a:b])
        print(f"{example.key} segment {k + 1} '{out.texts[k]}': {result.message}")
        if not result.passed:
            failures.append(f"segment {k + 1} '{out.texts[k]}': {result.message}")
    assert not failures, "; ".join(failures)


def test_landing_prompt_is_the_first_example():
    """The prompt the page opens with is examples/01 as the page splits it (auto lengths), so the first click
    generates something the shipped model does (checked above)."""
    pytest.importorskip("gradio")
    import app

    first = EXAMPLES[0]
    assert logic.prompt_to_texts(app.EXAMPLE_PROMPT) == [s.text for s in first.segments]
    assert all(s.seconds is None for s in first.segments) and first.prompt == app.EXAMPLE_PROMPT
