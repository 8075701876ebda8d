"""Training corpus: features of every clip (plus mirrored twins) with captions, cached on disk.

Mirroring (METHOD.md §1) doubles the training split: joints mirrored left/right, captions mirrored too.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kmm.data import MotionDataset


@dataclass
class Corpus:
    ids: list[str] = field(default_factory=list)
    features: list[np.ndarray] = field(default_factory=list)   # (T, 263) float32, un-normalised
    captions: list[list[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def _cache_key(dataset: MotionDataset, split: str, mirror: bool) -> str:
    h = hashlib.sha1()
    for d in dataset.dirs:
        for name in ("motions.npz", "captions.jsonl"):
            p = Path(d) / name
            st = p.stat()
            h.update(f"{p.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode())
    feat = Path(__file__).parent / "motion" / "features.py"
    h.update(feat.read_bytes())
    h.update(f"{split}:{mirror}".encode())
    return h.hexdigest()[:16]


def build_corpus(dataset: MotionDataset, split: str, *, mirror: bool = False, cache_dir: Path | None = None) -> Corpus:
    """Features for every clip of `split` (and mirrored copies when `mirror`), cached in `cache_dir`."""
    from kmm.motion.features import joints_to_features
    from kmm.motion.mirror import mirror_joints, mirror_text

    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"corpus-{split}-{_cache_key(dataset, split, mirror)}.npz"
        if cache.is_file():
            z = np.load(cache, allow_pickle=False)
            meta = json.loads(str(z["meta"]))
            return Corpus(meta["ids"], [z[f"f{i}"] for i in range(len(meta["ids"]))], meta["captions"])
    corpus = Corpus()
    for clip in dataset.clips(split):
        corpus.ids.append(clip.id)
        corpus.features.append(joints_to_features(clip.joints))
        corpus.captions.append(list(clip.captions))
        if mirror:
            corpus.ids.append(clip.id + "~mirror")
            corpus.features.append(joints_to_features(mirror_joints(clip.joints)))
            corpus.captions.append([mirror_text(c) for c in clip.captions])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"ids": corpus.ids, "captions": corpus.captions})
        np.savez(cache, meta=np.array(meta), **{f"f{i}": f for i, f in enumerate(corpus.features)})
    return corpus
