"""Foot locking: planted feet stay where they were put down (ours; as animation tools' foot IK does).

Generated motion predicts its own foot contacts (the last four feature channels, ``FEATURE_SLICES["contacts"]``,
order ``skeleton.FOOT_JOINTS`` = left ankle, left toe, right ankle, right toe), but the decoded joints still slide
while a contact is predicted, and often slide slowly on the floor while none is predicted (the foot-skating
metric counts any foot joint within 5 cm of the floor moving faster than 0.5 m/s). `lock_feet` pins them, on a
skeleton with constant bone lengths (run it after ``cleanup.on_skeleton`` and ``ground.ground``, as
``cleanup.clean_joints`` does):

1. contacts (`detect_contacts`): the predicted ones (> 0.5, `clean_contacts`) where the joint is near the floor
   and not swinging (`plausible_contacts`), joined with the contacts the joints themselves show: low and slow,
   with hysteresis (`GEO_*`); none while both feet are clearly up (``ground.lifted``: a jump); gaps between
   two plants widened to at least `MIN_SWING` frames (`plant_spans`);
2. anchors: each plant of a joint (ankle or toe) gets one world position, the joint's mean over the plant;
3. paths and weights (`anchor_targets`): between two plants a minimum-jerk path from anchor to anchor, lifted
   mid-way like a step; a gap up to `STEP_FRAMES` follows it fully (a quick step), a longer one and the ends
   of the clip ease (minimum-jerk, `blend` frames) back to the decoded swing; off-plant targets are smoothed
   a little (`TARGET_SMOOTH`) so the legs carry no jerk spikes;
4. targets: ankle and toe move towards their anchors by their weights; when only the toe is planted (heel
   off), the ankle hangs off the toe's anchor by the decoded foot vector, so the foot pivots on the toe (eased
   in and out over `PIVOT_FRAMES`);
5. reach: where an ankle target lies beyond the leg's reach (less half the soft zone of step 6), the whole
   body is lowered (smoothly: a moving maximum, then a Gaussian no wider, so the drop is never less than
   needed), by at most `MAX_DROP` (further than that the ankle stops short of its target);
6. legs: two-bone IK (hip fixed, `two_bone_ik`) puts the ankle on its target, the knee bending in the plane of
   the original knee (its pole), every bone keeping its length, the last `SOFT_IK` of the reach approached
   softly; the toe is placed from the new ankle towards its target at the foot's length.
Joints other than knees, ankles and toes are unchanged up to the body drop of step 5. Pure numpy.
"""
from __future__ import annotations

import numpy as np

from kmm.motion.ground import gaussian_smooth, lifted, runs
from kmm.motion.skeleton import FOOT_JOINTS, FPS

CONTACT_THRESHOLD = 0.5
CONTACT_MAX_HEIGHT = (0.2, 0.12, 0.2, 0.12)   # m above the floor, per FOOT_JOINTS: higher is not a planted foot
CONTACT_MAX_SPEED = 1.0                       # m/s horizontal: faster is a swinging foot (data rule: 0.9 m/s)
MAX_DROP = 0.06                               # m the body may be lowered to reach a planted foot
LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))         # (hip, knee, ankle, toe) of the left and right leg
POLE_FORWARD = 0.1                            # m of the body's facing added to the knee pole (see two_bone_ik)
SOFT_IK = 0.10                                # share of the leg's reach approached softly (see two_bone_ik)
SMOOTH_FRAMES = 4.0                           # Gaussian σ (frames) of the body drop
GEO_ENTER_HEIGHT = (0.12, 0.05, 0.12, 0.05)   # m: a joint this low ...
GEO_ENTER_SPEED = 0.4                          # m/s: ... and this slow is planted (ankle flat: ~0.08 m, toe ~0)
GEO_STAY_HEIGHT = (0.15, 0.08, 0.15, 0.08)    # m: a planted joint stays planted while this low ...
GEO_STAY_SPEED = 0.9                           # m/s: ... and this slow (hysteresis)
MIN_SWING = 5                                  # frames (0.25 s): the shortest move of a foot between two plants
STEP_FRAMES = 8                                # frames: a gap up to this long is one synthetic step
LIFT_PER_M = 0.4                               # a synthetic step's lift (m) per metre it travels ...
MAX_LIFT = 0.08                                # ... at most this (m)
BLEND_FRAMES = 12                              # frames (0.6 s) a lock fades in / out where no plant follows
PIVOT_FRAMES = 4                               # frames the ankle eases onto / off a planted toe
TARGET_SMOOTH = 1.0                            # Gaussian σ (frames) of the feet's corrections
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


def _foot_speed(feet: np.ndarray, fps: float) -> np.ndarray:
    """(T, F, 3) -> (T, F) horizontal speed (m/s), the slower of the steps into and out of each frame."""
    step = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=0), axis=-1) * fps        # (T-1, F) m/s
    if not len(step):
        return np.zeros(feet.shape[:2])
    return np.concatenate([step[:1], np.minimum(step[1:], step[:-1]), step[-1:]])


def plausible_contacts(joints: np.ndarray, contacts: np.ndarray, fps: float = FPS, floor: float = 0.0) -> np.ndarray:
    """(T, 22, 3) grounded joints, (T, 4) bool -> (T, 4) bool: contacts of feet near the floor and not swinging."""
    feet = np.asarray(joints, dtype=np.float64)[:, list(FOOT_JOINTS)]              # (T, 4, 3)
    speed = _foot_speed(feet, fps)
    low = feet[..., 1] - floor < np.array(CONTACT_MAX_HEIGHT)
    return np.asarray(contacts, dtype=bool) & low & (speed < CONTACT_MAX_SPEED)


def detect_contacts(joints: np.ndarray, predicted: np.ndarray, fps: float = FPS, floor: float = 0.0) -> np.ndarray:
    """(T, 22, 3) grounded joints, (T, 4) bool predicted contacts -> (T, 4) bool contacts to lock (step 1).

    The union of the plausible predicted contacts (`plausible_contacts`) and the feet that the joints themselves
    show planted: a foot joint enters contact below `GEO_ENTER_HEIGHT` and slower than `GEO_ENTER_SPEED`, and
    stays in it (hysteresis) while below `GEO_STAY_HEIGHT` and slower than `GEO_STAY_SPEED` (the data's own
    rule, ``features.CONTACT_SQ_VEL``: 0.9 m/s); then one-frame gaps filled and single frames dropped
    (`clean_contacts`); last, the gaps between plants widened to `MIN_SWING` (`plant_spans`). A foot that
    slides slowly while the model predicts it swinging is still planted.
    """
    feet = np.asarray(joints, dtype=np.float64)[:, list(FOOT_JOINTS)]             # (T, 4, 3)
    h, speed = feet[..., 1] - floor, _foot_speed(feet, fps)                       # (T, 4)
    enter = (h < np.array(GEO_ENTER_HEIGHT)) & (speed < GEO_ENTER_SPEED)
    stay = (h < np.array(GEO_STAY_HEIGHT)) & (speed < GEO_STAY_SPEED)
    geo = np.zeros_like(enter)
    for k in range(enter.shape[1]):
        on = False
        for t in range(len(h)):
            on = bool(stay[t, k]) if on else bool(enter[t, k])
            geo[t, k] = on
    up = lifted(feet[..., 1].min(axis=1) - floor, fps)[:, None]                   # (T, 1) mid-jump: no contact
    both = clean_contacts(((geo | plausible_contacts(joints, predicted, fps, floor)) & ~up).astype(np.float64))
    out = np.zeros_like(both)
    for k in range(both.shape[1]):
        for a, b in plant_spans(both[:, k]):
            out[a:b, k] = True
    return out


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 -> 0, 1 -> 1, flat at both ends: 3x² − 2x³ on [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def smootherstep(x: np.ndarray) -> np.ndarray:
    """0 -> 0, 1 -> 1 with zero speed and acceleration at both ends (minimum-jerk profile): 6x⁵ − 15x⁴ + 10x³."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (6.0 * x - 15.0) + 10.0)


def _bump(tau: np.ndarray) -> np.ndarray:
    """0 at 0 and 1, 1 at 0.5, zero speed and acceleration at the ends: 64 τ³ (1 − τ)³."""
    tau = np.clip(tau, 0.0, 1.0)
    return 64.0 * (tau * (1.0 - tau)) ** 3


def plant_spans(contact: np.ndarray, min_swing: int = MIN_SWING) -> list[tuple[int, int]]:
    """Contact runs, with every gap between two runs widened to at least `min_swing` frames by shortening the
    runs on both sides (each keeps at least one frame): a foot never jumps between two plants in less time.

    [1, 1, 1, 1, 0, 1, 1, 1, 1], min_swing 3 -> [(0, 3), (6, 9)] (the one-frame gap takes a frame from each side).
    """
    spans = [list(s) for s in runs(contact)]
    for r in range(len(spans) - 1):
        left, right = spans[r], spans[r + 1]
        need = min_swing - (right[0] - left[1])
        if need <= 0:
            continue
        take_l = min((need + 1) // 2, left[1] - left[0] - 1)
        take_r = min(need - take_l, right[1] - right[0] - 1)
        take_l = min(need - take_r, left[1] - left[0] - 1)
        left[1] -= take_l
        right[0] += take_r
    return [(a, b) for a, b in spans]


def anchor_targets(pos: np.ndarray, contact: np.ndarray, blend: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One joint's track: (T, 3) positions, (T,) bool contact -> targets (T, 3), weights (T,), planted (T,) bool.

    Inside a plant (`plant_spans`) the target is the plant's anchor, its mean position (weight 1). Between two
    plants the anchor path moves from one anchor to the next on a minimum-jerk path, lifted by `_bump` ·
    min(LIFT_PER_M · distance, MAX_LIFT) mid-way and never below the decoded joint; a gap up to `STEP_FRAMES`
    is one quick step that follows this path (weight 1); in a longer gap, and before the first / after the last
    plant, the weight eases from 1 to 0 over `blend` frames (minimum-jerk), so the decoded swing is kept
    in between. Target = decoded + weight · (anchor path − decoded).
    """
    T = len(pos)
    spans = plant_spans(contact)
    planted = np.zeros(T, dtype=bool)
    if not spans:
        return pos.copy(), np.zeros(T), planted
    t = np.arange(T)
    path = pos.copy()
    w = np.zeros(T)
    anchors = [pos[a:b].mean(axis=0) for a, b in spans]
    for (a, b), anchor in zip(spans, anchors):
        path[a:b], w[a:b], planted[a:b] = anchor, 1.0, True
    (a0, _), (_, b1) = spans[0], spans[-1]
    path[:a0], path[b1:] = anchors[0], anchors[-1]
    if blend > 0:
        w[:a0] = smootherstep(1.0 - (a0 - t[:a0]) / (blend + 1))
        w[b1:] = smootherstep(1.0 - (t[b1:] - b1 + 1) / (blend + 1))
    for r in range(len(spans) - 1):
        b, a = spans[r][1], spans[r + 1][0]
        if a <= b:
            continue
        tau = (t[b:a] - b + 1) / (a - b + 1)                                    # (g,) in (0, 1)
        A, B = anchors[r], anchors[r + 1]
        path[b:a] = A + smootherstep(tau)[:, None] * (B - A)
        lift = min(LIFT_PER_M * float(np.linalg.norm((B - A)[[0, 2]])), MAX_LIFT)
        path[b:a, 1] = np.maximum(path[b:a, 1] + lift * _bump(tau), pos[b:a, 1])
        if a - b <= STEP_FRAMES:
            w[b:a] = 1.0
        elif blend > 0:
            edge = np.minimum(t[b:a] - b + 1, a - t[b:a])                       # frames to the nearer plant
            w[b:a] = smootherstep(1.0 - edge / (blend + 1))
    return pos + w[:, None] * (path - pos), w, planted


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


def lock_feet(joints: np.ndarray, contacts: np.ndarray, *, blend: int = BLEND_FRAMES) -> np.ndarray:
    """(T, 22, 3) joints (constant bones, grounded), (T, 4) bool contacts -> (T, 22, 3) float32, feet locked."""
    x = np.asarray(joints, dtype=np.float64).copy()
    c = np.asarray(contacts, dtype=bool)
    col = {j: k for k, j in enumerate(FOOT_JOINTS)}
    plans = []
    for hip, knee, ankle, toe in LEGS:
        # 2.-3. anchors and weights of the ankle and the toe
        a_t, a_w, a_p = anchor_targets(x[:, ankle], c[:, col[ankle]], blend)
        t_t, t_w, t_p = anchor_targets(x[:, toe], c[:, col[toe]], blend)
        if not (a_w.any() or t_w.any()):
            continue
        # 4. toe planted, heel free: the ankle hangs off the toe's target by the decoded foot vector (toe -> ankle,
        # the foot's length on this skeleton), eased in and out over PIVOT_FRAMES at both ends of such a stretch
        foot = np.linalg.norm(x[:, ankle] - x[:, toe], axis=-1)           # (T,)
        pivot = t_t + (x[:, ankle] - x[:, toe])
        k = np.zeros(len(x))
        for a, b in runs(t_p & ~a_p):
            edge = np.minimum(np.arange(a, b) - a + 1, b - np.arange(a, b))
            k[a:b] = smootherstep(edge / (PIVOT_FRAMES + 1))
        a_t = a_t + k[:, None] * (pivot - a_t)
        # the corrections (target − decoded) smoothed a little: a plant's edges carry no jerk spike into the leg
        a_t = np.where(a_p[:, None], a_t, gaussian_smooth(a_t, TARGET_SMOOTH))
        t_t = np.where(t_p[:, None], t_t, gaussian_smooth(t_t, TARGET_SMOOTH))
        plans.append((hip, knee, ankle, toe, a_t, t_t, np.maximum(a_w, t_w) > 0, foot))
    if not plans:
        return x.astype(np.float32)
    # 5. lower the body where a target is out of reach
    need = np.zeros(len(x))
    for hip, knee, ankle, _, a_t, _, active, _ in plans:
        reach = _REACH * (1 - SOFT_IK / 2) * (np.linalg.norm(x[:, knee] - x[:, hip], axis=-1)
                                             + np.linalg.norm(x[:, ankle] - x[:, knee], axis=-1))
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
