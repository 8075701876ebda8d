"""HumanML3D layout -> dataset folder (`python -m kmm data import-humanml3d DIR --out DATA_DIR`).

Reads the standard layout:
    DIR/new_joints/<name>.npy     (T, 22, 3) joint positions, 20 fps, metres, Y up (SMPL joint order)
    DIR/texts/<name>.txt          lines `caption#tokens#start#end` (seconds; 0.0#0.0 = the whole clip)
    DIR/train.txt, val.txt, test.txt   one name per line
1. each name of a split file: its joints (floored at y = 0) and its text lines;
2. lines with start = end = 0 caption the whole clip (id = name); lines with a time span make one more
   clip per distinct span (id = `name_<start frame>_<end frame>`), in the same split as its parent;
3. the mirrored copies HumanML3D ships (`M<name>`) are left out unless keep_mirrored: our training
   mirrors every clip itself.
KIT-ML's `new_joints` hold 21 joints of another skeleton (millimetres, 12.5 fps): refused with a message.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kmm.importers.common import SPLITS, ClipError, ImportedClip, ImportReport, check_joints, floor_at_zero
from kmm.motion.skeleton import FPS, N_JOINTS


def read_texts(path: Path) -> dict[tuple[float, float], list[str]]:
    """A HumanML3D text file -> {(start_s, end_s): captions}; (0.0, 0.0) = the whole clip."""
    spans: dict[tuple[float, float], list[str]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split("#")
        if len(parts) < 4:
            raise ClipError(f"{path}:{lineno}: expected caption#tokens#start#end")
        try:
            start, end = float(parts[-2] or 0), float(parts[-1] or 0)
        except ValueError:
            raise ClipError(f"{path}:{lineno}: start/end {parts[-2]!r}/{parts[-1]!r} are not numbers") from None
        caption = "#".join(parts[:-3]).strip()
        if np.isnan(start) or np.isnan(end):
            start = end = 0.0
        if caption:
            caps = spans.setdefault((start, end), [])
            if caption not in caps:
                caps.append(caption)
    return spans


def import_humanml3d(folder: str | Path, *, keep_mirrored: bool = False) -> tuple[list[ImportedClip], ImportReport]:
    folder = Path(folder)
    joints_dir, texts_dir = folder / "new_joints", folder / "texts"
    for path in (joints_dir, texts_dir):
        if not path.is_dir():
            raise ValueError(f"{path}: missing (expected the HumanML3D layout: new_joints/, texts/, train.txt, ...)")
    split_files = [folder / f"{s}.txt" for s in SPLITS if (folder / f"{s}.txt").is_file()]
    if not split_files:
        raise ValueError(f"{folder}: no train.txt / val.txt / test.txt")
    report = ImportReport()
    clips: list[ImportedClip] = []
    seen: set[str] = set()
    for split_file in split_files:
        split = split_file.stem
        names = [n.strip() for n in split_file.read_text(encoding="utf-8").splitlines() if n.strip()]
        for name in names:
            if name in seen:
                report.skipped.append((name, f"{split_file.name}: listed twice"))
                continue
            seen.add(name)
            if name.startswith("M") and not keep_mirrored:
                continue   # HumanML3D's mirrored twin; training mirrors clips itself
            try:
                clips += _clips_of(folder, name, split)
            except ClipError as e:
                report.skipped.append((name, str(e)))
    report.imported = [c.id for c in clips]
    return clips, report


def _clips_of(folder: Path, name: str, split: str) -> list[ImportedClip]:
    npy, txt = folder / "new_joints" / f"{name}.npy", folder / "texts" / f"{name}.txt"
    if not npy.is_file():
        raise ClipError(f"{npy.name}: missing in new_joints/")
    if not txt.is_file():
        raise ClipError(f"{txt.name}: missing in texts/")
    try:
        x = np.load(npy, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ClipError(f"{npy.name}: cannot read ({e})") from None
    if x.ndim == 3 and x.shape[1] == 21:
        raise ClipError(f"{npy.name}: 21 joints (KIT-ML's skeleton, mm, 12.5 fps) are not supported; "
                        f"only HumanML3D's {N_JOINTS}-joint SMPL layout")
    joints = check_joints(floor_at_zero(check_joints(x, npy.name)), npy.name)
    spans = read_texts(txt)
    if not spans:
        raise ClipError(f"{txt.name}: no caption")
    out = []
    for (start, end), caps in sorted(spans.items()):
        if start == 0.0 and end == 0.0:
            out.append(ImportedClip(name, joints, caps, name, split, {"source": name}))
            continue
        a, b = int(round(start * FPS)), int(round(end * FPS)) if end > 0 else len(joints)
        if b - a < 2 or a >= len(joints):
            continue   # a span outside the motion (HumanML3D has a few): nothing to keep
        part = floor_at_zero(joints[a:min(b, len(joints))])
        out.append(ImportedClip(f"{name}_{a}_{min(b, len(joints))}", part, caps, name, split,
                                {"source": name, "start_s": start, "end_s": end}))
    if not out:
        raise ClipError(f"{txt.name}: no caption span lies inside the motion")
    return out
