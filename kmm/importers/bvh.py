"""BVH folder + captions file -> dataset folder (`python -m kmm data import-bvh BVH_DIR --captions FILE --out DIR`).

Per file:
1. parse HIERARCHY (ROOT/JOINT/End Site, OFFSET, CHANNELS in any order) and MOTION (Frames, Frame Time);
2. forward kinematics: a joint's local rotation is the product of its rotation channels in the order they are
   listed (``Zrotation Xrotation Yrotation`` -> Rz @ Rx @ Ry, degrees); position channels replace the OFFSET
   (as Blender reads them); global = parent global @ local;
3. pick our 22 joints by name: the rig is recognised from its joint names (`RIGS`: ours as
   `kmm/motion/bvh.py` writes it, SMPL-style, Mixamo, CMU) or given by a JSON mapping file
   ``{"pelvis": "root", "left_hip": "thigh_l", ...}`` with all 22 of `skeleton.JOINT_NAMES` as keys;
4. unit: given (`--unit`), else the one of `UNITS` that gives the rest skeleton an adult's ankle-to-head
   length (about 1.35 m); Z-up files are turned to Y up (`--up z`);
5. per caption record: the [start, end) seconds of the file (whole file without them), resampled to 20 fps,
   floor at y = 0.
A file that fails any step is reported and skipped; the rest of the folder is still imported.

Captions file, CSV with a header or JSONL, one record per clip (rows with the same file/start/end merge):
    file,caption,start,end            {"file": "walk.bvh", "captions": ["a person walks"], "start": 0, "end": 2.5}
    walk.bvh,a person walks,0,2.5
Columns: `file` (path relative to the folder, or a bare name), `caption` (or `captions`, several joined with
"|"; JSONL: a list), optional `start`/`end` (seconds; empty or 0 end = to the end), `split` (fixes the split),
`id`, and any other column usable as the split key (`--split-by`).
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmm.errors import BvhError  # noqa: F401  (defined in kmm/errors.py; this name kept)
from kmm.importers.common import ClipError, ImportedClip, ImportReport, check_joints, floor_at_zero, resample
from kmm.motion.skeleton import JOINT_NAMES


# --- rigs: our joint -> the rig's joint name (compared after `normalize_name`) ------------------------

_SMPL_STYLE = ("Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3",
               "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow",
               "R_Elbow", "L_Wrist", "R_Wrist")
_MIXAMO = ("Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1", "LeftFoot", "RightFoot",
           "Spine2", "LeftToeBase", "RightToeBase", "Neck", "LeftShoulder", "RightShoulder", "Head", "LeftArm",
           "RightArm", "LeftForeArm", "RightForeArm", "LeftHand", "RightHand")
# CMU (cgspeed / Motionbuilder BVH): Hips > LowerBack > Spine > Spine1 > Neck > Neck1 > Head; no Spine2, so the
# spine shifts up one joint (its heights match SMPL's within a few cm).
_CMU = ("Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1", "LeftFoot", "RightFoot",
        "Neck", "LeftToeBase", "RightToeBase", "Neck1", "LeftShoulder", "RightShoulder", "Head", "LeftArm",
        "RightArm", "LeftForeArm", "RightForeArm", "LeftHand", "RightHand")
RIGS: dict[str, tuple[str, ...]] = {"kmm": JOINT_NAMES, "smpl": _SMPL_STYLE, "mixamo": _MIXAMO, "cmu": _CMU}

# metres per file unit; "cmu": the CMU ASF length unit (inches / 0.45) that CMU BVH conversions keep
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.0254 / 0.45}
ADULT_CHAIN_M = 1.35   # ankle-knee-hip-pelvis-spine1-spine2-spine3-neck-head, of an adult (REST_OFFSETS: 1.34)
_CHAIN = (7, 4, 1, 0, 3, 6, 9, 12, 15)


def normalize_name(name: str) -> str:
    """'mixamorig:LeftUpLeg' -> 'leftupleg'; 'L_Hip' -> 'lhip' (namespace, case and separators dropped)."""
    return re.sub(r"[^a-z0-9]", "", name.rsplit(":", 1)[-1].lower())


# --- parsing -----------------------------------------------------------------------------------------

@dataclass
class Bvh:
    names: list[str]
    parents: list[int]
    offsets: np.ndarray            # (J, 3) file units
    channels: list[list[str]]      # per joint, e.g. ["Xposition", ..., "Zrotation", ...]
    frame_time: float              # seconds
    values: np.ndarray             # (F, sum of channels)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


_CHANNELS = {"xposition", "yposition", "zposition", "xrotation", "yrotation", "zrotation"}


def parse_bvh(text: str, where: str = "<bvh>") -> Bvh:
    tokens = text.split()
    pos = 0

    def take(expected: str | None = None) -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise BvhError(f"{where}: file ends early" + (f" (expected {expected!r})" if expected else ""))
        tok = tokens[pos]
        pos += 1
        if expected is not None and tok.upper() != expected.upper():
            raise BvhError(f"{where}: expected {expected!r}, found {tok!r} (token {pos})")
        return tok

    def number(what: str) -> float:
        tok = take()
        try:
            return float(tok)
        except ValueError:
            raise BvhError(f"{where}: {what}: {tok!r} is not a number") from None

    names, parents, offsets, channels = [], [], [], []
    take("HIERARCHY")
    stack: list[int] = []   # open joints; -2 marks an End Site block
    kind = take()
    if kind.upper() != "ROOT":
        raise BvhError(f"{where}: expected ROOT after HIERARCHY, found {kind!r}")
    while True:
        if kind.upper() in ("ROOT", "JOINT"):
            name = take()
            parents.append(next((j for j in reversed(stack) if j >= 0), -1) if stack else -1)
            names.append(name)
            take("{")
            take("OFFSET")
            offsets.append([number(f"OFFSET of {name}") for _ in range(3)])
            chans: list[str] = []
            if pos < len(tokens) and tokens[pos].upper() == "CHANNELS":
                take()
                n = number(f"CHANNELS count of {name}")
                chans = [take() for _ in range(int(n))]
                bad = [c for c in chans if c.lower() not in _CHANNELS]
                if bad:
                    raise BvhError(f"{where}: joint {name!r} has unknown channel(s) {bad}")
            channels.append(chans)
            stack.append(len(names) - 1)
        elif kind.upper() == "END":
            take("Site")
            take("{")
            take("OFFSET")
            for _ in range(3):
                number("End Site OFFSET")
            stack.append(-2)
        elif kind == "}":
            if not stack:
                raise BvhError(f"{where}: unbalanced '}}' in HIERARCHY")
            stack.pop()
        else:
            raise BvhError(f"{where}: unexpected {kind!r} in HIERARCHY")
        kind = take()
        if not stack:
            if kind.upper() != "MOTION":
                raise BvhError(f"{where}: expected MOTION after the hierarchy, found {kind!r}")
            break
    take("Frames:")
    n_frames = int(number("Frames"))
    take("Frame")
    take("Time:")
    frame_time = number("Frame Time")
    if frame_time <= 0:
        raise BvhError(f"{where}: Frame Time must be positive, got {frame_time}")
    width = sum(len(c) for c in channels)
    rest = tokens[pos:]
    if len(rest) < n_frames * width:
        raise BvhError(f"{where}: MOTION holds {len(rest)} values, expected {n_frames} frames × {width} channels "
                       "(truncated file?)")
    try:
        values = np.asarray(rest[:n_frames * width], dtype=np.float64).reshape(n_frames, width)
    except ValueError:
        raise BvhError(f"{where}: MOTION holds a value that is not a number") from None
    if not np.isfinite(values).all():
        raise BvhError(f"{where}: MOTION holds non-finite values")
    if n_frames < 1:
        raise BvhError(f"{where}: no frames")
    return Bvh(names, parents, np.asarray(offsets, dtype=np.float64), channels, frame_time, values)


def read_bvh(path: str | Path) -> Bvh:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise BvhError(f"{path}: cannot read ({e.strerror or e})") from None
    return parse_bvh(text, str(path))


# --- forward kinematics ------------------------------------------------------------------------------

def _axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:  # (F,) -> (F, 3, 3)
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    rows = {"x": ((one, zero, zero), (zero, c, -s), (zero, s, c)),
            "y": ((c, zero, s), (zero, one, zero), (-s, zero, c)),
            "z": ((c, -s, zero), (s, c, zero), (zero, zero, one))}[axis]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def forward_kinematics(bvh: Bvh, rest: bool = False) -> np.ndarray:
    """Global joint positions (F, J, 3) in file units; rest=True: the skeleton with every channel at zero
    rotation and the OFFSETs as positions, (1, J, 3)."""
    F = 1 if rest else len(bvh.values)
    J = len(bvh.names)
    glob_r = np.zeros((J, F, 3, 3))
    glob_p = np.zeros((J, F, 3))
    col = 0
    for j in range(J):
        rot = np.broadcast_to(np.eye(3), (F, 3, 3)).copy()
        trans = np.broadcast_to(bvh.offsets[j], (F, 3)).copy()
        for ch in bvh.channels[j]:
            axis, kind = ch[0].lower(), ch[1:].lower()
            if not rest:
                v = bvh.values[:, col]
                if kind == "position":
                    trans[:, "xyz".index(axis)] = v
                else:
                    rot = rot @ _axis_rotation(axis, v)
            col += 1
        p = bvh.parents[j]
        if p < 0:
            glob_r[j], glob_p[j] = rot, trans
        else:
            glob_r[j] = glob_r[p] @ rot
            glob_p[j] = glob_p[p] + np.einsum("fij,fj->fi", glob_r[p], trans)
    return glob_p.transpose(1, 0, 2)


# --- rig mapping and units ---------------------------------------------------------------------------

def load_mapping(path: str | Path) -> dict[str, str]:
    """A user mapping file: JSON object, our 22 joint names -> the rig's joint names."""
    path = Path(path)
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read the joint mapping ({e})") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise ValueError(f"{path}: expected a JSON object of joint name strings, e.g. "
                         '{"pelvis": "Hips", "left_hip": "LeftUpLeg", ...}')
    unknown = sorted(set(mapping) - set(JOINT_NAMES))
    missing = [n for n in JOINT_NAMES if n not in mapping]
    if unknown or missing:
        raise ValueError(f"{path}: joint mapping keys must be our 22 joints; unknown {unknown}, missing {missing}")
    return mapping


def joint_indices(names: list[str], mapping: dict[str, str] | None = None) -> tuple[str, list[int]]:
    """(rig name, index in `names` of each of our 22 joints). Raises ValueError naming what is missing."""
    index = {normalize_name(n): i for i, n in enumerate(names)}
    if mapping is not None:
        missing = [f"{ours}->{theirs}" for ours, theirs in mapping.items() if normalize_name(theirs) not in index]
        if missing:
            raise ValueError(f"joints of the mapping file not in this file: {', '.join(missing)}")
        return "mapping file", [index[normalize_name(mapping[n])] for n in JOINT_NAMES]
    best = None
    for rig, rig_names in RIGS.items():
        missing = [n for n in rig_names if normalize_name(n) not in index]
        if not missing:
            return rig, [index[normalize_name(n)] for n in rig_names]
        if best is None or len(missing) < len(best[1]):
            best = (rig, missing)
    assert best is not None
    rig, missing = best
    if len(missing) == len(RIGS[rig]):
        raise ValueError(f"unknown rig (joints {', '.join(names[:6])}, ...): none of the known rigs "
                         f"({', '.join(RIGS)}) matches; write a JSON mapping file and pass --mapping")
    raise ValueError(f"missing joints for rig {rig!r}: {', '.join(missing)} (pass --mapping for other rigs)")


def detect_unit(rest: np.ndarray) -> str:
    """The unit of `UNITS` that makes the (22, 3) rest skeleton an adult's size; ValueError if none does."""
    chain = sum(float(np.linalg.norm(rest[a] - rest[b])) for a, b in zip(_CHAIN[:-1], _CHAIN[1:]))
    if chain <= 0:
        raise ValueError("the rest skeleton has zero size: cannot detect its unit (pass --unit)")
    unit = min(UNITS, key=lambda u: abs(np.log(chain * UNITS[u] / ADULT_CHAIN_M)))
    metres = chain * UNITS[unit]
    if not 0.6 <= metres <= 2.4:
        raise ValueError(f"cannot tell the unit: ankle-to-head length is {chain:.3g} file units "
                         f"({metres:.2f} m as {unit}); pass --unit ({', '.join(UNITS)})")
    return unit


def bvh_joints(bvh: Bvh, *, mapping: dict[str, str] | None = None, unit: str | None = None,
               up: str = "y") -> tuple[np.ndarray, dict]:
    """-> (F, 22, 3) metres, Y up, at the file's frame rate (not floored), and {rig, unit, src_fps}."""
    rig, idx = joint_indices(bvh.names, mapping)
    rest = forward_kinematics(bvh, rest=True)[0][idx]                       # (22, 3) file units
    unit = unit or detect_unit(rest)
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
    x = forward_kinematics(bvh)[:, idx] * UNITS[unit]                       # (F, 22, 3) metres
    if up == "z":   # Z up -> Y up: rotate -90° about X (right-handed kept)
        x = np.stack([x[..., 0], x[..., 2], -x[..., 1]], -1)
    elif up != "y":
        raise ValueError(f"--up must be y or z, got {up!r}")
    return x, {"rig": rig, "unit": unit, "src_fps": round(bvh.fps, 4)}


# --- captions file -----------------------------------------------------------------------------------

@dataclass
class CaptionRecord:
    file: str
    captions: list[str]
    start: float | None
    end: float | None
    fields: dict
    where: str


def _seconds(value, what: str, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} {value!r} is not a number of seconds") from None
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{where}: {what} must be a non-negative number of seconds, got {value!r}")
    return v


def read_captions(path: str | Path) -> list[CaptionRecord]:
    """CSV (header row) or JSONL captions file -> records, rows of the same file/start/end merged."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: captions file not found")
    rows: list[tuple[dict, str]] = []
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".jsonl", ".json"):
        from kmm.data import jsonl_objects

        rows.extend(jsonl_objects(text.splitlines(), path, ValueError))
    else:
        reader = csv.DictReader(text.splitlines())
        cols = {c.strip().lower() for c in reader.fieldnames or []}
        if "file" not in cols or not cols & {"caption", "captions"}:
            raise ValueError(f"{path}: the CSV header must name a 'file' and a 'caption' column "
                             f"(found {sorted(cols)})")
        for lineno, row in enumerate(reader, 2):
            rows.append(({(k or "").strip().lower(): v for k, v in row.items()}, f"{path}:{lineno}"))
    merged: dict[tuple, CaptionRecord] = {}
    for row, where in rows:
        file = row.get("file") or row.get("path") or row.get("name")
        if not isinstance(file, str) or not file.strip():
            raise ValueError(f"{where}: record without a 'file'")
        caps = row.get("captions", row.get("caption"))
        if isinstance(caps, str):
            caps = [c.strip() for c in caps.split("|")]
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise ValueError(f"{where}: 'captions' must be a string or a list of strings")
        caps = [c.strip() for c in caps if c.strip()]
        if not caps:
            raise ValueError(f"{where}: record for {file!r} has no caption")
        start = _seconds(row.get("start"), "start", where)
        end = _seconds(row.get("end"), "end", where) or None   # 0 = to the end (HumanML3D's convention)
        if start is not None and end is not None and end <= start:
            raise ValueError(f"{where}: end {end} s is not after start {start} s")
        fields = {k: str(v) for k, v in row.items()
                  if k not in ("file", "path", "name", "caption", "captions", "start", "end") and v not in (None, "")}
        key = (file.strip(), start or 0.0, end)
        if key in merged:
            merged[key].captions += [c for c in caps if c not in merged[key].captions]
        else:
            merged[key] = CaptionRecord(file.strip(), caps, start, end, fields, where)
    return list(merged.values())


# --- the folder --------------------------------------------------------------------------------------

def _split_key(rec: CaptionRecord, rel: str, split_by: str) -> str:
    if split_by == "file":
        return rel
    if split_by == "caption":
        return rec.captions[0].lower()
    if split_by == "subject" and "subject" not in rec.fields:
        return re.split(r"[_\-\s]", Path(rel).stem, maxsplit=1)[0]
    if split_by not in rec.fields:
        raise ValueError(f"{rec.where}: no {split_by!r} value for the split key (--split-by)")
    return rec.fields[split_by]


def import_bvh_folder(folder: str | Path, captions: str | Path, *, mapping: str | Path | None = None,
                      unit: str | None = None, up: str = "y", split_by: str = "file"
                      ) -> tuple[list[ImportedClip], ImportReport]:
    """Every captioned BVH file of `folder` (searched recursively) -> clips; problems go to the report."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: BVH folder not found")
    if unit is not None and unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose from {', '.join(UNITS)}")
    joint_map = load_mapping(mapping) if mapping else None
    records = read_captions(captions)
    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.suffix.lower() == ".bvh"}
    by_name: dict[str, list[str]] = {}
    for rel in files:
        by_name.setdefault(Path(rel).name, []).append(rel)
        by_name.setdefault(Path(rel).stem, []).append(rel)
    report = ImportReport()
    per_file: dict[str, list[CaptionRecord]] = {}
    for rec in records:
        rel = rec.file if rec.file in files else None
        if rel is None:
            hits = by_name.get(Path(rec.file).name) or by_name.get(rec.file) or []
            if len(hits) > 1:
                report.skipped.append((rec.file, f"{rec.where}: ambiguous, matches {hits}"))
                continue
            rel = hits[0] if hits else None
        if rel is None:
            report.skipped.append((rec.file, f"{rec.where}: no such BVH file in {folder}"))
            continue
        per_file.setdefault(rel, []).append(rec)
    for rel in files:
        if rel not in per_file:
            report.skipped.append((rel, "no caption in the captions file"))
    clips: list[ImportedClip] = []
    for rel, recs in per_file.items():
        try:
            bvh = read_bvh(files[rel])
            x, meta = bvh_joints(bvh, mapping=joint_map, unit=unit, up=up)
        except (BvhError, ValueError) as e:
            report.skipped.append((rel, str(e).replace(f"{files[rel]}: ", "")))
            continue
        recs = sorted(recs, key=lambda r: (r.start or 0.0, r.end or np.inf))
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", rel[: -len(Path(rel).suffix)])
        for k, rec in enumerate(recs):
            clip_id = rec.fields.get("id") or (stem if len(recs) == 1 else f"{stem}_{k}")
            a = int(round((rec.start or 0.0) * bvh.fps))
            b = len(x) if rec.end is None else min(len(x), int(round(rec.end * bvh.fps)) + 1)
            try:
                if a >= len(x):
                    raise ClipError(f"start {rec.start} s is past the end of the file ({len(x) / bvh.fps:.2f} s)")
                joints = check_joints(floor_at_zero(resample(x[a:b], bvh.fps)), rec.where)
                key = _split_key(rec, rel, split_by)
            except (ClipError, ValueError) as e:
                report.skipped.append((f"{rel} [{rec.start or 0}-{rec.end or 'end'} s]", str(e)))
                continue
            split = rec.fields.get("split")
            clips.append(ImportedClip(clip_id, joints, rec.captions, key, split,
                                      {"source": rel, "start_s": rec.start or 0.0, "end_s": rec.end, **meta}))
            report.imported.append(clip_id)
    return clips, report
