"""Inverse / forward kinematics of the 22-joint body (paper §3.1 data; METHOD.md §1, "6D from IK").

The rest pose puts every bone along ``skeleton.REST_DIRECTIONS`` with every joint frame aligned to
the world axes (facing +Z, Y up), as a BVH rest pose does. Global rotation G[j] takes the rest pose
of joint j's bones to the posed ones:
- joint with one child: the shortest-arc (minimal twist) rotation of the parent-rotated rest bone onto
  the posed bone, composed onto the parent's global rotation;
- joint with several children (pelvis, spine3): a Kabsch fit over all child bones;
- leaf joint: the parent's global rotation (its local rotation is the identity).
Local rotation L[j] = G[parent]^T G[j] (the root's local rotation is its global one).
Pure numpy, batched over leading dims, float64.
"""

import numpy as np

from kmm.motion import rotations as rot
from kmm.motion.skeleton import N_JOINTS, PARENTS, REST_DIRECTIONS

CHILDREN = tuple(tuple(c for c in range(N_JOINTS) if PARENTS[c] == j) for j in range(N_JOINTS))


def unit_rest_offsets() -> np.ndarray:
    """(22, 3) unit rest bone directions (parent -> joint); the root's row is zero."""
    return rot.normalize(np.array(REST_DIRECTIONS, dtype=np.float64))


def global_rotations(joints: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """Global joint rotations by IK: (..., 22, 3) positions, (22, 3) rest offsets -> (..., 22, 3, 3).

    ``offsets`` default to the unit rest directions; only their directions matter for single-child
    joints, their full geometry for the Kabsch fit of multi-child joints.
    """
    x = np.asarray(joints, dtype=np.float64)  # (..., 22, 3)
    off = unit_rest_offsets() if offsets is None else np.asarray(offsets, dtype=np.float64)
    lead = x.shape[:-2]
    g = np.empty(lead + (N_JOINTS, 3, 3))
    eye = np.broadcast_to(np.eye(3), lead + (3, 3))
    for j in range(N_JOINTS):  # parents come before children in PARENTS
        p, kids = PARENTS[j], CHILDREN[j]
        g_parent = eye if p < 0 else g[..., p, :, :]
        if not kids:
            g[..., j, :, :] = g_parent
        elif len(kids) == 1:
            c = kids[0]
            rest_now = rot.apply(g_parent, np.broadcast_to(off[c], lead + (3,)))  # (..., 3)
            swing = rot.rotation_between(rest_now, x[..., c, :] - x[..., j, :])  # (..., 3, 3)
            g[..., j, :, :] = swing @ g_parent
        else:
            bones = x[..., list(kids), :] - x[..., j:j + 1, :]  # (..., K, 3)
            g[..., j, :, :] = rot.kabsch(np.broadcast_to(off[list(kids)], bones.shape), bones)
    return g


def local_rotations(global_rots: np.ndarray) -> np.ndarray:
    """(..., 22, 3, 3) global -> (..., 22, 3, 3) local, L[j] = G[parent]^T G[j], L[0] = G[0]."""
    g = np.asarray(global_rots, dtype=np.float64)
    parents = np.array(PARENTS[1:])
    local = g.copy()
    local[..., 1:, :, :] = g[..., parents, :, :].swapaxes(-1, -2) @ g[..., 1:, :, :]
    return local


def forward_kinematics(local_rots: np.ndarray, offsets: np.ndarray, root_pos: np.ndarray) -> np.ndarray:
    """(..., 22, 3, 3) local rotations, (22, 3) offsets, (..., 3) root -> (..., 22, 3) positions."""
    local = np.asarray(local_rots, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.float64)
    g = np.empty_like(local)
    x = np.empty(local.shape[:-2] + (3,))
    g[..., 0, :, :] = local[..., 0, :, :]
    x[..., 0, :] = root_pos
    for j in range(1, N_JOINTS):
        p = PARENTS[j]
        g[..., j, :, :] = g[..., p, :, :] @ local[..., j, :, :]
        x[..., j, :] = x[..., p, :] + rot.apply(g[..., p, :, :], np.broadcast_to(off[j], x.shape[:-2] + (3,)))
    return x


def fit_rest_offsets(joints: np.ndarray, n_iter: int = 3) -> np.ndarray:
    """Rest offsets (22, 3) in metres fitted to one clip (T, 22, 3), for an exact-as-possible BVH.

    1. bone length = median over frames; direction = skeleton.REST_DIRECTIONS;
    2. for each multi-child joint, replace its children's offsets by their mean position in the
       joint's fitted local frame (so one rigid rotation fits the clip's real geometry), re-oriented
       to best match the rest directions; repeat ``n_iter`` times.
    """
    x = np.asarray(joints, dtype=np.float64)  # (T, 22, 3)
    parents = np.array(PARENTS[1:])
    # 1. lengths along the rest directions
    lengths = np.median(np.linalg.norm(x[:, 1:] - x[:, parents], axis=-1), axis=0)  # (21,)
    off = unit_rest_offsets()
    off[1:] *= lengths[:, None]
    # 2. multi-child joints: mean local geometry, kept facing the rest directions
    for j in (j for j in range(N_JOINTS) if len(CHILDREN[j]) > 1):
        kids = list(CHILDREN[j])
        target = off[kids].copy()  # (K, 3) rest-direction layout
        bones = x[:, kids] - x[:, j:j + 1]  # (T, K, 3)
        for _ in range(n_iter):
            g = rot.kabsch(np.broadcast_to(off[kids], bones.shape), bones)  # (T, 3, 3)
            mean_local = np.einsum("tji,tkj->ki", g, bones) / len(x)  # (K, 3) = mean of g^T bone
            align = rot.kabsch(mean_local, target)  # re-orient towards the rest layout
            off[kids] = rot.apply(align, mean_local)
    return off
