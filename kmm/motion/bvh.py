"""BVH export of 22-joint motion (paper §3.1 data; METHOD.md §1), for Blender and other DCC tools.

One ROOT (pelvis, channels ``Xposition Yposition Zposition Zrotation Xrotation Yrotation``), every
other joint ``Zrotation Xrotation Yrotation`` (R = Rz @ Rx @ Ry, degrees), an End Site on every leaf.
OFFSETs are the skeleton the joints live on when given (``offsets=retarget.REST_OFFSETS`` for generated
motion, whose bones are exactly those: the file then reproduces the joints to float precision), else they
come from the clip itself (``ik.fit_rest_offsets``: median bone lengths along the rest directions; the
children of pelvis and spine3 at their mean geometry in the joint's frame). Rotations come from ``ik``
against those same offsets, so forward kinematics of the file reproduces the input joints (a clip with
drifting bones: within a few mm to cm). Positions are written as given: metres, Y up, the data's world frame.
"""

from pathlib import Path

import numpy as np

from kmm.motion import ik
from kmm.motion import rotations as rot
from kmm.motion.skeleton import FPS, JOINT_NAMES, N_JOINTS

END_SITE_LENGTH = 0.08  # m, length of the End Site bone drawn past each leaf joint


def _end_site_offset(leaf: int, offsets: np.ndarray) -> np.ndarray:
    """Continue the leaf's own bone direction for END_SITE_LENGTH metres."""
    return rot.normalize(offsets[leaf]) * END_SITE_LENGTH


def _hierarchy(offsets: np.ndarray) -> list[str]:
    """HIERARCHY lines, depth-first in skeleton order of children."""
    lines = ["HIERARCHY"]

    def vec(v) -> str:
        return " ".join(f"{c:.6f}" for c in v)

    def write(j: int, depth: int) -> None:
        pad = "\t" * depth
        if j == 0:
            lines.append(f"ROOT {JOINT_NAMES[j]}")
            lines.append("{")
            lines.append(f"\tOFFSET {vec((0.0, 0.0, 0.0))}")
            lines.append("\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
        else:
            lines.append(f"{pad}JOINT {JOINT_NAMES[j]}")
            lines.append(f"{pad}{{")
            lines.append(f"{pad}\tOFFSET {vec(offsets[j])}")
            lines.append(f"{pad}\tCHANNELS 3 Zrotation Xrotation Yrotation")
        for c in ik.CHILDREN[j]:
            write(c, depth + 1)
        if not ik.CHILDREN[j]:
            lines.append(f"{pad}\tEnd Site")
            lines.append(f"{pad}\t{{")
            lines.append(f"{pad}\t\tOFFSET {vec(_end_site_offset(j, offsets))}")
            lines.append(f"{pad}\t}}")
        lines.append(f"{pad}}}")

    write(0, 0)
    return lines


def _depth_first_order() -> list[int]:
    order = []

    def visit(j: int) -> None:
        order.append(j)
        for c in ik.CHILDREN[j]:
            visit(c)

    visit(0)
    return order


def bvh_text(joints: np.ndarray, fps: float = FPS, offsets: np.ndarray | None = None) -> str:
    """(T, 22, 3) global joint positions (m, Y up) -> BVH file contents; `offsets` (22, 3) the skeleton
    (default: fitted to the clip)."""
    x = np.asarray(joints, dtype=np.float64)  # (T, 22, 3)
    assert x.ndim == 3 and x.shape[1:] == (N_JOINTS, 3), x.shape
    # 1. rest offsets (given, or fitted to this clip), rotations by IK against them
    offsets = ik.fit_rest_offsets(x) if offsets is None else np.asarray(offsets, dtype=np.float64)  # (22, 3)
    local = ik.local_rotations(ik.global_rotations(x, offsets))  # (T, 22, 3, 3)
    euler = np.degrees(rot.matrix_to_euler_zxy(local))  # (T, 22, 3) as (z, x, y)
    # 2. one row per frame: root position, then each joint's angles in hierarchy order
    order = _depth_first_order()
    rows = np.concatenate([x[:, 0], euler[:, order].reshape(len(x), -1)], axis=1)  # (T, 3 + 66)
    lines = _hierarchy(offsets)
    lines += ["MOTION", f"Frames: {len(x)}", f"Frame Time: {1.0 / fps:.6f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def write_bvh(path, joints: np.ndarray, fps: float = FPS, offsets: np.ndarray | None = None) -> Path:
    """Write :func:`bvh_text` to ``path``; returns the path."""
    path = Path(path)
    path.write_text(bvh_text(joints, fps, offsets))
    return path
