"""save_pretrained / from_pretrained: config.json + model.safetensors (never pickles)."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from kmm.errors import WeightsError  # noqa: F401  (defined in kmm/errors.py; this name kept)


class PretrainedMixin:
    config_class = None

    def save_pretrained(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.config.save(d / "config.json")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(d / "model.safetensors"))
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu"):
        d = Path(directory)
        cfg_path, w_path = d / "config.json", d / "model.safetensors"
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise WeightsError(f"missing {p}")
        try:
            config = cls.config_class.load(cfg_path)
        except (ValueError, TypeError) as e:
            raise WeightsError(f"bad config {cfg_path}: {e}") from e
        model = cls(config)
        try:
            state = load_file(str(w_path), device=str(map_location))
        except Exception as e:  # noqa: BLE001 - safetensors raises several types on corrupt files
            raise WeightsError(f"corrupt weights {w_path}: {e}") from e
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise WeightsError(f"weights {w_path} do not match {cfg_path}: {str(e)[:300]}") from e
        return model.eval()
