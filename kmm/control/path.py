"""Root-path control: the body follows floor waypoints (ours; a decode-time warp of the generated root path).

Tokens cannot carry a root path (the features hold root velocities in the body's own heading frame, and a token
covers 4 frames of everything), so the path is imposed after decoding, on the root channels of the features
(``skeleton.FEATURE_SLICES`` root_rot_vel, root_lin_vel); the pose channels are untouched, so the body keeps the
walk the model made, and ``cleanup.clean_joints`` (skeleton, floor, foot lock) runs on the warped features.

Coordinates: the output's own frame (``features.features_to_joints``): frame 0's pelvis at x = z = 0, frame 0
facing +Z, +X the body's left, Y up; yaw 0 = facing +Z, yaw π/2 = facing +X.

`follow` warps a root trajectory — yaw (T,) and pelvis ground position (T, 2) as (x, z) — through targets
(frame, x, z[, yaw]):
1. the model's own motion as local steps: ground velocity in each frame's heading frame, v_loc (T-1, 2);
2. the warp: a smooth heading offset δ(t) and a smooth log speed scale σ(t), natural cubic splines through knots
   at frame 0, every target frame, the midpoints between them and the last frame (δ(0) = 0: frame 0 defines the
   output's frame); the new path integrates exp(σ) · R(yaw + δ) · v_loc, so the body turns with its path and
   keeps facing where it walks (a forward walk faces the path; a backward walk walks it backwards);
3. knots initialised in closed form (per stretch between targets: the turn and the scale that take the model's
   displacement onto the wanted one), then least squares (L-BFGS) on target position and heading errors plus
   small penalties on δ's and σ's roughness and on σ (scipy least_squares);
4. whatever error is left (a standing body cannot be scaled into walking: σ is penalised) is closed exactly by
   a smooth additive offset (a spline through the residuals, 0 at frame 0, held after the last target) on the
   position, and likewise on the pose's heading alone; `Warp.residual_m` says how much sliding that needed.
Pure numpy + scipy; no I/O.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from kmm.errors import ControlError
from kmm.motion.skeleton import FEATURE_SLICES, FPS

PATH_TOLERANCE_S = 0.2       # a waypoint may lie this far past the motion's last frame (one token); it is clamped
SPEED_PENALTY = 0.05         # weight of σ² per knot (log speed scale), against position errors in metres²
SMOOTH_PENALTY = 0.02        # weight of squared knot-to-knot changes of δ (rad) and σ
HEADING_WEIGHT = 0.3         # metres² per rad² of heading error at a target with a heading
MAX_EVALS = 200           # least-squares function evaluations (each O(T · knots))


@dataclass(frozen=True)
class Waypoint:
    """Where the pelvis is on the floor at a time: seconds, metres in the output's frame."""

    seconds: float
    x: float
    z: float


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_ITEM = re.compile(rf"^\s*({_NUM})\s*:\s*({_NUM})\s*,\s*({_NUM})\s*$")


def parse_path(text: str) -> list[Waypoint]:
    """'T:X,Z;T:X,Z' -> waypoints, seconds increasing and > 0. "4:0,3; 8:2,5" -> [(4, 0, 3), (8, 2, 5)]."""
    items = [p for p in str(text).split(";") if p.strip()]
    if not items:
        raise ControlError("empty path: give waypoints as T:X,Z;T:X,Z (seconds : metres), e.g. 4:0,3;8:2,5")
    out = []
    for item in items:
        m = _ITEM.match(item)
        if not m:
            raise ControlError(f"bad waypoint {item.strip()!r}: expected T:X,Z (seconds : metres), e.g. 4:0,3")
        out.append(Waypoint(*(float(v) for v in m.groups())))
    return check_waypoints(out)


def check_waypoints(waypoints) -> list[Waypoint]:
    """Waypoint / (t, x, z) tuples -> waypoints; times finite, > 0 and strictly increasing, coordinates finite."""
    out = [w if isinstance(w, Waypoint) else Waypoint(*(float(v) for v in w)) for w in waypoints]
    for w in out:
        if not all(math.isfinite(v) for v in (w.seconds, w.x, w.z)):
            raise ControlError(f"waypoint {w.seconds}:{w.x},{w.z} is not finite")
        if w.seconds <= 0:
            raise ControlError(f"waypoint time {w.seconds:g} s must be > 0 (frame 0's pelvis is at 0,0 by definition)")
    times = [w.seconds for w in out]
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ControlError(f"waypoint times must increase: {times}")
    return out


def seconds_to_frame(seconds: float, n_frames: int, fps: float = FPS, what: str = "waypoint") -> int:
    """A control time -> its frame: round(s · fps), clamped to the last frame when within PATH_TOLERANCE_S of the
    end (an 8-s motion's last frame is at 7.95 s); further out is an error naming the motion's length."""
    end = n_frames / fps
    if seconds > end + PATH_TOLERANCE_S + 1e-9:
        raise ControlError(f"{what} at {seconds:g} s is past the motion's end ({end:g} s): make the motion longer "
                           f"(e.g. --seconds) or move the {what}")
    return int(min(max(round(seconds * fps), 0), n_frames - 1))


# --- root trajectory <-> features -------------------------------------------------------------------------

def root_trajectory(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 263) un-normalised features -> yaw (T,) rad, pelvis ground position (T, 2) as (x, z); float64.
    The same integration as ``features.features_to_joints`` (yaw[0] = 0, position[0] = 0)."""
    f = np.asarray(features, dtype=np.float64)
    rot_vel = f[:, FEATURE_SLICES["root_rot_vel"]][:, 0]
    yaw = np.concatenate([[0.0], np.cumsum(rot_vel[:-1])])
    world = _rotate(f[:, FEATURE_SLICES["root_lin_vel"]], yaw)                    # (T, 2)
    xz = np.concatenate([np.zeros((1, 2)), np.cumsum(world[:-1], axis=0)])
    return yaw, xz


def with_root_trajectory(features: np.ndarray, yaw: np.ndarray, xz: np.ndarray) -> np.ndarray:
    """Features whose root channels give exactly `yaw` (T,) and `xz` (T, 2) (yaw[0] = 0 and xz[0] = 0 assumed:
    the output's frame); every other channel as given. The last frame repeats the previous step, as the data does."""
    f = np.array(features, dtype=np.float32, copy=True)
    yaw = np.asarray(yaw, dtype=np.float64)
    step = np.diff(np.asarray(xz, dtype=np.float64), axis=0)                     # (T-1, 2)
    turn = np.diff(yaw)
    if len(step):
        step, turn = np.concatenate([step, step[-1:]]), np.concatenate([turn, turn[-1:]])
    else:
        step, turn = np.zeros((1, 2)), np.zeros(1)
    f[:, FEATURE_SLICES["root_rot_vel"]] = turn[:, None]
    f[:, FEATURE_SLICES["root_lin_vel"]] = _rotate(step, -yaw)
    return f


def _rotate(v: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(T, 2) (x, z) vectors rotated about +Y by yaw (T,): the features' heading -> world rotation."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * v[:, 0] + s * v[:, 1], -s * v[:, 0] + c * v[:, 1]], axis=-1)


def heading_of(direction: np.ndarray) -> np.ndarray:
    """(..., 2) (x, z) floor direction -> (...,) yaw that faces it: (0, 1) -> 0, (1, 0) -> π/2."""
    d = np.asarray(direction, dtype=np.float64)
    return np.arctan2(d[..., 0], d[..., 1])


# --- the warp ----------------------------------------------------------------------------------------------

@dataclass
class Target:
    """The pelvis on the floor at `frame`: (x, z) metres; `yaw` (rad, facing) too when not None."""

    frame: int
    x: float
    z: float
    yaw: float | None = None


@dataclass
class Warp:
    yaw: np.ndarray            # (T,) new heading
    xz: np.ndarray             # (T, 2) new pelvis ground position
    turn: np.ndarray           # (T,) δ: heading offset of the path (rad)
    speed: np.ndarray          # (T,) exp(σ): speed scale
    residual_m: float          # largest additive position correction (sliding), metres
    residual_rad: float        # largest additive heading correction of the pose alone, rad

    @property
    def cost(self) -> float:
        """How much the motion had to be bent: sliding counts most, then speed change, then turning."""
        return float(self.residual_m + 0.5 * np.abs(np.log(self.speed)).max() + 0.1 * np.abs(self.turn).max()
                     + 0.2 * self.residual_rad)


def spline_basis(knots: np.ndarray, n_frames: int) -> np.ndarray:
    """(M,) increasing knot frames -> (T, M) matrix B: B @ values is the natural cubic spline through
    (knots, values) at frames 0..T-1, held constant outside [knots[0], knots[-1]]. One knot: a constant."""
    knots = np.asarray(knots, dtype=np.float64)
    if len(knots) == 1:
        return np.ones((n_frames, 1))
    t = np.clip(np.arange(n_frames, dtype=np.float64), knots[0], knots[-1])
    if len(knots) == 2:
        w = (t - knots[0]) / (knots[1] - knots[0])
        return np.stack([1 - w, w], axis=-1)
    from scipy.interpolate import CubicSpline   # lazy: keeps scipy out of the generate cold start

    return CubicSpline(knots, np.eye(len(knots)), bc_type="natural")(t)


def _unwrap_near(angle: float, ref: float) -> float:
    return ref + (angle - ref + math.pi) % (2 * math.pi) - math.pi


def follow(yaw: np.ndarray, xz: np.ndarray, targets: list[Target], *, exact: bool = True) -> Warp:
    """Warps a root trajectory (yaw (T,), xz (T, 2)) through `targets` (module docstring, steps 1-4)."""
    yaw, xz = np.asarray(yaw, dtype=np.float64), np.asarray(xz, dtype=np.float64)
    T = len(yaw)
    targets = sorted(targets, key=lambda g: g.frame)
    if not targets or T < 2:
        return Warp(yaw.copy(), xz.copy(), np.zeros(T), np.ones(T), 0.0, 0.0)
    # 1. local steps
    v_loc = _rotate(np.diff(xz, axis=0), -yaw[:-1])                              # (T-1, 2)
    frames = np.array([g.frame for g in targets])
    want = np.array([[g.x, g.z] for g in targets])                               # (K, 2)
    # 2. knots: 0, targets, midpoints, last frame
    pts = sorted({0, T - 1, *frames.tolist()})
    knots = sorted(set(pts) | {(a + b) // 2 for a, b in zip(pts, pts[1:]) if b - a >= 4})
    knots = np.array(knots, dtype=np.float64)
    B = spline_basis(knots, T)                                                   # (T, M)
    # 3. closed-form start: per stretch, the turn and scale from the model's displacement to the wanted one
    turn0, scale0 = np.zeros(len(knots)), np.zeros(len(knots))
    prev_f, prev_p, prev_turn = 0, np.zeros(2), 0.0
    for f, p in zip(frames, want):
        if f <= prev_f:
            continue
        have, need = xz[f] - xz[prev_f], p - prev_p
        if np.linalg.norm(have) > 1e-3 and np.linalg.norm(need) > 1e-3:
            a = _unwrap_near(float(heading_of(need) - heading_of(have)), prev_turn)
            sc = float(np.clip(np.log(np.linalg.norm(need) / np.linalg.norm(have)), -1.0, 1.0))
            inside = (knots > prev_f) & (knots <= f)
            turn0[inside], scale0[inside] = a, sc
            prev_turn = a
        prev_f, prev_p = f, p
    after = knots > prev_f
    turn0[after], scale0[after] = prev_turn, scale0[~after][-1] if (~after).any() else 0.0
    turn0[0] = 0.0
    has_yaw = np.array([g.yaw is not None for g in targets])
    want_yaw = np.array([g.yaw if g.yaw is not None else 0.0 for g in targets])
    M = len(knots)

    def path(theta):  # (2M-1,) knots of δ (without δ(0) = 0) and σ -> heading (T,), position (T, 2), δ, σ
        d = B @ np.concatenate([[0.0], theta[:M - 1]])
        s = B @ theta[M - 1:]
        h = yaw + d
        step = np.exp(s[:-1])[:, None] * _rotate(v_loc, h[:-1])
        return h, np.concatenate([np.zeros((1, 2)), np.cumsum(step, axis=0)]), d, s

    def residuals(theta):  # the least-squares terms of step 3, each already weighted
        h, pos, _, _ = path(theta)
        turn_all = np.concatenate([[0.0], theta[:M - 1]])
        err_yaw = (h[frames] - want_yaw + math.pi) % (2 * math.pi) - math.pi
        return np.concatenate([(pos[frames] - want).ravel(), math.sqrt(HEADING_WEIGHT) * err_yaw[has_yaw],
                               math.sqrt(SPEED_PENALTY) * theta[M - 1:],
                               math.sqrt(SMOOTH_PENALTY) * np.diff(turn_all),
                               math.sqrt(SMOOTH_PENALTY) * np.diff(theta[M - 1:])])

    from scipy.optimize import least_squares

    fit = least_squares(residuals, np.concatenate([turn0[1:], scale0]), max_nfev=MAX_EVALS, x_scale=1.0)
    h, pos, d, s = path(fit.x)
    # 4. exact: smooth additive corrections through the residuals (0 at frame 0, held after the last target)
    res_knots = np.concatenate([[0], frames]).astype(np.float64)
    keep = np.concatenate([[True], np.diff(res_knots) > 0])
    res_knots = res_knots[keep]
    Br = spline_basis(res_knots, T)
    res = np.concatenate([np.zeros((1, 2)), want - pos[frames]])[keep]
    pos_fix = Br @ res if exact else np.zeros_like(pos)
    yaw_err = np.zeros(len(frames))
    for k, g in enumerate(targets):
        if g.yaw is not None:
            yaw_err[k] = (g.yaw - h[g.frame] + math.pi) % (2 * math.pi) - math.pi
    yaw_fix = Br @ np.concatenate([[0.0], yaw_err])[keep] if exact else np.zeros(T)
    return Warp(h + yaw_fix, pos + pos_fix, d, np.exp(s), float(np.linalg.norm(pos_fix, axis=-1).max(initial=0.0)),
                float(np.abs(yaw_fix).max(initial=0.0)))


def follow_features(features: np.ndarray, targets: list[Target]) -> tuple[np.ndarray, Warp]:
    """(T, 263) features -> (features with the warped root channels, the Warp)."""
    yaw, xz = root_trajectory(features)
    warp = follow(yaw, xz, targets)
    return with_root_trajectory(features, warp.yaw, warp.xz), warp


def path_targets(waypoints, n_frames: int, fps: float = FPS) -> list[Target]:
    """Waypoints (seconds, x, z) -> targets on frames (clamped to the motion as `seconds_to_frame` says)."""
    return [Target(seconds_to_frame(w.seconds, n_frames, fps), w.x, w.z) for w in check_waypoints(waypoints)]
