"""Joint positions <-> 263-d HumanML3D-style features (paper §3.1 data; METHOD.md §1).

Layout: ``skeleton.FEATURE_SLICES``. Every feature is invariant to the clip's global position and
facing (velocities and positions live in each frame's own heading frame), so the features of a clip
and of its canonicalised copy are the same, and ``features_to_joints`` returns the canonical clip:
frame-0 root over the origin (height kept), frame 0 facing +Z.

Heading of a frame: ``across = (left_hip - right_hip) + (left_shoulder - right_shoulder)`` points to
the body's left; ``forward = across x up`` (so +X left gives +Z forward); yaw = atan2(fwd_x, fwd_z),
the rotation about +Y that takes +Z to the forward direction. A vector goes into the heading frame
by ``yaw_matrix(-yaw)``.

Foot contacts (ours, after HumanML3D): a foot joint touches the ground when its squared displacement
to the next frame is below ``CONTACT_SQ_VEL`` = 0.002 m^2 / frame^2 (HumanML3D's threshold, about
0.9 m/s at 20 fps) AND its height is below ``CONTACT_HEIGHT`` (0.12 m for ankles, 0.08 m for toes;
the floor is y = 0).
"""

from dataclasses import dataclass

import numpy as np
import torch

from kmm.motion import ik
from kmm.motion import rotations as rot
from kmm.motion.skeleton import (FEATURE_DIM, FEATURE_SLICES, FOOT_JOINTS, LEFT_HIP, LEFT_SHOULDER,
                                 N_JOINTS, RIGHT_HIP, RIGHT_SHOULDER)

CONTACT_SQ_VEL = 0.002  # m^2 / frame^2 at 20 fps
CONTACT_HEIGHT = (0.12, 0.08, 0.12, 0.08)  # m, for FOOT_JOINTS (ankle, toe, ankle, toe)

_S = FEATURE_SLICES


def heading_yaw(joints: np.ndarray) -> np.ndarray:
    """Facing angle about +Y of each frame: (..., 22, 3) -> (...,) radians; 0 = facing +Z."""
    x = np.asarray(joints, dtype=np.float64)
    across = (x[..., LEFT_HIP, :] - x[..., RIGHT_HIP, :]) + (x[..., LEFT_SHOULDER, :] - x[..., RIGHT_SHOULDER, :])
    # forward = across x up = (-across_z, 0, across_x) for up = +Y
    return np.arctan2(-across[..., 2], across[..., 0])


def canonicalize(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> (T, 22, 3) float64: frame-0 root at x = z = 0 (y kept), frame 0 facing +Z."""
    x = np.asarray(joints, dtype=np.float64)
    origin = x[0, 0] * np.array([1.0, 0.0, 1.0])  # (3,)
    turn = rot.yaw_matrix(-heading_yaw(x[0]))  # (3, 3)
    return rot.apply(turn, x - origin)


def _forward_diff(a: np.ndarray) -> np.ndarray:
    """a[t+1] - a[t] along axis 0, last frame repeating the previous value; zeros for T = 1."""
    if len(a) < 2:
        return np.zeros_like(a)
    d = a[1:] - a[:-1]
    return np.concatenate([d, d[-1:]], axis=0)


def foot_contacts(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> (T, 4) float 0/1 contacts for FOOT_JOINTS (thresholds in the module docstring)."""
    feet = np.asarray(joints, dtype=np.float64)[:, list(FOOT_JOINTS)]  # (T, 4, 3)
    sq_vel = np.sum(_forward_diff(feet) ** 2, axis=-1)  # (T, 4)
    low = feet[..., 1] < np.array(CONTACT_HEIGHT)
    return ((sq_vel < CONTACT_SQ_VEL) & low).astype(np.float64)


def joints_to_features(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) global joint positions (m, Y up) -> (T, 263) float32 features."""
    x = canonicalize(joints)  # (T, 22, 3) float64
    n_frames = len(x)
    f = np.zeros((n_frames, FEATURE_DIM))
    # 1. heading per frame and the rotation into it
    yaw = heading_yaw(x)  # (T,)
    to_heading = rot.yaw_matrix(-yaw)  # (T, 3, 3)
    # 2. root: yaw velocity (wrapped), ground velocity in frame t's heading frame, height
    dyaw = _forward_diff(yaw)
    f[:, _S["root_rot_vel"]] = np.angle(np.exp(1j * dyaw))[:, None]
    root = x[:, 0]  # (T, 3)
    root_vel = _forward_diff(root * np.array([1.0, 0.0, 1.0]))  # (T, 3), y = 0
    f[:, _S["root_lin_vel"]] = rot.apply(to_heading, root_vel)[:, [0, 2]]
    f[:, _S["root_height"]] = root[:, 1:2]
    # 3. ric: joints 1..21 relative to the root's ground position, in the heading frame
    rel = x[:, 1:] - root[:, None] * np.array([1.0, 0.0, 1.0])  # (T, 21, 3)
    f[:, _S["ric"]] = rot.apply(to_heading[:, None], rel).reshape(n_frames, -1)
    # 4. rot6d: local rotations of joints 1..21 from IK against the unit rest pose
    local = ik.local_rotations(ik.global_rotations(x))  # (T, 22, 3, 3)
    f[:, _S["rot6d"]] = rot.matrix_to_6d(local[:, 1:]).reshape(n_frames, -1)
    # 5. joint velocities in frame t's heading frame
    f[:, _S["velocity"]] = rot.apply(to_heading[:, None], _forward_diff(x)).reshape(n_frames, -1)
    # 6. foot contacts
    f[:, _S["contacts"]] = foot_contacts(x)
    return f.astype(np.float32)


def features_to_joints(features):
    """(T, 263) numpy or (..., T, 263) torch -> (..., T, 22, 3) joints in the canonical frame.

    Integrates yaw (yaw[0] = 0) and root ground position (root_xz[0] = 0) in float64, then places
    ``ric`` around the root. Torch in -> torch out (same device and dtype, differentiable);
    numpy in -> float32 numpy out.
    """
    if isinstance(features, torch.Tensor):
        return _features_to_joints_torch(features.to(torch.float64)).to(features.dtype)
    out = _features_to_joints_torch(torch.from_numpy(np.asarray(features, dtype=np.float64)))
    return out.numpy().astype(np.float32)


def _features_to_joints_torch(f: torch.Tensor) -> torch.Tensor:
    """(..., T, 263) float64 -> (..., T, 22, 3) float64."""
    zero = torch.zeros_like(f[..., :1, 0])  # (..., 1)
    # 1. yaw[t] = sum of root_rot_vel[:t]
    rot_vel = f[..., _S["root_rot_vel"]][..., 0]  # (..., T)
    yaw = torch.cat([zero, torch.cumsum(rot_vel[..., :-1], dim=-1)], dim=-1)  # (..., T)
    cos, sin = torch.cos(yaw), torch.sin(yaw)  # (..., T)
    # 2. root ground velocity back to world (yaw_matrix(yaw)), integrated from 0
    vx, vz = f[..., 1], f[..., 2]  # (..., T)
    world_v = torch.stack([cos * vx + sin * vz, -sin * vx + cos * vz], dim=-1)  # (..., T, 2)
    root_xz = torch.cat([torch.zeros_like(world_v[..., :1, :]),
                         torch.cumsum(world_v[..., :-1, :], dim=-2)], dim=-2)  # (..., T, 2)
    # 3. ric back to world, around the root
    ric = f[..., _S["ric"]].unflatten(-1, (N_JOINTS - 1, 3))  # (..., T, 21, 3)
    c, s = cos[..., None], sin[..., None]  # (..., T, 1)
    rx, ry, rz = ric[..., 0], ric[..., 1], ric[..., 2]  # (..., T, 21)
    others = torch.stack([c * rx + s * rz + root_xz[..., :1], ry,
                          -s * rx + c * rz + root_xz[..., 1:]], dim=-1)  # (..., T, 21, 3)
    # 4. root from its ground position and height
    height = f[..., _S["root_height"]]  # (..., T, 1)
    root = torch.cat([root_xz[..., :1], height, root_xz[..., 1:]], dim=-1)  # (..., T, 3)
    return torch.cat([root[..., None, :], others], dim=-2)  # (..., T, 22, 3)


@dataclass
class Normalizer:
    """Per-dimension mean/std normalisation of features (METHOD.md §1: training-split statistics)."""

    mean: np.ndarray  # (263,)
    std: np.ndarray  # (263,), floored at eps

    @classmethod
    def fit(cls, features: list, eps: float = 1e-4) -> "Normalizer":
        """Statistics over all frames of a list of (T_i, 263) arrays."""
        stacked = np.concatenate([np.asarray(a, dtype=np.float64) for a in features], axis=0)
        return cls(mean=stacked.mean(0).astype(np.float32),
                   std=np.maximum(stacked.std(0), eps).astype(np.float32))

    def _stats(self, x):
        if isinstance(x, torch.Tensor):
            return (torch.as_tensor(self.mean, dtype=x.dtype, device=x.device),
                    torch.as_tensor(self.std, dtype=x.dtype, device=x.device))
        return self.mean, self.std

    def normalize(self, x):
        """(..., 263) numpy or torch -> same type, (x - mean) / std."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x):
        """(..., 263) numpy or torch -> same type, x * std + mean."""
        mean, std = self._stats(x)
        return x * std + mean

    def to_dict(self) -> dict:
        """Arrays for safetensors: {"mean": (263,) float32, "std": (263,) float32}."""
        return {"mean": np.asarray(self.mean, dtype=np.float32), "std": np.asarray(self.std, dtype=np.float32)}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        """Inverse of :meth:`to_dict`; accepts numpy arrays or torch tensors."""
        def arr(v):
            return (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)).astype(np.float32)
        return cls(mean=arr(d["mean"]), std=arr(d["std"]))
