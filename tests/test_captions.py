"""Caption rules (kmm.captions) and the one-skeleton retarget (kmm.motion.retarget)."""
import numpy as np
import pytest

from kmm.captions import clean_label, describe
from kmm.motion.mirror import mirror_text


@pytest.mark.parametrize("label, sentence", [
    ("JumpForward", "a person jumps forward"),
    ("walking backwards", "a person walks backwards"),
    ("Front_Kicking001", "a person does a front kick"),
    ("Punch and Kick", "a person punches and kicks"),
    ("Sit in chair and get up", "a person sits in chair and gets up"),
    ("walk forward, turn around, walk back", "a person walks forward, then turns around, then walks back"),
    ("playground - climb, go under", "a person climbs, then goes under"),
    ("salsa dance", "a person does a salsa dance"),
    ("bear (human subject)", "a person moves like a bear"),
    ("Story", "a person tells a story with hand gestures"),
    ("180", "a person turns around"),
    ("a person bows energetically.", "a person bows energetically"),
])
def test_labels_become_sentences(label, sentence):
    assert describe(label) == sentence


@pytest.mark.parametrize("label", ["Alaskan vacation", "clean", "12.5lb", "dynamic calibration", "TV",
                                   "A pulls B; B resists (2 subjects - subject B)", "rangeOfMotion_01"])
def test_uninformative_labels_are_dropped(label):
    assert describe(label) is None


def test_cleaning_and_determinism():
    assert clean_label("DefensiveMoveZigZag CleanedGRS") == "defensive move zig zag"
    assert clean_label("walk fwd w/ arms") == "walk forward with arms"
    assert describe("RightWideTurn") == describe("RightWideTurn")


def test_mirrored_sentence_swaps_sides():
    s = describe("Left_Front_Kicking001")
    assert "left" in s and "right" in mirror_text(s) and "left" not in mirror_text(s)


def test_retarget_gives_constant_bones_and_keeps_directions():
    from kmm.motion import ik
    from kmm.motion.retarget import REST_OFFSETS, bone_lengths, retarget
    from kmm.motion.skeleton import FOOT_JOINTS, PARENTS

    rng = np.random.default_rng(0)
    # a body twice the size of the rest skeleton, random smooth local rotations
    T = 30
    angles = np.cumsum(rng.normal(0, 0.05, (T, 22, 3)), axis=0)
    from kmm.motion.rotations import euler_zxy_to_matrix
    local = euler_zxy_to_matrix(angles)
    root = np.stack([np.linspace(0, 2, T), np.full(T, 2.0), np.zeros(T)], -1)
    x = ik.forward_kinematics(local, 2.0 * REST_OFFSETS, root)
    x[..., 1] -= x[:, list(FOOT_JOINTS), 1].min()
    y = retarget(x)
    lengths = bone_lengths(y)                                   # (T, 21)
    assert lengths.std(0).max() < 1e-5
    np.testing.assert_allclose(lengths[0], np.linalg.norm(REST_OFFSETS[1:], axis=-1), atol=1e-5)
    assert abs(y[:, list(FOOT_JOINTS), 1].min()) < 1e-6          # floor at 0
    # bone directions of single-child joints are kept
    parents = np.array(PARENTS)
    for j in (4, 7, 18, 20):                                    # knee, ankle, elbow, wrist
        d_in = x[:, j] - x[:, parents[j]]
        d_out = y[:, j] - y[:, parents[j]]
        cos = (d_in * d_out).sum(-1) / np.linalg.norm(d_in, axis=-1) / np.linalg.norm(d_out, axis=-1)
        assert cos.min() > 0.999
    # the root path is scaled by the body size (half here)
    travel = np.linalg.norm(y[-1, 0, [0, 2]] - y[0, 0, [0, 2]])
    assert 0.8 < travel < 1.2


def test_retarget_is_identity_on_the_rest_skeleton(mini_dir):
    from kmm.data import load_dataset
    from kmm.motion.retarget import retarget

    ds = load_dataset(mini_dir)
    clip = ds.clips()[0]                                        # prepared: already on the rest skeleton
    again = retarget(clip.joints, scale_root=False, floor=False)
    assert np.abs(again - clip.joints).max() < 2e-3
