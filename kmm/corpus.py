"""Training corpus: features of every clip (plus mirrored twins) with captions, cached on disk.

Mirroring (METHOD.md §1) doubles the training split: joints mirrored left/right, captions mirrored too.
Clips arrive prepared by `kmm.data.load_dataset` (one skeleton, sentence captions).
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
    captions: list[list[str]] = field(default_factory=list)    # sentences; empty for uninformative labels
    segments: list[list[tuple[int, int]]] = field(default_factory=list)  # HumanML3D (start, end) frames

    def __len__(self) -> int:
        return len(self.ids)

    def text_items(self, min_frames: int = 8) -> "Corpus":
        """What text-conditioned training sees: pairs of a caption with the part of a trial it describes.

        1. clips without an informative caption are left out (they still train the tokenizer);
        2. a clip with HumanML3D segments gives one item per segment (≤ 10 s, the part HumanML3D's annotators
           described), since CMU trials run up to 74 s and often hold several actions;
        3. any other clip is one item, whole (training crops a random window of it).
        """
        out = Corpus()
        for i, caps in enumerate(self.captions):
            if not caps:                                                      # 1.
                continue
            spans = [(a, b) for a, b in (self.segments[i] if self.segments else []) if b - a >= min_frames]
            for k, (a, b) in enumerate(spans or [(0, len(self.features[i]))]):  # 2. / 3.
                out.ids.append(self.ids[i] if not spans else f"{self.ids[i]}@{k}")
                out.features.append(self.features[i][a:b])
                out.captions.append(caps)
                out.segments.append([])
        return out


def _cache_key(dataset: MotionDataset, split: str, mirror: bool) -> str:
    h = hashlib.sha1()
    for d in dataset.dirs:
        for name in ("motions.npz", "captions.jsonl"):
            p = Path(d) / name
            st = p.stat()
            h.update(f"{p.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode())
    for name in ("motion/features.py", "motion/retarget.py", "captions.py"):
        h.update((Path(__file__).parent / name).read_bytes())
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
            return Corpus(meta["ids"], [z[f"f{i}"] for i in range(len(meta["ids"]))], meta["captions"],
                          [[tuple(s) for s in segs] for segs in meta["segments"]])
    corpus = Corpus()
    for clip in dataset.clips(split):
        corpus.ids.append(clip.id)
        corpus.features.append(joints_to_features(clip.joints))
        corpus.captions.append(list(clip.captions))
        corpus.segments.append(list(clip.segments))
        if mirror:
            corpus.ids.append(clip.id + "~mirror")
            corpus.features.append(joints_to_features(mirror_joints(clip.joints)))
            corpus.captions.append([mirror_text(c) for c in clip.captions])
            corpus.segments.append(list(clip.segments))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"ids": corpus.ids, "captions": corpus.captions, "segments": corpus.segments})
        np.savez(cache, meta=np.array(meta), **{f"f{i}": f for i, f in enumerate(corpus.features)})
    return corpus
