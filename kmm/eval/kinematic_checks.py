"""Kinematic checks: does a motion do what its text asks? Pure functions over `(T, 22, 3)` joints
(metres, Y up, 20 fps, SMPL joint order); each returns a `Check` (passed, measured value, threshold, a line).

They are deliberately simple and physical, so a failure reads as a fact about the motion:

- `jumps`:        both feet are off the ground at once (every foot joint >= 5 cm above its lowest height
                  within ±0.75 s) for >= 2 consecutive frames;
- `sits`:         the pelvis drops >= 0.2 m below its height in the first frame;
- `kicks`:        one foot rises >= 0.3 m above its height in the first frame;
- `walks`:        the pelvis travels >= 1 m on the floor (start to farthest point);
- `turns_around`: the body's facing direction changes by >= 120 degrees;
- `punches`:      a wrist reaches >= 0.4 m in front of the shoulders;
- `seated`:       both thighs within 45 degrees of level for >= 1 s (seated; a high stool counts too);
- `squats`:       thighs level for >= 0.25 s, the pelvis >= 0.2 m down, < 0.5 m travel;
- `walks_backwards`: >= 0.8 m of pelvis travel backwards in the body's own frame;
- `sidesteps`:    >= 0.5 m of pelvis travel sideways in the body's own frame, more than forwards/backwards.

The last four are the breadth checks (`kmm.eval.breadth`, validated there on held-out real motion).

`CHECKS` maps the names used in example files (`examples/*.json`) to the functions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kmm.motion import skeleton
from kmm.motion.features import heading_yaw

PELVIS, L_ANKLE, R_ANKLE, L_FOOT, R_FOOT = 0, 7, 8, 10, 11
L_SHOULDER, R_SHOULDER, L_WRIST, R_WRIST = 16, 17, 20, 21
FEET = (L_ANKLE, R_ANKLE, L_FOOT, R_FOOT)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float          # what was measured, in the threshold's unit
    threshold: float
    message: str

    def __bool__(self) -> bool:
        return self.passed


def _joints(joints) -> np.ndarray:
    j = np.asarray(joints, dtype=np.float64)
    if j.ndim != 3 or j.shape[1:] != (skeleton.N_JOINTS, 3) or len(j) < 2:
        raise ValueError(f"joints must have shape (T, {skeleton.N_JOINTS}, 3) with T >= 2, got {np.shape(joints)}")
    return j


def _result(name: str, value: float, threshold: float, unit: str, what: str) -> Check:
    passed = bool(value >= threshold)
    return Check(name, passed, float(value), float(threshold),
                 f"{name}: {what} {value:.2f}{unit} ({'>=' if passed else '<'} {threshold:g}{unit})")


def jumps(joints, clearance: float = 0.05, min_frames: int = 2, window: int = 15) -> Check:
    """Both feet airborne together: every foot joint >= `clearance` m above its own lowest height within
    ±`window` frames (a local ground, so a sloped or drifting floor does not count as flight).

    >>> j = np.zeros((40, 22, 3)); j[18:21, :, 1] += 0.2; jumps(j).passed
    True
    """
    j = _joints(joints)
    feet = j[:, FEET, 1]                                          # (T, 4)
    T = len(feet)
    ground = np.stack([feet[max(0, t - window):t + window + 1].min(axis=0) for t in range(T)])   # (T, 4)
    airborne = (feet - ground).min(axis=1) >= clearance           # (T,) the lowest foot joint is up
    run = best = 0
    for a in airborne:
        run = run + 1 if a else 0
        best = max(best, run)
    return _result("jumps", float(best), float(min_frames), " frames",
                   f"longest time with both feet >= {clearance * 100:g} cm up")


def sits(joints, drop: float = 0.2) -> Check:
    """The pelvis goes >= `drop` m below its first-frame height."""
    j = _joints(joints)
    value = j[0, PELVIS, 1] - j[:, PELVIS, 1].min()
    return _result("sits", value, drop, " m", "pelvis drop")


def kicks(joints, rise: float = 0.3) -> Check:
    """One foot (ankle or toe) rises >= `rise` m above its first-frame height."""
    j = _joints(joints)
    value = max(float((j[:, k, 1] - j[0, k, 1]).max()) for k in FEET)
    return _result("kicks", value, rise, " m", "highest foot rise")


def walks(joints, distance: float = 1.0) -> Check:
    """The pelvis gets >= `distance` m from where it started, on the floor plane."""
    j = _joints(joints)
    d = np.linalg.norm(j[:, PELVIS, [0, 2]] - j[0, PELVIS, [0, 2]], axis=-1)
    return _result("walks", float(d.max()), distance, " m", "farthest pelvis distance")


def facing(joints) -> np.ndarray:
    """(T,) facing angle in radians on the floor plane (perpendicular to the hip and shoulder lines)."""
    j = _joints(joints)
    across = ((j[:, skeleton.RIGHT_HIP] - j[:, skeleton.LEFT_HIP])
              + (j[:, skeleton.RIGHT_SHOULDER] - j[:, skeleton.LEFT_SHOULDER]))           # (T, 3)
    return np.arctan2(-across[:, 0], across[:, 2])  # forward = up × across, projected on the floor


def turns_around(joints, degrees: float = 120.0) -> Check:
    """The facing direction gets >= `degrees` away from the first frame's (unwrapped, so 2 x 90 counts)."""
    angle = np.unwrap(facing(joints))
    value = float(np.degrees(np.abs(angle - angle[0]).max()))
    return _result("turns_around", value, degrees, "°", "largest change of facing")


def punches(joints, reach: float = 0.4) -> Check:
    """A wrist gets >= `reach` m in front of the shoulders (along the facing direction); hanging arms give ~0."""
    j = _joints(joints)
    a = facing(j)
    forward = np.stack([np.cos(a), np.sin(a)], axis=-1)          # (T, 2) on the floor plane (x, z)
    mid = (j[:, L_SHOULDER, [0, 2]] + j[:, R_SHOULDER, [0, 2]]) / 2
    value = max(float(((j[:, w][:, [0, 2]] - mid) * forward).sum(-1).max()) for w in (L_WRIST, R_WRIST))
    return _result("punches", value, reach, " m", "farthest wrist in front of the shoulders")


def longest_run(flags) -> int:
    """Length of the longest run of True.

    >>> longest_run([True, False, True, True, False])
    2
    """
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def thighs_level_run(joints, degrees: float = 45.0) -> int:
    """Longest run of frames with both thighs (hip -> knee) within `degrees` of horizontal."""
    j = _joints(joints)
    level = np.ones(len(j), dtype=bool)
    for hip, knee in ((1, 4), (2, 5)):
        d = j[:, knee] - j[:, hip]
        down = np.degrees(np.arcsin(np.clip(-d[:, 1] / np.linalg.norm(d, axis=-1).clip(1e-9), -1, 1)))
        level &= down < degrees                                 # 90 = thigh straight down, 0 = level
    return longest_run(level)


def body_frame_travel(joints) -> tuple[float, float]:
    """Pelvis travel along the body's own forward and left axes, summed frame by frame (m)."""
    j = _joints(joints)
    v = np.diff(j[:, PELVIS, [0, 2]], axis=0)                  # (T-1, 2)
    yaw = np.unwrap(heading_yaw(j))                            # (T,) 0 = facing +Z
    fwd = np.stack([np.sin(yaw), np.cos(yaw)], -1)
    left = np.stack([np.cos(yaw), -np.sin(yaw)], -1)
    return float((v * fwd[:-1]).sum()), float((v * left[:-1]).sum())


def seated(joints, seconds: float = 1.0) -> Check:
    """Both thighs within 45 degrees of level for >= `seconds` (a seated body, whatever the seat's height)."""
    run = thighs_level_run(joints) / skeleton.FPS
    return _result("seated", run, seconds, " s", "longest time with both thighs near level")


def squats(joints, seconds: float = 0.25, drop: float = 0.2, max_travel: float = 0.5) -> Check:
    """Thighs level for >= `seconds`, the pelvis >= `drop` m below its first-frame height and < `max_travel` m
    from where it started (a squat, not a walk that dips); the value is the pelvis drop."""
    j = _joints(joints)
    value = float(j[0, PELVIS, 1] - j[:, PELVIS, 1].min())
    travel = float(np.linalg.norm(j[:, PELVIS, [0, 2]] - j[0, PELVIS, [0, 2]], axis=-1).max())
    level = thighs_level_run(j) / skeleton.FPS
    passed = bool(level >= seconds and value >= drop and travel < max_travel)
    return Check("squats", passed, value, drop,
                 f"squats: pelvis drop {value:.2f} m (needs >= {drop:g}), thighs level {level:.2f} s "
                 f"(needs >= {seconds:g}), travel {travel:.2f} m (needs < {max_travel:g})")


def walks_backwards(joints, distance: float = 0.8) -> Check:
    """The pelvis travels >= `distance` m backwards in the body's own frame (summed frame by frame)."""
    fwd, _ = body_frame_travel(joints)
    return _result("walks_backwards", -fwd, distance, " m", "backward travel")


def sidesteps(joints, distance: float = 0.5) -> Check:
    """The pelvis travels >= `distance` m sideways in the body's own frame, more than forwards or backwards."""
    fwd, left = body_frame_travel(joints)
    if abs(left) <= abs(fwd):
        return Check("sidesteps", False, abs(left), distance,
                     f"sidesteps: sideways travel {abs(left):.2f} m < forward/backward travel {abs(fwd):.2f} m")
    return _result("sidesteps", abs(left), distance, " m", "sideways travel")


CHECKS = {"jump": jumps, "sit": sits, "kick": kicks, "walk": walks, "turn_around": turns_around, "punch": punches,
          "seated": seated, "squat": squats, "walk_backwards": walks_backwards, "sidestep": sidesteps}


def run_check(name: str, joints) -> Check:
    """`CHECKS[name](joints)`; an unknown name is a ValueError listing the known ones."""
    if name not in CHECKS:
        raise ValueError(f"unknown check {name!r}; known: {', '.join(CHECKS)}")
    return CHECKS[name](joints)
