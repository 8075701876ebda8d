"""22-joint motion -> SMPL parameters and mesh (optional; needs the user's SMPL model files).

The SMPL body model is not redistributable, so nothing here ships it: set ``KMM_SMPL_DIR`` to a folder
holding ``SMPL_NEUTRAL.pkl`` (or ``smpl/SMPL_NEUTRAL.pkl``, or the original
``basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl``) and install ``smplx``. Without them
:func:`smpl_status` says how to enable it; the licence-free mannequin in ``kmm.viz.mesh`` needs none.

Rotations come from our IK (``kmm.motion.ik``) run against the *model's own* rest joints, so that the
posed model's joints land on the motion's joints (up to differences in bone lengths). The first 22
SMPL joints are ours; SMPL's two hand joints (22, 23) stay at zero rotation; betas are zero.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kmm.errors import SmplUnavailable  # noqa: F401  (defined in kmm/errors.py; this name kept)
from kmm.motion import rotations as rot
from kmm.motion.ik import global_rotations, local_rotations
from kmm.motion.skeleton import N_JOINTS, PARENTS

ENV_VAR = "KMM_SMPL_DIR"
SMPL_JOINTS = 24  # our 22 + left_hand, right_hand
N_BETAS = 10
MODEL_FILES = ("SMPL_{G}.pkl", "smpl/SMPL_{G}.pkl", "basicmodel_{g}_lbs_10_207_0_v1.1.0.pkl",
               "basicModel_{g}_lbs_10_207_0_v1.0.0.pkl", "smpl/basicmodel_{g}_lbs_10_207_0_v1.1.0.pkl")


# ----------------------------------------------------------------------------------------------
# rotations relative to a rest skeleton (shared with the mannequin)


def matrix_to_axis_angle(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis * angle (radians), angle in [0, pi].

    Example: a quarter turn about +Y, [[0,0,1],[0,1,0],[-1,0,0]] -> [0, pi/2, 0].
    """
    q = rot.matrix_to_quat(m)  # (..., 4) w, x, y, z
    q = np.where(q[..., :1] < 0, -q, q)  # w >= 0 keeps the angle in [0, pi]
    s = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)  # sin(angle / 2)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    # angle / sin(angle / 2) -> 2 as the angle -> 0
    scale = np.where(s > 1e-8, angle / np.maximum(s, 1e-12), 2.0)
    return q[..., 1:] * scale


def rest_offsets(rest_joints: np.ndarray) -> np.ndarray:
    """(22, 3) rest joint positions -> (22, 3) parent -> joint offsets (the root's row is zero)."""
    rest = np.asarray(rest_joints, dtype=np.float64)[:N_JOINTS]
    off = rest - rest[[max(p, 0) for p in PARENTS]]
    off[0] = 0.0
    return off


def pose_against_rest(joints: np.ndarray, rest_joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis-angle pose of a body whose rest joints are ``rest_joints``, fitted to ``joints`` by IK.

    (T, 22, 3) motion, (22, 3) rest joints -> root rotation (T, 3), body pose (T, 21, 3) for joints
    1..21 in our (= SMPL / SMPL-X) order; both in the parent's frame, as SMPL's ``body_pose``.
    """
    g = global_rotations(np.asarray(joints, dtype=np.float64), rest_offsets(rest_joints))  # (T, 22, 3, 3)
    aa = matrix_to_axis_angle(local_rotations(g))  # (T, 22, 3)
    return aa[:, 0], aa[:, 1:]


# ----------------------------------------------------------------------------------------------
# model files


def find_smpl_model(model_dir: str | os.PathLike | None = None, gender: str = "neutral") -> Path | None:
    """The SMPL .pkl under ``model_dir`` (default ``$KMM_SMPL_DIR``), or None."""
    folder = model_dir if model_dir is not None else os.environ.get(ENV_VAR)
    if not folder:
        return None
    folder = Path(folder)
    if folder.is_file():
        return folder
    for pattern in MODEL_FILES:
        path = folder / pattern.format(G=gender.upper(), g=gender.lower())
        if path.is_file():
            return path
    return None


def smpl_status(model_dir: str | os.PathLike | None = None) -> str:
    """One human sentence: is the SMPL mesh available, and if not, how to enable it."""
    path = find_smpl_model(model_dir)
    try:
        import smplx  # noqa: F401
    except ImportError:
        return ("SMPL mesh disabled: `pip install smplx`, then set KMM_SMPL_DIR to the folder holding "
                "SMPL_NEUTRAL.pkl (register at https://smpl.is.tue.mpg.de to download it).")
    if path is None:
        where = os.environ.get(ENV_VAR)
        return (f"SMPL mesh disabled: {'no SMPL_NEUTRAL.pkl in ' + where if where else ENV_VAR + ' is not set'}. "
                f"Download the SMPL model from https://smpl.is.tue.mpg.de (free registration, "
                f"non-commercial licence) and set {ENV_VAR} to the folder holding SMPL_NEUTRAL.pkl; "
                "the original .pkl files also need `pip install chumpy` to unpickle. "
                "The licence-free mannequin mesh (kmm.viz.mesh) works without it.")
    return f"SMPL mesh enabled: {path}"


def load_smpl(model_dir: str | os.PathLike | None = None, gender: str = "neutral"):
    """An ``smplx`` SMPL body model (torch, float32, batch 1). Raises SmplUnavailable if missing."""
    path = find_smpl_model(model_dir, gender)
    if path is None:
        raise SmplUnavailable(smpl_status(model_dir))
    try:
        import smplx
    except ImportError as e:
        raise SmplUnavailable(smpl_status(model_dir)) from e
    if path.name.upper().startswith("SMPL_"):
        return smplx.create(str(path), model_type="smpl", gender=gender, num_betas=N_BETAS)
    # smplx.create infers the model type from the file name's first word ("basicmodel" is unknown)
    return smplx.SMPL(str(path), gender=gender, num_betas=N_BETAS)


def smpl_rest_joints(model) -> np.ndarray:
    """(24, 3) rest joints of ``model`` at zero betas: J_regressor @ v_template."""
    return (model.J_regressor @ model.v_template).detach().cpu().numpy().astype(np.float64)


# ----------------------------------------------------------------------------------------------
# motion -> SMPL


def smpl_params(joints: np.ndarray, rest_joints: np.ndarray) -> dict[str, np.ndarray]:
    """SMPL parameters that put a body with ``rest_joints`` (24 or 22, 3) on ``joints`` (T, 22, 3).

    Returns float32 {"global_orient": (T, 3), "body_pose": (T, 69) (23 x 3, hands zero),
    "transl": (T, 3), "betas": (10,)}. SMPL rotates about the rest pelvis J0, so transl = pelvis - J0.
    """
    x = np.asarray(joints, dtype=np.float64)  # (T, 22, 3)
    root, body = pose_against_rest(x, rest_joints)  # (T, 3), (T, 21, 3)
    hands = np.zeros((len(x), SMPL_JOINTS - N_JOINTS, 3))
    return {
        "global_orient": root.astype(np.float32),
        "body_pose": np.concatenate([body, hands], axis=1).reshape(len(x), -1).astype(np.float32),
        "transl": (x[:, 0] - np.asarray(rest_joints, dtype=np.float64)[0]).astype(np.float32),
        "betas": np.zeros(N_BETAS, dtype=np.float32),
    }


def smpl_forward(model, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``model`` on :func:`smpl_params` output -> vertices (T, V, 3), joints (T, 24, 3), faces (F, 3)."""
    import torch

    t = len(params["transl"])
    with torch.no_grad():
        out = model(global_orient=torch.as_tensor(params["global_orient"]),
                    body_pose=torch.as_tensor(params["body_pose"]),
                    transl=torch.as_tensor(params["transl"]),
                    betas=torch.as_tensor(params["betas"]).expand(t, -1))
    faces = np.asarray(model.faces, dtype=np.int64)
    return out.vertices.numpy(), out.joints[:, :SMPL_JOINTS].numpy(), faces


def smpl_mesh(joints: np.ndarray, model_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(T, 22, 3) motion -> SMPL vertices (T, 6890, 3) float32 and faces (F, 3). Needs the model files."""
    model = load_smpl(model_dir)
    vertices, _, faces = smpl_forward(model, smpl_params(joints, smpl_rest_joints(model)))
    return vertices, faces


def smpl_npz_extra(joints: np.ndarray, model_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """SMPL parameters as plain arrays for ``save_motion_npz(..., extra=...)``: keys ``smpl_*``."""
    model = load_smpl(model_dir)
    params = smpl_params(joints, smpl_rest_joints(model))
    return {f"smpl_{k}": v for k, v in params.items()}
