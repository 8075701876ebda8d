"""Frozen text–motion evaluator (METHOD.md §5): both sides embedded into one shared 512-d space.

    evaluator = FrozenEvaluator.load("assets/evaluator")
    t = evaluator.encode_texts(["a person bows."])          # (1, 512) unit vectors
    m = evaluator.encode_joints([joints])                    # (1, 512), joints (T, 22, 3) metres

Motion side: normalised 263-d features (the evaluator's own training-split mean/std, saved next to its
weights as ``normalizer.safetensors``) → per-frame linear → two stride-2 1D convolutions (time ÷4) →
masked mean ‖ masked max pooling → MLP. Text side: the original all-MiniLM-L6-v2 sentence embedding
(frozen, 384-d, unit length) → MLP. Both outputs are L2-normalised (ours), so distances lie in [0, 2] and
ranking by Euclidean distance equals ranking by cosine similarity, the quantity InfoNCE trains.
Training (kmm.eval.train_evaluator): symmetric InfoNCE, learnable temperature, pairs whose captions are
identical are not used as negatives of each other.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kmm.config import _JsonConfig
from kmm.model.weights import PretrainedMixin, WeightsError
from kmm.motion.features import Normalizer

NORMALIZER_FILE = "normalizer.safetensors"


@dataclass
class EvaluatorConfig(_JsonConfig):
    feature_dim: int = 263
    text_dim: int = 384                   # all-MiniLM-L6-v2 sentence embedding, frozen
    text_encoder: str = "all-MiniLM-L6-v2"
    width: int = 128                      # ours: sized to train in minutes on one CPU thread
    embed_dim: int = 512                  # shared space (METHOD.md §5)
    dropout: float = 0.1
    temperature: float = 0.07             # initial InfoNCE temperature (learnable)
    max_frames: int = 400                 # longest motion scored (20 s); longer inputs are cut


def length_mask(lengths, max_len: int) -> torch.Tensor:
    """lengths [2, 3], max 4 -> [[1,1,0,0],[1,1,1,0]] as bool."""
    lengths = torch.as_tensor(lengths)
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def conv_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Valid positions after one stride-2 conv (kernel 4, padding 1): ceil(n / 2), at least 1."""
    return torch.clamp((lengths + 1) // 2, min=1)


class MotionEncoder(nn.Module):
    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        w = config.width
        self.inp = nn.Linear(config.feature_dim, w)
        self.convs = nn.ModuleList([nn.Conv1d(w, w, 4, stride=2, padding=1) for _ in range(2)])
        self.mix = nn.Conv1d(w, w, 3, padding=1)
        self.head = nn.Sequential(nn.Linear(2 * w, config.embed_dim), nn.GELU(), nn.Dropout(config.dropout),
                                  nn.Linear(config.embed_dim, config.embed_dim))

    def forward(self, x, mask):  # (B, T, F) normalised, (B, T) bool -> (B, D) unit
        # 0. pad time to a multiple of 4, so a clip's embedding never depends on how much padding follows it
        pad = -x.shape[1] % 4
        x, mask = F.pad(x, (0, 0, 0, pad)), F.pad(mask, (0, pad))                 # (B, T', F), (B, T')
        lengths = mask.sum(1).clamp(min=1)                                        # (B,)
        h = F.leaky_relu(self.inp(x), 0.2) * mask[..., None]                      # (B, T', w)
        h = rearrange(h, "b t c -> b c t")
        # 1. time ÷4, padding zeroed before every conv so it never leaks into real frames
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)                                        # (B, w, T/2)
            lengths = conv_lengths(lengths)
            h = h * length_mask(lengths, h.shape[-1])[:, None]
        h = h + F.leaky_relu(self.mix(h), 0.2)                                    # (B, w, T/4)
        m = length_mask(lengths, h.shape[-1])[:, None]                            # (B, 1, T/4)
        # 2. masked mean and max over time
        mean = (h * m).sum(-1) / lengths[:, None]                                 # (B, w)
        peak = h.masked_fill(~m, float("-inf")).amax(-1)                          # (B, w)
        return F.normalize(self.head(torch.cat([mean, peak], -1)), dim=-1)       # (B, D)


class TextMotionEvaluator(PretrainedMixin, nn.Module):
    config_class = EvaluatorConfig

    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = config
        self.motion = MotionEncoder(config)
        self.text = nn.Sequential(nn.Linear(config.text_dim, config.embed_dim), nn.GELU(), nn.Dropout(config.dropout),
                                  nn.Linear(config.embed_dim, config.embed_dim))
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(1.0 / config.temperature))))

    def encode_motion(self, x, mask):  # (B, T, F), (B, T) -> (B, D)
        return self.motion(x, mask)

    def encode_text(self, sentence):  # (B, 384) frozen sentence embedding -> (B, D)
        return F.normalize(self.text(sentence), dim=-1)

    def forward(self, x, mask, sentence):  # -> motion (B, D), text (B, D)
        return self.encode_motion(x, mask), self.encode_text(sentence)


def info_nce(motion, text, log_scale, same_caption=None):
    """Symmetric InfoNCE over a batch of matching rows; (B, D), (B, D), () [, (B, B) bool] -> loss.

    ``same_caption[i, j]`` (i != j) removes pair (i, j) from the negatives: two clips described by the
    same sentence are not a mistake to be pushed apart.
    """
    logits = log_scale.clamp(max=float(np.log(100.0))).exp() * text @ motion.T      # (B, B) text x motion
    if same_caption is not None:
        off = same_caption & ~torch.eye(len(text), dtype=torch.bool, device=text.device)
        logits = logits.masked_fill(off, float("-inf"))
    target = torch.arange(len(text), device=text.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def same_caption_matrix(texts: list[str]) -> torch.Tensor:
    """["a", "b", "a"] -> [[1,0,1],[0,1,0],[1,0,1]] as bool."""
    ids = {t: i for i, t in enumerate(dict.fromkeys(texts))}
    k = torch.tensor([ids[t] for t in texts])
    return k[:, None] == k[None, :]


class SentenceEncoder:
    """The original all-MiniLM-L6-v2 sentence embedding (frozen), cached per string: texts -> (N, 384)."""

    def __init__(self, backbone=None):
        from kmm.config import TextConfig
        from kmm.model.text import TextTop
        from kmm.text_backbone import shared_backbone

        self.backbone = backbone or shared_backbone(None, TextConfig().max_tokens)
        self.top = TextTop(TextConfig()).eval()
        self.top.load_bert_layer(self.backbone.last_layer_state(), "")
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for i in range(0, len(missing), 256):
            chunk = missing[i:i + 256]
            hidden, mask = self.backbone(chunk)
            pooled = F.normalize(self.top(hidden.cpu(), mask.cpu())[1], dim=-1)   # (b, 384)
            self._cache.update(zip(chunk, pooled))
        return torch.stack([self._cache[t] for t in texts])


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_normalizer(normalizer: Normalizer, directory: str | Path) -> Path:
    from safetensors.torch import save_file

    path = Path(directory) / NORMALIZER_FILE
    save_file({k: torch.from_numpy(v) for k, v in normalizer.to_dict().items()}, str(path))
    return path


def load_normalizer(directory: str | Path) -> Normalizer:
    from safetensors.torch import load_file

    path = Path(directory) / NORMALIZER_FILE
    if not path.is_file():
        raise WeightsError(f"missing {path}")
    return Normalizer.from_dict({k: v.numpy() for k, v in load_file(str(path)).items()})


class FrozenEvaluator:
    """Evaluator + its normaliser + the sentence encoder, in eval mode: lists in, numpy embeddings out."""

    def __init__(self, model: TextMotionEvaluator, normalizer: Normalizer, sentences: SentenceEncoder | None = None,
                 path: str | Path | None = None):
        self.model = model.eval()
        self.normalizer = normalizer
        self.sentences = sentences or SentenceEncoder()
        self.path = None if path is None else Path(path)

    @classmethod
    def load(cls, directory: str | Path, sentences: SentenceEncoder | None = None) -> "FrozenEvaluator":
        d = Path(directory)
        if not d.is_dir():
            raise WeightsError(f"evaluator folder not found: {d}")
        return cls(TextMotionEvaluator.from_pretrained(d), load_normalizer(d), sentences, d)

    def weights_sha256(self) -> dict:
        if self.path is None:
            return {}
        return {name: sha256_file(self.path / name) for name in ("model.safetensors", NORMALIZER_FILE)}

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> np.ndarray:  # -> (N, D)
        return self.model.encode_text(self.sentences(list(texts))).numpy()

    @torch.no_grad()
    def encode_features(self, features: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """Un-normalised (T_i, 263) features -> (N, D); batches of similar length keep padding small."""
        from kmm.data import pad_batch

        cut = [np.asarray(f[:self.config.max_frames], dtype=np.float32) for f in features]
        order = np.argsort([len(f) for f in cut], kind="stable")
        out = np.zeros((len(cut), self.model.config.embed_dim), dtype=np.float32)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x, mask = pad_batch([torch.from_numpy(self.normalizer.normalize(cut[j])) for j in idx])
            out[idx] = self.model.encode_motion(x, mask).numpy()
        return out

    def encode_joints(self, joints: list[np.ndarray]) -> np.ndarray:
        """(T_i, 22, 3) joint positions -> (N, D), through the same feature code as the training data."""
        from kmm.motion.features import joints_to_features

        return self.encode_features([joints_to_features(j[:self.config.max_frames]) for j in joints])

    @property
    def config(self) -> EvaluatorConfig:
        return self.model.config
