"""Train the frozen evaluator (kmm.eval.evaluator) on the training split, then score ground truth on test.

    python -m kmm train-evaluator --out assets/evaluator            # all data, ~10 min on one CPU thread

Data: the training split of every folder, doubled by mirroring (motion and caption, kmm.motion.mirror);
each step draws clips uniformly, one of each clip's captions at random, and a random window of at most
`max_frames` (196) frames. The frozen sentence embeddings of all captions are computed once up front.
Loss: symmetric InfoNCE with a learnable temperature; identical captions are not negatives of each other.
The folder gets config.json + model.safetensors, normalizer.safetensors (training-split statistics of
this evaluator, independent of any generator), train_log.jsonl and a README.md with the ground-truth
R-precision / MM-Dist on the held-out split, computed by the same code as `python -m kmm evaluate`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kmm.config import _JsonConfig


@dataclass
class EvaluatorRecipe(_JsonConfig):
    seed: int = 0
    steps: int = 1500
    batch: int = 96
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    max_frames: int = 196             # random crop (HumanML3D's maximum clip length)
    log_every: int = 50
    eval_split: str = "test"
    eval_seeds: int = 3
    model: dict = field(default_factory=dict)   # EvaluatorConfig overrides, e.g. {"width": 64}


def _lr(step: int, recipe: EvaluatorRecipe) -> float:
    if step < recipe.warmup:
        return (step + 1) / recipe.warmup
    frac = min(1.0, (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup))
    return 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * frac))


def train_evaluator(dataset, out: str | Path, recipe: EvaluatorRecipe = EvaluatorRecipe(), *, cache_dir=None,
                    sentences=None, log=print) -> dict:
    """Trains, saves into `out`, scores ground truth on `recipe.eval_split`; returns a summary dict."""
    import torch

    from kmm.corpus import build_corpus
    from kmm.data import pad_batch
    from kmm.eval.evaluator import (EvaluatorConfig, FrozenEvaluator, SentenceEncoder, TextMotionEvaluator,
                                    info_nce, same_caption_matrix, save_normalizer)
    from kmm.motion.features import Normalizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    # 1. data: mirrored training split, normalised with its own statistics; frozen caption embeddings
    corpus = build_corpus(dataset, "train", mirror=True, cache_dir=cache_dir).text_items()  # captioned parts only
    normalizer = Normalizer.fit(corpus.features)
    feats = [normalizer.normalize(f).astype(np.float32) for f in corpus.features]
    sentences = sentences or SentenceEncoder()
    captions = sorted({c for caps in corpus.captions for c in caps})
    table = sentences(captions)                                                   # (C, 384)
    caption_id = {c: i for i, c in enumerate(captions)}
    clip_caps = [[caption_id[c] for c in caps] for caps in corpus.captions]
    log(f"train-evaluator: {len(feats)} clips (with mirrors), {len(captions)} captions, {recipe.steps} steps")
    # 2. model
    model = TextMotionEvaluator(EvaluatorConfig(**recipe.model))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr(s, recipe))
    log_path = out / "train_log.jsonl"
    log_path.write_text("")
    model.train()
    losses = []
    # 3. loop
    for step in range(recipe.steps):
        idx = rng.integers(len(feats), size=min(recipe.batch, len(feats)))
        cap = [clip_caps[i][int(rng.integers(len(clip_caps[i])))] for i in idx]
        crops = []
        for i in idx:
            f = feats[i]
            n = min(len(f), recipe.max_frames)
            s = int(rng.integers(0, len(f) - n + 1))
            crops.append(torch.from_numpy(f[s:s + n]))
        x, mask = pad_batch(crops)
        motion, text = model(x, mask, table[cap])
        loss = info_nce(motion, text, model.log_scale, same_caption_matrix([captions[c] for c in cap]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % recipe.log_every == 0 or step + 1 == recipe.steps:
            row = {"step": step + 1, "loss": float(np.mean(losses[-recipe.log_every:])),
                   "temperature": float(torch.exp(-model.log_scale.detach())), "wall_s": round(time.perf_counter() - t_start, 1)}
            with log_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            log(f"  step {row['step']}: loss {row['loss']:.3f}  T {row['temperature']:.3f}  {row['wall_s']:.0f} s")
    model.eval()
    train_s = time.perf_counter() - t_start
    # 4. save, then score ground truth on the held-out split with the saved (frozen) evaluator
    model.save_pretrained(out)
    save_normalizer(normalizer, out)
    recipe.save(out / "recipe.json")
    frozen = FrozenEvaluator.load(out, sentences)
    summary = {"train_clips": len(feats), "captions": len(captions), "steps": recipe.steps, "train_s": train_s,
               "final_loss": float(np.mean(losses[-recipe.log_every:])), "data": [str(d) for d in dataset.dirs],
               "threads": torch.get_num_threads(), "sha256": frozen.weights_sha256()}
    if recipe.eval_split in dataset.splits:
        summary["eval"] = ground_truth_scores(frozen, dataset, recipe.eval_split, recipe.eval_seeds)
    (out / "README.md").write_text(readme(summary, recipe, frozen.config))
    return summary


def ground_truth_scores(evaluator, dataset, split: str, n_seeds: int = 3) -> dict:
    """Ground-truth metrics on the whole split, by the code `python -m kmm evaluate` uses."""
    from kmm.eval.evaluate import real_reference, score_ground_truth, select_items

    items = select_items(dataset, split)
    metrics = score_ground_truth(evaluator, items, list(range(n_seeds)), real_reference(evaluator, dataset, split))
    return {"split": split, "n_texts": len(items), "seeds": n_seeds,
            "metrics": {k: v for k, v in metrics.items() if v is not None}}


def _fmt(v: dict | None) -> str:
    return "–" if v is None else f"{v['mean']:.3f} ± {v['ci95']:.3f}"


def readme(summary: dict, recipe: EvaluatorRecipe, config) -> str:
    lines = [
        "# Text–motion evaluator (frozen)",
        "",
        "Scores every method in `python -m kmm evaluate` (METHOD.md §5). Code: `kmm/eval/evaluator.py`;",
        "trained by `kmm/eval/train_evaluator.py` on the **training split only** (mirrored), then frozen.",
        "",
        "- Motion encoder: normalised 263-d features → linear → 2 × Conv1d stride 2 → masked mean‖max pooling → MLP → "
        f"{config.embed_dim}-d (width {config.width}); motions longer than {config.max_frames} frames are cut.",
        f"- Text encoder: frozen {config.text_encoder} sentence embedding (384-d, mean pooled, unit length) → MLP → "
        f"{config.embed_dim}-d.",
        "- Both embeddings are L2-normalised: distances lie in [0, 2] (so MM-Dist, Diversity and FID are on a "
        "different scale from the HumanML3D/T2M evaluators' numbers).",
        "- Loss: symmetric InfoNCE, learnable temperature, identical captions are not negatives of each other.",
        f"- `normalizer.safetensors`: this evaluator's own training-split mean/std.",
        "",
        "## Training",
        "",
        f"- Data: {', '.join(Path(d).name for d in summary['data'])}; {summary['train_clips']} training clips with "
        f"mirrors, {summary['captions']} distinct captions.",
        f"- {recipe.steps} steps, batch {recipe.batch}, random crops ≤ {recipe.max_frames} frames, AdamW lr "
        f"{recipe.lr}, seed {recipe.seed}; {summary['threads']} CPU thread(s), {summary['train_s'] / 60:.1f} min; "
        f"final loss {summary['final_loss']:.3f}.",
        "",
    ]
    ev = summary.get("eval")
    if ev:
        m = ev["metrics"]
        lines += [
            f"## Ground truth on the held-out `{ev['split']}` split",
            "",
            f"{ev['n_texts']} (first caption, real motion) pairs; R-precision in batches of 32, mean ± 95% interval "
            f"over {ev['seeds']} batch shuffles. Same code as `python -m kmm evaluate` (model `gt`).",
            "",
            "| R-precision top-1 | top-2 | top-3 | MM-Dist | Diversity |",
            "|---|---|---|---|---|",
            f"| {_fmt(m.get('r_precision_top1'))} | {_fmt(m.get('r_precision_top2'))} | "
            f"{_fmt(m.get('r_precision_top3'))} | {_fmt(m.get('mm_dist'))} | {_fmt(m.get('diversity'))} |",
            "",
            "Chance level for R-precision is 1/32, 2/32, 3/32 (0.031, 0.062, 0.094). Many captions are shared by",
            "several clips (generated from action × style labels), which caps the reachable top-1.",
            "",
        ]
    lines += ["## Files", "", "| file | sha256 |", "|---|---|"]
    lines += [f"| `{k}` | `{v}` |" for k, v in summary["sha256"].items()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# command line


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-evaluator", help="train the frozen text-motion evaluator used by `evaluate`",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="dataset folder(s) or a parent (default: $KMM_DATA or ../shared/data)")
    p.add_argument("--out", type=Path, default=Path("assets/evaluator"))
    p.add_argument("--steps", type=int, default=None, help=f"training steps (default {EvaluatorRecipe.steps})")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--width", type=int, default=None, help="motion encoder width (default 128)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", type=Path, default=Path(".cache"), help="feature cache folder")
    p.set_defaults(func=cmd_train_evaluator)


def cmd_train_evaluator(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from kmm.errors import CliError
    from kmm.data import load_dataset, resolve_data_dirs
    from kmm.eval.report import fmt_value

    torch.set_num_threads(args.threads)
    recipe = EvaluatorRecipe()
    if args.steps is not None:
        if args.steps < 1:
            raise CliError("--steps must be at least 1")
        recipe = dataclasses.replace(recipe, steps=args.steps, log_every=min(recipe.log_every, args.steps))
    if args.batch:
        recipe = dataclasses.replace(recipe, batch=args.batch)
    if args.width:
        recipe = dataclasses.replace(recipe, model={"width": args.width})
    dataset = load_dataset(resolve_data_dirs(args.data))
    if "train" not in dataset.splits:
        raise CliError(f"no train split in {', '.join(str(d) for d in dataset.dirs)}")
    summary = train_evaluator(dataset, args.out, recipe, cache_dir=args.cache,
                              log=lambda m: print(m, file=sys.stderr, flush=True))
    ev = summary.get("eval")
    if ev:
        m = ev["metrics"]
        print(f"ground truth on {ev['split']} ({ev['n_texts']} texts): "
              + "  ".join(f"{k}={fmt_value(m.get(k))}"
                          for k in ("r_precision_top1", "r_precision_top2", "r_precision_top3", "mm_dist")))
    print(f"wrote {args.out} ({summary['train_s'] / 60:.1f} min)")
    return 0
