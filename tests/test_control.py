"""Control (issue #19): root-path warp, key-pose pinning, the pipeline and CLI with path / key poses."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kmm.control import Control, ControlError, parse_path
from kmm.control.keyposes import blend_weights, check_keyposes, pin_poses
from kmm.control.path import Target, follow, follow_features, root_trajectory, seconds_to_frame, with_root_trajectory
from kmm.control.report import facing_error_deg, jerk_near, keypose_errors, waypoint_errors
from kmm.eval.metrics import jerk_curve
from kmm.motion import ik
from kmm.motion.cleanup import clean_joints
from kmm.motion.features import features_to_joints, joints_to_features
from kmm.motion.retarget import REST_OFFSETS
from kmm.motion.skeleton import FEATURE_DIM, FEATURE_SLICES

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "assets" / "kmm"


def _walk_features(n_frames=160, speed=1.0, fps=20):
    """A T-posed body gliding forward (+Z) at `speed` m/s: only the root and ric channels are set."""
    pose = ik.forward_kinematics(np.broadcast_to(np.eye(3), (22, 3, 3)), REST_OFFSETS, np.array([0.0, 0.9, 0.0]))
    f = np.zeros((n_frames, FEATURE_DIM), dtype=np.float32)
    f[:, FEATURE_SLICES["root_lin_vel"]] = [0.0, speed / fps]
    f[:, FEATURE_SLICES["root_height"]] = 0.9
    f[:, FEATURE_SLICES["ric"]] = (pose[1:] - pose[0] * [1, 0, 1]).reshape(-1)
    return f


def test_parse_path():
    wp = parse_path(" 4:0,3; 8:2,5 ;")
    assert [(w.seconds, w.x, w.z) for w in wp] == [(4.0, 0.0, 3.0), (8.0, 2.0, 5.0)]
    assert parse_path("1.5:-0.5,.25")[0].x == -0.5
    for bad in ("", "4:0", "4:a,b", "4:0,3;2:1,1", "0:1,1", "-1:0,0"):
        with pytest.raises(ControlError):
            parse_path(bad)


def test_waypoint_past_the_end_is_an_error_near_the_end_is_clamped():
    assert seconds_to_frame(8.0, 160) == 159 and seconds_to_frame(4.0, 160) == 80
    with pytest.raises(ControlError, match="past the motion's end"):
        seconds_to_frame(9.0, 160)


def test_root_trajectory_round_trip(mini_motions):
    joints = next(iter(mini_motions.values())).astype(np.float64)
    f = joints_to_features(joints)
    yaw, xz = root_trajectory(f)
    again = with_root_trajectory(f, yaw, xz)
    assert np.abs(features_to_joints(again) - features_to_joints(f)).max() < 1e-4


def test_path_warp_reaches_waypoints_and_faces_the_path():
    f = _walk_features()
    targets = [Target(80, 0.0, 3.0), Target(159, 2.0, 5.0)]
    warped, warp = follow_features(f, targets)
    j = features_to_joints(warped)
    assert np.abs(j[0, 0, [0, 2]]).max() < 1e-6                       # frame 0 stays the output's origin
    assert np.hypot(*(j[80, 0, [0, 2]] - [0, 3])) < 0.01
    assert np.hypot(*(j[159, 0, [0, 2]] - [2, 5])) < 0.01
    assert warp.residual_m < 0.05                                       # reached by turning and pacing, not sliding
    assert facing_error_deg(j) < 10.0                                   # the body turned with its path
    assert abs(features_to_joints(f)[100, 0, 0]) < 1e-6 and j[140, 0, 0] > 1.0   # it really turned left (+X)


def test_warp_of_the_motion_through_its_own_positions_is_the_identity():
    f = _walk_features()
    yaw, xz = root_trajectory(f)
    warp = follow(yaw, xz, [Target(60, *xz[60]), Target(150, *xz[150])])
    assert np.abs(warp.speed - 1).max() < 1e-3 and np.abs(warp.turn).max() < 1e-3 and warp.residual_m < 1e-3


def test_a_standing_body_still_reaches_the_waypoint_and_reports_the_sliding():
    f = _walk_features(speed=0.0)
    warp = follow(*root_trajectory(f), [Target(80, 1.0, 2.0)])
    assert np.hypot(*(warp.xz[80] - [1, 2])) < 1e-6 and warp.residual_m > 2.0


def test_blend_weights_example():
    w = blend_weights([4], 9, radius=2)[0]
    assert np.allclose(w, [0, 0, 0, 0.5, 1, 0.5, 0, 0, 0])
    two = blend_weights([4, 6], 12, radius=5)                          # never reaches the other key frame
    assert two[0, 6] == 0 and two[1, 4] == 0


def test_pin_poses_holds_the_pose_at_its_frame_and_leaves_far_frames(mini_motions):
    joints = clean_joints(joints_to_features(next(iter(mini_motions.values())).astype(np.float64)), foot_lock=False)
    pose = joints[len(joints) // 2 + 10] + np.array([0.1, 0.0, -0.1], dtype=np.float32)
    kp = check_keyposes({"times": [1.0], "joints": pose[None]})
    out = pin_poses(joints, kp)
    assert keypose_errors(out, [20], [pose])[0] < 1e-4
    assert np.array_equal(out[:8], joints[:8]) and np.array_equal(out[33:], joints[33:])
    bones = np.linalg.norm(out[:, 1:] - out[:, list(ik.PARENTS[1:])], axis=-1)
    assert np.abs(bones - bones[0]).max() < 1e-4                        # still one skeleton


def test_a_pose_only_key_pose_is_pinned_where_the_body_is(mini_motions):
    from kmm.control.keyposes import pin_targets
    from kmm.motion.features import canonicalize, heading_yaw

    joints = clean_joints(joints_to_features(next(iter(mini_motions.values())).astype(np.float64)), foot_lock=False)
    pose = joints[5] + np.array([3.0, 0.0, -2.0], dtype=np.float32)          # far away: only its shape counts
    kp = check_keyposes({"times": [1.0], "joints": pose[None], "place": False})
    target = pin_targets(joints, kp)[0]
    out = pin_poses(joints, kp)
    assert keypose_errors(out, [20], [target])[0] < 1e-4
    assert np.allclose(out[20, 0, [0, 2]], joints[20, 0, [0, 2]], atol=1e-5)   # stays where the body was
    assert abs(np.angle(np.exp(1j * (heading_yaw(out[20]) - heading_yaw(joints[20]))))) < 1e-3
    assert np.abs(canonicalize(out[20][None]) - canonicalize(pose[None])).max() < 1e-3
    assert Control.make(kp, None).targets(len(joints)) == []                   # no path target for it


def test_readme_control_tables_match_results_json():
    import json

    from kmm.eval.control_eval import render_control

    result = ROOT / "results" / "control.json"
    if not result.is_file():
        pytest.skip("results/control.json not produced yet (python -m kmm control-eval)")
    assert render_control(json.loads(result.read_text())) in (ROOT / "README.md").read_text()


def test_control_make_validates():
    assert Control.make(None, None) is None and Control.make([], "") is None
    with pytest.raises(ControlError):
        Control.make({"times": [1.0], "joints": np.zeros((2, 22, 3))}, None)
    with pytest.raises(ControlError, match="same frame"):
        Control.make({"times": [2.0], "joints": np.zeros((1, 22, 3))}, "2:0,1").targets(100)


# --- with models --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["kmm", "bamm", "motion-mamba"])
def pipe(tiny_bundle, request):
    from kmm.pipeline import Pipeline

    return Pipeline.from_pretrained(tiny_bundle, request.param)


def test_generate_with_path_and_keypose(pipe):
    free = pipe.generate([("a person walks", 6.0)], seed=1)
    pose = free.joints[40]
    out = pipe.generate([("a person walks", 6.0)], seed=0, path="3:0.5,1.5;6:1,2.5",
                        keyposes={"times": [2.0], "joints": pose[None]})
    assert max(waypoint_errors(out.joints, out.control["waypoints"])) < 0.2
    assert keypose_errors(out.joints, [40], [pose])[0] < 0.05
    assert out.control["keypose_frames"] == [40]
    again = pipe.generate([("a person walks", 6.0)], seed=0, path="3:0.5,1.5;6:1,2.5",
                          keyposes={"times": [2.0], "joints": pose[None]})
    assert np.array_equal(out.joints, again.joints)


def test_keypose_tokens_are_in_the_sampled_codes(pipe):
    from kmm.control.keyposes import keypose_codes

    pose = pipe.generate([("a person walks", 3.0)], seed=1).joints[30]
    kp = check_keyposes({"times": [1.5], "joints": pose[None]})
    fixed, mask = keypose_codes(pipe.backend, pipe.normalizer, kp, 15)
    out = pipe.generate([("a person walks", 3.0)], seed=0, keyposes=kp)
    assert mask.nonzero().ravel().tolist() == [7]
    assert np.allclose(out.codes[7][: fixed.shape[1]].float().numpy()[:1], fixed[7].float().numpy()[:1])


# --- the shipped weights: the acceptance ------------------------------------------------------------

shipped = pytest.mark.skipif(not (SHIPPED / "kmm" / "model.safetensors").is_file(), reason="no shipped weights")


@shipped
def test_cli_path_acceptance(tmp_path):
    out = tmp_path / "p.npz"
    cmd = [sys.executable, "-m", "kmm", "generate", "a person walks", "--seconds", "8", "--seed", "0",
           "--path", "4:0,3;8:2,5", "--out", str(out), "--weights", str(SHIPPED)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    with np.load(out) as d:
        joints, wp = d["joints"], d["control_waypoints"]
    assert wp.tolist() == [[4.0, 0.0, 3.0], [8.0, 2.0, 5.0]]
    assert np.hypot(joints[80, 0, 0] - 0, joints[80, 0, 2] - 3) < 0.2
    assert np.hypot(joints[-1, 0, 0] - 2, joints[-1, 0, 2] - 5) < 0.2
    assert "waypoint 8 s (2, 5): pelvis" in run.stdout


@shipped
def test_shipped_keypose_reached_without_a_jump():
    from kmm.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(SHIPPED, "kmm")
    free = pipe.generate([("a person walks", 6.0)], seed=0)
    pose = pipe.generate([("a person walks", 6.0)], seed=1).joints[60]
    out = pipe.generate([("a person walks", 6.0)], seed=0, keyposes={"times": [3.0], "joints": pose[None]})
    assert keypose_errors(out.joints, [60], [pose])[0] < 0.05
    near = jerk_near(out.joints, [60])
    assert near < 2 * jerk_near(free.joints, [60]) and near < 2 * jerk_curve(free.joints).mean()
