"""Dataclass configs that ride with the weights (config.json next to model.safetensors).

Every choice the paper leaves open is a field here, marked "ours" in its comment.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path


class _JsonConfig:
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names - {"kind"}
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
        return cls(**{k: v for k, v in d.items() if k in names})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"kind": type(self).__name__, **self.to_dict()}, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path):
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class TokenizerConfig(_JsonConfig):
    feature_dim: int = 263
    width: int = 192             # ours: conv width sized for a 2-core CPU (MoMask: 512)
    code_dim: int = 128
    n_down: int = 2              # time downsampling 2**n_down = ×4 (paper)
    res_depth: int = 2
    n_quantizers: int = 6        # paper summary: 6 residual layers
    n_codes: int = 512           # MoMask: 512 codes per layer
    quantizer_dropout: float = 0.2
    ema_decay: float = 0.99


@dataclass
class TextConfig(_JsonConfig):
    backbone: str = "all-MiniLM-L6-v2"   # ours: offline-available sentence encoder (CLIP is not obtainable here)
    dim: int = 384
    n_heads: int = 12
    ff_dim: int = 1536
    max_tokens: int = 48
    finetune: str = "last_layer"          # ours: only the top transformer layer is fine-tuned and shipped


@dataclass
class GeneratorConfig(_JsonConfig):
    n_codes: int = 512
    backbone: str = "mamba"               # "mamba" (KMM) or "transformer" (MoMask-style baseline)
    d_model: int = 256
    n_layers: int = 4                     # paper summary: 4 layers
    d_state: int = 8                      # ours: 8 (mamba default 16) and expand 1 to fit CPU training
    d_conv: int = 4
    expand: int = 1
    n_heads: int = 4                      # transformer baseline only
    dropout: float = 0.1
    text: TextConfig = field(default_factory=TextConfig)
    cond_drop: float = 0.1                # classifier-free guidance: text dropped 10% of the time (paper)
    masking: str = "keyframe"             # "keyframe" (KMM) or "random" (ablation)
    key_frame_share: float = 0.5          # ours: share of each masking budget taken by key frames
    contrastive_weight: float = 0.5       # λ (paper)
    align_dim: int = 256
    max_tokens: int = 64                  # training window (×4 frames = 12.8 s)
    max_length_tokens: int = 80           # length head classes: 1..80 tokens (16 s)

    @classmethod
    def from_dict(cls, d: dict):
        d = dict(d)
        if isinstance(d.get("text"), dict):
            d["text"] = TextConfig.from_dict(d["text"])
        return super().from_dict(d)


@dataclass
class ResidualConfig(_JsonConfig):
    n_codes: int = 512
    n_quantizers: int = 6
    code_dim: int = 128
    d_model: int = 192
    n_layers: int = 2
    d_state: int = 8
    expand: int = 1
    text_dim: int = 384
    dropout: float = 0.1
    cond_drop: float = 0.1
