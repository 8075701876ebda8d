"""Motion export as .npz (paper §3.1 data; METHOD.md §1): joints, features and generation metadata.

Keys: ``joints`` (T, 22, 3) float32 metres; ``features`` (T, 263) float32 (only if given); ``fps``;
``segment_texts`` (S,) unicode; ``boundaries`` (B,) int64 frame indices; ``model_id`` (unicode
scalar); ``seed`` (int64, -1 = unknown); plus any ``extra`` arrays. Everything is a plain array, so
the file loads with ``allow_pickle=False``.
"""

from pathlib import Path

import numpy as np

_RESERVED = ("joints", "features", "fps", "segment_texts", "boundaries", "model_id", "seed")


def save_motion_npz(path, joints, *, features=None, fps=20, segment_texts=(), boundaries=(),
                    model_id="", seed=-1, extra=None) -> Path:
    """Write one motion to ``path`` (the name is used as given, no ".npz" appended); returns the path."""
    arrays = {
        "joints": np.asarray(joints, dtype=np.float32),
        "fps": np.asarray(fps, dtype=np.float64),
        "segment_texts": np.array(list(segment_texts), dtype=np.str_).reshape(-1),
        "boundaries": np.asarray(list(boundaries), dtype=np.int64).reshape(-1),
        "model_id": np.array(str(model_id), dtype=np.str_),
        "seed": np.asarray(seed, dtype=np.int64),
    }
    if features is not None:
        arrays["features"] = np.asarray(features, dtype=np.float32)
    for key, value in (extra or {}).items():
        if key in _RESERVED:
            raise ValueError(f"extra key {key!r} clashes with a reserved key")
        value = np.asarray(value)
        if value.dtype == object:
            raise ValueError(f"extra key {key!r} is not a plain array (object dtype)")
        arrays[key] = value
    path = Path(path)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_motion_npz(path) -> dict:
    """Read a file written by :func:`save_motion_npz`; scalars come back as Python values.

    Returns {"joints": (T, 22, 3) float32, "features": (T, 263) float32 or None, "fps": float,
    "segment_texts": list[str], "boundaries": (B,) int64, "model_id": str, "seed": int, **extra}.
    """
    with np.load(path, allow_pickle=False) as data:
        out = {key: data[key] for key in data.files}
    out["features"] = out.get("features")
    out["fps"] = float(out["fps"])
    out["segment_texts"] = [str(s) for s in out["segment_texts"]]
    out["model_id"] = str(out["model_id"])
    out["seed"] = int(out["seed"])
    return out
