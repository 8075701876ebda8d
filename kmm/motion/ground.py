"""A physically plausible root height for generated motion (ours; METHOD.md §1 floor convention).

Generated joints float above or sink below the floor (y = 0, the data's lowest foot point), and a model
that predicts no contact for a while lets the body hover far longer than anyone can jump. Both are fixed
by one vertical offset per frame, added to every joint (the pose is untouched), from the foot contacts the
model predicts (`contacts`, (T, 4) bool for ``skeleton.FOOT_JOINTS``):

1. on grounded frames (any contact, unless the feet are clearly up: `lifted`, more than 5 cm above their lowest
   point within ±0.75 s, as the jump check of ``eval.kinematic_checks`` does) the offset brings the lowest foot
   joint onto the floor;
2. on airborne frames it is interpolated linearly between the neighbouring grounded frames, so a jump keeps
   its own (ballistic) shape; before the first / after the last grounded frame it is held; with no grounded
   frame at all the clip's lowest foot point goes onto the floor (as the data folders define it);
3. an airborne run may not rise above a real jump's parabola: its lowest foot stays under
   ``g/2 · τ (D − τ)`` (τ the time since take-off, D the flight time), with D the run's own duration, and a
   run longer than ``max_air_s`` keeps only its highest ``max_air_s`` as a flight: the rest is pulled down
   onto the floor;
4. no foot below the floor, the offset smoothed over ``smooth_frames`` (Gaussian σ), then (4 again) the
   floor enforced once more, so smoothing can never push a foot through it.

Pure numpy, float64 inside.
"""
from __future__ import annotations

import numpy as np

from kmm.motion.skeleton import FOOT_JOINTS, FPS

GRAVITY = 9.81           # m/s²
MAX_AIR_S = 0.8          # s, longest flight kept (a standing high jump is about 0.5-0.7 s)
LIFT_CLEARANCE = 0.05    # m above the local ground: the feet are off it (a jump), whatever the contacts say
LOCAL_GROUND_S = 0.75    # s each side: the window of the local ground


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [start, end) runs of True. [0, 1, 1, 0, 1] -> [(1, 3), (4, 5)]."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """(T, ...) smoothed along axis 0 with a Gaussian of `sigma` frames; ends padded by repetition."""
    x = np.asarray(x, dtype=np.float64)
    if sigma <= 0 or len(x) < 2:
        return x.copy()
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = np.concatenate([np.repeat(x[:1], r, 0), x, np.repeat(x[-1:], r, 0)], axis=0)
    return np.tensordot(np.lib.stride_tricks.sliding_window_view(pad, 2 * r + 1, axis=0), k, axes=([-1], [0]))


def ballistic_ceiling(n_frames: int, fps: float = FPS, max_air_s: float = MAX_AIR_S,
                      apex: int | None = None) -> np.ndarray:
    """(n,) highest lowest-foot height (m) allowed on each frame of an airborne run of n frames.

    The flight lasts D = (n + 1) / fps s (take-off and landing frames are on the ground); a run longer than
    `max_air_s` keeps a flight of that length centred on frame `apex` (clipped into the run) and 0 elsewhere.
    n = 9 at 20 fps -> D = 0.5 s, peak g·D²/8 ≈ 0.31 m in the middle.
    """
    span = min(n_frames, max(1, int(round(max_air_s * fps)) - 1))
    centre = (n_frames - 1) // 2 if apex is None else int(apex)
    start = int(np.clip(centre - span // 2, 0, n_frames - span))
    tau = (np.arange(n_frames) - start + 1) / fps                      # (n,) s since take-off
    dur = (span + 1) / fps
    ceiling = 0.5 * GRAVITY * tau * (dur - tau)
    return np.where((tau > 0) & (tau < dur), ceiling, 0.0)


def lifted(low: np.ndarray, fps: float = FPS, clearance: float = LIFT_CLEARANCE, window_s: float = LOCAL_GROUND_S) -> np.ndarray:
    """(T,) lowest foot height -> (T,) bool: the feet are clearly off the ground, `clearance` m above their lowest
    point within ±`window_s` (a local ground, so a decoded floor that drifts slowly does not count). A contact the
    model predicts on such a frame is wrong: the body is in the middle of a jump.

    A 0.5 s hop of 0.2 m in 3 s of standing -> True on the hop's frames higher than 5 cm, False elsewhere."""
    r = max(1, int(round(window_s * fps)))
    pad = np.concatenate([np.full(r, low[0]), low, np.full(r, low[-1])])
    ground_level = np.lib.stride_tricks.sliding_window_view(pad, 2 * r + 1).min(axis=-1)
    return low - ground_level > clearance


def root_offsets(joints: np.ndarray, contacts: np.ndarray, *, floor: float = 0.0, fps: float = FPS,
                 max_air_s: float = MAX_AIR_S, smooth_frames: float = 1.5) -> np.ndarray:
    """(T, 22, 3) joints, (T, 4) contacts -> (T,) vertical offset per frame (steps 1-4 of the module docstring)."""
    x = np.asarray(joints, dtype=np.float64)
    low = x[:, list(FOOT_JOINTS), 1].min(axis=1)                        # (T,) lowest foot joint
    grounded = np.asarray(contacts, dtype=bool).reshape(len(x), -1).any(axis=1) & ~lifted(low, fps)
    t = np.arange(len(x))
    # 1.-2. floor contact on grounded frames, interpolated across flights
    if grounded.any():
        off = np.interp(t, t[grounded], floor - low[grounded])
    else:
        off = np.full(len(x), floor - low.min())
    # 3. no flight higher or longer than a real jump
    for a, b in runs(~grounded):
        height = low[a:b] + off[a:b] - floor                            # (n,) above the floor
        ceiling = ballistic_ceiling(b - a, fps, max_air_s, apex=int(np.argmax(height)))
        off[a:b] += np.minimum(0.0, ceiling - height)
    # 4. never below the floor, smoothed, floor again
    off = np.maximum(off, floor - low)
    off = gaussian_smooth(off, smooth_frames)
    return np.maximum(off, floor - low)


def ground(joints: np.ndarray, contacts: np.ndarray, **kwargs) -> np.ndarray:
    """(T, 22, 3) -> (T, 22, 3) float32 with `root_offsets` added to every joint's height (pose unchanged)."""
    x = np.asarray(joints, dtype=np.float64).copy()
    x[..., 1] += root_offsets(x, contacts, **kwargs)[:, None]
    return x.astype(np.float32)
