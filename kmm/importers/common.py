"""Shared steps of the importers: resample, floor, assign splits, write a dataset folder (kmm/data.py format).

A folder is written to a temporary sibling first and renamed into place, then loaded back with
`kmm.data.load_dataset`, so a folder that exists is one the loader accepts.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kmm.data import DataError, load_dataset
from kmm.errors import ClipError  # noqa: F401  (defined in kmm/errors.py; this name kept)
from kmm.motion.skeleton import FOOT_JOINTS, FPS, N_JOINTS

SPLITS = ("train", "val", "test")


@dataclass
class ImportedClip:
    id: str
    joints: np.ndarray            # (T, 22, 3) float32, metres, Y up, 20 fps, floor at 0
    captions: list[str]
    key: str                      # split key value (clips with the same key share a split)
    split: str | None = None      # fixed split (from the input), else assigned from the key
    meta: dict = field(default_factory=dict)


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)           # clip ids
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)

    def text(self) -> str:
        lines = [f"imported {len(self.imported)} clip(s)"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


def resample(x: np.ndarray, src_fps: float, fps: float = FPS) -> np.ndarray:
    """(T, ...) frames at src_fps -> frames at fps, linear interpolation, first frame kept.

    >>> resample(np.arange(4.0)[:, None], 30.0, 20.0)[:, 0].tolist()
    [0.0, 1.5]
    """
    if src_fps <= 0:
        raise ValueError(f"frame rate must be positive, got {src_fps}")
    if abs(src_fps - fps) < 1e-6:
        return x
    duration = (len(x) - 1) / src_fps
    # output times in source frames; 0.01-frame slack for Frame Times written with few decimals (0.033333)
    t = np.minimum(np.arange(int(np.floor(duration * fps + 0.01)) + 1) / fps * src_fps, len(x) - 1)
    i0 = np.minimum(np.floor(t).astype(int), len(x) - 1)
    i1 = np.minimum(i0 + 1, len(x) - 1)
    w = (t - i0).reshape(-1, *([1] * (x.ndim - 1)))
    return (1 - w) * x[i0] + w * x[i1]


def floor_at_zero(joints: np.ndarray) -> np.ndarray:
    """Shift y so the clip's lowest foot joint touches y = 0 (the data folders' convention)."""
    out = np.array(joints, dtype=np.float32)
    out[..., 1] -= out[:, list(FOOT_JOINTS), 1].min()
    return out


def check_joints(joints: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(joints)
    if x.ndim != 3 or x.shape[1:] != (N_JOINTS, 3):
        raise ClipError(f"{where}: joints have shape {x.shape}, expected (T, {N_JOINTS}, 3)")
    if len(x) < 2:
        raise ClipError(f"{where}: only {len(x)} frame(s) at {FPS} fps (need at least 2)")
    if not np.isfinite(x).all():
        raise ClipError(f"{where}: non-finite joint positions")
    return x.astype(np.float32)


def parse_fractions(spec: str) -> tuple[float, float, float]:
    """'80,10,10' -> (0.8, 0.1, 0.1) (train, val, test; any positive scale)."""
    try:
        parts = [float(p) for p in spec.split(",")]
    except ValueError:
        raise ValueError(f"--split {spec!r}: expected three numbers, e.g. 80,10,10") from None
    if len(parts) != 3 or min(parts) < 0 or sum(parts) <= 0:
        raise ValueError(f"--split {spec!r}: expected three non-negative numbers (train,val,test), e.g. 80,10,10")
    total = sum(parts)
    return tuple(p / total for p in parts)  # type: ignore[return-value]


def assign_splits(keys: list[str], fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, str]:
    """Each distinct key -> a split, so clips that share a key (a file, a subject, a caption) never straddle
    splits. Keys are shuffled by a seeded hash (stable: adding keys does not move the others' order) and cut
    by the fractions; with three or more keys every split with a non-zero fraction gets at least one.
    """
    unique = sorted(set(keys), key=lambda k: hashlib.sha1(f"{seed}:{k}".encode()).hexdigest())
    n = len(unique)
    counts = [int(round(f * n)) for f in fractions]
    if n >= 3:
        for i, f in enumerate(fractions):
            if f > 0 and counts[i] == 0:
                counts[i] = 1
    while sum(counts) > n:   # take the surplus from the largest split
        counts[int(np.argmax(counts))] -= 1
    counts[0] += n - sum(counts)
    out, start = {}, 0
    for split, c in zip(SPLITS, counts):
        for k in unique[start:start + c]:
            out[k] = split
        start += c
    return out


def write_dataset(clips: list[ImportedClip], out: Path, *, fractions=(0.8, 0.1, 0.1), seed: int = 0,
                  overwrite: bool = False, float16: bool = False, readme: str = "") -> Path:
    """Write motions.npz, captions.jsonl, splits/*.txt (+ README.md) to `out`, then validate by loading it."""
    out = Path(out)
    if not clips:
        raise DataError(f"{out}: nothing to write (no clip was imported)")
    if (out / "motions.npz").exists() and not overwrite:
        raise DataError(f"{out}: already holds a dataset (motions.npz); pass --overwrite to replace it")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "motions.npz").exists())):
        raise DataError(f"{out}: exists and is not a dataset folder; choose a new or empty folder")
    ids = [c.id for c in clips]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise DataError(f"duplicate clip id(s) {dupes[:5]}: rename the input files")
    by_key = assign_splits([c.key for c in clips if c.split is None], fractions, seed)
    tmp = out.with_name(out.name + ".importing")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "splits").mkdir(parents=True)
    dtype = np.float16 if float16 else np.float32
    np.savez_compressed(tmp / "motions.npz", **{c.id: c.joints.astype(dtype) for c in clips})
    split_ids: dict[str, list[str]] = {s: [] for s in SPLITS}
    with (tmp / "captions.jsonl").open("w", encoding="utf-8") as f:
        for c in clips:
            split = c.split or by_key[c.key]
            split_ids.setdefault(split, []).append(c.id)
            f.write(json.dumps({"id": c.id, "captions": c.captions, "split": split, "split_key": c.key,
                                **c.meta}, ensure_ascii=False) + "\n")
    for split, members in split_ids.items():
        (tmp / "splits" / f"{split}.txt").write_text("".join(m + "\n" for m in members), encoding="utf-8")
    if readme:
        (tmp / "README.md").write_text(readme, encoding="utf-8")
    load_dataset(tmp, prepare=False)   # the loader's own validation, before anything replaces `out`
    if out.exists():
        shutil.rmtree(out)   # a dataset folder (checked above): replaced as asked
    tmp.rename(out)
    return out
