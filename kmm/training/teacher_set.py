"""Sequence-level distillation data: the teacher's own guided samples (ours, issue #16; Kim & Rush 2016).

Token-level distillation (`kmm.train.generator_step`, `distill_from`) shows the student the teacher's
distribution only on *training* windows: one clip, one text, ground-truth tokens around the masked ones. At
inference the sampler instead decodes from nothing, with guidance, and a timeline's window holds two segments'
texts. A pruned student distilled on training windows alone matched the teacher's FID but sat down before a
timeline's "sit" segment began (results/pruning/distilled/README.md). Here the teacher *generates* windows the
way the pipeline does, and the student then learns those tokens as targets (plus the KL term, as for data
rows), so it is shown what the teacher does on the inference distribution: guided, and with two texts.

1. Draw `n` training clips (√length × action balance, as the generator batches) and paraphrase one caption each
   (`TextBatcher`, as in training).
2. A `pair_share` of them get a partner clip whose text follows the first (a two-segment timeline window).
   Lengths ("clip"): a single text keeps its clip's length (≤ the window); a pair's first text holds 1/4..3/4 of
   the window and the partner's the rest. ("predicted"): each text gets the teacher's length-head prediction, as
   the pipeline's automatic lengths; a pair longer than the window is scaled down to fit.
3. In batches, the teacher samples every window with the pipeline's sampler (`guided` classifier-free guidance,
   `mask_predict`, top-k 0.1, `steps` steps): the targets are those base-layer tokens.

No file I/O here: `TeacherSet.state` / `TeacherSet.from_state` give the caller tensors and texts to store.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kmm.generators.kmm.sampling import guided, mask_predict
from kmm.training.common import TextBatcher, sample_by_length


@dataclass
class TeacherSet:
    tokens: list          # [(L_i,) long] base-layer ids sampled by the teacher
    texts: list           # [(text,) or (text, text2)] the segment texts each window was sampled with
    split: list           # [int] first token of the second text (= L_i for one text)

    def __len__(self):
        return len(self.tokens)

    def state(self) -> tuple[dict, dict]:  # -> tensors (for safetensors), json-able metadata
        lengths = torch.tensor([len(t) for t in self.tokens])
        return ({"tokens": torch.cat(self.tokens), "lengths": lengths, "split": torch.tensor(self.split)},
                {"texts": [list(t) for t in self.texts]})

    @classmethod
    def from_state(cls, tensors: dict, meta: dict) -> "TeacherSet":
        ends = tensors["lengths"].cumsum(0).tolist()
        starts = [0] + ends[:-1]
        return cls([tensors["tokens"][a:b].clone() for a, b in zip(starts, ends)],
                   [tuple(t) for t in meta["texts"]], tensors["split"].tolist())

    def rows(self, idx, n_quantizers: int):
        """idx -> crops [(L, Q)] (layers 1..Q-1 = -1, "not used" by the quantizer), split (B,), texts, texts2."""
        crops, split, t1, t2 = [], [], [], []
        for i in idx:
            tok = self.tokens[i]
            c = torch.full((len(tok), n_quantizers), -1, dtype=torch.long)
            c[:, 0] = tok
            crops.append(c)
            split.append(self.split[i])
            t1.append(self.texts[i][0])
            t2.append(self.texts[i][-1])
        return crops, torch.tensor(split), t1, t2


@torch.no_grad()
def sample_teacher_set(teacher, backbone, token_lengths, captions, n: int, rng: np.random.Generator,
                       g: torch.Generator, *, weights=None, pair_share: float = 0.5, guidance: float = 3.0,
                       steps: int = 10, temperature: float = 1.0, batch: int = 32, lengths: str = "clip",
                       log=None) -> TeacherSet:
    """teacher: MaskedGenerator (eval); backbone(texts) -> (hidden (B, S, 384), mask (B, S)); token_lengths /
    captions: the training clips' token counts and caption lists. -> TeacherSet of n windows (steps 1-3 above).
    lengths "clip": each text gets its clip's token count (a pair's first text 1/4..3/4 of the window);
    "predicted": the teacher's length head, as the pipeline's automatic lengths (a pair's two lengths scaled
    down together when they exceed the window)."""
    if lengths not in ("clip", "predicted"):
        raise ValueError(f"lengths must be 'clip' or 'predicted', got {lengths!r}")
    W = teacher.config.max_tokens
    texts_src = TextBatcher(backbone, rng)
    # 1.-2.
    idx = sample_by_length(token_lengths, n, rng, weights)
    partner = np.where(rng.random(n) < pair_share, sample_by_length(token_lengths, n, rng, weights), -1)
    if lengths == "clip":
        plan = []
        for i, j in zip(idx, partner):
            t1 = texts_src.pick(captions[i])
            if j < 0:
                plan.append(((t1,), min(int(token_lengths[i]), W), None))
                continue
            a = min(int(rng.integers(W // 4, 3 * W // 4 + 1)), int(token_lengths[i]))
            b = min(int(token_lengths[j]), W - a)
            plan.append(((t1, texts_src.pick(captions[j])), a + b, a))
    else:
        texts = [(texts_src.pick(captions[i]),) if j < 0 else
                 (texts_src.pick(captions[i]), texts_src.pick(captions[j])) for i, j in zip(idx, partner)]
        flat = [t for pair in texts for t in pair]
        pred = []
        for s in range(0, len(flat), 256):
            pooled = teacher.encode_text(*backbone(flat[s:s + 256]))
            pred += (teacher.length_logits(pooled).argmax(-1) + 1).tolist()
        it = iter(pred)
        plan = []
        for pair in texts:
            want = [min(next(it), W) for _ in pair]
            if len(want) == 1:
                plan.append((pair, want[0], None))
                continue
            a, b = want
            if a + b > W:
                a = max(1, min(W - 1, round(a * W / (a + b))))
                b = W - a
            plan.append((pair, a + b, a))
    # 3.
    out = TeacherSet([], [], [])
    for s in range(0, n, batch):
        part = plan[s:s + batch]
        lens = torch.tensor([p[1] for p in part])                                   # (B,)
        T = int(lens.max())
        split = torch.tensor([p[2] if p[2] is not None else p[1] for p in part])
        first = [p[0][0] for p in part]
        second = [p[0][-1] for p in part]
        pooled = teacher.encode_text(*backbone(first + second))                      # (2B, 384)
        text = torch.stack([pooled[:len(part)], pooled[len(part):]], 1)              # (B, 2, 384)
        seg_ids = (torch.arange(T)[None, :] >= split[:, None]).long()               # (B, T)
        fn = guided(teacher, lens, text, seg_ids, guidance)
        ids = mask_predict(fn, lens, T, teacher.mask_id, steps, g, temperature=temperature)   # (B, T)
        for b, p in enumerate(part):
            out.tokens.append(ids[b, :p[1]].clone())
            out.texts.append(p[0])
            out.split.append(int(split[b]))
        if log is not None:
            log(teacher_set=len(out), of=n)
    return out
