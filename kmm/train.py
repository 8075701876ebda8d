"""Training recipe — paper §3 (tokenizer, then masked generator with key-frame masking and contrastive
alignment, then the random-masking ablation and the transformer baseline with the same budget and seed).

`train_all(dataset, out_dir, recipe)` runs every stage and leaves a bundle folder that
`kmm.pipeline.Pipeline.from_pretrained` loads:
    out_dir/normalizer.safetensors, tokenizer/, residual/, kmm/, kmm-random/, transformer/, train_log.jsonl
Each stage checkpoints (safetensors + trainer_state.json) every `ckpt_every` steps and resumes from it.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from kmm import distributed as ddp
from kmm.config import DEFAULT_GUIDANCE, MAX_GUIDANCE, MIN_GUIDANCE
from kmm.corpus import Corpus, build_corpus
from kmm.generators.kmm.masking import MASKERS, cosine_ratio, valid_mask
from kmm.generators.bamm.model import Bamm
from kmm.generators.kmm.model import MaskedGenerator, info_nce
from kmm.generators.kmm.sampling import cfg_combine, cfg_logits, cfg_passes
from kmm.model.residual import ResidualPredictor
from kmm.model.tokenizer import MotionTokenizer
from kmm.motion.features import Normalizer
# shared by every stage (kmm/training/); imported here under their old names too (`from kmm.train import Recipe`)
from kmm.training.common import (Logger, TextBatcher, frozen_text_top, load_checkpoint, lr_lambda,  # noqa: F401
                                 optimizer_step, reconstruction_loss, sample_by_length, save_checkpoint,
                                 scheduler,
                                 action_balance_weights, warm_start,
                                 tokenizer_mpjpe_mm, window_batch, window_corpus)
from kmm.training.recipe import Recipe, tiny_recipe  # noqa: F401
from kmm.training.teacher_set import TeacherSet, sample_teacher_set


GENERATOR_VARIANTS = {
    "kmm": dict(backbone="mamba", masking="keyframe"),
    "kmm-random": dict(backbone="mamba", masking="random"),
    "transformer": dict(backbone="transformer", masking="random"),
    "bamm": {},   # its own model class (kmm.generators.bamm.model), trained by train_bamm with the same steps/batch/seed
}


# --- stage 1: tokenizer ---------------------------------------------------------------------------

def tokenizer_loss(model, x, root_weight: float = 1.0, limb_weight: float = 0.0):  # x (B, T, F) -> loss, parts
    """`reconstruction_loss` (all channels, joint positions, velocities, root path, limb ends) + 0.02 · commitment."""
    recon, _, commit = model(x)
    loss, parts = reconstruction_loss(recon, x, root_weight, limb_weight)
    if root_weight <= 0:
        parts["root"] = torch.zeros(())
    parts["commit"] = commit
    return loss + 0.02 * commit, {k: v.item() for k, v in parts.items()}


def train_tokenizer(train: Corpus, val: Corpus, normalizer: Normalizer, recipe: Recipe, out: Path, log) -> MotionTokenizer:
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    model = MotionTokenizer(recipe.tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.tokenizer_lr, weight_decay=0.0)
    stage = out / "tokenizer"
    start = load_checkpoint(stage, model, opt)
    sched = scheduler(opt, recipe.warmup, recipe.tokenizer_steps, start)
    W = recipe.tokenizer_window
    usable = window_corpus(train, normalizer, W)
    weights = action_balance_weights(usable.captions, [len(f) for f in usable.features],
                                     recipe.tokenizer_action_balance) if recipe.tokenizer_action_balance else None
    ddp.check_batch("tokenizer_batch", recipe.tokenizer_batch)
    ddp.sync_ema_quantizers(model)
    step_fn = ddp.wrap(model, tokenizer_loss)   # tokenizer_loss(model, ·) in one process
    model.train()
    bar = tqdm(range(start, recipe.tokenizer_steps), desc="tokenizer", mininterval=10, initial=start,
               total=recipe.tokenizer_steps, disable=not ddp.is_main())
    for step in bar:
        x = ddp.shard(window_batch(usable, recipe.tokenizer_batch, W, rng, weights))  # this rank's rows
        loss, parts = step_fn(x, recipe.root_weight, recipe.limb_weight)
        optimizer_step(opt, sched, loss, model.parameters())
        if (step + 1) % recipe.steps_per_check == 0 or step + 1 == recipe.tokenizer_steps:
            loss_v, parts = ddp.mean_for_log(loss, parts)
            if not ddp.is_main():
                continue
            mpjpe = tokenizer_mpjpe_mm(model, normalizer, val, max_clips=64)
            log(stage="tokenizer", step=step + 1, loss=loss_v, val_mpjpe_mm=round(mpjpe, 2), **parts)
            bar.set_postfix(loss=f"{loss_v:.4f}", val_mpjpe_mm=f"{mpjpe:.1f}")
            save_checkpoint(stage, model, opt, step + 1, {"val_mpjpe_mm": mpjpe})
    return model.eval()


# --- stage 2: generators ----------------------------------------------------------------------------

@dataclass
class TokenCorpus:
    codes: list[torch.Tensor]        # (n_i, Q) long
    captions: list[list[str]]


@torch.no_grad()
def tokenize_corpus(tokenizer: MotionTokenizer, normalizer: Normalizer, corpus: Corpus) -> TokenCorpus:
    ds = tokenizer.downsample
    codes = []
    for f in corpus.features:
        T = max(ds, len(f) // ds * ds)
        x = torch.from_numpy(normalizer.normalize(f[:T]))[None]
        codes.append(tokenizer.encode(x)[0])
    return TokenCorpus(codes, corpus.captions)


def _random_crop(c, n: int, rng: np.random.Generator):  # (L, Q) -> (min(L, n), Q), a random window of n tokens
    if len(c) <= n:
        return c
    s = int(rng.integers(0, len(c) - n + 1))
    return c[s:s + n]


def _pad_rows(crops):  # [(L_b, Q)] -> codes (B, max L_b, Q) zero-padded, lengths (B,)
    lengths = torch.tensor([len(c) for c in crops])
    codes = torch.zeros(len(crops), int(lengths.max()), crops[0].shape[-1], dtype=torch.long)
    for b, c in enumerate(crops):
        codes[b, :len(c)] = c
    return codes, lengths


def _window_length(max_tokens: int, min_tokens: int, rng: np.random.Generator) -> int:
    """A training window's length: max_tokens, or uniform in [min_tokens, max_tokens] when min_tokens > 0 (a
    generator that decodes long windows also sees short prompts and timelines of short segments)."""
    return int(rng.integers(min_tokens, max_tokens + 1)) if min_tokens > 0 else max_tokens


def generator_batch(tc: TokenCorpus, idx, max_tokens: int, rng: np.random.Generator, min_tokens: int = 0):
    crops = [_random_crop(tc.codes[i], _window_length(max_tokens, min_tokens, rng), rng) for i in idx]
    codes, lengths = _pad_rows(crops)
    return codes, lengths, torch.tensor([len(tc.codes[i]) for i in idx])


def pair_windows(tc: TokenCorpus, idx, partner, max_tokens: int, rng: np.random.Generator, min_tokens: int = 0,
                 at_boundaries: bool = False):
    """Windows that join two clips (ours: a timeline joins segments, and each must follow its own text up to the
    boundary). Row b with partner[b] >= 0: a crop of clip idx[b] of 1/4..3/4 of max_tokens (shorter clips whole),
    then a crop of clip partner[b] filling the rest; other rows: one clip, cropped as in `generator_batch`.
    -> codes (B, T, Q), lengths (B,), full (B,) (> any length-head target for joined rows: no length target),
    split (B,): the first token of the second clip (= length for one clip). min_tokens > 0: each row's window
    length is drawn in [min_tokens, max_tokens] first (`_window_length`). at_boundaries: the joined row is the *end*
    of clip i then the *start* of clip j, as in a timeline, where each segment's action begins at its boundary (with
    random slices the second text often starts mid-action, e.g. already seated, and a model learns to start a
    segment's action before its boundary)."""
    crops, full, split = [], [], []
    for i, j in zip(idx, partner):
        c = tc.codes[i]
        W = _window_length(max_tokens, min_tokens, rng)
        if j < 0:
            crops.append(_random_crop(c, W, rng))
            split.append(len(crops[-1]))
            full.append(len(c))
            continue
        n_a = int(rng.integers(W // 4, 3 * W // 4 + 1))
        if at_boundaries:
            a = c[-n_a:]
            crops.append(torch.cat([a, tc.codes[j][:W - len(a)]]))
        else:
            a = _random_crop(c, n_a, rng)
            crops.append(torch.cat([a, _random_crop(tc.codes[j], W - len(a), rng)]))
        split.append(len(a))
        full.append(10 ** 6)
    codes, lengths = _pad_rows(crops)
    return codes, lengths, torch.tensor(full), torch.tensor(split)


def _segment_texts(model: MaskedGenerator, pooled, hidden2=None, tmask2=None):
    """(B, 384) first text [+ the second clip's hidden states] -> (B, 1 or 2, 384): one text per segment id."""
    if hidden2 is None:
        return pooled[:, None, :]
    return torch.stack([pooled, model.encode_text(hidden2, tmask2)], 1)


def generator_step(gen: MaskedGenerator, tokenizer: MotionTokenizer, codes, lengths, full_lengths, hidden, tmask,
                   texts: list[str], g: torch.Generator, shard=None, teacher: MaskedGenerator | None = None,
                   distill_weight: float = 0.0, split=None, hidden2=None, tmask2=None,
                   guidance_spread: float = 0.5, distill_guided: bool = False):
    """One training loss. codes (B, T, Q); hidden/tmask (B, S, 384)/(B, S) of the frozen text backbone.

    shard (torchrun): the masks and noise are drawn for the global batch `codes`, then `shard` keeps this
    rank's rows; hidden/tmask are already this rank's rows.
    teacher (ours, issue #16: a pruned generator relearning from the model it was cut from): the frozen teacher
    sees the same corrupted tokens, text and guidance drop; + distill_weight · KL(teacher ‖ student) over the
    masked tokens (knowledge distillation, Hinton et al. 2015, temperature 1).
    A student with `guidance_head` instead learns guidance (ours, issue #16): each row gets a scale w (the
    default, or for a `guidance_spread` share of rows uniform over the accepted range), the student's one-pass
    guided logits cond + w·d are taught the teacher's (1 + w)·cond − w·uncond by KL, and the plain token loss is
    dropped (its target is the unguided distribution).
    distill_guided (ours, issue #16: a pruned two-pass student): the KL compares guided logits instead, the
    student's (1 + w)·cond − w·uncond (both passes in one doubled batch, no guidance drop) against the teacher's,
    with w drawn as above; guidance multiplies the cond − uncond gap by w, so errors there weigh w times more in
    sampling than in the plain KL. The token loss stays, on the conditional pass.
    split/hidden2/tmask2 (`pair_windows`, ours): tokens from `split[b]` on belong to a second clip with its own text
    (segment 1); joined rows take no part in the alignment and length losses, which need one text per motion."""
    c = gen.config
    B, T = codes.shape[:2]
    base = codes[..., 0]                                                     # (B, T)
    valid = valid_mask(lengths, T)
    # 1. masking budget and which tokens (key frames first for KMM)
    ratio = cosine_ratio(torch.rand(B, generator=g))
    emb = tokenizer.rvq.decode(codes)                                        # (B, T, C) token embeddings
    mask = MASKERS[c.masking](emb, lengths, ratio, g, key_share=c.key_frame_share)
    # 2. corrupt: [MASK] for masked tokens, 10% of them a random id instead (BERT-style)
    noise = torch.rand(B, T, generator=g) < 0.1
    rand_ids = torch.randint(0, c.n_codes, (B, T), generator=g)
    inp = torch.where(mask, torch.full_like(base, gen.mask_id), base)
    inp = torch.where(mask & noise, rand_ids, inp)
    # 3. text: fine-tuned top layer; dropped 10% for classifier-free guidance
    pooled = gen.encode_text(hidden, tmask)                                  # (B, 384)
    drop = torch.rand(B, generator=g) < c.cond_drop
    learn_guidance = teacher is not None and c.guidance_head
    guided_kd = teacher is not None and distill_guided and not c.guidance_head
    w = guidance_draw(B, g, guidance_spread)                                 # (B,) used when guided
    if learn_guidance or guided_kd:
        drop = torch.zeros(B, dtype=torch.bool)
    if split is None:
        split = lengths
    if shard is not None:
        inp, lengths, base, mask, drop, full_lengths, texts, split, w = (
            shard(v) for v in (inp, lengths, base, mask, drop, full_lengths, texts, split, w))
        B = len(inp)
    second = hidden2 is not None
    seg_ids = (torch.arange(T)[None, :] >= split[:, None]).long() * second    # (B, T): 1 = the second clip
    s_text = _segment_texts(gen, pooled, hidden2, tmask2)
    if guided_kd:
        logits, uncond = cfg_passes(gen, inp, lengths, s_text, seg_ids)      # (B, T, K) × 2
        s_kd = cfg_combine(logits, uncond, w)
    else:
        logits = gen(inp, lengths, s_text, seg_ids, drop, w if learn_guidance else None)   # (B, T, K)
        s_kd = logits
    l_tok = F.cross_entropy(logits[mask], base[mask])
    acc = (logits[mask].argmax(-1) == base[mask]).float().mean()
    # 4. contrastive text–motion alignment (symmetric InfoNCE, λ)
    one = split >= lengths                                                   # (B,) rows of one clip
    same = torch.tensor([[a == b for b in texts] for a in texts])[one][:, one]
    l_align = (info_nce(gen.text_embedding(pooled[one]), gen.motion_embedding(base[one], lengths[one]),
                        gen.logit_scale, same) if int(one.sum()) > 1 else pooled.sum() * 0)
    # 5. length head (detached text so it does not steer the encoder)
    # (items longer than the head's range are whole long trials: their length says nothing about the text)
    target = full_lengths.clamp(1, c.max_length_tokens) - 1
    has_len = (full_lengths <= c.max_length_tokens).float()
    l_len = (F.cross_entropy(gen.length_logits(pooled.detach()), target, reduction="none") * has_len).sum() \
        / has_len.sum().clamp(min=1)
    loss = (0.0 if learn_guidance else l_tok) + c.contrastive_weight * l_align + 0.1 * l_len
    parts = {"tok": l_tok, "acc": acc, "align": l_align, "len": l_len}
    # 6. distillation from the teacher (only when one is given)
    if teacher is not None:
        with torch.no_grad():
            t_text = _segment_texts(teacher, teacher.encode_text(hidden, tmask), hidden2, tmask2)
            if learn_guidance or guided_kd:
                t_logits = cfg_logits(teacher, inp, lengths, t_text, seg_ids, w)
            else:
                t_logits = teacher(inp, lengths, t_text, seg_ids, drop)
        parts["kd"] = masked_kl(s_kd, t_logits, mask)
        loss = loss + distill_weight * parts["kd"]
    del valid
    return loss, {k: v.item() for k, v in parts.items()}


def guidance_draw(B: int, g: torch.Generator, spread: float = 0.5):
    """-> (B,) scales: a `spread` share uniform over [MIN_GUIDANCE, MAX_GUIDANCE], the rest DEFAULT_GUIDANCE."""
    at_default = torch.rand(B, generator=g) >= spread
    uniform = MIN_GUIDANCE + (MAX_GUIDANCE - MIN_GUIDANCE) * torch.rand(B, generator=g)
    return torch.where(at_default, torch.full((B,), DEFAULT_GUIDANCE), uniform)


def masked_kl(student_logits, teacher_logits, mask):  # (B, T, K) × 2, (B, T) -> KL(teacher ‖ student), mean
    return F.kl_div(F.log_softmax(student_logits[mask], -1), F.log_softmax(teacher_logits[mask], -1),
                    log_target=True, reduction="batchmean")


@torch.no_grad()
def generator_val(gen, tokenizer, tc_val: TokenCorpus, backbone, recipe: Recipe, teacher=None) -> dict:
    """Held-out masked-token accuracy at ratio 0.5 and length-head error (tokens), fixed seed; for a
    student given its teacher, also KL(teacher's guided ‖ student's guided) at the default scale (one pass for a
    guidance-distilled student)."""
    gen.eval()
    g = torch.Generator().manual_seed(123)
    rng = np.random.default_rng(123)
    idx = np.arange(min(len(tc_val.codes), 96))
    codes, lengths, full = generator_batch(tc_val, idx, gen.config.max_tokens, rng)
    texts = [tc_val.captions[i][0] for i in idx]
    hidden, tmask = backbone(texts)
    pooled = gen.encode_text(hidden, tmask)
    base = codes[..., 0]
    mask = MASKERS["random"](base[..., None].float(), lengths, torch.full((len(idx),), 0.5), g)
    inp = torch.where(mask, torch.full_like(base, gen.mask_id), base)
    seg = torch.zeros_like(base)
    logits = gen(inp, lengths, pooled[:, None, :], seg)
    acc = float((logits[mask].argmax(-1) == base[mask]).float().mean())
    nll = float(F.cross_entropy(logits[mask], base[mask]))
    pred_len = gen.length_logits(pooled).argmax(-1) + 1
    len_err = float((pred_len - full.clamp(1, gen.config.max_length_tokens)).abs().float().mean())
    out = {"val_acc": round(acc, 4), "val_nll": round(nll, 4), "val_len_err_tokens": round(len_err, 2)}
    if teacher is not None:   # how far the student's guided logits are from the teacher's
        w = torch.full((len(idx),), DEFAULT_GUIDANCE)
        t_logits = cfg_logits(teacher, inp, lengths, teacher.encode_text(hidden, tmask)[:, None, :], seg, w)
        s_logits = (gen(inp, lengths, pooled[:, None, :], seg, guidance=w) if gen.config.guidance_head
                    else cfg_logits(gen, inp, lengths, pooled[:, None, :], seg, w))
        out["val_guided_kl"] = round(float(masked_kl(s_logits, t_logits, mask)), 4)
        out["val_guided_acc"] = round(float((s_logits[mask].argmax(-1) == base[mask]).float().mean()), 4)
    gen.train()
    return out


def train_generator(name: str, tc: TokenCorpus, tc_val: TokenCorpus, tokenizer: MotionTokenizer, backbone,
                    recipe: Recipe, out: Path, log, *, variant: dict | None = None,
                    on_checkpoint=None) -> MaskedGenerator:
    """Trains generator `name` into out/name. `variant`: GeneratorConfig overrides (default
    GENERATOR_VARIANTS[name]); `on_checkpoint(step, stage_dir)` runs after each checkpoint (ablation curves)."""
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    variant = GENERATOR_VARIANTS[name] if variant is None else variant
    cfg = dataclasses.replace(recipe.generator, n_codes=recipe.tokenizer.n_codes, **variant)
    gen = MaskedGenerator(cfg)
    gen.text_top.load_bert_layer(backbone.last_layer_state(), "")
    text_params = list(gen.text_top.parameters())
    ids = {id(p) for p in text_params}
    other = [p for p in gen.parameters() if id(p) not in ids]
    opt = torch.optim.AdamW([{"params": other, "lr": recipe.generator_lr, "weight_decay": 0.01},
                             {"params": text_params, "lr": recipe.text_lr, "weight_decay": 0.0}])
    stage = out / name
    start = load_checkpoint(stage, gen, opt)
    if start == 0 and warm_start(gen, recipe.init_from, name):
        log(stage=name, init_from=recipe.init_from)
    weights = action_balance_weights(tc.captions, [len(c) for c in tc.codes], recipe.action_balance,
                                     recipe.action_boost)
    sched = scheduler(opt, recipe.warmup, recipe.generator_steps, start)
    texts_src = TextBatcher(backbone, rng)
    ddp.check_batch("generator_batch", recipe.generator_batch)
    teacher = None
    if recipe.distill_from:
        teacher = MaskedGenerator.from_pretrained(Path(recipe.distill_from) / name).eval().requires_grad_(False)
        log(stage=name, distill_from=recipe.distill_from, distill_weight=recipe.distill_weight)
    tset = None
    if recipe.teacher_samples > 0:
        if teacher is None:
            raise ValueError("teacher_samples needs distill_from (the teacher that samples them)")
        tset = _teacher_set(stage, teacher, backbone, tc, weights, recipe, log)
    step_fn = ddp.wrap(gen, functools.partial(generator_step, shard=ddp.shard, teacher=teacher,
                                              distill_weight=recipe.distill_weight,
                                              guidance_spread=recipe.guidance_spread,
                                              distill_guided=recipe.distill_guided))
    gen.train()
    bar = tqdm(range(start, recipe.generator_steps), desc=name, mininterval=10, initial=start,
               total=recipe.generator_steps, disable=not ddp.is_main())
    for step in bar:
        n_teacher = int(round(recipe.teacher_share * recipe.generator_batch)) if tset is not None else 0
        idx = _sample_clips_tokens(tc, recipe.generator_batch - n_teacher, rng, weights)
        pairs = {}
        two_texts = recipe.pair_prob > 0 or tset is not None
        if two_texts:   # some windows join two clips, each with its own text (pair_windows)
            partner = np.where(rng.random(len(idx)) < recipe.pair_prob,
                               _sample_clips_tokens(tc, len(idx), rng, weights), -1)
            codes, lengths, full, split = pair_windows(tc, idx, partner, cfg.max_tokens, rng, recipe.window_min_tokens,
                                                       recipe.pair_at_boundaries)
        else:
            codes, lengths, full = generator_batch(tc, idx, cfg.max_tokens, rng, recipe.window_min_tokens)
        texts = [texts_src.pick(tc.captions[i]) for i in idx]
        if two_texts:
            texts2 = [texts_src.pick(tc.captions[j]) if j >= 0 else t for j, t in zip(partner, texts)]
        if n_teacher:   # rows sampled by the teacher (sequence-level distillation, kmm.training.teacher_set)
            crops, t_split, t1, t2 = tset.rows(rng.integers(len(tset), size=n_teacher), codes.shape[-1])
            codes, lengths = _append_rows(codes, lengths, crops)
            full = torch.cat([full, torch.full((n_teacher,), 10 ** 6)])   # no length target for them
            split = torch.cat([split, t_split])
            texts, texts2 = texts + t1, texts2 + t2
        hidden, tmask = backbone(ddp.shard(texts))
        if two_texts:
            hidden2, tmask2 = backbone(ddp.shard(texts2))
            pairs = {"split": split, "hidden2": hidden2, "tmask2": tmask2}
        loss, parts = step_fn(tokenizer, codes, lengths, full, hidden, tmask, texts, g, **pairs)
        optimizer_step(opt, sched, loss, gen.parameters())
        if (step + 1) % recipe.steps_per_check == 0 or step + 1 == recipe.generator_steps:
            loss_v, parts = ddp.mean_for_log(loss, parts)
            if not ddp.is_main():
                continue
            val = generator_val(gen, tokenizer, tc_val, backbone, recipe, teacher)
            log(stage=name, step=step + 1, loss=loss_v, **parts, **val)
            bar.set_postfix(loss=f"{loss_v:.3f}", acc=f"{parts['acc']:.3f}", val_acc=f"{val['val_acc']:.3f}")
            save_checkpoint(stage, gen, opt, step + 1, val)
            if on_checkpoint is not None:
                on_checkpoint(step + 1, stage)
    return gen.eval()


def _append_rows(codes, lengths, crops):  # codes (B, T, Q) + [(L, Q)] -> codes (B + k, T', Q), lengths (B + k,)
    more, more_lengths = _pad_rows(crops)
    T = max(codes.shape[1], more.shape[1])
    return (torch.cat([F.pad(codes, (0, 0, 0, T - codes.shape[1])), F.pad(more, (0, 0, 0, T - more.shape[1]))]),
            torch.cat([lengths, more_lengths]))


def _teacher_set(stage: Path, teacher, backbone, tc: TokenCorpus, weights, recipe: Recipe, log) -> TeacherSet:
    """The teacher's sampled windows (kmm.training.teacher_set), stored in the stage folder so a resumed run
    trains on the same ones."""
    path, meta_path = stage / "teacher_set.safetensors", stage / "teacher_set.json"
    if path.is_file() and meta_path.is_file():
        return TeacherSet.from_state(load_file(str(path)), json.loads(meta_path.read_text()))
    t0 = time.time()
    tset = sample_teacher_set(teacher, backbone, [len(c) for c in tc.codes], tc.captions, recipe.teacher_samples,
                              np.random.default_rng(recipe.seed + 1), torch.Generator().manual_seed(recipe.seed + 1),
                              weights=weights, pair_share=recipe.teacher_pair_share, guidance=DEFAULT_GUIDANCE,
                              lengths=recipe.teacher_lengths)
    stage.mkdir(parents=True, exist_ok=True)
    tensors, meta = tset.state()
    save_file(tensors, str(path))
    meta_path.write_text(json.dumps(meta))
    log(stage="teacher_set", windows=len(tset), pair_share=recipe.teacher_pair_share, seconds=round(time.time() - t0, 1))
    return tset


def _sample_clips_tokens(tc: TokenCorpus, n: int, rng, weights=None):
    return sample_by_length([len(c) for c in tc.codes], n, rng, weights)


# --- BAMM baseline (#8) ------------------------------------------------------------------------------

def bamm_batch(tc: TokenCorpus, idx, max_tokens: int, rng: np.random.Generator):
    """-> base tokens (B, T), lengths (B,), ends (B,) bool: the crop reaches the clip's end (an [END] target)."""
    crops, ends = [], []
    for i in idx:
        c = tc.codes[i][:, 0]
        s = int(rng.integers(0, len(c) - max_tokens + 1)) if len(c) > max_tokens else 0
        crops.append(c[s:s + max_tokens])
        ends.append(s + len(crops[-1]) == len(c))
    lengths = torch.tensor([len(c) for c in crops])
    tokens = torch.zeros(len(crops), int(lengths.max()), dtype=torch.long)
    for b, c in enumerate(crops):
        tokens[b, :len(c)] = c
    return tokens, lengths, torch.tensor(ends)


def bamm_step(model: Bamm, tokens, lengths, ends, pooled, g: torch.Generator, causal_prob: float | None = None,
              ratio=None, cond_drop: float | None = None, shard=None):
    """One BAMM loss. tokens (B, T), lengths (B,), ends (B,) bool, pooled (B, 384) frozen text.

    1. per clip: unidirectional mask with probability causal_prob, else bidirectional with 50-100% of the
       motion tokens masked (U = the rest)
    2. targets: m_i at every query slot, [END] at slot `length` when the crop reaches the clip's end
    3. text dropped with probability cond_drop (classifier-free guidance)
    shard (torchrun): all of the above drawn for the global batch, then this rank's rows kept (pooled is
    already this rank's rows).
    """
    c = model.config
    B, T = tokens.shape
    valid = valid_mask(lengths, T)
    # 1.
    p = c.causal_prob if causal_prob is None else causal_prob
    causal = torch.rand(B, generator=g) < p
    if ratio is None:
        ratio = c.min_mask + (1 - c.min_mask) * torch.rand(B, generator=g)
    n_mask = torch.ceil(ratio * lengths).long().clamp(min=1)
    rank = torch.rand(B, T, generator=g).masked_fill(~valid, 2.0).argsort(1).argsort(1)
    known = valid & (rank >= n_mask[:, None]) & ~causal[:, None]                       # (B, T)
    pad = torch.zeros(B, 1, dtype=torch.bool)
    unmasked = torch.cat([known, pad], 1)                                               # (B, T+1)
    # 2.
    rows = torch.arange(B)
    target = torch.cat([tokens, torch.zeros(B, 1, dtype=torch.long)], 1)
    target[rows, lengths] = model.end_id
    predict = torch.cat([valid & ~known, pad], 1)
    predict[rows, lengths] = ends
    # 3.
    drop = torch.rand(B, generator=g) < (c.cond_drop if cond_drop is None else cond_drop)
    if shard is not None:
        tokens, unmasked, lengths, drop, target, predict = (
            shard(v) for v in (tokens, unmasked, lengths, drop, target, predict))
        B = len(tokens)
    seg_ids = torch.zeros(B, T + 1, dtype=torch.long)
    logits = model(tokens, unmasked, lengths, pooled[:, None, :], seg_ids, drop)         # (B, T+1, K+1)
    loss = F.cross_entropy(logits[predict], target[predict])
    acc = (logits[predict].argmax(-1) == target[predict]).float().mean()
    return loss, {"tok": loss.item(), "acc": acc.item()}


@torch.no_grad()
def bamm_val(model: Bamm, tc_val: TokenCorpus, text_top, backbone) -> dict:
    """Held-out next-token accuracy with the unidirectional mask and masked-token accuracy with the
    bidirectional mask at ratio 0.5 (fixed seed)."""
    model.eval()
    rng = np.random.default_rng(123)
    idx = np.arange(min(len(tc_val.codes), 96))
    tokens, lengths, ends = bamm_batch(tc_val, idx, model.config.max_tokens, rng)
    pooled = text_top(*backbone([tc_val.captions[i][0] for i in idx]))[1]
    out = {}
    for name, p in (("causal", 1.0), ("bidir", 0.0)):
        g = torch.Generator().manual_seed(123)
        _, parts = bamm_step(model, tokens, lengths, ends, pooled, g, causal_prob=p,
                             ratio=torch.full((len(idx),), 0.5), cond_drop=0.0)
        out[f"val_acc_{name}"] = round(parts["acc"], 4)
        out[f"val_nll_{name}"] = round(parts["tok"], 4)
    model.train()
    return out


def train_bamm(tc: TokenCorpus, tc_val: TokenCorpus, backbone, recipe: Recipe, out: Path, log) -> Bamm:
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    cfg = dataclasses.replace(recipe.bamm, n_codes=recipe.tokenizer.n_codes, text_dim=recipe.generator.text.dim)
    model = Bamm(cfg)
    text_top = frozen_text_top(backbone, recipe.generator.text)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.generator_lr, weight_decay=0.01)
    stage = out / "bamm"
    start = load_checkpoint(stage, model, opt)
    if start == 0 and warm_start(model, recipe.init_from, "bamm"):
        log(stage="bamm", init_from=recipe.init_from)
    weights = action_balance_weights(tc.captions, [len(c) for c in tc.codes], recipe.action_balance,
                                     recipe.action_boost)
    sched = scheduler(opt, recipe.warmup, recipe.generator_steps, start)
    picker = TextBatcher(backbone, rng)
    ddp.check_batch("generator_batch", recipe.generator_batch)
    step_fn = ddp.wrap(model, functools.partial(bamm_step, shard=ddp.shard))
    model.train()
    bar = tqdm(range(start, recipe.generator_steps), desc="bamm", mininterval=10, initial=start,
               total=recipe.generator_steps, disable=not ddp.is_main())
    for step in bar:
        idx = _sample_clips_tokens(tc, recipe.generator_batch, rng, weights)
        tokens, lengths, ends = bamm_batch(tc, idx, cfg.max_tokens, rng)
        with torch.no_grad():
            texts = [picker.pick(tc.captions[i]) for i in idx]
            pooled = text_top(*backbone(ddp.shard(texts)))[1]
        loss, parts = step_fn(tokens, lengths, ends, pooled, g)
        optimizer_step(opt, sched, loss, model.parameters())
        if (step + 1) % recipe.steps_per_check == 0 or step + 1 == recipe.generator_steps:
            loss_v, parts = ddp.mean_for_log(loss, parts)
            if not ddp.is_main():
                continue
            val = bamm_val(model, tc_val, text_top, backbone)
            log(stage="bamm", step=step + 1, loss=loss_v, **parts, **val)
            bar.set_postfix(loss=f"{loss_v:.3f}", acc=f"{parts['acc']:.3f}")
            save_checkpoint(stage, model, opt, step + 1, val)
    return model.eval()


# --- stage 3: residual layers ---------------------------------------------------------------------

def residual_loss(model: ResidualPredictor, partial, q, lengths, pooled, drop, target):
    """Cross-entropy of layer q's codes given the layers below. partial (B, T, C), q (B,), pooled (B, 384),
    target (B, T) -> loss, {"acc"}."""
    B, T = target.shape
    logits = model(partial, q, lengths, pooled[:, None, :], torch.zeros(B, T, dtype=torch.long), drop)
    valid = valid_mask(lengths, T)
    loss = F.cross_entropy(logits[valid], target[valid])
    return loss, {"acc": float((logits[valid].argmax(-1) == target[valid]).float().mean())}


def train_residual(tc: TokenCorpus, tokenizer: MotionTokenizer, backbone, recipe: Recipe, out: Path, log):
    """Residual predictor, shared by every base-layer generator. Text: the frozen (original) sentence embedding."""
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed + 1)
    g = torch.Generator().manual_seed(recipe.seed + 1)
    cfg = dataclasses.replace(recipe.residual, n_codes=recipe.tokenizer.n_codes,
                              n_quantizers=recipe.tokenizer.n_quantizers, code_dim=recipe.tokenizer.code_dim)
    model = ResidualPredictor(cfg)
    text_top = frozen_text_top(backbone, recipe.generator.text)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.generator_lr)
    stage = out / "residual"
    start = load_checkpoint(stage, model, opt)
    sched = scheduler(opt, recipe.warmup, recipe.residual_steps, start)
    picker = TextBatcher(backbone, rng)
    ddp.check_batch("residual_batch", recipe.residual_batch)
    step_fn = ddp.wrap(model, residual_loss)
    model.train()
    Q = cfg.n_quantizers
    bar = tqdm(range(start, recipe.residual_steps), desc="residual", mininterval=10, initial=start,
               total=recipe.residual_steps, disable=not ddp.is_main())
    for step in bar:
        idx = _sample_clips_tokens(tc, recipe.residual_batch, rng)
        codes, lengths, _ = generator_batch(tc, idx, recipe.generator.max_tokens, rng)
        B, T = codes.shape[:2]
        with torch.no_grad():
            texts = [picker.pick(tc.captions[i]) for i in idx]
            hidden, tmask = backbone(ddp.shard(texts))
            pooled = text_top(hidden, tmask)[1]
        q = torch.randint(1, Q, (B,), generator=g)
        partial = torch.zeros(B, T, cfg.code_dim)
        for layer in range(Q - 1):
            keep = (layer < q).float()[:, None, None]
            partial = partial + keep * tokenizer.code_vectors(codes[..., layer].clamp(min=0), layer)
        target = codes.gather(-1, q[:, None, None].expand(B, T, 1)).squeeze(-1)
        drop = torch.rand(B, generator=g) < cfg.cond_drop
        # torchrun: the noise above is the global batch's; this rank trains on its rows (identity in one process)
        partial, q, lengths, drop, target = (ddp.shard(v) for v in (partial, q, lengths, drop, target))
        loss, parts = step_fn(partial, q, lengths, pooled, drop, target)
        optimizer_step(opt, sched, loss, model.parameters())
        if (step + 1) % recipe.steps_per_check == 0 or step + 1 == recipe.residual_steps:
            loss_v, parts = ddp.mean_for_log(loss, parts)
            if not ddp.is_main():
                continue
            acc = parts["acc"]
            log(stage="residual", step=step + 1, loss=loss_v, acc=round(acc, 4))
            bar.set_postfix(loss=f"{loss_v:.3f}", acc=f"{acc:.3f}")
            save_checkpoint(stage, model, opt, step + 1)
    return model.eval()


# --- the whole recipe -----------------------------------------------------------------------------

def train_all(dataset, out_dir: str | Path, recipe: Recipe, *,
              stages=("tokenizer", "residual", "generators", "motion-mamba"),   # + "base-decoder" (opt-in)
              cache_dir: Path | None = None, backbone=None) -> Path:
    from kmm.text_backbone import TextBackbone

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(recipe.threads)
    if ddp.is_main():   # torchrun: rank 0 writes every file of the run folder (kmm/distributed.py)
        recipe.save(out / "recipe.json")
    log = Logger(out / "train_log.jsonl")
    t0 = time.time()
    with ddp.main_first():   # rank 0 fills the feature cache, the others read it
        train = build_corpus(dataset, "train", mirror=True, cache_dir=cache_dir)
        val_split = "val" if "val" in dataset.splits else "test"
        val = build_corpus(dataset, val_split, mirror=False, cache_dir=cache_dir)
    norm_path = out / "normalizer.safetensors"
    resumed = norm_path.is_file()
    ddp.barrier()            # every rank has looked before rank 0 writes it
    if resumed:
        normalizer = Normalizer.from_dict({k: v.numpy() for k, v in load_file(str(norm_path)).items()})
    else:
        normalizer = Normalizer.fit(train.features)
        if ddp.is_main():
            save_file({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in normalizer.to_dict().items()},
                      str(norm_path))
    train_text, val_text = train.text_items(), val.text_items()
    log(stage="data", train_clips=len(train), val_clips=len(val), train_text_items=len(train_text),
        val_text_items=len(val_text), seconds=round(time.time() - t0, 1))
    if "tokenizer" in stages:
        t = time.time()
        tokenizer = train_tokenizer(train, val, normalizer, recipe, out, log)
        log(stage="tokenizer", done=True, wall_s=round(time.time() - t, 1))
    if "base-decoder" in stages:   # the decoder alone, for the base layer the pipeline decodes; codes unchanged
        from kmm.training.base_decoder import train_base_decoder

        t = time.time()
        tokenizer = train_base_decoder(train, val, normalizer, recipe, out, log)
        log(stage="base-decoder", done=True, wall_s=round(time.time() - t, 1))
    if ("residual" in stages or "generators" in stages) and not {"tokenizer", "base-decoder"} & set(stages):
        tokenizer = MotionTokenizer.from_pretrained(out / "tokenizer")
    backbone = backbone or TextBackbone(max_tokens=recipe.generator.text.max_tokens)
    if "residual" in stages or "generators" in stages:
        tokenizer.eval()
        for p in tokenizer.parameters():
            p.requires_grad_(False)
        tc = tokenize_corpus(tokenizer, normalizer, train_text)
        tc_val = tokenize_corpus(tokenizer, normalizer, val_text)
    if "residual" in stages:
        t = time.time()
        train_residual(tc, tokenizer, backbone, recipe, out, log)
        log(stage="residual", done=True, wall_s=round(time.time() - t, 1))
    if "generators" in stages:
        for name in recipe.generators:
            t = time.time()
            if name == "bamm":
                train_bamm(tc, tc_val, backbone, recipe, out, log)
            else:
                train_generator(name, tc, tc_val, tokenizer, backbone, recipe, out, log)
            log(stage=name, done=True, wall_s=round(time.time() - t, 1))
    if "motion-mamba" in stages:   # Motion Mamba baseline: its own VAE (tokenizer's budget) + latent denoiser
        from kmm.generators.motion_mamba.train import train_motion_mamba, train_motion_vae

        t = time.time()
        vae = train_motion_vae(train, val, normalizer, recipe, out, log)
        log(stage="motion-vae", done=True, wall_s=round(time.time() - t, 1))
        t = time.time()
        train_motion_mamba(train_text, val_text, vae, normalizer, backbone, recipe, out, log)
        log(stage="motion-mamba", done=True, wall_s=round(time.time() - t, 1))
    log(stage="all", done=True, wall_s=round(time.time() - t0, 1))
    ddp.barrier()
    return out
