"""Motion datasets in the shared folder format, plus pure batching helpers.

A dataset folder holds `motions.npz` (one `(T, 22, 3)` array per clip id: global joint positions,
metres, Y up, 20 fps), `captions.jsonl` (one record per clip: `id`, `captions`, `split`, ...) and
`splits/{train,val,test}.txt`. Several folders load into one `MotionDataset`; every problem found
while loading raises `DataError` with the file (and line) that caused it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kmm.errors import DataError  # noqa: F401  (defined in kmm/errors.py; this name kept)
from kmm.motion import skeleton

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DATA_ENV = "KMM_DATA"


@dataclass
class Clip:
    id: str
    joints: np.ndarray  # (T, 22, 3) float32, metres, Y up, world frame
    captions: list[str]
    split: str
    source: str  # dataset folder name
    segments: list[tuple[int, int]] = field(default_factory=list)  # HumanML3D (start, end) frames, if known
    labels: list[str] = field(default_factory=list)  # the folder's own captions, verbatim (prepared clips)

    @property
    def n_frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def seconds(self) -> float:
        return self.n_frames / skeleton.FPS


@dataclass
class MotionDataset:
    dirs: list[Path]
    _clips: dict[str, Clip] = field(default_factory=dict, repr=False)

    def clips(self, split: str | None = None) -> list[Clip]:
        """Clips of one split (all clips if split is None), in load order."""
        if split is not None and split not in self.splits:
            raise KeyError(f"unknown split {split!r}; have {sorted(self.splits)}")
        return [c for c in self._clips.values() if split is None or c.split == split]

    @property
    def splits(self) -> list[str]:
        return sorted({c.split for c in self._clips.values()})

    def __len__(self) -> int:
        return len(self._clips)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._clips

    def __getitem__(self, clip_id: str) -> Clip:
        return self._clips[clip_id]

    def summary(self) -> str:
        """Clip counts and hours per folder and split, as a small text table."""
        rows = []
        for source in dict.fromkeys(c.source for c in self._clips.values()):
            for split in self.splits:
                frames = [c.n_frames for c in self._clips.values()
                          if c.source == source and c.split == split]
                if frames:
                    rows.append((source, split, len(frames), sum(frames)))
        frames_total = sum(c.n_frames for c in self._clips.values())
        rows.append(("total", "all", len(self._clips), frames_total))
        width = max(len(r[0]) for r in rows)
        lines = [f"{'folder':<{width}}  {'split':<5}  {'clips':>6}  {'hours':>6}"]
        for source, split, n, frames in rows:
            hours = frames / skeleton.FPS / 3600
            lines.append(f"{source:<{width}}  {split:<5}  {n:>6d}  {hours:>6.3f}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Finding and loading folders


def resolve_data_dirs(spec: str | None = None) -> list[Path]:
    """Dataset folders named by `spec` (comma or os.pathsep separated).

    Each entry is a dataset folder (has motions.npz) or a parent whose immediate subfolders are
    datasets; from a parent, subset folders are skipped: `*-mini` folders, and `<name>-<suffix>` when `<name>`
    is there too (`cmu-desc-s01-07` holds 60 trials of `cmu-desc`: never train on both).
    spec None → env KMM_DATA, else `<repo>/../shared/data`.
    """
    if spec is None:
        spec = os.environ.get(DATA_ENV) or str(DEFAULT_DATA_DIR)
    parts = [p.strip() for p in re.split(rf"[,{re.escape(os.pathsep)}]", spec) if p.strip()]
    if not parts:
        raise DataError(f"no data folder given (spec {spec!r})")
    dirs: list[Path] = []
    for part in parts:
        path = Path(part).expanduser()
        if not path.is_dir():
            raise DataError(f"{path}: data folder not found")
        if (path / "motions.npz").exists():
            dirs.append(path)
            continue
        children = sorted(d for d in path.iterdir()
                          if d.is_dir() and (d / "motions.npz").exists()
                          and not d.name.endswith("-mini"))
        names = {d.name for d in children}
        children = [d for d in children if not any(d.name.startswith(n + "-") for n in names)]
        if not children:
            raise DataError(f"{path}: neither a dataset folder (no motions.npz) "
                            "nor a parent of dataset folders")
        dirs.extend(children)
    return list(dict.fromkeys(d.resolve() for d in dirs))


def load_dataset(dirs: str | Path | Iterable[str | Path] | None = None, *, prepare: bool = True,
                 cache_dir: Path | None = REPO_ROOT / ".cache") -> MotionDataset:
    """Load and validate one or several dataset folders (a str is resolved as a spec).

    prepare=True (what training, evaluation and the app use): every clip on the one skeleton
    (`kmm.motion.retarget`, cached under `cache_dir` per folder) and its captions as sentences
    (`kmm.captions.describe`; uninformative labels dropped, so `captions` may be empty; `labels` keeps the
    originals). prepare=False gives the folder's data verbatim (`data check`, `export`).
    """
    if dirs is None or isinstance(dirs, str):
        dirs = resolve_data_dirs(dirs)
    elif isinstance(dirs, Path):
        dirs = [dirs]
    dataset = MotionDataset(dirs=[Path(d) for d in dirs])
    owner: dict[str, Path] = {}
    for folder in dataset.dirs:
        clips = _load_folder(folder)
        if prepare:
            clips = _prepare(folder, clips, cache_dir)
        for clip in clips:
            if clip.id in owner:
                raise DataError(f"{folder / 'motions.npz'}: clip id {clip.id!r} also in "
                                f"{owner[clip.id] / 'motions.npz'}")
            owner[clip.id] = folder
            dataset._clips[clip.id] = clip
    return dataset


def _prepare(folder: Path, clips: list[Clip], cache_dir: Path | None) -> list[Clip]:
    """Clips on the one skeleton with sentence captions (see load_dataset); retargeted joints cached."""
    import hashlib

    from kmm.captions import describe
    from kmm.motion import retarget

    cache = None
    if cache_dir is not None:
        h = hashlib.sha1()
        st = (folder / "motions.npz").stat()
        h.update(f"{folder.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode())
        for mod in (retarget, retarget.ik):
            h.update(Path(mod.__file__).read_bytes())
        cache = Path(cache_dir) / f"prepared-{folder.name}-{h.hexdigest()[:12]}.npz"
    joints: dict[str, np.ndarray] = {}
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            joints = {k: z[k] for k in z.files}
    if set(joints) != {c.id for c in clips}:
        joints = {c.id: retarget.retarget(c.joints) for c in clips}
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")   # one per process: parallel runs
            np.savez(tmp, **joints)
            tmp.replace(cache)
    out = []
    for c in clips:
        sentences = list(dict.fromkeys(s for s in (describe(x) for x in c.captions) if s))
        out.append(Clip(id=c.id, joints=joints[c.id], captions=sentences, split=c.split, source=c.source,
                        segments=c.segments, labels=list(c.captions)))
    return out


def _load_folder(folder: Path) -> list[Clip]:
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found")
    motions_path = folder / "motions.npz"
    captions_path = folder / "captions.jsonl"
    splits_dir = folder / "splits"
    for path in (motions_path, captions_path):
        if not path.is_file():
            raise DataError(f"{path}: missing")
    split_files = sorted(splits_dir.glob("*.txt")) if splits_dir.is_dir() else []
    if not split_files:
        raise DataError(f"{splits_dir}: missing (expected splits/train.txt, val.txt, test.txt)")

    records = _read_captions(captions_path)
    joints = _read_motions(motions_path)
    for clip_id in sorted(records.keys() - joints.keys()):
        raise DataError(f"{captions_path}: clip {clip_id!r} has no motion in {motions_path.name}")
    for clip_id in sorted(joints.keys() - records.keys()):
        raise DataError(f"{motions_path}: clip {clip_id!r} has no record in {captions_path.name}")

    split_of: dict[str, str] = {}
    for path in split_files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            clip_id = line.strip()
            if not clip_id:
                continue
            if clip_id not in records:
                raise DataError(f"{path}:{lineno}: unknown clip id {clip_id!r}")
            if clip_id in split_of:
                raise DataError(f"{path}:{lineno}: clip {clip_id!r} already in split "
                                f"{split_of[clip_id]!r}")
            split_of[clip_id] = path.stem

    clips = []
    for clip_id, record in records.items():
        # The split files are authoritative; the record's own `split` is the fallback.
        split = split_of.get(clip_id) or record.get("split")
        if not split:
            raise DataError(f"{captions_path}: clip {clip_id!r} is in no split file")
        n = len(joints[clip_id])
        segments = [(int(s["start"]), min(int(s["end"]), n)) for s in record.get("humanml3d_segments") or []
                    if isinstance(s, dict) and "start" in s and "end" in s and int(s["start"]) < min(int(s["end"]), n)]
        clips.append(Clip(id=clip_id, joints=joints[clip_id], captions=record["captions"],
                          split=str(split), source=folder.name, segments=segments))
    return clips


def jsonl_objects(lines: Iterable[str], path, error=DataError):
    """Yield (object, "path:line") for each non-blank line; a bad line raises `error` naming path and line."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{where}: bad JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise error(f"{where}: expected a JSON object")
        yield obj, where


def _read_captions(path: Path) -> dict[str, dict]:
    records: dict[str, dict] = {}
    with path.open(encoding="utf-8") as f:
        for record, where in jsonl_objects(f, path, DataError):
            if not isinstance(record.get("id"), str) or not record["id"]:
                raise DataError(f"{where}: record without an 'id' string")
            captions = record.get("captions")
            if (not isinstance(captions, list) or not captions
                    or not all(isinstance(c, str) for c in captions)):
                raise DataError(f"{where}: record {record['id']!r} without a 'captions' "
                                "list of strings")
            if record["id"] in records:
                raise DataError(f"{where}: duplicate id {record['id']!r}")
            records[record["id"]] = record
    return records


def _read_motions(path: Path) -> dict[str, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    out = {}
    with archive:
        for clip_id in archive.files:
            try:
                array = archive[clip_id]
            except ValueError as e:  # object arrays need pickle: refused on purpose
                raise DataError(f"{path}: clip {clip_id!r}: cannot read ({e})") from None
            expected = (skeleton.N_JOINTS, 3)
            if array.ndim != 3 or array.shape[1:] != expected or array.shape[0] < 1:
                raise DataError(f"{path}: clip {clip_id!r} has shape {array.shape}, "
                                f"expected (T, {expected[0]}, {expected[1]})")
            if not np.issubdtype(array.dtype, np.number):
                raise DataError(f"{path}: clip {clip_id!r} has dtype {array.dtype}")
            array = array.astype(np.float32)
            if not np.isfinite(array).all():
                raise DataError(f"{path}: clip {clip_id!r} has non-finite values")
            out[clip_id] = array
    return out


# ----------------------------------------------------------------------------------------------
# Batching helpers (pure: randomness only through the generator passed in)


def random_crop(array, length: int, rng: np.random.Generator | torch.Generator):
    """A random window of `length` frames along axis 0; shorter inputs are returned whole.

    Works on numpy arrays and torch tensors; the same generator state gives the same window.
    """
    n = len(array)
    if length <= 0:
        raise ValueError(f"crop length must be positive, got {length}")
    if n <= length:
        return array
    if isinstance(rng, torch.Generator):
        start = int(torch.randint(0, n - length + 1, (1,), generator=rng).item())
    else:
        start = int(rng.integers(0, n - length + 1))
    return array[start:start + length]


def pad_batch(arrays: Sequence):
    """Stack variable-length arrays `(T_i, ...)` into `(B, T_max, ...)` zero-padded + a mask.

    The mask `(B, T_max)` is True on real frames. numpy in → numpy out, tensors in → tensors out.

    >>> batch, mask = pad_batch([np.ones((2, 4)), np.ones((3, 4))])
    >>> batch.shape, mask.astype(int).tolist()
    ((2, 3, 4), [[1, 1, 0], [1, 1, 1]])
    """
    if len(arrays) == 0:
        raise ValueError("pad_batch needs at least one array")
    lengths = [len(a) for a in arrays]
    t_max = max(lengths)
    if all(isinstance(a, torch.Tensor) for a in arrays):
        first = arrays[0]
        batch = first.new_zeros((len(arrays), t_max, *first.shape[1:]))
        mask = torch.zeros((len(arrays), t_max), dtype=torch.bool, device=first.device)
        for i, a in enumerate(arrays):
            batch[i, :len(a)] = a
            mask[i, :len(a)] = True
        return batch, mask
    arrays = [np.asarray(a) for a in arrays]
    first = arrays[0]
    batch = np.zeros((len(arrays), t_max, *first.shape[1:]), dtype=np.result_type(*arrays))
    mask = np.zeros((len(arrays), t_max), dtype=bool)
    for i, a in enumerate(arrays):
        batch[i, :len(a)] = a
        mask[i, :len(a)] = True
    return batch, mask
