"""Output clean-up of generated motion: one skeleton, grounded root, locked feet (kmm.motion.cleanup / ground /
footlock). Pure numpy on small synthetic motions and real clips."""
import numpy as np
import pytest

from kmm.motion import footlock, ground
from kmm.motion.cleanup import clean_joints, on_skeleton
from kmm.motion.features import joints_to_features
from kmm.motion.retarget import REST_OFFSETS, bone_lengths
from kmm.motion.skeleton import FEATURE_SLICES, FOOT_JOINTS

REST = np.linalg.norm(REST_OFFSETS[1:], axis=-1)


def _standing(T: int = 40) -> np.ndarray:
    """(T, 22, 3) the rest skeleton standing (arms out), lowest foot joint on y = 0."""
    from kmm.motion import ik

    local = np.broadcast_to(np.eye(3), (T, 22, 3, 3))
    x = ik.forward_kinematics(local, REST_OFFSETS, np.zeros((T, 3)))
    x[..., 1] -= x[:, list(FOOT_JOINTS), 1].min()
    return x


def test_clean_contacts_fills_one_frame_gaps_and_drops_short_runs():
    col = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0], dtype=float)
    out = footlock.clean_contacts(np.stack([col] * 4, 1))[:, 0]
    assert out.astype(int).tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0]


def test_two_bone_ik_keeps_lengths_reaches_the_target_and_bends_towards_the_pole():
    rng = np.random.default_rng(0)
    hip = rng.normal(size=(50, 3))
    knee = hip + np.array([0.0, -0.4, 0.05])
    ankle = knee + np.array([0.0, -0.4, -0.05])
    target = hip + rng.normal(size=(50, 3)) * 0.05 + np.array([0.0, -0.55, 0.0])   # within reach (0.81 m)
    new_knee, new_ankle = footlock.two_bone_ik(hip, knee, ankle, target)
    assert np.allclose(np.linalg.norm(new_knee - hip, axis=-1), np.linalg.norm(knee - hip, axis=-1))
    assert np.allclose(np.linalg.norm(new_ankle - new_knee, axis=-1), np.linalg.norm(ankle - knee, axis=-1))
    assert np.abs(new_ankle - target).max() < 1e-6               # all well within reach
    assert (new_knee[:, 2] > hip[:, 2] - 1e-9).mean() > 0.9      # the knee bends forwards, like the original


def test_a_sliding_planted_foot_is_locked_within_1cm_and_bones_keep_their_length():
    x = _standing(40)
    # the left foot slides 12 cm forward while in contact (frames 5..30), the body drifts with it
    slide = np.clip((np.arange(40) - 5) / 25, 0, 1) * 0.12
    for j in (4, 7, 10):
        x[:, j, 2] += slide
    contacts = np.zeros((40, 4), dtype=bool)
    contacts[5:31, 0] = contacts[5:31, 1] = True
    out = footlock.lock_feet(x, contacts)
    for j in (7, 10):                                              # left ankle and toe
        xz = out[5:31, j][:, [0, 2]]
        assert np.linalg.norm(xz - xz.mean(0), axis=-1).max() < 0.01
    assert np.abs(bone_lengths(out) - bone_lengths(x)).max() < 1e-5
    untouched = [j for j in range(22) if j not in (4, 7, 10)]
    assert np.abs(out[:, untouched] - x[:, untouched]).max() < 0.061   # at most the body drop MAX_DROP


def test_ground_puts_a_floating_or_sinking_body_on_the_floor():
    x = _standing(30)
    contacts = np.ones((30, 4), dtype=bool)
    for shift in (0.3, -0.2):
        out = ground.ground(x + np.array([0.0, shift, 0.0]), contacts)
        low = out[:, list(FOOT_JOINTS), 1].min(1)
        assert np.abs(low).max() < 1e-4
        assert np.allclose(out - out[:, :1], x - x[:, :1], atol=1e-5)   # the pose is untouched


def test_ground_keeps_a_short_jump_and_caps_a_long_float():
    fps = 20
    x = _standing(80)
    # a 0.5 s jump (9 airborne frames, ballistic) from frame 20, then a 2.5 s hover 1 m up from frame 40
    t = np.arange(9) + 1
    jump = 0.5 * 9.81 * (t / fps) * (10 / fps - t / fps)
    x[20:29, :, 1] += jump[:, None]
    x[40:90, :, 1] += 1.0
    contacts = np.ones((80, 4), dtype=bool)
    contacts[20:29] = False
    contacts[40:70] = False
    out = ground.ground(x, contacts, fps=fps)
    low = out[:, list(FOOT_JOINTS), 1].min(1)
    assert np.abs(low[20:29] - jump).max() < 0.03                  # the jump keeps its height and shape
    assert np.abs(low[:15]).max() < 1e-3                           # standing: on the floor
    assert low.min() > -1e-4                                       # never below it
    air = low[40:70] > 0.05
    assert air.sum() / fps <= ground.MAX_AIR_S + 2 / fps           # no longer in the air than a real jump (+ smoothing)
    assert low[40:70].max() <= 9.81 * ground.MAX_AIR_S ** 2 / 8 + 1e-3
    assert np.abs(low[72:]).max() < 1e-3                           # back on the floor once contacts return


def test_ballistic_ceiling_example():
    c = ground.ballistic_ceiling(9, fps=20)
    assert c.shape == (9,) and (c > 0).all()
    assert abs(c.max() - 9.81 * 0.5 ** 2 / 8) < 1e-9


def test_clean_joints_of_a_real_clip_one_skeleton_planted_feet_no_float(mini_motions):
    joints = next(iter(mini_motions.values())).astype(np.float64)[:120]
    features = joints_to_features(joints)
    features[:, FEATURE_SLICES["root_height"]] += 0.15                # the decoded body floats 15 cm
    contacts = features[:, FEATURE_SLICES["contacts"]] > 0.5
    assert contacts.any()
    out, used = clean_joints(features, return_contacts=True)
    spread = bone_lengths(out).std(0)
    assert spread.max() < 1e-4 and np.abs(bone_lengths(out).mean(0) - REST).max() < 1e-4
    low = out[:, list(FOOT_JOINTS), 1].min(1)
    assert np.abs(low[contacts.any(1)]).mean() < 0.02             # on the floor when in contact
    for k, j in enumerate(FOOT_JOINTS):
        for a, b in ground.runs(used[:, k]):
            xz = out[a:b, j][:, [0, 2]]
            # 1.5 cm (1 cm before step 6's light smoothing of the rotations)
            assert np.linalg.norm(xz - xz.mean(0), axis=-1).max() < 0.015


def test_on_skeleton_keeps_a_pose_that_is_already_on_it():
    x = _standing(5)
    assert np.abs(on_skeleton(x) - x).max() < 1e-9


@pytest.mark.parametrize("foot_lock", [True, False])
def test_clean_joints_is_deterministic_and_finite(mini_motions, foot_lock):
    joints = next(iter(mini_motions.values())).astype(np.float64)[:60]
    f = joints_to_features(joints)
    a, b = clean_joints(f, foot_lock=foot_lock), clean_joints(f, foot_lock=foot_lock)
    assert np.array_equal(a, b) and np.isfinite(a).all() and a.dtype == np.float32


def test_plant_spans_widen_short_gaps():
    c = np.array([1, 1, 1, 1, 0, 1, 1, 1, 1], dtype=bool)
    assert footlock.plant_spans(c, min_swing=3) == [(0, 3), (6, 9)]
    assert footlock.plant_spans(c, min_swing=1) == [(0, 4), (5, 9)]


def test_detect_contacts_finds_a_slow_low_foot_the_model_missed_with_hysteresis():
    x = _standing(40)
    # the left foot creeps forward at 0.6 m/s from frame 10 (above the entry speed, below the stay speed),
    # then swings away fast from frame 30
    v = np.where(np.arange(40) >= 10, 0.6 / 20, 0.0) + np.where(np.arange(40) >= 30, 2.0 / 20, 0.0)
    for j in (7, 10):
        x[:, j, 2] += np.cumsum(v)
    predicted = np.zeros((40, 4), dtype=bool)                      # the model predicts nothing
    c = footlock.detect_contacts(x, predicted)
    assert c[:29, 1].all()                                         # planted before, still planted while creeping
    assert not c[32:, 1].any()                                     # not once it swings fast
    assert c[:, 3].all()                                           # the right toe stands all along


def test_a_quick_step_between_two_plants_is_lifted_and_keeps_its_ends():
    pos = np.zeros((30, 3))
    pos[15:, 2] = 0.3                                              # the foot teleports 30 cm along the floor
    contact = np.ones(30, dtype=bool)
    contact[14:16] = False
    target, w, planted = footlock.anchor_targets(pos, contact, blend=6)
    gap = ~planted
    assert gap.sum() >= footlock.MIN_SWING and (w[gap] == 1).all()
    assert target[gap, 1].max() > 0.1 * 0.3                         # lifted: a step, not a slide
    assert np.allclose(target[planted & (np.arange(30) < 14)], 0.0) and np.allclose(target[-1], [0, 0, 0.3])
    assert np.abs(np.diff(target[:, 2])).max() < 0.3 / 2            # spread over the swing, no jump


def test_lock_feet_leaves_a_motion_without_contacts_alone():
    x = _standing(20)
    assert np.array_equal(footlock.lock_feet(x, np.zeros((20, 4), dtype=bool)), x.astype(np.float32))


def test_a_jump_with_wrongly_predicted_contacts_stays_in_the_air_and_lands():
    fps = 20
    x = _standing(60)
    t = np.arange(11) + 1
    hop = 0.5 * 9.81 * (t / fps) * (12 / fps - t / fps)              # a 0.6 s jump, 0.44 m high
    x[25:36, :, 1] += hop[:, None]
    features = joints_to_features(x)
    features[:, FEATURE_SLICES["contacts"]] = 1.0                  # the model says: feet down all along
    out = clean_joints(features)
    low = out[:, list(FOOT_JOINTS), 1].min(1)
    air = low > 0.05
    assert 0.1 <= air.sum() / fps <= 0.8 and air[25:36].sum() >= 7  # the flight is kept ...
    assert np.abs(low[:20]).max() < 0.01 and np.abs(low[42:]).max() < 0.01   # ... and it lands


def test_clean_up_adds_no_jerk_to_real_clips(mini_motions):
    """Step 6 of clean_joints: the leg IK's corrections must not make real motion (on the skeleton) jerkier."""
    from kmm.eval.metrics import jerk_curve
    from kmm.motion.retarget import retarget

    raw, out = 0.0, 0.0
    for joints in list(mini_motions.values())[:6]:
        joints = retarget(joints.astype(np.float64)[:200])
        raw += jerk_curve(joints).mean()
        out += jerk_curve(clean_joints(joints_to_features(joints))).mean()
    assert 0.7 * raw <= out <= 1.05 * raw      # no added jerk, and the motion is not smeared either


def test_smooth_motion_keeps_the_bones_and_damps_a_one_frame_twitch():
    from kmm.eval.metrics import jerk_curve
    from kmm.motion import ik
    from kmm.motion.cleanup import smooth_motion

    T = 30
    local = np.broadcast_to(np.eye(3), (T, 22, 3, 3)).copy()
    a = 0.3                                             # a shoulder twitches by 0.3 rad on one frame
    local[15, 17] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    x = ik.forward_kinematics(local, REST_OFFSETS, np.zeros((T, 3)))
    y = smooth_motion(x, 0.5)
    assert np.abs(bone_lengths(y) - REST).max() < 1e-6
    assert jerk_curve(y).max() < 0.9 * jerk_curve(x).max()
    assert np.abs(y[:10] - x[:10]).max() < 1e-9         # frames far from the twitch are untouched
