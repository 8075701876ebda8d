"""Mirror augmentation (paper §3.1 data; METHOD.md §1): joints and text, both involutions."""


import numpy as np
import pytest
import torch

from kmm.motion.features import canonicalize, features_to_joints, joints_to_features
from kmm.motion.mirror import mirror_joints, mirror_text
from kmm.motion.skeleton import FEATURE_SLICES, LEFT_CHAIN, LEFT_HIP, MIRROR, RIGHT_CHAIN, RIGHT_HIP



@pytest.fixture(scope="module")
def clips(mini_motions) -> dict:
    return {k: v.astype(np.float32) for k, v in list(mini_motions.items())[:4]}


def test_mirror_table_swaps_left_and_right_chains():
    assert all(MIRROR[MIRROR[j]] == j for j in range(22))
    assert sorted(MIRROR[j] for j in LEFT_CHAIN) == sorted(RIGHT_CHAIN)


def test_mirror_joints_twice_is_identity_numpy_and_torch(clips):
    for joints in clips.values():
        assert np.array_equal(mirror_joints(mirror_joints(joints)), joints)
        once = mirror_joints(joints)
        assert np.array_equal(once[:, LEFT_HIP, 0], -joints[:, RIGHT_HIP, 0])
        assert np.array_equal(once[..., 1], joints[:, list(MIRROR), 1])
    batch = torch.from_numpy(np.stack([a[:40] for a in clips.values()]))  # (B, 40, 22, 3)
    assert torch.equal(mirror_joints(mirror_joints(batch)), batch)
    assert np.array_equal(mirror_joints(batch).numpy(), mirror_joints(batch.numpy()))


def test_mirrored_motion_has_valid_mirrored_features(clips):
    for joints in clips.values():
        feats, mirrored = joints_to_features(joints), joints_to_features(mirror_joints(joints))
        # still a valid motion: round trip under 1 mm
        err = np.abs(features_to_joints(mirrored) - canonicalize(mirror_joints(joints))).max()
        assert err < 1e-3
        # turning left becomes turning right; foot heights swap sides
        rv = FEATURE_SLICES["root_rot_vel"]
        assert np.allclose(mirrored[:, rv], -feats[:, rv], atol=1e-5)
        assert np.allclose(mirrored[:, FEATURE_SLICES["root_height"]], feats[:, FEATURE_SLICES["root_height"]])
        contacts, contacts_m = feats[:, FEATURE_SLICES["contacts"]], mirrored[:, FEATURE_SLICES["contacts"]]
        assert np.mean(contacts_m == contacts[:, [2, 3, 0, 1]]) > 0.99  # ties at the threshold may flip


@pytest.mark.parametrize("text, expected", [
    ("raise the left hand", "raise the right hand"),
    ("Left", "Right"),
    ("RIGHT then LEFT", "LEFT then RIGHT"),
    ("a person walks leftwards, then turns rightward", "a person walks rightwards, then turns leftward"),
    ("spins clockwise, then counterclockwise", "spins counterclockwise, then clockwise"),
    ("a left-handed throw to the right.", "a right-handed throw to the left."),
    ("a bright light", "a bright light"),
    ("the person is upright", "the person is upright"),
])
def test_mirror_text(text, expected):
    assert mirror_text(text) == expected
    assert mirror_text(mirror_text(text)) == text


def test_alternative_spellings_mirror_to_the_canonical_word():
    assert mirror_text("turns counter-clockwise") == "turns clockwise"
    assert mirror_text("Anticlockwise") == "Clockwise"
