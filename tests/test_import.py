"""Importers: BVH of three rigs (ours, CMU-named, Mixamo-named; m/cm/inch; 60/30/24 fps) against known joint
positions, broken and unknown-rig files reported while the rest is imported, and a HumanML3D-layout folder."""
import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kmm.cli import main
from kmm.data import load_dataset
from kmm.motion.retarget import REST_OFFSETS
from kmm.motion.skeleton import FOOT_JOINTS, JOINT_NAMES, PARENTS

CMU_NAMES = ("Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1", "LeftFoot", "RightFoot",
             "Neck", "LeftToeBase", "RightToeBase", "Neck1", "LeftShoulder", "RightShoulder", "Head", "LeftArm",
             "RightArm", "LeftForeArm", "RightForeArm", "LeftHand", "RightHand")
MIXAMO_NAMES = tuple("mixamorig:" + n for n in ("Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg",
                                                  "Spine1", "LeftFoot", "RightFoot", "Spine2", "LeftToeBase",
                                                  "RightToeBase", "Neck", "LeftShoulder", "RightShoulder", "Head",
                                                  "LeftArm", "RightArm", "LeftForeArm", "RightForeArm", "LeftHand",
                                                  "RightHand"))


def _skeleton(names, extras):
    """(names, parents, offsets in metres): our 22 joints renamed, plus extra joints {name: (parent, child)}
    inserted with zero offset between a parent and one of its children (like CMU's LHipJoint) or as leaves."""
    out_names, parents, offsets = [], [], []

    def add(name, parent, offset):
        out_names.append(name)
        parents.append(out_names.index(parent) if parent is not None else -1)
        offsets.append(np.asarray(offset, dtype=np.float64))

    def visit(j):
        parent = names[PARENTS[j]] if j else None
        for extra, (p, child) in extras.items():
            if child == names[j]:
                add(extra, parent, (0.0, 0.0, 0.0))
                parent = extra
        add(names[j], parent, REST_OFFSETS[j])
        for extra, (p, child) in extras.items():
            if p == names[j] and child is None:
                add(extra, names[j], (0.0, 0.05, 0.02))
        for c in [k for k in range(22) if PARENTS[k] == j]:
            visit(c)

    visit(0)
    return out_names, parents, np.stack(offsets)


def _angles(names, t):
    """Per-joint Euler angles (degrees, as (a1, a2, a3) in channel order) at times t (F,): a slow, varied motion."""
    w = 2 * np.pi * 0.5 * t
    out = np.zeros((len(t), len(names), 3))
    for j, name in enumerate(names):
        k = j + 1
        out[:, j] = np.stack([12 * np.sin(w + k), 9 * np.sin(0.7 * w + 2 * k), 7 * np.cos(0.9 * w + k)], -1)
    return out


def _fk(parents, offsets, angles, order, root):  # independent FK with scipy -> (F, J, 3)
    F, J = angles.shape[:2]
    glob_r = [None] * J
    glob_p = np.zeros((F, J, 3))
    for j in range(J):
        local = Rotation.from_euler(order.upper(), angles[:, j].reshape(-1, 3), degrees=True).as_matrix()
        trans = root if j == 0 else np.broadcast_to(offsets[j], (F, 3))
        if parents[j] < 0:
            glob_r[j], glob_p[:, j] = local, trans
        else:
            p = parents[j]
            glob_r[j] = glob_r[p] @ local
            glob_p[:, j] = glob_p[:, p] + np.einsum("fij,fj->fi", glob_r[p], trans)
    return glob_p


def _write_bvh(path, names, parents, offsets, angles, order, root, fps, unit, pos_all=False):
    """A BVH file in `unit` (metres per unit), rotation channels in `order` (e.g. "zyx")."""
    rot_ch = " ".join(f"{a.upper()}rotation" for a in order)
    lines = ["HIERARCHY"]

    def write(j, depth):
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {names[j]}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {' '.join(f'{v / unit:.6f}' for v in offsets[j])}")
        n = 6 if (j == 0 or pos_all) else 3
        pos_ch = "Xposition Yposition Zposition " if n == 6 else ""
        lines.append(f"{pad}  CHANNELS {n} {pos_ch}{rot_ch}")
        kids = [k for k in range(len(names)) if parents[k] == j]
        for k in kids:
            write(k, depth + 1)
        if not kids:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0 {0.05 / unit:.4f} 0", f"{pad}  }}"])
        lines.append(pad + "}")

    write(0, 0)
    order_dfs = []

    def dfs(j):
        order_dfs.append(j)
        for k in [k for k in range(len(names)) if parents[k] == j]:
            dfs(k)

    dfs(0)
    lines += ["MOTION", f"Frames: {len(root)}", f"Frame Time: {1 / fps:.8f}"]
    for f in range(len(root)):
        row = []
        for j in order_dfs:
            if j == 0 or pos_all:
                row += list((root[f] if j == 0 else offsets[j]) / unit)
            row += list(angles[f, j])
        lines.append(" ".join(f"{v:.6f}" for v in row))
    path.write_text("\n".join(lines) + "\n")


RIGS = {  # name: (joint names, extras, rotation order, fps, metres per unit, position channels on every joint)
    "ours": (JOINT_NAMES, {}, "zxy", 60, 1.0, False),
    "cmu": (CMU_NAMES, {"LHipJoint": ("Hips", "LeftUpLeg"), "RHipJoint": ("Hips", "RightUpLeg"),
                        "LowerBack": ("Hips", "Spine"), "LeftHandIndex1": ("LeftHand", None),
                        "RThumb": ("RightHand", None)}, "zyx", 30, 0.01, False),
    "mixamo": (MIXAMO_NAMES, {"mixamorig:HeadTop_End": ("mixamorig:Head", None)}, "zxy", 24, 0.0254, True),
}
UNIT_NAMES = {1.0: "m", 0.01: "cm", 0.0254: "inch"}


def _expected(names, parents, offsets, order, seconds, fps):
    t = np.arange(int(round(seconds * fps)) + 1) / fps
    root = np.stack([0.1 * np.sin(np.pi * t), 0.95 + 0.02 * np.sin(2 * np.pi * t), 0.6 * t], -1)
    angles = _angles(names, t)
    return t, root, angles, _fk(parents, offsets, angles, order, root)


def _ours_index(names, rig_names):
    return [names.index(n) for n in rig_names]


@pytest.fixture(scope="module")
def bvh_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bvh")
    expected = {}
    for rig, (rig_names, extras, order, fps, unit, pos_all) in RIGS.items():
        names, parents, offsets = _skeleton(rig_names, extras)
        t, root_path, angles, _ = _expected(names, parents, offsets, order, 3.0, fps)
        _write_bvh(root / f"{rig}_01.bvh", names, parents, offsets, angles, order, root_path, fps, unit, pos_all)
        _, _, _, at20 = _expected(names, parents, offsets, order, 3.0, 20)   # the true motion at 20 fps
        joints = at20[:, _ours_index(names, rig_names)]
        joints[..., 1] -= joints[:, list(FOOT_JOINTS), 1].min()
        expected[rig] = joints
    from kmm.motion.bvh import write_bvh   # our own exporter (IK against offsets fitted to the clip)

    write_bvh(root / "export_01.bvh", expected["ours"], fps=20)
    expected["export"] = expected["ours"]
    (root / "broken.bvh").write_text((root / "ours_01.bvh").read_text()[:3000])       # truncated hierarchy
    (root / "robot.bvh").write_text((root / "ours_01.bvh").read_text().replace("left_knee", "servo_7"))
    (root / "nocaption.bvh").write_text((root / "ours_01.bvh").read_text())
    captions = root / "captions.csv"
    captions.write_text("file,caption,start,end,subject\n"
                        "ours_01.bvh,a person walks forward,,,s1\n"
                        "ours_01.bvh,someone walks ahead,,,s1\n"
                        "cmu_01.bvh,a person sways|a person leans,,,s2\n"
                        "export_01.bvh,exported by kmm,,,s7\n"
                        "mixamo_01.bvh,first part,0,1.5,s3\n"
                        "mixamo_01.bvh,second part,1.5,3.0,s3\n"
                        "broken.bvh,never imported,,,s4\n"
                        "robot.bvh,never imported,,,s5\n"
                        "missing.bvh,no such file,,,s6\n")
    return root, expected


def test_import_bvh_three_rigs_match_known_positions(bvh_folder, tmp_path, capsys):
    folder, expected = bvh_folder
    out = tmp_path / "mydata"
    assert main(["data", "import-bvh", str(folder), "--captions", str(folder / "captions.csv"),
                 "--out", str(out), "--split", "1,1,1"]) == 0
    printed = capsys.readouterr().out
    for name in ("broken.bvh", "robot.bvh", "missing.bvh", "nocaption.bvh"):
        assert name in printed
    assert "missing joints for rig 'kmm': left_knee" in printed
    dataset = load_dataset(out, prepare=False)
    records = {r["id"]: r for r in map(json.loads, (out / "captions.jsonl").read_text().splitlines())}
    assert sorted(records) == ["cmu_01", "export_01", "mixamo_01_0", "mixamo_01_1", "ours_01"]
    assert {records[i]["rig"] for i in records} == {"kmm", "cmu", "mixamo"}
    for rig, (_, _, _, fps, unit, _) in RIGS.items():
        clip_id = {"ours": "ours_01", "cmu": "cmu_01", "mixamo": "mixamo_01_0"}[rig]
        assert records[clip_id]["unit"] == UNIT_NAMES[unit] and records[clip_id]["src_fps"] == pytest.approx(fps)
    assert dataset["ours_01"].captions == ["a person walks forward", "someone walks ahead"]
    assert dataset["cmu_01"].captions == ["a person sways", "a person leans"]
    for rig in ("ours", "cmu", "export"):
        got = dataset[f"{rig}_01"].joints
        want = expected[rig]
        assert got.shape == want.shape == (61, 22, 3)
        assert np.abs(got - want).max() < 0.01, rig                     # < 1 cm everywhere
    # Mixamo: two captioned spans of one file, each floored on its own
    want = expected["mixamo"]
    for clip_id, (a, b) in (("mixamo_01_0", (0, 31)), ("mixamo_01_1", (30, 61))):
        part = want[a:b].copy()
        part[..., 1] -= part[:, list(FOOT_JOINTS), 1].min()
        got = dataset[clip_id].joints
        assert got.shape == part.shape and np.abs(got - part).max() < 0.01, clip_id
        assert got[:, list(FOOT_JOINTS), 1].min() == pytest.approx(0.0, abs=1e-6)
    assert set(dataset.splits) <= {"train", "val", "test"}
    assert records["mixamo_01_0"]["split"] == records["mixamo_01_1"]["split"]   # split by file


def test_import_bvh_mapping_file_and_refusals(bvh_folder, tmp_path, capsys):
    folder, expected = bvh_folder
    mapping = dict(zip(JOINT_NAMES, JOINT_NAMES))
    mapping["left_knee"] = "servo_7"
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    (tmp_path / "c.jsonl").write_text(json.dumps({"file": "robot.bvh", "captions": ["a robot walks"]}) + "\n")
    out = tmp_path / "robot"
    assert main(["data", "import-bvh", str(folder), "--captions", str(tmp_path / "c.jsonl"), "--out", str(out),
                 "--mapping", str(tmp_path / "map.json"), "--unit", "m"]) == 0
    got = load_dataset(out, prepare=False)["robot"].joints
    assert np.abs(got - expected["ours"]).max() < 0.01
    # an existing dataset is not replaced without --overwrite; a bad unit is named
    before = (out / "motions.npz").read_bytes()
    assert main(["data", "import-bvh", str(folder), "--captions", str(tmp_path / "c.jsonl"), "--out", str(out),
                 "--mapping", str(tmp_path / "map.json")]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "motions.npz").read_bytes() == before
    assert main(["data", "import-bvh", str(folder), "--captions", str(tmp_path / "c.jsonl"), "--out",
                 str(tmp_path / "x"), "--unit", "furlong"]) == 2
    assert "unknown unit 'furlong'" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_import_humanml3d_layout(tmp_path):
    src = tmp_path / "HumanML3D"
    (src / "new_joints").mkdir(parents=True)
    (src / "texts").mkdir()
    rng = np.random.default_rng(0)
    motions = {}
    for name in ("000001", "000002", "000003", "M000001"):
        x = rng.normal(0, 0.3, (60, 22, 3)).astype(np.float32)
        x[..., 1] += 1.0                                                    # floating 1 m up: gets floored
        motions[name] = x
        np.save(src / "new_joints" / f"{name}.npy", x)
    (src / "texts" / "000001.txt").write_text("a person walks.#a/DET person/NOUN#0.0#0.0\n"
                                              "someone strolls.#someone/PRON#0.0#0.0\n"
                                              "a person waves.#a/DET#1.0#2.5\n")
    (src / "texts" / "000002.txt").write_text("a person jumps.#a/DET#0.0#0.0\n")
    (src / "texts" / "M000001.txt").write_text("mirrored.#x#0.0#0.0\n")
    (src / "train.txt").write_text("000001\nM000001\n000003\n")
    (src / "val.txt").write_text("000002\n")
    (src / "test.txt").write_text("")
    out = tmp_path / "h3d"
    assert main(["data", "import-humanml3d", str(src), "--out", str(out)]) == 0
    ds = load_dataset(out, prepare=False)
    assert sorted(c.id for c in ds.clips()) == ["000001", "000001_20_50", "000002"]   # 000003 has no texts
    assert ds["000001"].captions == ["a person walks.", "someone strolls."] and ds["000001"].split == "train"
    assert ds["000001_20_50"].captions == ["a person waves."] and ds["000001_20_50"].split == "train"
    assert ds["000002"].split == "val"
    want = motions["000001"] - [0, motions["000001"][:, list(FOOT_JOINTS), 1].min(), 0]
    assert np.abs(ds["000001"].joints - want).max() < 1e-5
    assert ds["000001_20_50"].n_frames == 30
