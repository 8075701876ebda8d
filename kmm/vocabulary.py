"""What the model has seen: the training captions, grouped by action, with their sentence embeddings, so
the app can say which captions a prompt is closest to — and warn when nothing similar was in the data.

Bundle files (next to the weights, e.g. `assets/kmm/`):

- `vocabulary.json`: {"captions": [sentences], "groups": {action: [captions]}, "sources": [...],
  "encoder": "..."};
- `vocabulary.safetensors`: {"embeddings": (N, 384) float16}, L2-normalised sentence embeddings of the
  captions (mean-pooled last layer of the frozen MiniLM of `kmm.text_backbone`, as sentence-transformers does).

Similarity is the cosine of those embeddings. Built by `python -m kmm vocabulary --data DATA --out DIR` from
the `train` split captions of the data folders (turned into sentences by `kmm.captions.describe` when that
module is there); rebuild it whenever the weights are retrained on other data.

Steps of `build_vocabulary`:
1. read each folder's captions.jsonl and splits/train.txt (no motion is loaded);
2. describe each caption as a sentence, drop uninformative ones, de-duplicate (first occurrence wins);
3. group captions by `ACTIONS` keywords (a caption can be in several groups, or none);
4. embed all captions.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VOCAB_JSON, VOCAB_EMBEDDINGS = "vocabulary.json", "vocabulary.safetensors"
WARN_BELOW = 0.5     # best cosine under this: "nothing like ... in the training data"

# action -> keyword prefixes, matched at word starts in lower-cased captions
ACTIONS: dict[str, tuple[str, ...]] = {
    "walk": ("walk", "stroll", "stride", "march", "strut"),
    "walk backwards": ("backward", "walks back", "walk back"),
    "sidestep": ("sidestep", "side step", "sideways", "walks left", "walks right", "walk left", "walk right"),
    "run": ("run", "jog", "dash", "sprint"),
    "jump": ("jump", "leap"),
    "hop": ("hop", "skip"),
    "sit down": ("sit", "seated"),
    "squat": ("squat", "crouch down", "crouches down", "crouching down"),   # not "walks crouched": a walk
    "kick": ("kick",),
    "punch": ("punch", "strike", "boxing", "jab"),
    "crawl": ("crawl",),
    "pick up": ("pick", "picks", "scoop", "lifts something", "lift something"),
    "turn around": ("turn around", "turns around", "turn", "pivot", "spin", "pirouette"),
    "dance": ("danc", "ballet", "arabesque", "jete", "waltz", "salsa"),
    "climb": ("climb",),
    "throw": ("throw", "toss"),
    "wave": ("wave", "waving", "byebye", "bye"),
    "bow": ("bow",),
    "raise hands": ("raise", "raises", "lift arm", "lifts arm"),
    "gesture": ("gesture", "guide", "point", "call"),
    "fight": ("sword", "fight", "block", "dodge"),
    "stretch": ("stretch",),
}


# action -> phrases that use one of its keywords for another action ("throws a punch" is a punch, not a throw)
NOT_ACTIONS: dict[str, tuple[str, ...]] = {
    "throw": ("throws a punch", "throw a punch", "throws punches", "throw punches", "throwing punches"),
}


def action_groups(captions: Iterable[str], actions: dict[str, Sequence[str]] = ACTIONS,
                  exclude: dict[str, Sequence[str]] = NOT_ACTIONS) -> dict[str, list[str]]:
    """{action: captions that mention one of its keywords outside that action's `exclude` phrases}; actions
    without captions are left out.

    >>> action_groups(["a person jumps forward", "a person sits down"], {"jump": ["jump"], "kick": ["kick"]})
    {'jump': ['a person jumps forward']}
    >>> action_groups(["a person throws a punch", "a person throws"], {"throw": ["throw"]})
    {'throw': ['a person throws']}
    """
    groups: dict[str, list[str]] = {}
    patterns = {a: re.compile(r"\b(?:" + "|".join(re.escape(k) for k in kws) + ")", re.IGNORECASE)
                for a, kws in actions.items()}
    drops = {a: re.compile("|".join(re.escape(p) for p in phrases), re.IGNORECASE)
             for a, phrases in exclude.items() if phrases}
    for caption in captions:
        for action, pattern in patterns.items():
            text = drops[action].sub(" ", caption) if action in drops else caption
            if pattern.search(text):
                groups.setdefault(action, []).append(caption)
    return groups


def train_captions(folders: Iterable[str | Path], split: str = "train") -> list[str]:
    """The `split` captions of dataset folders as de-duplicated sentences (describe() when available)."""
    try:
        from kmm.captions import describe
    except ImportError:    # older checkouts: the raw captions
        def describe(label):
            return label
    out: dict[str, None] = {}
    for folder in folders:
        folder = Path(folder)
        ids = set((folder / "splits" / f"{split}.txt").read_text().split())
        with open(folder / "captions.jsonl", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                record = json.loads(line)
                if record.get("id") not in ids:
                    continue
                for label in record.get("captions", []):
                    sentence = describe(label)
                    if sentence:
                        out.setdefault(" ".join(sentence.strip().rstrip(".").split()), None)
    return list(out)


def sentence_embeddings(texts: Sequence[str], backbone=None, batch: int = 256) -> np.ndarray:
    """(N,) texts -> (N, 384) float32 unit vectors: mean-pooled last layer of the frozen text encoder."""
    import torch

    if backbone is None:
        from kmm.text_backbone import shared_backbone
        backbone = shared_backbone()
    chunks = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            hidden, att = backbone.last_hidden_state(list(texts[i:i + batch]))         # (B, S, 384), (B, S)
            mask = att.unsqueeze(-1).to(hidden.dtype)                                  # (B, S, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)             # (B, 384)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, 384), np.float32)


@dataclass
class Match:
    caption: str
    similarity: float


@dataclass
class Vocabulary:
    captions: list[str]
    groups: dict[str, list[str]]
    embeddings: np.ndarray             # (N, D) unit vectors
    sources: list[str]
    encoder: str = "all-MiniLM-L6-v2 (mean-pooled last layer)"

    def closest(self, texts: Sequence[str], k: int = 3,
                embed: Callable[[Sequence[str]], np.ndarray] | None = None) -> list[list[tuple[str, float]]]:
        """Per text, the `k` most similar training captions as (caption, cosine), best first."""
        if not texts:
            return []
        if not self.captions:
            return [[] for _ in texts]
        q = np.asarray((embed or sentence_embeddings)(list(texts)), dtype=np.float32)   # (B, D)
        sims = q @ self.embeddings.astype(np.float32).T                                 # (B, N)
        k = max(1, min(int(k), sims.shape[1]))
        out = []
        for row in sims:
            top = np.argsort(-row, kind="stable")[:k]
            out.append([(self.captions[i], round(float(row[i]), 3)) for i in top])
        return out

    def abilities(self, min_captions: int = 1) -> list[str]:
        """The actions with at least `min_captions` training captions, most captions first."""
        return [a for a, c in sorted(self.groups.items(), key=lambda kv: -len(kv[1])) if len(c) >= min_captions]

    # --- files ---------------------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        from safetensors.numpy import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"captions": self.captions, "groups": self.groups, "sources": self.sources, "encoder": self.encoder}
        (out / VOCAB_JSON).write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        save_file({"embeddings": self.embeddings.astype(np.float16)}, str(out / VOCAB_EMBEDDINGS))
        return out / VOCAB_JSON, out / VOCAB_EMBEDDINGS

    @classmethod
    def load(cls, folder: str | Path) -> "Vocabulary":
        """Reads the two bundle files; a missing or inconsistent bundle is a ValueError naming the file."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        meta_path, emb_path = folder / VOCAB_JSON, folder / VOCAB_EMBEDDINGS
        for p in (meta_path, emb_path):
            if not p.is_file():
                raise ValueError(f"no vocabulary: {p} is missing (build it with `python -m kmm vocabulary`)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            emb = load_file(str(emb_path))["embeddings"].astype(np.float32)
        except (ValueError, KeyError, OSError) as e:
            raise ValueError(f"corrupt vocabulary in {folder}: {e}") from e
        captions = list(meta.get("captions", []))
        if emb.shape[0] != len(captions):
            raise ValueError(f"{emb_path}: {emb.shape[0]} embeddings for {len(captions)} captions in {meta_path.name}")
        return cls(captions, dict(meta.get("groups", {})), emb, list(meta.get("sources", [])),
                   meta.get("encoder", cls.encoder))


def build_vocabulary(folders: Sequence[str | Path], embed: Callable[[Sequence[str]], np.ndarray] | None = None,
                     split: str = "train") -> Vocabulary:
    """Steps 1-4 of the module docstring."""
    captions = train_captions(folders, split)
    emb = (embed or sentence_embeddings)(captions) if captions else np.zeros((0, 384), np.float32)
    return Vocabulary(captions, action_groups(captions), np.asarray(emb, np.float32),
                      [Path(f).name for f in folders])


def understood(text: str, matches: Sequence[tuple[str, float]], warn_below: float = WARN_BELOW) -> str:
    """One plain line about a segment's closest training captions; a warning when even the best is far.

    >>> understood("cartwheel", [("a person jumps", 0.31)])
    "⚠️ nothing like 'cartwheel' in the training data — closest: 'a person jumps' (0.31)"
    """
    if not matches:
        return ""
    listed = ", ".join(f"'{c}' ({s:.2f})" for c, s in matches)
    if matches[0][1] < warn_below:
        return f"⚠️ nothing like '{text}' in the training data — closest: {listed}"
    return f"closest training captions: {listed}"


# --- command line (`python -m kmm vocabulary`) ---------------------------------------------------------------

def add_parser(sub) -> None:
    p = sub.add_parser("vocabulary", help="build vocabulary.json + vocabulary.safetensors (training captions "
                                          "and their embeddings) for the app's 'closest captions'")
    p.add_argument("--data", default=None, help="dataset folder(s) or a parent of them, comma separated "
                                                "(default: $KMM_DATA or ../shared/data)")
    p.add_argument("--out", type=Path, default=Path("assets/kmm"), help="bundle folder to write into")
    p.add_argument("--split", default="train")
    p.set_defaults(func=cmd_vocabulary)


def cmd_vocabulary(args) -> int:
    from kmm.data import resolve_data_dirs

    folders = resolve_data_dirs(args.data)
    vocab = build_vocabulary(folders, split=args.split)
    paths = vocab.save(args.out)
    print(f"{len(vocab.captions)} captions from {', '.join(vocab.sources)} ({args.split} split); "
          f"{len(vocab.groups)} action groups: " + ", ".join(f"{a} ({len(c)})" for a, c in vocab.groups.items()))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
