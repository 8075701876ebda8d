"""One skeleton for every clip and every output (METHOD.md §1 data; as HumanML3D's preprocessing does).

The data folders hold bodies of different sizes (the CMU/DAZ figure walks with its pelvis at 0.79 m, the
Bandai Namco actors at 0.88 m), and generated joints drift in bone length from frame to frame. Both are
brought onto one fixed rest skeleton, ``REST_OFFSETS``, by the same two steps:

1. IK: global joint rotations of the input (``ik.global_rotations`` with the input's own fitted offsets,
   so multi-child joints are fitted on their real geometry), then local rotations;
2. FK: the local rotations applied to ``REST_OFFSETS``, from the root position, which is scaled by the
   ratio of leg lengths (target / source) when the input is another body (training data), and kept as
   it is for generated motion that is already on this skeleton (scale 1).

Every bone direction of a single-child joint is kept exactly, so a pose is preserved up to the bone
lengths; the output has constant bone lengths, hence a BVH with fixed offsets reproduces it exactly.

``REST_OFFSETS`` are the Bandai Namco actors' median bones (``ik.fit_rest_offsets`` over every 10th frame of
the `bandai-namco-motion` train split, rounded to 0.1 mm); `python -m kmm data fit-skeleton` prints them again.
Real adult proportions, pelvis about 0.9 m above the floor when standing.
"""
from __future__ import annotations

import numpy as np

from kmm.motion import ik
from kmm.motion.skeleton import FOOT_JOINTS, PARENTS

# (22, 3) parent -> joint rest offsets in metres, T-pose facing +Z, Y up, +X the body's left.
REST_OFFSETS = np.array([
    [0.0, 0.0, 0.0],           # pelvis
    [0.0647, -0.0219, 0.0],    # left_hip
    [-0.0647, -0.0219, 0.0],   # right_hip
    [0.0, 0.1023, 0.0],        # spine1
    [0.0, -0.3908, 0.0],       # left_knee
    [0.0, -0.3908, 0.0],       # right_knee
    [0.0, 0.1449, 0.0],        # spine2
    [0.0, -0.4099, 0.0],       # left_ankle
    [0.0, -0.4099, 0.0],       # right_ankle
    [0.0, 0.0491, 0.0],        # spine3
    [0.0, -0.0338, 0.1126],    # left_foot
    [0.0, -0.0338, 0.1126],    # right_foot
    [0.0, 0.1146, 0.0013],     # neck
    [0.0498, 0.0808, -0.0015],  # left_collar
    [-0.0498, 0.0808, -0.0015],  # right_collar
    [0.0, 0.0646, 0.0],        # head
    [0.0535, 0.0, 0.0],        # left_shoulder
    [-0.0535, 0.0, 0.0],       # right_shoulder
    [0.2433, 0.0, 0.0],        # left_elbow
    [-0.2433, 0.0, 0.0],       # right_elbow
    [0.2229, 0.0, 0.0],        # left_wrist
    [-0.2229, 0.0, 0.0],       # right_wrist
], dtype=np.float64)

_LEG = (1, 4, 7)  # left hip, knee, ankle: the bones whose lengths sum to the leg length


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """(..., 22, 3) -> (..., 21) length of each bone (joint 1..21 to its parent)."""
    x = np.asarray(joints, dtype=np.float64)
    return np.linalg.norm(x[..., 1:, :] - x[..., list(PARENTS[1:]), :], axis=-1)


def leg_length(offsets: np.ndarray) -> float:
    """Pelvis -> hip -> knee -> ankle length of a (22, 3) offset table (the vertical scale of a body)."""
    return float(sum(np.linalg.norm(offsets[j]) for j in _LEG))


def root_scale(src_joints: np.ndarray, tgt_pose: np.ndarray, src_offsets: np.ndarray,
               tgt_offsets: np.ndarray) -> float:
    """Scale of the root path from one body to another: the median ratio of the pelvis height above the lowest
    foot joint, target pose over source pose, on frames where the body is upright (source height > 0.3 m);
    the leg-length ratio when no frame is upright. Matching the root to the legs' real reach keeps planted
    feet planted (a plain leg-length ratio does not on this data: the joint maps differ in the hips).
    """
    feet = list(FOOT_JOINTS)
    h_src = src_joints[:, 0, 1] - src_joints[:, feet, 1].min(axis=1)    # (T,)
    h_tgt = tgt_pose[:, 0, 1] - tgt_pose[:, feet, 1].min(axis=1)        # (T,)
    upright = h_src > 0.3
    if upright.sum() < 1:
        return leg_length(tgt_offsets) / max(leg_length(src_offsets), 1e-6)
    return float(np.median(h_tgt[upright] / h_src[upright]))


def retarget(joints: np.ndarray, offsets: np.ndarray = REST_OFFSETS, *, scale_root: bool = True,
             floor: bool = True) -> np.ndarray:
    """(T, 22, 3) joints of any body -> (T, 22, 3) float32 on the skeleton `offsets` (constant bones).

    1. fit the input's own rest offsets, IK → local rotations;
    2. root path × `root_scale` (scale_root; off for motion already on `offsets`);
    3. FK onto `offsets`;
    4. floor: the clip's lowest foot point at y = 0 (floor=True), as the data folders define it.
    """
    x = np.asarray(joints, dtype=np.float64)
    src = ik.fit_rest_offsets(x)                                        # 1.
    local = ik.local_rotations(ik.global_rotations(x, src))             # (T, 22, 3, 3)
    root = x[:, 0].copy()                                               # 2.
    if scale_root:
        root *= root_scale(x, ik.forward_kinematics(local, offsets, np.zeros(3)), src, offsets)
    out = ik.forward_kinematics(local, offsets, root)                   # 3.
    if floor:                                                           # 4.
        out[..., 1] -= out[:, list(FOOT_JOINTS), 1].min()
    return out.astype(np.float32)
