"""Where a following camera looks: the smoothed pelvis path (shared by the mesh renderer and the mesh viewer)."""
from __future__ import annotations

import numpy as np

from kmm.motion.skeleton import FPS


def camera_targets(joints: np.ndarray, fps: float = FPS, smooth_s: float = 1.0) -> np.ndarray:
    """(T, 3) points the camera follows: the pelvis, moving-averaged over ``smooth_s`` seconds, y fixed.

    Example: a still body -> its pelvis position every frame.
    """
    pelvis = np.asarray(joints, dtype=np.float64)[:, 0]  # (T, 3)
    k = max(1, int(round(smooth_s * fps)) | 1)  # odd window
    padded = np.pad(pelvis, ((k // 2, k // 2), (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(padded[:, d], np.ones(k) / k, mode="valid") for d in range(3)], -1)
    smooth[:, 1] = pelvis[:, 1].mean()
    return smooth
