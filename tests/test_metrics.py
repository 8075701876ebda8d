"""Evaluation metrics (kmm/eval/metrics.py): known values and invariants on tiny inputs."""

import numpy as np
import pytest

from kmm.eval.metrics import (
    area_under_jerk,
    diversity,
    euclidean_distance_matrix,
    fid,
    foot_skating_ratio,
    frechet_distance,
    jerk_curve,
    mean_ci95,
    mm_dist,
    multimodality,
    peak_jerk,
    r_precision,
    transition_jerk,
)
from kmm.motion.skeleton import FOOT_JOINTS, FPS, N_JOINTS


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# --- embeddings -------------------------------------------------------------------------------------

def test_euclidean_distance_matrix_matches_brute_force(rng):
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(4, 7))
    brute = np.array([[np.linalg.norm(x - y) for y in b] for x in a])
    np.testing.assert_allclose(euclidean_distance_matrix(a, b), brute, atol=1e-10)
    assert np.all(np.diag(euclidean_distance_matrix(a, a)) < 1e-6)  # never NaN from rounding


def test_r_precision_perfect_embeddings(rng):
    emb = rng.normal(size=(100, 16))
    np.testing.assert_array_equal(r_precision(emb, emb.copy()), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(r_precision(emb, emb.copy(), rng=1), [1.0, 1.0, 1.0])


def test_r_precision_random_embeddings_near_chance(rng):
    n = 32 * 200
    text, motion = rng.normal(size=(n, 8)), rng.normal(size=(n, 8))
    acc = r_precision(text, motion, top_k=3, rng=rng)
    assert acc.shape == (3,)
    np.testing.assert_allclose(acc, [1 / 32, 2 / 32, 3 / 32], atol=0.01)
    assert np.all(np.diff(acc) >= 0)  # top-k accuracy never drops with k


def test_r_precision_batches_and_ties():
    # 70 pairs -> two batches of 32; the last 6 are dropped, so breaking them changes nothing
    emb = np.random.default_rng(1).normal(size=(70, 4))
    broken = emb.copy()
    broken[64:] = 100.0
    np.testing.assert_array_equal(r_precision(emb, broken, top_k=1), [1.0])
    # fewer than 32 pairs: one batch of all of them
    np.testing.assert_array_equal(r_precision(emb[:10], emb[:10], top_k=2), [1.0, 1.0])
    # a collapsed evaluator (every embedding equal) must not look perfect
    same = np.ones((32, 4))
    np.testing.assert_array_equal(r_precision(same, same, top_k=3), [0.0, 0.0, 0.0])


def test_r_precision_order_matters_only_through_rng(rng):
    text, motion = rng.normal(size=(96, 8)), rng.normal(size=(96, 8))
    np.testing.assert_array_equal(r_precision(text, motion, rng=5), r_precision(text, motion, rng=5))


def test_mm_dist():
    text = np.zeros((3, 2))
    motion = np.array([[3.0, 4.0], [0.0, 1.0], [0.0, 0.0]])
    assert mm_dist(text, motion) == pytest.approx(2.0)
    assert mm_dist(motion, motion) == 0.0


def test_fid_self_zero_shift_positive(rng):
    a = rng.normal(size=(500, 6))
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.zeros(6)
    shift[0] = 2.0
    assert fid(a, a + shift) == pytest.approx(4.0, rel=1e-6)  # same covariance: FID = |Δmu|²
    assert fid(a, 3.0 * a) > 1.0  # scale changes the covariance term


def test_frechet_distance_closed_form():
    # 1-D Gaussians: (mu1-mu2)^2 + (s1 - s2)^2
    assert frechet_distance([0.0], [[4.0]], [1.0], [[9.0]]) == pytest.approx(1.0 + 1.0)


def test_fid_singular_covariance_is_finite(rng):
    # fewer samples than dimensions -> rank-deficient covariances
    a, b = rng.normal(size=(5, 20)), rng.normal(size=(5, 20))
    value = fid(a, b)
    assert np.isfinite(value) and value >= 0.0


def test_diversity(rng):
    assert diversity(np.ones((50, 8)), rng=rng) == 0.0
    emb = rng.normal(size=(1000, 16))
    # E|x - y| for independent standard normals in 16-D is close to sqrt(2 * 16)
    assert diversity(emb, n_pairs=300, rng=rng) == pytest.approx(np.sqrt(32), rel=0.05)
    assert diversity(emb, rng=3) == diversity(emb, rng=3)
    assert diversity(np.array([[0.0], [2.0]]), n_pairs=7, rng=rng) == 2.0  # never pairs a row with itself


def test_multimodality(rng):
    assert multimodality(np.ones((4, 10, 8)), rng=rng) == 0.0
    # two repeats per text, 3 apart -> every pair is 3 apart
    emb = np.zeros((5, 2, 1))
    emb[:, 1] = 3.0
    assert multimodality(emb, n_pairs=10, rng=rng) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        multimodality(np.ones((4, 1, 8)))


# --- motion -----------------------------------------------------------------------------------------

def _clip(position_of_t, n_frames=40):
    """All 22 joints follow x = f(t), t in seconds; y and z stay fixed per joint."""
    t = np.arange(n_frames) / FPS
    joints = np.zeros((n_frames, N_JOINTS, 3))
    joints[:, :, 0] = position_of_t(t)[:, None]
    joints[:, :, 1] = np.linspace(0.0, 1.7, N_JOINTS)[None, :]
    return joints


def test_jerk_zero_for_constant_velocity_and_acceleration():
    np.testing.assert_allclose(jerk_curve(_clip(lambda t: 1.3 * t)), 0.0, atol=1e-6)
    np.testing.assert_allclose(jerk_curve(_clip(lambda t: 0.5 + 2.0 * t + 4.0 * t**2)), 0.0, atol=1e-6)


def test_jerk_of_cubic_is_constant_and_positive():
    curve = jerk_curve(_clip(lambda t: t**3))  # d³/dt³ t³ = 6 m/s³
    assert curve.shape == (40 - 3,)
    np.testing.assert_allclose(curve, 6.0, rtol=1e-6)


def test_jerk_uses_l1_over_xyz_and_max_over_joints():
    joints = np.zeros((4, N_JOINTS, 3))
    joints[3, 5] = [1.0, -2.0, 0.5]  # third difference at joint 5 = (1, -2, 0.5)
    joints[3, 7] = [0.1, 0.0, 0.0]
    assert jerk_curve(joints, fps=1) == pytest.approx([3.5])


def test_transition_jerk_window_and_boundaries():
    smooth = _clip(lambda t: t, n_frames=200)
    kinked = smooth.copy()
    kinked[100:, :, 0] += 0.3  # a jump at the boundary
    curve = transition_jerk(kinked, [0, 100, 190], window=60)
    assert curve.shape == (57,)
    assert np.argmax(curve) in range(27, 30)  # the peak sits at the window's centre
    np.testing.assert_allclose(transition_jerk(smooth, [100]), 0.0, atol=1e-6)
    with pytest.raises(ValueError):
        transition_jerk(smooth, [10, 195])  # no window fits


def test_peak_jerk_and_area_under_jerk():
    curve = np.array([1.0, 5.0, 2.0])
    assert peak_jerk(curve) == 5.0
    assert area_under_jerk(curve, 2.0) == pytest.approx(1.0 + 3.0 + 0.0)
    assert area_under_jerk(np.full(57, 0.7), 0.7) == 0.0


def _standing(n_frames=40):
    joints = np.zeros((n_frames, N_JOINTS, 3))
    joints[:, :, 1] = np.linspace(0.0, 1.7, N_JOINTS)[None, :]
    joints[:, list(FOOT_JOINTS), 1] = [0.08, 0.0, 0.08, 0.0]  # ankles above, toes on the floor
    joints[:, list(FOOT_JOINTS), 0] = [0.1, 0.1, -0.1, -0.1]
    return joints + np.array([0.0, 0.3, 0.0])  # the floor need not be at y = 0


def test_foot_skating_zero_when_standing_still():
    assert foot_skating_ratio(_standing()) == 0.0


def test_foot_skating_high_when_a_planted_foot_slides():
    joints = _standing()
    joints[:, 10, 2] = np.arange(len(joints)) * 0.05  # left toe slides 5 cm/frame = 1 m/s on the floor
    assert foot_skating_ratio(joints) == 1.0


def test_foot_skating_ignores_feet_in_the_air_and_slow_feet():
    joints = _standing()
    joints[:, [7, 10], 1] += 0.3  # left foot lifted
    joints[:, [7, 10], 2] = np.arange(len(joints))[:, None] * 0.05  # moving fast, but in the air
    joints[:, 11, 2] = np.arange(len(joints)) * 0.01  # right toe creeps 1 cm/frame = 0.2 m/s
    assert foot_skating_ratio(joints) == 0.0


def test_mean_ci95_known_values():
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302652729911275 / np.sqrt(3))  # t(0.975, 2) * s / sqrt(n), s = 1
    assert mean_ci95([5.0]) == (5.0, 0.0)
    assert mean_ci95([4.0, 4.0, 4.0]) == (4.0, 0.0)
    with pytest.raises(ValueError):
        mean_ci95([])


# --- physical plausibility ---------------------------------------------------------------------------

def _on_floor(n_frames=40):
    return _standing(n_frames) - np.array([0.0, 0.3, 0.0])       # toes on y = 0


def test_float_penetration_airborne_on_a_standing_body():
    from kmm.eval.metrics import airborne_stats, foot_float, foot_penetration

    x = _on_floor()
    assert foot_float(x) == 0.0 and foot_penetration(x) == 0.0
    assert airborne_stats(x) == {"airborne_share": 0.0, "airborne_max_s": 0.0}
    assert foot_float(x + np.array([0.0, 0.1, 0.0])) == pytest.approx(0.1)
    assert foot_penetration(x - np.array([0.0, 0.04, 0.0])) == pytest.approx(0.04)


def test_airborne_time_counts_the_longest_run_off_the_ground():
    from kmm.eval.metrics import airborne_stats, foot_float

    x = _on_floor(40)
    x[10:16, :, 1] += 0.3                                       # 6 frames = 0.3 s up
    x[20:36, :, 1] += 1.0                                       # 16 frames = 0.8 s up
    stats = airborne_stats(x, fps=FPS)
    assert stats["airborne_max_s"] == pytest.approx(16 / FPS)
    assert stats["airborne_share"] == pytest.approx(22 / 40)
    assert foot_float(x) > 0.3   # a body hovering still is floating: its still feet should be on the floor


def test_bone_length_spread_zero_on_a_rigid_body_and_measures_stretch():
    from kmm.eval.metrics import bone_length_spread, plausibility

    x = _on_floor(20)
    assert bone_length_spread(x) == pytest.approx(0.0, abs=1e-12)
    y = x.copy()
    y[::2, 20, 0] += 0.1                                         # the left wrist jumps 10 cm every other frame
    short = np.linalg.norm(x[0, 20] - x[0, 18])
    long = np.linalg.norm(y[0, 20] - y[0, 18])
    assert bone_length_spread(y) == pytest.approx((long - short) / 2)
    assert set(plausibility(x)) == {"float_m", "penetration_m", "airborne_share", "airborne_max_s", "bone_spread_m"}


def test_plausibility_of_real_clips(mini_motions):
    from kmm.eval.metrics import plausibility

    level = [j for j in mini_motions.values() if j[:, 0, 1].max() < 1.2]    # on the floor (no climbing clips)
    assert level
    for joints in level[:4]:
        p = plausibility(joints.astype(np.float64))
        assert p["penetration_m"] < 0.005 and p["float_m"] < 0.05 and p["bone_spread_m"] < 0.005
