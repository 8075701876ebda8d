"""Foot locking: planted feet stay where they were put down (ours; as animation tools' foot IK does).

Generated motion predicts its own foot contacts (the last four feature channels, ``FEATURE_SLICES["contacts"]``,
order ``skeleton.FOOT_JOINTS`` = left ankle, left toe, right ankle, right toe), but the decoded joints still slide
while a contact is predicted. `lock_feet` pins them, on a skeleton with constant bone lengths (run it after
``cleanup.on_skeleton`` and ``ground.ground``, as ``cleanup.clean_joints`` does):

1. contacts: predicted values > 0.5, runs shorter than `min_frames` dropped, gaps of one frame filled
   (`clean_contacts`); then only where the joint is near the floor (`CONTACT_MAX_HEIGHT`) and not swinging
   (horizontal speed below `CONTACT_MAX_SPEED`; `plausible_contacts`);
2. anchors: each contact run of a joint (ankle or toe) gets one world position, the joint's mean over the run;
3. weights: 1 inside a run, easing (smoothstep) to 0 over `blend` frames before and after it; a frame between
   two runs mixes both anchors (weights normalised when they sum above 1);
4. targets: ankle and toe move towards their anchors by their weights; when only the toe is planted (heel
   off), the ankle keeps its own direction from the toe at the foot's length, so the foot pivots on the toe;
5. reach: where an ankle target lies beyond the straight leg, the whole body is lowered (smoothly: a moving
   maximum, then a Gaussian no wider, so the drop is never less than needed) until it is reachable, by at most
   `MAX_DROP` (further than that the ankle stops at the leg's reach; a target at exactly full reach ends
   0.37 · SOFT_IK of the leg short, about 6 mm, from the soft IK of step 6);
6. legs: two-bone IK (hip fixed, `two_bone_ik`) puts the ankle on its target, the knee bending in the plane of
   the original knee (its pole), every bone keeping its length; the toe is placed from the new ankle towards
   its target at the foot's length.
Joints other than knees, ankles and toes are unchanged up to the body drop of step 5. Pure numpy.
"""
from __future__ import annotations

import numpy as np

from kmm.motion.ground import gaussian_smooth, runs
from kmm.motion.skeleton import FOOT_JOINTS, FPS

CONTACT_THRESHOLD = 0.5
CONTACT_MAX_HEIGHT = (0.2, 0.12, 0.2, 0.12)   # m above the floor, per FOOT_JOINTS: higher is not a planted foot
CONTACT_MAX_SPEED = 1.0                       # m/s horizontal: faster is a swinging foot (data rule: 0.9 m/s)
MAX_DROP = 0.06                               # m the body may be lowered to reach a planted foot
LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))         # (hip, knee, ankle, toe) of the left and right leg
POLE_FORWARD = 0.1                            # m of the body's facing added to the knee pole (see two_bone_ik)
SOFT_IK = 0.02                                # share of the leg's reach approached softly (see two_bone_ik)
SMOOTH_FRAMES = 1.5                           # Gaussian σ (frames) of the body drop
_REACH = 0.999                                # ankle target at most this share of the straight leg from the hip


def clean_contacts(values: np.ndarray, threshold: float = CONTACT_THRESHOLD, min_frames: int = 2) -> np.ndarray:
    """(T, 4) predicted contact values -> (T, 4) bool: thresholded, 1-frame gaps filled, short runs dropped.

    [0, 1, 0, 1, 1, 0, 0, 1, 0] (min_frames 2) -> [0, 1, 1, 1, 1, 0, 0, 0, 0].
    """
    c = np.asarray(values, dtype=np.float64) > threshold                    # (T, 4)
    out = c.copy()
    for k in range(c.shape[1]):
        col = out[:, k]
        for a, b in runs(~col):                                            # 1-frame gaps inside contact
            if b - a == 1 and a > 0 and b < len(col):
                col[a] = True
        for a, b in runs(col):
            if b - a < min_frames:
                col[a:b] = False
    return out


def plausible_contacts(joints: np.ndarray, contacts: np.ndarray, fps: float = FPS, floor: float = 0.0) -> np.ndarray:
    """(T, 22, 3) grounded joints, (T, 4) bool -> (T, 4) bool: contacts of feet near the floor and not swinging."""
    feet = np.asarray(joints, dtype=np.float64)[:, list(FOOT_JOINTS)]              # (T, 4, 3)
    step = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=0), axis=-1) * fps        # (T-1, 4) m/s
    speed = np.concatenate([step[:1], np.minimum(step[1:], step[:-1]), step[-1:]]) if len(step) else np.zeros((1, 4))
    low = feet[..., 1] - floor < np.array(CONTACT_MAX_HEIGHT)
    return np.asarray(contacts, dtype=bool) & low & (speed < CONTACT_MAX_SPEED)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 -> 0, 1 -> 1, flat at both ends: 3x² − 2x³ on [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def anchor_targets(pos: np.ndarray, contact: np.ndarray, blend: int) -> tuple[np.ndarray, np.ndarray]:
    """One joint's track: (T, 3) positions, (T,) bool contact -> targets (T, 3), weights (T,) (steps 2-3)."""
    T = len(pos)
    spans = runs(contact)
    if not spans:
        return pos.copy(), np.zeros(T)
    t = np.arange(T)
    w = np.zeros((len(spans), T))                                          # (R, T)
    anchors = np.empty((len(spans), 3))
    for r, (a, b) in enumerate(spans):
        anchors[r] = pos[a:b].mean(axis=0)
        dist = np.maximum(a - t, t - (b - 1)).clip(min=0)                   # frames outside the run
        w[r] = smoothstep(1.0 - dist / (blend + 1)) if blend > 0 else (dist == 0).astype(float)
    for r, (a, b) in enumerate(spans):                                     # inside a run only its own anchor
        w[:, a:b] = 0.0
        w[r, a:b] = 1.0
    total = w.sum(axis=0)                                                  # (T,)
    scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-12), 1.0)
    w = w * scale
    weight = w.sum(axis=0)
    mix = np.einsum("rt,rc->tc", w, anchors) / np.maximum(weight, 1e-12)[:, None]
    target = np.where(weight[:, None] > 0, pos + weight[:, None] * (mix - pos), pos)
    return target, weight


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray,
                forward: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) each -> new (knee, ankle) (N, 3): ankle on `target` (or as near as the leg reaches: within the
    last `SOFT_IK` of the reach the ankle falls slightly short, smoothly), thigh and shin lengths kept, the knee
    in the plane of hip, target and the original knee (the pole). `forward` (N, 3), the body's facing, is
    added to the pole with weight `POLE_FORWARD` (m), so a nearly straight original leg (a pole of ~zero length,
    its direction noise) still bends the knee forwards instead of flipping it sideways."""
    l1 = np.linalg.norm(knee - hip, axis=-1)                               # (N,)
    l2 = np.linalg.norm(ankle - knee, axis=-1)
    d = target - hip
    dist = np.linalg.norm(d, axis=-1)
    u = d / np.maximum(dist, 1e-9)[:, None]                                # hip -> target direction
    # soft reach (Nicholls' "soft IK"): the last SOFT_IK share of the leg's reach is approached exponentially,
    # so the knee never snaps straight (a hard clamp makes the knee's speed jump at full extension)
    reach = (l1 + l2) * _REACH
    soft = SOFT_IK * reach
    knee_in = reach - soft
    over = np.maximum(dist - knee_in, 0.0)
    dist = np.where(dist > knee_in, knee_in + soft * (1.0 - np.exp(-over / np.maximum(soft, 1e-9))), dist)
    dist = np.maximum(dist, np.abs(l1 - l2) + 1e-6)
    # pole: the original knee's offset from the hip, perpendicular to u
    p = knee - hip
    if forward is not None:
        p = p + POLE_FORWARD * forward
    p = p - np.sum(p * u, axis=-1, keepdims=True) * u
    n = np.linalg.norm(p, axis=-1)
    fallback = np.cross(u, np.array([1.0, 0.0, 0.0]))                      # no pole at all: bend forward-ish
    fallback /= np.maximum(np.linalg.norm(fallback, axis=-1, keepdims=True), 1e-9)
    p = np.where((n > 1e-6)[:, None], p / np.maximum(n, 1e-9)[:, None], fallback)
    cos_h = np.clip((l1 ** 2 + dist ** 2 - l2 ** 2) / (2 * l1 * dist), -1.0, 1.0)
    new_knee = hip + l1[:, None] * (cos_h[:, None] * u + np.sqrt(1 - cos_h ** 2)[:, None] * p)
    return new_knee, hip + dist[:, None] * u


def _moving(x: np.ndarray, r: int, fn) -> np.ndarray:
    pad = np.concatenate([np.repeat(x[:1], r), x, np.repeat(x[-1:], r)])
    return fn(np.lib.stride_tricks.sliding_window_view(pad, 2 * r + 1), axis=-1)


def lock_feet(joints: np.ndarray, contacts: np.ndarray, *, blend: int = 3) -> np.ndarray:
    """(T, 22, 3) joints (constant bones, grounded), (T, 4) bool contacts -> (T, 22, 3) float32, feet locked."""
    x = np.asarray(joints, dtype=np.float64).copy()
    c = np.asarray(contacts, dtype=bool)
    col = {j: k for k, j in enumerate(FOOT_JOINTS)}
    plans = []
    for hip, knee, ankle, toe in LEGS:
        # 2.-3. anchors and weights of the ankle and the toe
        a_t, a_w = anchor_targets(x[:, ankle], c[:, col[ankle]], blend)
        t_t, t_w = anchor_targets(x[:, toe], c[:, col[toe]], blend)
        if not (a_w.any() or t_w.any()):
            continue
        # 4. toe planted, heel free: the ankle keeps its direction from the toe target at the foot's length
        foot = np.linalg.norm(x[:, ankle] - x[:, toe], axis=-1)           # (T,)
        d = a_t - t_t
        pivot = t_t + foot[:, None] * d / np.maximum(np.linalg.norm(d, axis=-1), 1e-9)[:, None]
        a_t = np.where(((t_w > 0) & (t_w > a_w))[:, None], a_t + (t_w - a_w)[:, None] * (pivot - a_t), a_t)
        plans.append((hip, knee, ankle, toe, a_t, t_t, np.maximum(a_w, t_w) > 0, foot))
    if not plans:
        return x.astype(np.float32)
    # 5. lower the body where a target is out of reach
    need = np.zeros(len(x))
    for hip, knee, ankle, _, a_t, _, active, _ in plans:
        reach = _REACH * (np.linalg.norm(x[:, knee] - x[:, hip], axis=-1) + np.linalg.norm(x[:, ankle] - x[:, knee], axis=-1))
        u = a_t - x[:, hip]
        level = np.sqrt(np.maximum(reach ** 2 - u[:, 0] ** 2 - u[:, 2] ** 2, 0.0))
        need = np.maximum(need, np.where(active, np.maximum(0.0, -level - u[:, 1]), 0.0))
    if need.any():
        r = int(np.ceil(3 * SMOOTH_FRAMES))
        drop = gaussian_smooth(_moving(np.minimum(need, MAX_DROP), r, np.max), SMOOTH_FRAMES)
        x[..., 1] -= drop[:, None]
    # 6. two-bone IK per leg (knee pole: the original knee, plus the body's facing), then the toe
    across = x[:, LEGS[0][0]] - x[:, LEGS[1][0]]                           # right hip -> left hip
    forward = np.stack([-across[:, 2], np.zeros(len(x)), across[:, 0]], axis=-1)   # across x up
    forward /= np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-9)
    for hip, knee, ankle, toe, a_t, t_t, active, foot in plans:
        idx = np.flatnonzero(active)
        new_knee, new_ankle = two_bone_ik(x[idx, hip], x[idx, knee], x[idx, ankle], a_t[idx], forward[idx])
        toe_dir = t_t[idx] - new_ankle
        x[idx, toe] = new_ankle + foot[idx, None] * toe_dir / np.maximum(np.linalg.norm(toe_dir, axis=-1), 1e-9)[:, None]
        x[idx, knee], x[idx, ankle] = new_knee, new_ankle
    return x.astype(np.float32)
