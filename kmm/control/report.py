"""How well a motion meets its control: the numbers the CLI prints, the tests assert and `control-eval` reports.

- waypoint error: floor distance (m) of the pelvis (x, z) from each waypoint at the waypoint's frame;
- key pose error: mean over the 22 joints of the distance (m) to the key pose at its frame;
- jerk near pins: mean of ``metrics.jerk_curve`` (m/s³) over frames within `radius` of a key frame;
- facing error: mean angle (deg) between the body's facing and its direction of travel over frames where the
  pelvis moves faster than 0.3 m/s (a forward walk that follows its path turns to face it: small).
Pure numpy, no I/O.
"""
from __future__ import annotations

import numpy as np

from kmm.control.path import seconds_to_frame
from kmm.eval.metrics import jerk_curve
from kmm.motion.features import heading_yaw
from kmm.motion.skeleton import FPS


def waypoint_errors(joints: np.ndarray, waypoints, fps: float = FPS) -> list[float]:
    """(T, 22, 3), [[seconds, x, z], ...] -> pelvis floor distance (m) from each waypoint."""
    x = np.asarray(joints, dtype=np.float64)
    out = []
    for s, wx, wz in waypoints:
        f = seconds_to_frame(s, len(x), fps)
        out.append(float(np.hypot(x[f, 0, 0] - wx, x[f, 0, 2] - wz)))
    return out


def keypose_errors(joints: np.ndarray, frames, poses) -> list[float]:
    """(T, 22, 3), key frames (K,), poses (K, 22, 3) -> mean joint distance (m) at each key frame."""
    x = np.asarray(joints, dtype=np.float64)
    return [float(np.linalg.norm(x[f] - np.asarray(p, dtype=np.float64), axis=-1).mean())
            for f, p in zip(frames, poses)]


def jerk_near(joints: np.ndarray, frames, radius: int = 15, fps: float = FPS) -> float:
    """Mean jerk (m/s³) over jerk-curve frames within `radius` frames of any of `frames`; nan when none."""
    curve = jerk_curve(joints, fps)                                              # (T-3,): frames t..t+3
    centre = np.arange(len(curve)) + 1.5
    near = np.zeros(len(curve), dtype=bool)
    for f in frames:
        near |= np.abs(centre - f) <= radius
    return float(curve[near].mean()) if near.any() else float("nan")


def facing_error_deg(joints: np.ndarray, fps: float = FPS, min_speed: float = 0.3) -> float:
    """Mean angle (deg) between facing and travel direction on frames moving faster than `min_speed` m/s."""
    x = np.asarray(joints, dtype=np.float64)
    vel = np.gradient(x[:, 0, [0, 2]], axis=0) * fps                            # (T, 2)
    moving = np.linalg.norm(vel, axis=-1) > min_speed
    if not moving.any():
        return float("nan")
    travel = np.arctan2(vel[:, 0], vel[:, 1])
    diff = np.angle(np.exp(1j * (heading_yaw(x) - travel)))
    return float(np.degrees(np.abs(diff[moving])).mean())


def control_errors(joints: np.ndarray, control: dict, fps: float = FPS) -> dict:
    """(T, 22, 3) joints, MotionResult.control -> {"waypoint_m": [...], "keypose_m": [...], "lines": [str]}."""
    wp = waypoint_errors(joints, control.get("waypoints", []), fps)
    kp = keypose_errors(joints, control.get("keypose_frames", []), control.get("keypose_joints", []))
    lines = [f"waypoint {s:g} s ({x:g}, {z:g}): pelvis {e:.3f} m away"
             for (s, x, z), e in zip(control.get("waypoints", []), wp)]
    lines += [f"key pose {s:g} s: mean joint error {e * 100:.1f} cm"
              for s, e in zip(control.get("keypose_times", []), kp)]
    if "residual_m" in control:
        lines.append(f"path warp: speed x{control['speed_range'][0]:.2f}-{control['speed_range'][1]:.2f}, "
                     f"turn up to {np.degrees(control['turn_max_rad']):.0f} deg, sliding added "
                     f"{control['residual_m']:.3f} m")
    return {"waypoint_m": wp, "keypose_m": kp, "lines": lines}


def control_arrays(control: dict) -> dict:
    """MotionResult.control -> plain arrays for a motion .npz (empty without control): control_waypoints (W, 3)
    seconds, x, z; control_keypose_times (K,); control_keypose_frames (K,); control_keypose_joints (K, 22, 3)."""
    if not control:
        return {}
    return {"control_waypoints": np.asarray(control.get("waypoints", []), dtype=np.float64).reshape(-1, 3),
            "control_keypose_times": np.asarray(control.get("keypose_times", []), dtype=np.float64),
            "control_keypose_frames": np.asarray(control.get("keypose_frames", []), dtype=np.int64),
            "control_keypose_joints": np.asarray(control.get("keypose_joints", []),
                                                 dtype=np.float32).reshape(-1, 22, 3)}
