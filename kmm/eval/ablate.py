"""The paper's ablation (arXiv 2411.06481, Table 3): key-frame masking vs random masking vs no text–motion
alignment, each generator trained with several training seeds at the same budget, then scored with the frozen
evaluator on the held-out split — with a learning curve (checkpoints along each run).

    python -m kmm ablate --plan recipes/ablation.json --out runs/ablate              # train + score (resumable)
    python -m kmm ablate --plan recipes/ablation.json --out runs/ablate --shard 1/2  # half the runs (2 cores)
    python -m kmm ablate --out runs/ablate --summarize --json results/ablation.json  # the table

Every run shares the bundle's tokenizer and normalizer (so only the generator differs) and the recipe's
generator config; a variant overrides GeneratorConfig fields (masking, contrastive_weight, key_frame_share).
Steps:
  1. load the data (train split for training, the plan's split for scoring) and tokenize the train text items;
  2. for each (variant, training seed) of this shard: train `steps` steps (checkpoint every `curve` step,
     copied to RUN/<variant>-s<seed>/step-<n>/); resumable;
  3. score every checkpoint of the curve: R-precision, FID, MM-Dist on `eval_texts` test texts × `eval_seeds`
     sampling seeds, plus one composed timeline per sampling seed (transition FID, peak jerk, AUJ);
     written to RUN/scores/<variant>-s<seed>-step<n>.json (skipped when present);
  4. `--summarize`: per variant and step, mean and 95% interval over the training seeds' means (the interval
     that includes training noise) and over all training × sampling seeds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

METRIC_KEYS = ("fid", "r_precision_top1", "r_precision_top3", "mm_dist", "diversity", "transition_fid",
               "peak_jerk", "auj", "foot_skating_raw")


@dataclass
class AblationPlan:
    bundle: str = "assets/kmm"            # tokenizer/, normalizer.safetensors, kmm/config.json (generator config)
    variants: dict = field(default_factory=lambda: {
        "kmm": {"masking": "keyframe"},
        "kmm-random": {"masking": "random"},
        "kmm-noalign": {"masking": "keyframe", "contrastive_weight": 0.0},
    })
    seeds: tuple = (0, 1, 2)              # training seeds
    steps: int = 400                      # generator steps per run (same budget for every variant)
    batch: int = 32
    lr: float = 4e-4
    warmup: int = 50
    curve: tuple = (100, 200, 400)        # checkpoints scored (the learning curve); the last must be `steps`
    split: str = "test"
    eval_texts: int = 64
    eval_seeds: int = 2                   # sampling seeds per checkpoint
    transition_segments: int = 16
    decode_steps: int = 10
    guidance: float = 3.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AblationPlan":
        d = dict(d)
        for k in ("seeds", "curve"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def runs(self) -> list[tuple[str, int]]:
        return [(v, s) for s in self.seeds for v in self.variants]


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}"


def _recipe(plan: AblationPlan, seed: int):
    from kmm.config import GeneratorConfig, TokenizerConfig
    from kmm.train import Recipe

    bundle = Path(plan.bundle)
    return Recipe(seed=seed, threads=1, generator_steps=plan.steps, generator_batch=plan.batch, generator_lr=plan.lr,
                  warmup=plan.warmup, steps_per_check=min(plan.curve),
                  tokenizer=TokenizerConfig.load(bundle / "tokenizer" / "config.json"),
                  generator=GeneratorConfig.load(bundle / "kmm" / "config.json"))


def _eval_bundle(plan: AblationPlan, out: Path, snapshot: Path) -> Path:
    """A bundle folder that Pipeline.from_pretrained reads: the shared tokenizer/normalizer + this generator."""
    src = Path(plan.bundle).resolve()
    b = out / "bundles" / snapshot.parent.name / snapshot.name
    b.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer", "normalizer.safetensors", "pipeline.json"):
        link = b / name
        if (src / name).exists() and not link.exists():
            link.symlink_to(src / name)
    gen = b / "kmm"
    if not gen.exists():
        gen.symlink_to(snapshot.resolve())
    return b


def train_runs(plan: AblationPlan, out: Path, data=None, shard: tuple[int, int] = (0, 1), log=print) -> None:
    """Steps 1–3 for this shard's runs."""
    import torch
    from safetensors.torch import load_file

    from kmm.corpus import build_corpus
    from kmm.data import load_dataset, resolve_data_dirs
    from kmm.model.tokenizer import MotionTokenizer
    from kmm.motion.features import Normalizer
    from kmm.text_backbone import TextBackbone
    from kmm.train import Logger, tokenize_corpus, train_generator

    torch.set_num_threads(1)
    mine = [r for k, r in enumerate(plan.runs()) if k % shard[1] == shard[0]]
    todo = [r for r in mine if not all((out / "scores" / f"{run_name(*r)}-step{n}.json").is_file() for n in plan.curve)]
    if not todo:
        log("ablate: nothing left for this shard")
        return
    # 1. data, shared tokenizer and normalizer
    bundle = Path(plan.bundle)
    dataset = load_dataset(resolve_data_dirs(data))
    cache = out / "cache"
    train = build_corpus(dataset, "train", mirror=True, cache_dir=cache)
    val = build_corpus(dataset, "val" if "val" in dataset.splits else "test", mirror=False, cache_dir=cache)
    normalizer = Normalizer.from_dict({k: v.numpy() for k, v in load_file(str(bundle / "normalizer.safetensors")).items()})
    tokenizer = MotionTokenizer.from_pretrained(bundle / "tokenizer").eval()
    for p in tokenizer.parameters():
        p.requires_grad_(False)
    tc = tokenize_corpus(tokenizer, normalizer, train.text_items())
    tc_val = tokenize_corpus(tokenizer, normalizer, val.text_items())
    backbone = TextBackbone(max_tokens=_recipe(plan, 0).generator.text.max_tokens)
    scorer = _Scorer(plan, data, log)
    for variant, seed in todo:
        name = run_name(variant, seed)
        run_dir = out / "runs" / name
        run_dir.mkdir(parents=True, exist_ok=True)
        recipe = _recipe(plan, seed)

        def snapshot(step: int, stage: Path, run_dir=run_dir) -> None:
            if step in plan.curve:
                dst = run_dir / f"step-{step}"
                dst.mkdir(exist_ok=True)
                for f in ("model.safetensors", "config.json"):
                    shutil.copy2(stage / f, dst / f)

        # 2. train (resumes from run_dir/<variant>/ when a checkpoint is there)
        t0 = time.time()
        train_generator(variant, tc, tc_val, tokenizer, backbone, recipe, run_dir, Logger(run_dir / "train_log.jsonl"),
                        variant=plan.variants[variant], on_checkpoint=snapshot)
        log(f"ablate: {name} trained ({time.time() - t0:.0f} s)")
        # 3. score the curve
        for n in plan.curve:
            dst = out / "scores" / f"{name}-step{n}.json"
            if not dst.is_file():
                scorer.score(_eval_bundle(plan, out, run_dir / f"step-{n}"), dst,
                             {"variant": variant, "seed": seed, "step": n})


class _Scorer:
    """The evaluator, the scored texts and the real reference, loaded once per process."""

    def __init__(self, plan: AblationPlan, data, log):
        self.plan, self.data, self.log, self._ready = plan, data, log, False

    def _load(self):
        from kmm.data import load_dataset, resolve_data_dirs
        from kmm.eval.evaluate import real_reference, select_items
        from kmm.eval.evaluator import FrozenEvaluator

        dataset = load_dataset(resolve_data_dirs(self.data))
        self.evaluator = FrozenEvaluator.load("assets/evaluator")
        self.items = select_items(dataset, self.plan.split, self.plan.eval_texts)
        self.reference = real_reference(self.evaluator, dataset, self.plan.split)
        self._ready = True

    def score(self, bundle: Path, dst: Path, meta: dict) -> None:
        from kmm.eval.evaluate import score_generator
        from kmm.pipeline import Pipeline

        if not self._ready:
            self._load()
        t0 = time.time()
        pipe = Pipeline.from_pretrained(bundle, generator="kmm", device="cpu")
        metrics = score_generator(pipe, self.evaluator, self.items, list(range(self.plan.eval_seeds)), self.reference,
                                  steps=self.plan.decode_steps, guidance=self.plan.guidance, mm_reps=0,
                                  transition_segments=self.plan.transition_segments, log=self.log)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(json.dumps({**meta, "metrics": metrics, "n_texts": len(self.items),
                                   "evaluator_sha256": self.evaluator.weights_sha256(),
                                   "wall_s": round(time.time() - t0, 1)}, indent=1))
        self.log(f"ablate: scored {dst.name} ({time.time() - t0:.0f} s)")


def summarize(plan: AblationPlan, out: Path, plan_file: str = "recipes/ablation.json") -> dict:
    """Step 4: {variant: {step: {metric: {mean, ci95_train, ci95_all, per_seed, n_seeds}}}}."""
    from kmm.eval.metrics import mean_ci95

    table: dict = {}
    for variant in plan.variants:
        for n in plan.curve:
            rows = []
            for seed in plan.seeds:
                f = out / "scores" / f"{run_name(variant, seed)}-step{n}.json"
                if f.is_file():
                    rows.append(json.loads(f.read_text()))
            if not rows:
                continue
            cell = {}
            for key in METRIC_KEYS:
                per_seed = [r["metrics"][key]["mean"] for r in rows if r["metrics"].get(key)]
                every = [v for r in rows if r["metrics"].get(key) for v in r["metrics"][key]["values"]]
                if not per_seed:
                    continue
                mean, ci_train = mean_ci95(per_seed)
                cell[key] = {"mean": mean, "ci95_train": ci_train, "ci95_all": mean_ci95(every)[1],
                             "per_seed": per_seed, "n_seeds": len(per_seed), "n_values": len(every)}
            table.setdefault(variant, {})[str(n)] = cell
    return {"kind": "kmm-ablation", "plan": plan.to_dict(), "table": table, "plan_file": plan_file,
            "note": "ci95_train: 95% t-interval over the training seeds' means (each the mean of the sampling "
                    "seeds); ci95_all: over every training × sampling seed value."}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="train and score the masking/alignment ablation (training seeds, curve)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", type=Path, default=None, help="ablation plan JSON (default: the built-in plan)")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, scores); resumable")
    p.add_argument("--data", default=None, help="dataset folder(s) or a parent (default: $KMM_DATA or ../shared/data)")
    p.add_argument("--shard", default="0/1", help="i/n: this process takes runs i, i+n, … (one process per core)")
    p.add_argument("--summarize", action="store_true", help="only collect the scores into --json")
    p.add_argument("--json", type=Path, default=Path("results/ablation.json"))
    p.set_defaults(func=cmd_ablate)


def load_plan(path: Path | None) -> AblationPlan:
    from kmm.errors import CliError

    if path is None:
        return AblationPlan()
    try:
        plan = AblationPlan.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError) as e:
        raise CliError(f"bad ablation plan {path}: {e}") from e
    if plan.steps not in plan.curve:
        raise CliError(f"bad ablation plan {path}: the curve {list(plan.curve)} must end at steps={plan.steps}")
    return plan


def cmd_ablate(args: argparse.Namespace) -> int:
    from kmm.errors import CliError

    out = Path(args.out)
    plan_file = out / "plan.json"
    plan = load_plan(args.plan if args.plan is not None or not plan_file.is_file() else plan_file)
    if args.summarize:
        result = summarize(plan, out, str(args.plan) if args.plan is not None else "recipes/ablation.json")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
        return 0
    try:
        i, n = (int(x) for x in args.shard.split("/"))
        assert 0 <= i < n
    except (ValueError, AssertionError) as e:
        raise CliError(f"--shard must be i/n with 0 <= i < n, got {args.shard!r}") from e
    out.mkdir(parents=True, exist_ok=True)
    if not plan_file.is_file():
        plan_file.write_text(json.dumps(plan.to_dict(), indent=1))
    elif json.loads(plan_file.read_text()) != json.loads(json.dumps(plan.to_dict())):
        raise CliError(f"{plan_file} differs from the plan given; use a new --out folder")
    train_runs(plan, out, data=args.data, shard=(i, n))
    return 0
