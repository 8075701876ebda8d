"""BVH and .npz export (paper §3.1 data; METHOD.md §1).

The BVH is read back with the independent PyPI ``bvh`` parser and a forward-kinematics written here
(not imported from kmm), and must reproduce every input joint within 1 cm.
"""


import numpy as np
import pytest

from kmm.motion.bvh import bvh_text, write_bvh
from kmm.motion.features import joints_to_features
from kmm.motion.npz import load_motion_npz, save_motion_npz
from kmm.motion.skeleton import JOINT_NAMES

bvh_pkg = pytest.importorskip("bvh", reason="the PyPI 'bvh' parser is needed to read files back")

LEAVES = {"head", "left_wrist", "right_wrist", "left_foot", "right_foot"}


@pytest.fixture(scope="module")
def clips(mini_motions) -> dict:
    return dict(mini_motions)


def _axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    """(T,) degrees -> (T, 3, 3) rotation about one world axis (column-vector convention)."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    m = np.zeros(a.shape + (3, 3))
    i, j = {"X": (1, 2), "Y": (2, 0), "Z": (0, 1)}[axis]
    k = 3 - i - j
    m[..., k, k] = 1.0
    m[..., i, i], m[..., i, j], m[..., j, i], m[..., j, j] = c, -s, s, c
    return m


def _bvh_positions(mocap) -> dict:
    """Forward kinematics of a parsed BVH: joint name -> (T, 3) world positions."""
    frames = np.array(mocap.frames, dtype=np.float64)  # (T, n_channels)
    rotations, positions = {}, {}
    column = 0
    for node in mocap.get_joints():  # depth first, parents first; channels in this order
        name = node.name
        channels = mocap.joint_channels(name)
        values = frames[:, column:column + len(channels)]
        column += len(channels)
        offset = np.array(mocap.joint_offset(name))
        local = np.broadcast_to(np.eye(3), (len(frames), 3, 3))
        translation = np.zeros((len(frames), 3))
        for k, ch in enumerate(channels):  # intrinsic: R = R_c1 @ R_c2 @ R_c3
            if ch.endswith("rotation"):
                local = local @ _axis_rotation(ch[0], values[:, k])
            else:
                translation[:, "XYZ".index(ch[0])] = values[:, k]
        parent = mocap.joint_parent(name)
        if parent is None:
            positions[name] = offset + translation
            rotations[name] = local
        else:
            p = parent.name
            positions[name] = positions[p] + np.einsum("tij,j->ti", rotations[p], offset) + translation
            rotations[name] = rotations[p] @ local
    return positions


def test_bvh_reproduces_every_joint_of_every_mini_clip_within_1cm(clips, tmp_path):
    worst = 0.0
    for key, joints in clips.items():
        path = write_bvh(tmp_path / f"{key}.bvh", joints)
        mocap = bvh_pkg.Bvh(path.read_text())
        assert mocap.nframes == len(joints)
        assert mocap.frame_time == pytest.approx(0.05)
        positions = _bvh_positions(mocap)
        recon = np.stack([positions[name] for name in JOINT_NAMES], axis=1)  # (T, 22, 3)
        err = np.linalg.norm(recon - joints.astype(np.float64), axis=-1).max()
        worst = max(worst, err)
        assert err < 0.01, f"{key}: {err * 100:.2f} cm"
    print(f"worst BVH error on the mini set: {worst * 100:.3f} cm")


def test_bvh_structure_one_root_named_joints_end_sites_on_leaves(clips):
    text = bvh_text(next(iter(clips.values()))[:10], fps=20)
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0] == "HIERARCHY" and "MOTION" in lines
    assert sum(line.startswith("ROOT ") for line in lines) == 1
    mocap = bvh_pkg.Bvh(text)
    assert sorted(mocap.get_joints_names()) == sorted(JOINT_NAMES)
    assert mocap.get_joints_names()[0] == "pelvis"
    assert mocap.joint_channels("pelvis") == ["Xposition", "Yposition", "Zposition",
                                              "Zrotation", "Xrotation", "Yrotation"]
    assert all(mocap.joint_channels(n) == ["Zrotation", "Xrotation", "Yrotation"] for n in JOINT_NAMES[1:])
    with_end_site = {node.name for node in mocap.get_joints() if list(node.filter("End"))}
    assert with_end_site == LEAVES
    assert len(mocap.frames) == 10 and all(len(row) == 6 + 3 * 21 for row in mocap.frames)


def test_npz_round_trip(clips, tmp_path):
    joints = next(iter(clips.values()))[:50]
    feats = joints_to_features(joints)
    path = save_motion_npz(tmp_path / "motion.npz", joints, features=feats, fps=20,
                           segment_texts=["walk forward", "turn left"], boundaries=[0, 30, 50],
                           model_id="kmm-test", seed=7, extra={"guidance": np.float32(2.5)})
    out = load_motion_npz(path)
    assert out["joints"].dtype == np.float32 and np.allclose(out["joints"], joints.astype(np.float32))
    assert np.array_equal(out["features"], feats)
    assert out["fps"] == 20 and out["seed"] == 7 and out["model_id"] == "kmm-test"
    assert out["segment_texts"] == ["walk forward", "turn left"]
    assert out["boundaries"].tolist() == [0, 30, 50]
    assert float(out["guidance"]) == 2.5
    bare = load_motion_npz(save_motion_npz(tmp_path / "bare.npz", joints))
    assert bare["features"] is None and bare["segment_texts"] == [] and bare["seed"] == -1
    with pytest.raises(ValueError):
        save_motion_npz(tmp_path / "bad.npz", joints, extra={"seed": 1})


SHIPPED = __import__("pathlib").Path(__file__).resolve().parents[1] / "assets" / "kmm"


@pytest.mark.skipif(not (SHIPPED / "kmm").is_dir(), reason="shipped weights not present")
def test_generated_timeline_bvh_matches_its_npz_within_3cm(tmp_path):
    """A generated 3-segment timeline written as .bvh (offsets = the one rest skeleton) and .npz: the file read
    back by the PyPI parser and our own FK gives the .npz joints at every joint and frame; bones are constant."""
    from kmm.motion.retarget import REST_OFFSETS, bone_lengths
    from kmm.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(SHIPPED, "kmm")
    out = pipe.generate([("a person walks forward", 2.0), ("a person turns left", 1.6), ("a person waves", 2.0)],
                        seed=0)
    write_bvh(tmp_path / "t.bvh", out.joints, offsets=REST_OFFSETS)
    save_motion_npz(tmp_path / "t.npz", out.joints, features=out.features, boundaries=out.boundaries)
    joints = load_motion_npz(tmp_path / "t.npz")["joints"].astype(np.float64)
    with open(tmp_path / "t.bvh") as fh:
        positions = _bvh_positions(bvh_pkg.Bvh(fh.read()))
    err = np.stack([np.linalg.norm(positions[n] - joints[:, j], axis=-1) for j, n in enumerate(JOINT_NAMES)])
    assert err.max() < 0.03, err.max()
    assert bone_lengths(joints).std(0).max() < 0.01
