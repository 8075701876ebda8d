"""Generated features -> the joints we show and export: one skeleton, on the floor, planted feet (ours).

`clean_joints(features)`:
1. joints from the features (``features.features_to_joints``; their bones drift from frame to frame);
2. onto the one fixed skeleton ``retarget.REST_OFFSETS`` (`on_skeleton`: IK against those offsets -> FK, root
   path and height kept; frame by frame, unlike ``retarget.retarget``'s whole-clip fit, so an edit of one
   segment cannot change the joints of another): constant bone lengths, so a BVH with those offsets
   reproduces the joints exactly;
3. the model's predicted foot contacts, cleaned (``footlock.clean_contacts``);
4. the root height made plausible (``ground.ground``: feet on the floor when in contact, no long floating);
   then the contacts to lock: the predicted ones where the foot is near the floor and not swinging, joined with
   the feet the joints show planted (low and slow; ``footlock.detect_contacts``);
5. planted feet locked with leg IK, quick steps between plants (``footlock.lock_feet``), unless `foot_lock` is off;
6. (with the foot lock) a light smoothing in time of the local joint rotations and the root (Gaussian,
   σ = ``MOTION_SIGMA`` = 0.5 frame; FK on the same bones). Leg IK switches corrections on and off within a
   frame or two, and the decoded bones' frame-to-frame length noise becomes direction noise on the fixed
   skeleton; both show as jerk (issue #14). Measured with ``python -m kmm.eval.cleanup_jerk`` on 40 real val
   clips (results/cleanup_jerk.json), steps 1-5 raise the mean jerk of real motion by a fifth and step 6 takes
   it back to the capture's: it removes the clean-up's own jerk, not the motion's. (Smoothing the lock's
   corrections with a wider σ cut transition jerk further but lowered quick steps' lift, so swinging feet
   skated: not used.)
The features themselves are never changed (editing works on them and on the tokens).
"""
from __future__ import annotations

import numpy as np

from kmm.motion import footlock, ground, ik, rotations
from kmm.motion.features import features_to_joints
from kmm.motion.retarget import REST_OFFSETS
from kmm.motion.ground import gaussian_smooth
from kmm.motion.skeleton import FEATURE_SLICES

MOTION_SIGMA = 0.5        # frames: Gaussian σ of the final light smoothing of rotations and root (step 6)


def on_skeleton(joints: np.ndarray, offsets: np.ndarray = REST_OFFSETS) -> np.ndarray:
    """(T, 22, 3) joints with drifting bones -> (T, 22, 3) float64 on `offsets`: every single-child bone keeps its
    direction, pelvis and spine3 their best-fit (Kabsch) rotation, the root its position. Frame by frame."""
    x = np.asarray(joints, dtype=np.float64)
    local = ik.local_rotations(ik.global_rotations(x, offsets))                    # (T, 22, 3, 3)
    return ik.forward_kinematics(local, offsets, x[:, 0])


def smooth_motion(joints: np.ndarray, sigma: float, offsets: np.ndarray = REST_OFFSETS) -> np.ndarray:
    """(T, 22, 3) joints (bones may drift) -> (T, 22, 3) float64 on `offsets`: IK as in `on_skeleton`, local
    rotations and root path smoothed in time (Gaussian, σ frames; averaged matrices projected back onto
    rotations), FK on `offsets`. σ = 0 is `on_skeleton`."""
    x = np.asarray(joints, dtype=np.float64)
    if sigma <= 0 or len(x) < 3:
        return on_skeleton(x, offsets)
    local = ik.local_rotations(ik.global_rotations(x, offsets))                    # (T, 22, 3, 3)
    # averaged matrices back onto rotations: Gram-Schmidt on the first two columns (cheaper than an SVD on
    # 12,000 frames; the same to ~1e-4 rad for the small averages made here)
    local = rotations.sixd_to_matrix(rotations.matrix_to_6d(gaussian_smooth(local, sigma)))
    return ik.forward_kinematics(local, offsets, gaussian_smooth(x[:, 0], sigma))


def predicted_contacts(features: np.ndarray) -> np.ndarray:
    """(T, 263) features -> (T, 4) bool contacts of FOOT_JOINTS (thresholded, cleaned)."""
    return footlock.clean_contacts(np.asarray(features)[:, FEATURE_SLICES["contacts"]])


def clean_joints(features: np.ndarray, *, foot_lock: bool = True, offsets: np.ndarray = REST_OFFSETS,
                 return_contacts: bool = False, smooth: bool = True):
    """(T, 263) un-normalised features -> (T, 22, 3) float32 joints (steps 1-6 of the module docstring);
    with `return_contacts`, also the (T, 4) bool contacts that were used; `smooth` False skips step 6 (for
    measuring it: ``python -m kmm.eval.cleanup_jerk``)."""
    raw = features_to_joints(np.asarray(features, dtype=np.float32))               # 1.
    x = on_skeleton(raw, offsets)                                                 # 2.
    contacts = predicted_contacts(features)                                       # 3.
    x = ground.ground(x, contacts)                                                # 4.
    contacts = footlock.detect_contacts(x, contacts)   # plausible predicted contacts + feet the joints show planted
    if foot_lock:                                                                 # 5.
        x = footlock.lock_feet(x, contacts)
        if smooth:
            x = smooth_motion(x, MOTION_SIGMA, offsets)                          # 6.
    x = x.astype(np.float32)
    return (x, contacts) if return_contacts else x

