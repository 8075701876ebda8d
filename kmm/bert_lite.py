"""The frozen BERT layers of the sentence encoder (all-MiniLM-L6-v2) without the `transformers` package.

`import transformers` + `AutoModel.from_pretrained` cost about 3.5 s of CPU on every cold start of
`python -m kmm generate` (issue #16: ≤ 5 s to the first result), for a 6-layer BERT forward that is twenty
lines of torch. `LiteBert` reads the same files (config.json, model.safetensors, tokenizer.json through the
`tokenizers` package, which transformers itself uses) and returns what `BertModel(...).hidden_states` does,
to float rounding (tests/test_speed.py checks token ids and hidden states against transformers).

    bert = LiteBert(model_dir)
    ids, mask, types = bert.tokenize(["a person walks"], max_length=48)   # (B, S) each; [CLS] ... [SEP], padded
    hidden = bert.hidden_states(ids, mask, types, n_layers=5)            # (B, S, 384): output of layer 5 of 6
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F


class LiteBert:
    def __init__(self, model_dir: str | Path):
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        d = Path(model_dir)
        self.config = json.loads((d / "config.json").read_text())
        if self.config.get("model_type") != "bert" or self.config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{d} is not a plain BERT encoder")
        self.n_layers = int(self.config["num_hidden_layers"])
        self.n_heads = int(self.config["num_attention_heads"])
        self.eps = float(self.config.get("layer_norm_eps", 1e-12))
        self.state = {k: v.float() for k, v in load_file(str(d / "model.safetensors")).items()}
        self._tokenizer = Tokenizer.from_file(str(d / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def tokenize(self, texts: list[str], max_length: int):  # -> ids, mask, token types (B, S) each
        """As transformers' tokenizer(texts, padding=True, truncation=True, max_length=max_length)."""
        encs = [self._tokenizer.encode(t) for t in texts]
        rows = []
        for e in encs:
            ids, types = list(e.ids), list(e.type_ids)
            if len(ids) > max_length:   # keep [CLS] + the first tokens, end with [SEP]
                ids, types = ids[:max_length - 1] + ids[-1:], types[:max_length - 1] + types[-1:]
            rows.append((ids, types))
        S = max(len(ids) for ids, _ in rows)
        pad = int(self.config.get("pad_token_id", 0))
        ids = torch.full((len(rows), S), pad, dtype=torch.long)
        types = torch.zeros(len(rows), S, dtype=torch.long)
        mask = torch.zeros(len(rows), S, dtype=torch.long)
        for i, (r_ids, r_types) in enumerate(rows):
            ids[i, :len(r_ids)] = torch.tensor(r_ids)
            types[i, :len(r_types)] = torch.tensor(r_types)
            mask[i, :len(r_ids)] = 1
        return ids, mask, types

    def layer_state(self, i: int) -> dict:
        """Layer i's weights with the layer prefix removed (the names transformers' BertLayer uses)."""
        prefix = f"encoder.layer.{i}."
        return {k[len(prefix):]: v.clone() for k, v in self.state.items() if k.startswith(prefix)}

    @torch.no_grad()
    def hidden_states(self, ids, mask, types, n_layers: int):  # (B, S) x3 -> (B, S, H) after `n_layers` layers
        w, eps = self.state, self.eps
        S = ids.shape[1]
        # 1. embeddings
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:S]
             + w["embeddings.token_type_embeddings.weight"][types])
        x = F.layer_norm(x, x.shape[-1:], w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min       # (B, 1, 1, S)
        B, H = x.shape[0], x.shape[-1]
        hd = H // self.n_heads
        # 2. encoder layers: self-attention, then the feed-forward, each with residual + post-norm
        for i in range(n_layers):
            p = f"encoder.layer.{i}."

            def lin(name, t):
                return F.linear(t, w[p + name + ".weight"], w[p + name + ".bias"])

            q, k, v = (lin(f"attention.self.{n}", x).view(B, S, self.n_heads, hd).transpose(1, 2)
                       for n in ("query", "key", "value"))                                   # (B, nh, S, hd)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + bias, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(B, S, H)
            x = F.layer_norm(lin("attention.output.dense", ctx) + x, (H,), w[p + "attention.output.LayerNorm.weight"],
                             w[p + "attention.output.LayerNorm.bias"], eps)
            ff = lin("output.dense", F.gelu(lin("intermediate.dense", x)))
            x = F.layer_norm(ff + x, (H,), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        return x
