"""Text side — paper §3.3 (text encoder fine-tuned by contrastive text–motion alignment).

The sentence encoder is all-MiniLM-L6-v2 (ours: CLIP weights are not obtainable offline). Its first five
layers stay frozen and run outside this module (kmm.text_backbone); `TextTop` is a copy of the sixth,
BERT-style layer plus mean pooling, fine-tuned with the generator and shipped in its safetensors.
"""
from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from torch import nn

from kmm.config import TextConfig

# Maps our parameter names onto the BERT layer names in the MiniLM checkpoint.
BERT_LAYER_KEYS = {
    "q.weight": "attention.self.query.weight", "q.bias": "attention.self.query.bias",
    "k.weight": "attention.self.key.weight", "k.bias": "attention.self.key.bias",
    "v.weight": "attention.self.value.weight", "v.bias": "attention.self.value.bias",
    "attn_out.weight": "attention.output.dense.weight", "attn_out.bias": "attention.output.dense.bias",
    "norm1.weight": "attention.output.LayerNorm.weight", "norm1.bias": "attention.output.LayerNorm.bias",
    "ff1.weight": "intermediate.dense.weight", "ff1.bias": "intermediate.dense.bias",
    "ff2.weight": "output.dense.weight", "ff2.bias": "output.dense.bias",
    "norm2.weight": "output.LayerNorm.weight", "norm2.bias": "output.LayerNorm.bias",
}


class TextTop(nn.Module):
    """Last encoder layer (post-norm BERT layer) + attention-masked mean pooling."""

    def __init__(self, config: TextConfig):
        super().__init__()
        d = config.dim
        self.n_heads = config.n_heads
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attn_out = nn.Linear(d, d)
        self.norm1 = nn.LayerNorm(d, eps=1e-12)
        self.ff1, self.ff2 = nn.Linear(d, config.ff_dim), nn.Linear(config.ff_dim, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-12)

    def load_bert_layer(self, state: dict, prefix: str) -> None:
        self.load_state_dict({ours: state[prefix + theirs] for ours, theirs in BERT_LAYER_KEYS.items()})

    def forward(self, hidden, mask):  # (B, S, d), (B, S) bool -> tokens (B, S, d), pooled (B, d)
        # 1. self-attention over the sentence's word pieces
        q, k, v = (rearrange(f(hidden), "b s (h e) -> b h s e", h=self.n_heads) for f in (self.q, self.k, self.v))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        h = self.norm1(hidden + self.attn_out(rearrange(att, "b h s e -> b s (h e)")))
        # 2. feed-forward
        h = self.norm2(h + self.ff2(F.gelu(self.ff1(h))))
        # 3. mean over real word pieces (sentence-transformers pooling)
        m = mask.unsqueeze(-1).to(h.dtype)
        return h, (h * m).sum(1) / m.sum(1).clamp(min=1.0)
