"""Base-layer decoder fine-tune (ours; issues #13 breadth, #14 root drift) — the tokenizer of paper §3.1.

The pipeline decodes the base codebook layer only (`pipeline.json` residual_layers 0: no residual predictor
ships), but the tokenizer's decoder was trained on the sum of all six layers (base-only in ~3% of steps, through
quantizer dropout). Measured with `python -m kmm.eval.tokenizer_breadth`: kicks, pick-ups and dances lose most of
what the six layers keep when only the base layer is decoded.

This stage keeps the encoder and every codebook frozen — the codes, and so every generator trained on them, stay
exactly as they are — and fine-tunes the decoder alone to decode the base layer:
    1. draw windows of training clips, rare actions drawn more (`action_balance_weights`, `decoder_action_balance`);
    2. encode them with the frozen encoder and keep the base-layer code of each latent step;
    3. decode the base-layer vectors and take `reconstruction_loss` (with the root path, `root_weight`, and the
       limb ends, `limb_weight`);
    4. every `steps_per_check`: validation MPJPE of the base-layer decode (root integrated, and pose alone),
       checkpoint in RUN/base-decoder/ (resumable);
    5. at the end the tokenizer with its new decoder replaces RUN/tokenizer/ (encoder and codebooks unchanged).
Decoding all six layers with the new decoder is not what it was trained for: the tokenizer is then for
base-layer decoding, which is how the pipeline uses it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kmm.corpus import Corpus
from kmm.model.tokenizer import MotionTokenizer
from kmm.motion.features import Normalizer
from kmm.training.common import (action_balance_weights, load_checkpoint, optimizer_step, reconstruction_loss,
                                 save_checkpoint, scheduler, tokenizer_mpjpe_mm, window_batch, window_corpus)
from kmm.training.recipe import Recipe


class BaseLayerView(torch.nn.Module):
    """A tokenizer seen through its base layer: `reconstruct` = encode → base-layer code → decode (for the MPJPE
    helpers, which call `model.reconstruct`)."""

    def __init__(self, tokenizer: MotionTokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @property
    def downsample(self) -> int:
        return self.tokenizer.downsample

    @torch.no_grad()
    def reconstruct(self, features):  # (B, T, F) normalised -> (B, T, F)
        return self.tokenizer.decode(self.tokenizer.encode(features)[..., :1])


def base_decoder_loss(tokenizer: MotionTokenizer, x, root_weight: float, limb_weight: float = 0.0):
    # x (B, T, F) -> loss, parts
    with torch.no_grad():
        base = tokenizer.rvq.decode(tokenizer.encode(x)[..., :1])              # (B, T/4, C)
    loss, parts = reconstruction_loss(tokenizer.decode_latent(base), x, root_weight, limb_weight)
    return loss, {k: v.item() for k, v in parts.items()}


def train_base_decoder(train: Corpus, val: Corpus, normalizer: Normalizer, recipe: Recipe, out: Path,
                       log) -> MotionTokenizer:
    out = Path(out)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    tokenizer = MotionTokenizer.from_pretrained(out / "tokenizer")
    tokenizer.eval()                       # EMA codebooks must not move: the codes stay the generators' codes
    for p in tokenizer.parameters():
        p.requires_grad_(False)
    params = list(tokenizer.decoder.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=recipe.decoder_lr, weight_decay=0.0)
    stage = out / "base-decoder"
    start = load_checkpoint(stage, tokenizer, opt)
    sched = scheduler(opt, min(recipe.warmup, recipe.decoder_steps // 10), recipe.decoder_steps, start)
    W = recipe.tokenizer_window
    usable = window_corpus(train, normalizer, W)
    weights = action_balance_weights(usable.captions, [len(f) for f in usable.features],
                                     recipe.decoder_action_balance) if usable.captions else None
    view = BaseLayerView(tokenizer).eval()
    if start == 0:
        log(stage="base-decoder", step=0, val_base_mpjpe_mm=round(tokenizer_mpjpe_mm(view, normalizer, val, 64), 2),
            val_base_pose_mpjpe_mm=round(tokenizer_mpjpe_mm(view, normalizer, val, 64, root_relative=True), 2))
    for step in range(start, recipe.decoder_steps):
        x = window_batch(usable, recipe.tokenizer_batch, W, rng, weights)       # (B, W, F)
        loss, parts = base_decoder_loss(tokenizer, x, recipe.root_weight, recipe.limb_weight)
        optimizer_step(opt, sched, loss, params)
        if (step + 1) % recipe.steps_per_check == 0 or step + 1 == recipe.decoder_steps:
            mpjpe = tokenizer_mpjpe_mm(view, normalizer, val, 64)
            pose = tokenizer_mpjpe_mm(view, normalizer, val, 64, root_relative=True)
            log(stage="base-decoder", step=step + 1, loss=loss.item(), val_base_mpjpe_mm=round(mpjpe, 2),
                val_base_pose_mpjpe_mm=round(pose, 2), **parts)
            save_checkpoint(stage, tokenizer, opt, step + 1, {"val_base_mpjpe_mm": mpjpe})
    tokenizer.save_pretrained(out / "tokenizer")                                  # 5.
    return tokenizer
