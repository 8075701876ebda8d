"""Joints <-> 263-d features (paper §3.1 data; METHOD.md §1): round trip, canonical frame, batching."""


import numpy as np
import pytest
import torch

from kmm.motion import ik
from kmm.motion import rotations as rot
from kmm.motion.features import (Normalizer, canonicalize, features_to_joints, heading_yaw,
                                 joints_to_features)
from kmm.motion.skeleton import FEATURE_DIM, FEATURE_SLICES, LEFT_HIP, RIGHT_HIP



@pytest.fixture(scope="module")
def clips(mini_motions) -> dict:
    return dict(mini_motions)


def _random_yaw_shift(joints: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    turned = rot.apply(rot.yaw_matrix(rng.uniform(-np.pi, np.pi)), joints.astype(np.float64))
    return turned + np.array([rng.uniform(-5, 5), 0.0, rng.uniform(-5, 5)])


def test_round_trip_under_1mm_on_every_mini_clip(clips):
    for key, joints in clips.items():
        feats = joints_to_features(joints)
        assert feats.shape == (len(joints), FEATURE_DIM) and feats.dtype == np.float32
        assert np.isfinite(feats).all()
        err = np.abs(features_to_joints(feats) - canonicalize(joints)).max()
        assert err < 1e-3, f"{key}: {err * 1000:.3f} mm"


def test_round_trip_stays_accurate_on_a_long_clip(clips):
    joints = np.concatenate(list(clips.values()))[:1300]  # clip jumps are fine: only accuracy matters
    assert len(joints) == 1300
    err = np.abs(features_to_joints(joints_to_features(joints)) - canonicalize(joints)).max()
    assert err < 1e-3


def test_canonical_frame_faces_plus_z_over_the_origin(clips):
    for joints in clips.values():
        moved = _random_yaw_shift(joints, seed=len(joints))
        canon = canonicalize(moved)
        assert abs(heading_yaw(canon[0])) < 1e-9
        assert np.allclose(canon[0, 0, [0, 2]], 0.0, atol=1e-9)
        assert np.allclose(canon[:, :, 1], joints[:, :, 1], atol=1e-6)  # heights kept
        assert canon[0, LEFT_HIP, 0] > canon[0, RIGHT_HIP, 0]  # body's left on +X
        assert np.allclose(canon, canonicalize(joints), atol=1e-6)


def test_features_do_not_depend_on_global_position_or_facing(clips):
    joints = clips[next(iter(clips))]
    f0 = joints_to_features(joints)
    f1 = joints_to_features(_random_yaw_shift(joints, seed=3))
    assert np.abs(f0 - f1).max() < 1e-4


def test_root_height_and_velocity_layout(clips):
    joints = canonicalize(clips[next(iter(clips))])
    feats = joints_to_features(joints)
    assert np.allclose(feats[:, FEATURE_SLICES["root_height"]][:, 0], joints[:, 0, 1], atol=1e-6)
    speed = np.linalg.norm(feats[:, FEATURE_SLICES["velocity"]].reshape(-1, 22, 3)[:-1], axis=-1)
    assert np.allclose(speed, np.linalg.norm(np.diff(joints, axis=0), axis=-1), atol=1e-5)
    contacts = feats[:, FEATURE_SLICES["contacts"]]
    assert set(np.unique(contacts)) <= {0.0, 1.0}


def test_single_frame_clip_has_zero_velocities(clips):
    feats = joints_to_features(clips[next(iter(clips))][:1])
    assert feats.shape == (1, FEATURE_DIM)
    for name in ("root_rot_vel", "root_lin_vel", "velocity"):
        assert np.all(feats[:, FEATURE_SLICES[name]] == 0)


def test_contacts_for_standing_still_and_for_a_lifted_body(clips):
    joints = clips[next(iter(clips))].astype(np.float64)
    frame = joints[int(np.argmin(joints[:, 7:12, 1].min(axis=1)))]  # a frame with a foot on the floor
    still = np.repeat(frame[None], 5, axis=0)
    contacts = joints_to_features(still)[:, FEATURE_SLICES["contacts"]]
    assert contacts.max(axis=1).min() == 1.0
    lifted = still + np.array([0.0, 1.0, 0.0])
    assert joints_to_features(lifted)[:, FEATURE_SLICES["contacts"]].max() == 0.0


def test_rot6d_reproduces_a_pose_built_by_forward_kinematics():
    # A pose made by FK from random local rotations on the rest directions must come back exactly
    # from the rot6d features (IK of single-child joints is exact up to twist, which FK ignores).
    rng = np.random.default_rng(0)
    lengths = rng.uniform(0.1, 0.4, size=22)
    offsets = ik.unit_rest_offsets() * lengths[:, None]
    local = rot.quat_to_matrix(rot.normalize(rng.normal(size=(6, 22, 4)) * [4, 1, 1, 1]))
    root = np.array([0.0, 1.0, 0.0]) + rng.normal(size=(6, 3)) * 0.1
    joints = ik.forward_kinematics(local, offsets, root)
    feats = joints_to_features(joints)
    canon = canonicalize(joints)
    recovered = rot.sixd_to_matrix(feats[:, FEATURE_SLICES["rot6d"]].reshape(6, 21, 6))  # (T, 21, 3, 3)
    g_root = ik.global_rotations(canon)[:, 0]
    local_rec = np.concatenate([g_root[:, None], recovered], axis=1)
    again = ik.forward_kinematics(local_rec, offsets, canon[:, 0])
    assert np.abs(again - canon).max() < 1e-5


def test_torch_batched_path_matches_numpy_and_is_differentiable(clips):
    arrays = list(clips.values())[:3]
    n = min(len(a) for a in arrays)
    feats = np.stack([joints_to_features(a[:n]) for a in arrays])  # (3, n, 263)
    batch = torch.from_numpy(feats).requires_grad_(True)
    out = features_to_joints(batch)  # (3, n, 22, 3)
    assert isinstance(out, torch.Tensor) and out.shape == (3, n, 22, 3) and out.dtype == torch.float32
    for i in range(3):
        assert np.abs(out[i].detach().numpy() - features_to_joints(feats[i])).max() < 1e-5
    out.sum().backward()
    assert batch.grad is not None and torch.isfinite(batch.grad).all()


def test_normalizer_round_trip(clips):
    feats = [joints_to_features(a) for a in list(clips.values())[:4]]
    norm = Normalizer.fit(feats)
    assert norm.mean.shape == norm.std.shape == (FEATURE_DIM,)
    assert norm.std.min() >= 1e-4  # floored (e.g. always-zero dims)
    z = norm.normalize(np.concatenate(feats))
    assert np.abs(z.mean(0)[norm.std > 1e-3]).max() < 1e-3
    assert np.allclose(norm.denormalize(z), np.concatenate(feats), atol=1e-4)
    t = torch.from_numpy(feats[0])
    assert torch.allclose(norm.denormalize(norm.normalize(t)), t, atol=1e-4)
    again = Normalizer.from_dict(norm.to_dict())
    assert np.array_equal(again.mean, norm.mean) and np.array_equal(again.std, norm.std)
