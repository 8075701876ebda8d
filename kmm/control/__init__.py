"""Control (issue #19): pin key poses and follow a root path with any generator of the pipeline.

    out = pipe.generate([("a person walks", 8.0)], seed=0, path="4:0,3;8:2,5")           # T:X,Z;... seconds:metres
    out = pipe.generate(segments, keyposes={"times": [2.0], "joints": pose[None]})     # (K,), (K, 22, 3)

Coordinates are the output's own frame: frame 0's pelvis at x = z = 0, frame 0 facing +Z, +X the body's left,
Y up (``kmm.motion.features``). `path.py` warps the decoded root path through waypoints; `keyposes.py` in-paints
key-pose tokens and blends the final joints into the poses. `Control` bundles both for the pipeline:
`Control.make(keyposes, path)` validates, `apply(features)` turns decoded features into controlled joints.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kmm.control.keyposes import (KeyPose, check_keyposes, keypose_frames, keypose_targets, load_keyposes,
                                  pin_poses, pin_targets, placed)
from kmm.control.path import ControlError, Waypoint, check_waypoints, follow_features, parse_path, path_targets
from kmm.motion.cleanup import MOTION_SIGMA, clean_joints, smooth_motion
from kmm.motion.skeleton import FPS

__all__ = ["Control", "ControlError", "KeyPose", "Waypoint", "load_keyposes", "parse_path"]


@dataclass
class Control:
    keyposes: list[KeyPose] = field(default_factory=list)
    waypoints: list[Waypoint] = field(default_factory=list)

    @classmethod
    def make(cls, keyposes=None, path=None) -> "Control | None":
        """keyposes: KeyPose list / (seconds, (22, 3)) pairs / {"times", "joints"} / None; path: "T:X,Z;..." or
        [(seconds, x, z), ...] or None. -> Control, or None when neither is given."""
        kp = check_keyposes(keyposes) if keyposes is not None and len(keyposes) else []
        if isinstance(path, str):
            wp = parse_path(path) if path.strip() else []
        else:
            wp = check_waypoints(path) if path is not None and len(path) else []
        return cls(kp, wp) if (kp or wp) else None

    def targets(self, n_frames: int, fps: float = FPS):
        targets = path_targets(self.waypoints, n_frames, fps) + keypose_targets(self.keyposes, n_frames, fps)
        frames = [t.frame for t in targets]
        if len(set(frames)) < len(frames):
            raise ControlError("a waypoint and a key pose (or two waypoints) fall on the same frame; "
                               "give the key pose's position alone")
        return targets

    def apply(self, features: np.ndarray, foot_lock: bool = True, fps: float = FPS):
        """(T, 263) decoded features -> (features with the warped root, (T, 22, 3) joints, info dict).
        info: keypose_joints (the poses shown at the key frames), path_cost (how much the motion was bent, for choosing among candidates), residual_m (sliding added
        to reach the waypoints exactly), speed_range, turn_max_rad; keypose_m_before_blend (mean joint error at
        each key frame before the final blend)."""
        feats, info = np.asarray(features, dtype=np.float32), {}
        targets = self.targets(len(feats), fps)
        if targets:
            feats, warp = follow_features(feats, targets)
            info = {"path_cost": warp.cost, "residual_m": warp.residual_m,
                    "speed_range": [float(warp.speed.min()), float(warp.speed.max())],
                    "turn_max_rad": float(np.abs(warp.turn).max())}
        joints = clean_joints(feats, foot_lock=foot_lock)
        if self.keyposes:
            frames = keypose_frames(self.keyposes, len(joints), fps)
            targets = pin_targets(joints, self.keyposes, fps)                          # (K, 22, 3)
            info["keypose_joints"] = [t.astype(np.float32) for t in targets]
            # how near in-painting and placement came on their own
            info["keypose_m_before_blend"] = [float(np.linalg.norm(joints[f] - t, axis=-1).mean())
                                              for f, t in zip(frames, targets)]
            joints = pin_poses(joints, self.keyposes, fps)
            if foot_lock:   # the clean-up's last step again, over the blend (no jerk at the pins; mm at the pins)
                joints = smooth_motion(joints, MOTION_SIGMA).astype(np.float32)
        return feats, joints, info

    def summary(self, n_frames: int, fps: float = FPS) -> dict:
        """Plain data for results and viewers: waypoints [[s, x, z]], key pose times/frames/joints."""
        return {"waypoints": [[w.seconds, w.x, w.z] for w in self.waypoints],
                "keypose_times": [k.seconds for k in self.keyposes],
                "keypose_frames": keypose_frames(self.keyposes, n_frames, fps),
                "keypose_place": [k.place for k in self.keyposes],
                "keypose_joints": [placed(k).astype(np.float32) for k in self.keyposes]}
