"""Body mesh: mannequin fit, animated .glb, pyrender mp4, SMPL via smplx (synthetic model), `render` CLI."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kmm.motion.skeleton import PARENTS

FRAMES = 24
FPS = 20
# bones whose parent joint has one child: IK matches their direction exactly
SINGLE_CHILD_BONES = [j for j in range(1, 22) if sum(p == PARENTS[j] for p in PARENTS) == 1]


@pytest.fixture(scope="module")
def clip(mini_dir) -> np.ndarray:
    """A short walking clip, (FRAMES, 22, 3) float64."""
    from kmm.data import load_dataset

    clip = load_dataset(mini_dir)["02_01"]
    return np.asarray(clip.joints[:FRAMES], dtype=np.float64)


def _bone_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T, 22, 3) x2 -> (T, 21) cosine between corresponding bones."""
    parents = [max(p, 0) for p in PARENTS[1:]]
    ba, bb = a[:, 1:] - a[:, parents], b[:, 1:] - b[:, parents]
    return np.sum(ba * bb, -1) / (np.linalg.norm(ba, axis=-1) * np.linalg.norm(bb, axis=-1))


def test_axis_angle_round_trip():
    from kmm.motion import rotations as rot
    from kmm.motion.smpl import matrix_to_axis_angle

    rng = np.random.default_rng(0)
    aa = rng.normal(size=(50, 3))
    aa *= (rng.uniform(0, np.pi - 1e-3, 50) / np.linalg.norm(aa, axis=-1))[:, None]
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    q = np.concatenate([np.cos(angle / 2), np.sin(angle / 2) * aa / angle], -1)
    np.testing.assert_allclose(matrix_to_axis_angle(rot.quat_to_matrix(q)), aa, atol=1e-6)
    np.testing.assert_allclose(matrix_to_axis_angle(np.eye(3)), 0.0, atol=1e-12)


def test_mannequin_follows_the_motion(clip):
    from kmm.viz.mesh import mannequin_joints, pose_mannequin

    posed = mannequin_joints(clip)
    np.testing.assert_allclose(posed[:, 0], clip[:, 0], atol=1e-6)  # pelvis placed exactly
    cos = _bone_cos(posed, clip)
    assert cos[:, [j - 1 for j in SINGLE_CHILD_BONES]].min() > 0.99  # limbs, spine, neck: same direction
    assert cos.mean() > 0.95  # hips / collars differ with the mocap skeleton's proportions
    # limb ends land near the motion's (proportions differ between skeletons: metres, loose)
    assert np.linalg.norm(posed - clip, axis=-1).mean() < 0.15
    vertices, faces = pose_mannequin(clip[:2])
    assert vertices.shape[0] == 2 and vertices.shape[2] == 3 and faces.shape[1] == 3
    assert faces.max() < vertices.shape[1] and vertices.shape[1] > 20000
    height = np.ptp(vertices[0, :, 1])
    assert 1.3 < height < 2.1  # upright, human sized


def test_glb_one_animation_matching_the_mesh(clip, tmp_path):
    import pygltflib
    import trimesh

    from kmm.viz.mesh import glb_skinned_vertices, motion_to_glb, pose_mannequin

    path = motion_to_glb(clip, tmp_path / "m.glb", fps=FPS)
    gltf = pygltflib.GLTF2().load(str(path))
    assert len(gltf.animations) == 1
    times = [gltf.accessors[s.input] for s in gltf.animations[0].samplers]
    assert max(a.max[0] for a in times) == pytest.approx((FRAMES - 1) / FPS, abs=1e-5)
    assert min(a.min[0] for a in times) == 0.0
    scene = trimesh.load(str(path))
    assert len(scene.geometry) == 1
    # the file's skin + animation reproduce the posed mesh at a key frame
    expected, _ = pose_mannequin(clip)
    for frame in (0, FRAMES - 1):
        np.testing.assert_allclose(glb_skinned_vertices(path, frame), expected[frame], atol=1e-4)


def test_follow_glb_keeps_the_body_in_the_middle(clip, tmp_path):
    """A 6-m walk: in the viewer's copy the body stays within the leash of the origin (the world copy walks
    away), its pose is the world copy's shifted on the floor, and the floor patch moves less than one period."""
    import pygltflib

    from kmm.viz.mesh import (FLOOR_TILE, FOLLOW_LEASH, glb_skinned_vertices, mannequin_pose, motion_to_glb,
                              wrapped_floor_keys)

    walk = clip.copy()
    walk[..., 2] += np.linspace(0, 6, len(walk))[:, None]          # 6 m along +Z over 1.2 s
    pose = mannequin_pose(walk)
    world = motion_to_glb(walk, tmp_path / "w.glb", fps=FPS, pose=pose)
    view = motion_to_glb(walk, tmp_path / "v.glb", fps=FPS, follow=True, pose=pose)
    for frame in (0, FRAMES // 2, FRAMES - 1):
        w, v = glb_skinned_vertices(world, frame), glb_skinned_vertices(view, frame)
        shift = (w - v)[:, [0, 2]]
        assert np.ptp(shift, axis=0).max() < 1e-4                    # same pose, moved on the floor only
        np.testing.assert_allclose((w - v)[:, 1], 0, atol=1e-5)
        pelvis = walk[frame, 0, [0, 2]] - shift[0]
        assert np.linalg.norm(pelvis) <= FOLLOW_LEASH + 1e-4
    assert np.abs(glb_skinned_vertices(world, FRAMES - 1)[:, 2].mean()) > 5
    gltf = pygltflib.GLTF2().load(str(view))
    floor = next(i for i, n in enumerate(gltf.nodes) if n.name == "floor")
    assert floor in gltf.scenes[0].nodes and gltf.nodes[floor].mesh == 1
    times, values = wrapped_floor_keys(-np.c_[np.zeros(FRAMES), np.linspace(0, 6, FRAMES)], FPS, 2 * FLOOR_TILE)
    on_frames = np.abs(times * FPS - np.round(times * FPS)) < 1e-6
    assert np.all(np.diff(times) > 0) and on_frames.sum() == FRAMES
    assert np.abs(values[on_frames]).max() <= FLOOR_TILE + 1e-9       # within half a period of the patch centre
    assert np.abs(np.diff(values[:, 1]))[np.diff(times) > 1e-3].max() < FLOOR_TILE   # no sweep between frames


def _check_video_frames(frames: np.ndarray) -> None:
    assert frames.ndim == 4 and frames.shape[-1] == 3
    for image in frames[[0, len(frames) // 2, -1]].astype(np.float64):
        assert image.std() > 10, "blank frame"
        # the body (warm wood colour: red well above blue) covers a real part of the picture
        body = (image[..., 0] - image[..., 2]) > 40
        assert 0.01 < body.mean() < 0.5, f"body covers {body.mean():.3f} of the frame"
        floor = image[~body]
        assert np.abs(image[body].mean(0) - floor.mean(0)).max() > 30  # body differs from background
        ys, xs = np.nonzero(body)
        h, w = body.shape
        assert 0.1 * w < xs.mean() < 0.9 * w and 0.1 * h < ys.mean() < 0.9 * h  # in view


def test_render_mp4(clip, tmp_path):
    import imageio.v3 as iio

    from kmm.viz.render import render_mp4

    path = render_mp4(clip, tmp_path / "m.mp4", fps=FPS, size=(320, 240))
    frames = iio.imread(path)
    assert frames.shape == (FRAMES, 240, 320, 3)
    _check_video_frames(frames)


# ----------------------------------------------------------------------------------------------
# SMPL through smplx with a synthetic model file (never a real one)


def _synthetic_smpl(path: Path) -> Path:
    """A pickle with SMPL's layout (6,890 vertices, 24 joints): vertex blobs around a T-pose skeleton.

    Each vertex is skinned rigidly to one joint; the J_regressor averages that joint's blob, so the
    model's rest joints are the blob centres.
    """
    from kmm.viz.mesh import mannequin_rest_joints

    rng = np.random.default_rng(0)
    rest = mannequin_rest_joints()  # (22, 3), a T-pose facing +Z
    rest = np.concatenate([rest, rest[[20, 21]] + [[0.08, 0, 0], [-0.08, 0, 0]]])  # + hands
    n_v, n_j = 6890, 24
    owner = np.arange(n_v) % n_j
    v_template = rest[owner] + rng.normal(scale=0.02, size=(n_v, 3))
    weights = np.eye(n_j)[owner]
    j_regressor = weights.T / weights.sum(0)[:, None]
    parents = np.array(list(PARENTS) + [20, 21], dtype=np.int64)
    parents[0] = 4294967295  # as in the SMPL files: uint32(-1)
    model = {
        "v_template": v_template, "weights": weights, "J_regressor": j_regressor,
        "shapedirs": np.zeros((n_v, 3, 10)), "posedirs": np.zeros((n_v, 3, 207)),
        "kintree_table": np.stack([parents, np.arange(n_j)]),
        "f": rng.integers(0, n_v, size=(13776, 3)).astype(np.uint32),
    }
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "SMPL_NEUTRAL.pkl", "wb") as fh:
        pickle.dump(model, fh, protocol=2)
    return path


def test_smpl_status_without_models(monkeypatch, tmp_path):
    from kmm.motion.smpl import SmplUnavailable, smpl_mesh, smpl_status

    monkeypatch.delenv("KMM_SMPL_DIR", raising=False)
    assert "KMM_SMPL_DIR" in smpl_status()
    monkeypatch.setenv("KMM_SMPL_DIR", str(tmp_path))
    assert "SMPL_NEUTRAL.pkl" in smpl_status()
    with pytest.raises(SmplUnavailable, match="KMM_SMPL_DIR"):
        smpl_mesh(np.zeros((2, 22, 3)))


def test_smpl_from_synthetic_model(clip, tmp_path, monkeypatch):
    from kmm.motion.npz import load_motion_npz, save_motion_npz
    from kmm.motion.smpl import (load_smpl, smpl_forward, smpl_mesh, smpl_npz_extra, smpl_params,
                                 smpl_rest_joints, smpl_status)

    monkeypatch.setenv("KMM_SMPL_DIR", str(_synthetic_smpl(tmp_path / "models")))
    assert smpl_status().startswith("SMPL mesh enabled")
    model = load_smpl()
    params = smpl_params(clip, smpl_rest_joints(model))
    assert params["global_orient"].shape == (FRAMES, 3) and params["body_pose"].shape == (FRAMES, 69)
    assert params["transl"].shape == (FRAMES, 3) and params["betas"].shape == (10,)
    assert np.all(params["body_pose"].reshape(FRAMES, 23, 3)[:, 21:] == 0)  # hands
    vertices, joints, faces = smpl_forward(model, params)
    assert vertices.shape == (FRAMES, 6890, 3) and faces.shape == (13776, 3)
    np.testing.assert_allclose(joints[:, 0], clip[:, 0], atol=1e-4)
    cos = _bone_cos(joints[:, :22].astype(np.float64), clip)
    assert cos[:, [j - 1 for j in SINGLE_CHILD_BONES]].min() > 0.99
    assert smpl_mesh(clip[:3])[0].shape == (3, 6890, 3)

    extra = smpl_npz_extra(clip)
    save_motion_npz(tmp_path / "m.npz", clip, extra=extra)
    loaded = load_motion_npz(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded["smpl_body_pose"], params["body_pose"])


# ----------------------------------------------------------------------------------------------
# CLI


def test_render_cli(clip, tmp_path):
    import imageio.v3 as iio
    import pygltflib

    from kmm.motion.npz import save_motion_npz

    motion = save_motion_npz(tmp_path / "m.npz", clip[:12], fps=FPS)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parents[1]
    for out in ("m.mp4", "m.glb"):
        result = subprocess.run([sys.executable, "-m", "kmm", "render", str(motion), "--out", str(tmp_path / out),
                                 "--size", "160x120"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "wrote" in result.stdout
    assert iio.imread(tmp_path / "m.mp4").shape == (12, 120, 160, 3)
    gltf = pygltflib.GLTF2().load(str(tmp_path / "m.glb"))
    assert len(gltf.animations) == 1
    bad = subprocess.run([sys.executable, "-m", "kmm", "render", str(motion), "--out", str(tmp_path / "m.avi")],
                         cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown output format" in bad.stderr
