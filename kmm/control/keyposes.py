"""Key poses: the motion passes through given poses at given times (ours; token in-painting + a final pose blend).

A key pose is 22 joint positions (metres, Y up) in the output's own frame (frame 0's pelvis at x = z = 0, frame 0
facing +Z, +X the body's left) and a time in seconds. It is reached in three steps:
1. in-painting (`keypose_codes`): the pose held still for `HOLD_TOKENS` tokens is encoded by the tokenizer (the
   motion VAE for Motion Mamba) and the code of the middle token is fixed at the key frame's token during
   mask-predict, so the generator writes the motion around it (as editing keeps the tokens outside a segment);
2. placement (`keypose_targets`): the pose's pelvis (x, z) and facing become targets of the root-path warp
   (``kmm.control.path.follow``), so the body arrives there, turned as the pose is;
3. blend (`pin_poses`): the decoded, cleaned joints are blended into the key pose in joint-rotation space
   (slerp of local rotations, lerp of the root) with a weight that is 1 at the key frame and eases to 0 over
   `BLEND_FRAMES` frames on each side (smootherstep, continuous up to acceleration, so no jump); bones keep the
   skeleton ``retarget.REST_OFFSETS``.
A key pose at time 0 defines the output's frame, so its own placement is dropped (it is moved to x = z = 0 and
turned to face +Z). A key pose with `place=False` pins the pose alone: step 2 is skipped and step 3 moves it onto
the body's own floor position and facing at that frame ("raise both arms at 3 s" while walking anywhere). Poses from another body keep their joint rotations on our skeleton (bone lengths differ).
Pure numpy + torch for the encoder call; `load_keyposes` is the one file reader.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kmm.control.path import ControlError, Target, seconds_to_frame
from kmm.motion import ik
from kmm.motion import rotations as rot
from kmm.motion.features import canonicalize, heading_yaw, joints_to_features
from kmm.motion.retarget import REST_OFFSETS
from kmm.motion.skeleton import FPS, N_JOINTS

HOLD_TOKENS = 5          # tokens of the held pose given to the encoder (the middle one is kept)
BLEND_FRAMES = 12        # frames on each side of a key frame over which the final blend eases out


@dataclass(frozen=True)
class KeyPose:
    seconds: float
    joints: np.ndarray   # (22, 3) metres, the output's frame
    place: bool = True   # False: the pose alone, wherever and however turned the body is at that time


def check_keyposes(keyposes) -> list[KeyPose]:
    """KeyPose list, (seconds, joints[, place]) tuples, or {"times": (K,), "joints": (K, 22, 3)[, "place": bool or
    (K,)]} -> KeyPose list sorted by time; times >= 0, finite, distinct; joints finite (K, 22, 3)."""
    if isinstance(keyposes, dict):
        if "times" not in keyposes or "joints" not in keyposes:
            raise ControlError("key poses need 'times' (K,) seconds and 'joints' (K, 22, 3)")
        times = np.asarray(keyposes["times"], dtype=np.float64).reshape(-1)
        joints = np.asarray(keyposes["joints"], dtype=np.float64)
        if joints.ndim == 2:
            joints = joints[None]
        if joints.shape[1:] != (N_JOINTS, 3) or len(joints) != len(times):
            raise ControlError(f"key poses: joints must be (K, 22, 3) with K = len(times) = {len(times)}, "
                               f"got {tuple(joints.shape)}")
        place = np.broadcast_to(np.asarray(keyposes.get("place", True), dtype=bool).reshape(-1), times.shape) \
            if len(times) else np.zeros(0, dtype=bool)
        keyposes = list(zip(times, joints, place))
    out = []
    for k in keyposes:
        k = k if isinstance(k, KeyPose) else KeyPose(float(k[0]), np.asarray(k[1], dtype=np.float64),
                                                     bool(k[2]) if len(k) > 2 else True)
        if np.shape(k.joints) != (N_JOINTS, 3):
            raise ControlError(f"key pose at {k.seconds:g} s: joints must be (22, 3), got {np.shape(k.joints)}")
        if not (np.isfinite(k.seconds) and np.isfinite(k.joints).all()):
            raise ControlError(f"key pose at {k.seconds} s is not finite")
        if k.seconds < 0:
            raise ControlError(f"key pose time {k.seconds:g} s must be >= 0")
        out.append(k)
    out.sort(key=lambda k: k.seconds)
    if any(b.seconds - a.seconds < 1.0 / FPS for a, b in zip(out, out[1:])):
        raise ControlError(f"two key poses share a frame: times {[k.seconds for k in out]}")
    return out


def load_keyposes(path) -> list[KeyPose]:
    """An .npz with `joints` (K, 22, 3) metres, `times` (K,) seconds and optionally `place` (K,) bool (False: the
    pose alone, not its place on the floor) -> KeyPose list."""
    path = Path(path)
    if not path.is_file():
        raise ControlError(f"{path}: no such key pose file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise ControlError(f"{path}: not a readable .npz ({e})") from e
    return check_keyposes(arrays)


def placed(keypose: KeyPose, body: np.ndarray | None = None) -> np.ndarray:
    """(22, 3) the pose as it must appear: unchanged, or canonical (pelvis at x = z = 0, facing +Z) at time 0; a
    pose with place=False is moved onto `body` (22, 3), the motion's own pose at that frame: its pelvis (x, z)
    and its facing (the pose's height kept)."""
    if keypose.seconds * FPS < 0.5:
        return canonicalize(keypose.joints[None])[0]
    if not keypose.place and body is not None:
        pose = rot.apply(rot.yaw_matrix(heading_yaw(body)), canonicalize(keypose.joints[None])[0])
        return pose + np.asarray(body[0], dtype=np.float64) * np.array([1.0, 0.0, 1.0])
    return np.asarray(keypose.joints, dtype=np.float64)


def keypose_frames(keyposes: list[KeyPose], n_frames: int, fps: float = FPS) -> list[int]:
    return [seconds_to_frame(k.seconds, n_frames, fps, what="key pose") for k in keyposes]


def keypose_targets(keyposes: list[KeyPose], n_frames: int, fps: float = FPS) -> list[Target]:
    """Root-path targets (step 2): pelvis (x, z) and facing of every key pose after frame 0."""
    out = []
    for k, f in zip(keyposes, keypose_frames(keyposes, n_frames, fps)):
        if f > 0 and k.place:
            pose = placed(k)
            out.append(Target(f, float(pose[0, 0]), float(pose[0, 2]), float(heading_yaw(pose))))
    return out


def pose_features(joints: np.ndarray, n_frames: int) -> np.ndarray:
    """(22, 3) pose -> (n_frames, 263) features of the body holding it still (contacts from the pose's feet)."""
    return joints_to_features(np.repeat(np.asarray(joints, dtype=np.float64)[None], n_frames, axis=0))


@torch.no_grad()
def keypose_codes(backend, normalizer, keyposes: list[KeyPose], n_tokens: int, frames_per_token: int = 4,
                  fps: float = FPS):
    """Step 1: -> fixed (N, ...) codes and fixed_mask (N,) bool for ``backend.sample`` (one token per key pose).

    `backend.encode(normalised features (1, 4H, 263)) -> (H, ...)` codes of the backend's own kind."""
    n_frames = n_tokens * frames_per_token
    fixed, mask = None, torch.zeros(n_tokens, dtype=torch.bool)
    for k, f in zip(keyposes, keypose_frames(keyposes, n_frames, fps)):
        feats = normalizer.normalize(pose_features(k.joints, HOLD_TOKENS * frames_per_token))
        codes = backend.encode(torch.as_tensor(feats, dtype=torch.float32)[None])   # (H, ...)
        code = codes[HOLD_TOKENS // 2].cpu()
        if fixed is None:
            fixed = torch.zeros((n_tokens,) + tuple(code.shape), dtype=code.dtype)
        n = min(f // frames_per_token, n_tokens - 1)
        fixed[n], mask[n] = code, True
    return fixed, mask


def _quat(local: np.ndarray) -> np.ndarray:
    return rot.matrix_to_quat(local)


def _slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(..., 4), (..., 4), (...,) -> (..., 4): shortest-arc spherical interpolation."""
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot).clip(max=1.0)
    theta = np.arccos(dot)
    sin = np.sin(theta)
    w = w[..., None]
    small = sin < 1e-6
    a = np.where(small, 1 - w, np.sin((1 - w) * theta) / np.where(small, 1.0, sin))
    b = np.where(small, w, np.sin(w * theta) / np.where(small, 1.0, sin))
    return rot.normalize(a * q0 + b * q1)


def smootherstep(x: np.ndarray) -> np.ndarray:
    """0 -> 0, 1 -> 1, first and second derivatives 0 at both ends: 6x⁵ − 15x⁴ + 10x³ on [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return x ** 3 * (x * (6 * x - 15) + 10)


def blend_weights(frames: list[int], n_frames: int, radius: int = BLEND_FRAMES) -> np.ndarray:
    """(K, T) weights: 1 at each key frame, easing to 0 over `radius` frames each side, never reaching another
    key frame (the radius shrinks to the gap). frames [5], T 9, radius 2 -> [0,0,0,0.5,1,0.5,0,0,0]."""
    t = np.arange(n_frames)
    w = np.zeros((len(frames), n_frames))
    for k, f in enumerate(frames):
        gaps = [abs(f - g) for g in frames if g != f]
        r = max(1, min([radius] + gaps))
        w[k] = smootherstep(1.0 - np.abs(t - f) / r)
    return w


def pin_targets(joints: np.ndarray, keyposes: list[KeyPose], fps: float = FPS) -> np.ndarray:
    """(T, 22, 3) joints before the blend -> (K, 22, 3) the poses they must show at the key frames (`placed`)."""
    x = np.asarray(joints, dtype=np.float64)
    return np.array([placed(k, x[f]) for k, f in zip(keyposes, keypose_frames(keyposes, len(x), fps))])


def pin_poses(joints: np.ndarray, keyposes: list[KeyPose], fps: float = FPS, radius: int = BLEND_FRAMES,
              offsets: np.ndarray = REST_OFFSETS) -> np.ndarray:
    """Step 3: (T, 22, 3) joints on `offsets` -> (T, 22, 3) float32 that hold each key pose at its frame."""
    x = np.asarray(joints, dtype=np.float64).copy()
    if not keyposes:
        return x.astype(np.float32)
    frames = keypose_frames(keyposes, len(x), fps)
    weights = blend_weights(frames, len(x), radius)                              # (K, T)
    targets = pin_targets(x, keyposes, fps)
    for k, w, pose in zip(keyposes, weights, targets):
        idx = np.flatnonzero(w > 0)
        local = ik.local_rotations(ik.global_rotations(x[idx], offsets))          # (n, 22, 3, 3)
        goal = ik.local_rotations(ik.global_rotations(pose, offsets))             # (22, 3, 3)
        q = _slerp(_quat(local), np.broadcast_to(_quat(goal), local.shape[:-2] + (4,)),
                   np.broadcast_to(w[idx, None], (len(idx), N_JOINTS)))
        root = x[idx, 0] + w[idx, None] * (pose[0] - x[idx, 0])
        x[idx] = ik.forward_kinematics(rot.quat_to_matrix(q), offsets, root)
    return x.astype(np.float32)
