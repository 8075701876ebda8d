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
5. planted feet locked with leg IK, quick steps between plants (``footlock.lock_feet``), unless `foot_lock` is off.
The features themselves are never changed (editing works on them and on the tokens).
"""
from __future__ import annotations

import numpy as np

from kmm.motion import footlock, ground, ik
from kmm.motion.features import features_to_joints
from kmm.motion.retarget import REST_OFFSETS
from kmm.motion.skeleton import FEATURE_SLICES


def on_skeleton(joints: np.ndarray, offsets: np.ndarray = REST_OFFSETS) -> np.ndarray:
    """(T, 22, 3) joints with drifting bones -> (T, 22, 3) float64 on `offsets`: every single-child bone keeps its
    direction, pelvis and spine3 their best-fit (Kabsch) rotation, the root its position. Frame by frame."""
    x = np.asarray(joints, dtype=np.float64)
    local = ik.local_rotations(ik.global_rotations(x, offsets))                    # (T, 22, 3, 3)
    return ik.forward_kinematics(local, offsets, x[:, 0])


def predicted_contacts(features: np.ndarray) -> np.ndarray:
    """(T, 263) features -> (T, 4) bool contacts of FOOT_JOINTS (thresholded, cleaned)."""
    return footlock.clean_contacts(np.asarray(features)[:, FEATURE_SLICES["contacts"]])


def clean_joints(features: np.ndarray, *, foot_lock: bool = True, offsets: np.ndarray = REST_OFFSETS,
                 return_contacts: bool = False):
    """(T, 263) un-normalised features -> (T, 22, 3) float32 joints (steps 1-5 of the module docstring);
    with `return_contacts`, also the (T, 4) bool contacts that were used."""
    raw = features_to_joints(np.asarray(features, dtype=np.float32))               # 1.
    x = on_skeleton(raw, offsets)                                                 # 2.
    contacts = predicted_contacts(features)                                       # 3.
    x = ground.ground(x, contacts)                                                # 4.
    contacts = footlock.detect_contacts(x, contacts)   # plausible predicted contacts + feet the joints show planted
    if foot_lock:                                                                 # 5.
        x = footlock.lock_feet(x, contacts)
    x = x.astype(np.float32)
    return (x, contacts) if return_contacts else x

