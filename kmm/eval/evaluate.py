"""Score ground truth and the generators on a held-out split with the frozen evaluator (METHOD.md §5).

    python -m kmm evaluate --split test --json results/eval.json            # ~ the whole protocol
    python -m kmm evaluate --max-texts 16 --seeds 1 --models gt,kmm         # a quick look

What is measured, per model (ground truth "gt" included) and per seed:
- R-precision top-1/2/3 (batches of 32, batch composition shuffled by the seed), MM-Dist, FID against the
  embeddings of *all* real motions of the split, Diversity (300 random pairs), foot-skating ratio;
- for generators also MultiModality (``mm_texts`` texts × ``mm_reps`` generations), the average inference
  time per sentence (AIT, text to joints), and transitions (FlowMDM protocol): ``transition_segments``
  (text, length) pairs of the split composed into one timeline; Peak Jerk and Area Under Jerk over the
  mean 60-frame jerk curve around the boundaries (m/s³ — divide by 20³ = 8000 for FlowMDM's m/frame³),
  AUJ against the mean jerk of the split's real clips; transition FID between the boundary windows and
  60-frame centre windows of the real clips.
- physical plausibility (`metrics.plausibility`, floor y = 0): float (mean height of the lowest foot above the
  floor while it carries the body), penetration (mean depth below the floor), airborne share and longest time
  off the ground, bone-length spread (std over frames, max over bones); foot skating both of the shown joints
  (after the pipeline's clean-up: one skeleton, grounded root, foot lock) and of the raw decoded joints.
Generated motions use each selected clip's first caption and its true length clamped to the pipeline's
1–20 s (then the 0.2 s token grid); real motions are cut at 20 s. Real and generated joints go through
the same ``joints_to_features`` before the evaluator sees them. Every number is reported as mean ± 95%
interval over the seeds (``metrics.mean_ci95``; for ground truth only the batch shuffles vary).
Caveat: FID uses 512-d Gaussians fitted to a few hundred motions, so it carries a sample-size bias;
compare FIDs only between rows of one run (equal N). The ground-truth FID is that of the selected subset
against the whole split, i.e. the sampling-noise floor (0 when the whole split is selected).

Cost of the default run (128 texts, 3 seeds, 8 × 4 MultiModality generations, one 32-segment timeline per
seed, three generators): about 3 × (128 + 32) single generations and 3 timelines per generator, i.e.
roughly 15–20 min on one thread of a shared 2-core CPU (measured ≈ 0.8 s per text for the full-size
Mamba generator there, about half that for the transformer); `--max-texts 0` scores the whole split.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmm.config import DEFAULT_GUIDANCE

DEFAULT_MODELS = ("gt", "kmm", "kmm-random", "transformer", "bamm", "motion-mamba")
TRANSITION_WINDOW = 60   # frames around each boundary (3 s at 20 fps), FlowMDM
METRICS = ("r_precision_top1", "r_precision_top2", "r_precision_top3", "mm_dist", "fid", "diversity",
           "multimodality", "foot_skating", "peak_jerk", "auj", "transition_fid", "ait_s",
           "foot_skating_raw", "float_m", "penetration_m", "airborne_share", "airborne_max_s", "bone_spread_m")
PLAUSIBILITY = ("float_m", "penetration_m", "airborne_share", "airborne_max_s", "bone_spread_m")


def plausibility_means(joints: list) -> dict:
    """Mean over motions of each `metrics.plausibility` number (nan-skipping: a motion may have no support)."""
    from kmm.eval.metrics import plausibility

    rows = [plausibility(j) for j in joints if len(j) >= 2]
    return {k: float(np.nanmean([r[k] for r in rows])) if rows else None for k in PLAUSIBILITY}


@dataclass
class EvalItem:
    clip_id: str
    text: str
    joints: np.ndarray   # (T, 22, 3), cut at 20 s
    seconds: float       # true length clamped to the pipeline's 1–20 s


@dataclass
class RealReference:
    """What generated motion is compared against: every real clip of the split."""
    emb: np.ndarray            # (N, D) evaluator embeddings
    window_emb: np.ndarray     # (W, D) embeddings of 60-frame centre windows
    mean_jerk: float           # m/s³, mean of the jerk curves of all clips


def summarize(values) -> dict:
    """[1, 2, 3] -> {"mean": 2.0, "ci95": 2.484..., "values": [1, 2, 3]}; [] -> None."""
    from kmm.eval.metrics import mean_ci95

    values = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not values:
        return None
    mean, half = mean_ci95(values)
    return {"mean": mean, "ci95": half, "values": values}


def select_items(dataset, split: str, max_texts: int | None = None, seed: int = 0) -> list[EvalItem]:
    """The split's clips (a seeded subset of `max_texts` if larger, kept in load order) with caption 0."""
    from kmm.motion.skeleton import FPS
    from kmm.segment import MAX_SECONDS, MIN_SECONDS

    clips = [c for c in dataset.clips(split) if c.captions]   # uninformative labels have no sentence
    if max_texts and len(clips) > max_texts:
        keep = np.sort(np.random.default_rng(seed).choice(len(clips), size=max_texts, replace=False))
        clips = [clips[i] for i in keep]
    max_frames = int(MAX_SECONDS * FPS)
    return [EvalItem(c.id, c.captions[0], c.joints[:max_frames],
                     float(np.clip(c.n_frames / FPS, MIN_SECONDS, MAX_SECONDS))) for c in clips]


def real_reference(evaluator, dataset, split: str) -> RealReference:
    from kmm.eval.metrics import jerk_curve

    items = select_items(dataset, split)
    joints = [it.joints for it in items]
    windows = [centre_window(j, TRANSITION_WINDOW) for j in joints if len(j) >= TRANSITION_WINDOW]
    curves = [jerk_curve(j) for j in joints if len(j) >= 4]
    return RealReference(evaluator.encode_joints(joints),
                         evaluator.encode_joints(windows) if windows else np.zeros((0, evaluator.config.embed_dim)),
                         float(np.concatenate(curves).mean()))


def centre_window(joints: np.ndarray, length: int) -> np.ndarray:
    start = (len(joints) - length) // 2
    return joints[start:start + length]


def fid_low_rank(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """The same number as ``metrics.fid`` (unbiased covariances), without a D × D matrix square root.

    With Σa = AᵀA and Σb = BᵀB (A: centred rows / √(N−1)), the eigenvalues of Σa·Σb are the squared
    singular values of A·Bᵀ (Na × Nb), so tr((Σa Σb)^½) = ‖A Bᵀ‖_* exactly: one small SVD instead of
    ``sqrtm`` on 512 × 512, which costs seconds on one CPU thread and needs an eps when N < D.
    """
    a, b = np.asarray(emb_a, np.float64), np.asarray(emb_b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least 2 embeddings per set")
    A = (a - a.mean(0)) / np.sqrt(len(a) - 1)                                  # (Na, D)
    B = (b - b.mean(0)) / np.sqrt(len(b) - 1)                                  # (Nb, D)
    diff = a.mean(0) - b.mean(0)
    cross = np.linalg.svd(A @ B.T, compute_uv=False).sum()
    return float(max(diff @ diff + (A * A).sum() + (B * B).sum() - 2.0 * cross, 0.0))


def _fid_or_none(a: np.ndarray, b: np.ndarray):
    return fid_low_rank(a, b) if len(a) >= 2 and len(b) >= 2 else None


def embedding_metrics(text_emb, motion_emb, reference: RealReference, seed: int, batch_size: int = 32) -> dict:
    from kmm.eval.metrics import diversity, mm_dist, r_precision

    r = r_precision(text_emb, motion_emb, top_k=3, batch_size=batch_size, rng=seed)
    return {"r_precision_top1": r[0], "r_precision_top2": r[1], "r_precision_top3": r[2],
            "mm_dist": mm_dist(text_emb, motion_emb), "fid": _fid_or_none(reference.emb, motion_emb),
            "diversity": diversity(motion_emb, 300, rng=seed) if len(motion_emb) >= 2 else None}


def _collect(per_seed: list[dict]) -> dict:
    return {name: summarize([row.get(name) for row in per_seed]) for name in METRICS}


def score_ground_truth(evaluator, items: list[EvalItem], seeds, reference: RealReference | None = None,
                       batch_size: int = 32) -> dict:
    """Metrics of the real motions themselves: the ceiling a generator is compared with."""
    from kmm.eval.metrics import foot_skating_ratio

    text_emb = evaluator.encode_texts([it.text for it in items])
    motion_emb = evaluator.encode_joints([it.joints for it in items])
    reference = reference or RealReference(motion_emb, np.zeros((0, motion_emb.shape[1])), float("nan"))
    skate = float(np.mean([foot_skating_ratio(it.joints) for it in items if len(it.joints) >= 2]))
    physical = plausibility_means([it.joints for it in items])
    rows = [{**embedding_metrics(text_emb, motion_emb, reference, s, batch_size), "foot_skating": skate,
             "foot_skating_raw": skate, **physical}
            for s in seeds]
    return _collect(rows)


def transition_metrics(joints: np.ndarray, boundaries, evaluator, reference: RealReference) -> dict:
    """Transitions of one timeline (joints (T, 22, 3), boundaries [0, ..., T]) -> {"peak_jerk", "auj",
    "transition_fid"}: the FlowMDM jerk curve around the inner boundaries and the FID of the 60-frame boundary
    windows against the real clips' centre windows (None with fewer than 2 windows)."""
    from kmm.eval.metrics import area_under_jerk, peak_jerk, transition_jerk

    inner = list(boundaries[1:-1])
    curve = transition_jerk(joints, inner, TRANSITION_WINDOW)
    h = TRANSITION_WINDOW // 2
    windows = [joints[b - h:b + h] for b in inner if b - h >= 0 and b + h <= len(joints)]
    fid = _fid_or_none(reference.window_emb, evaluator.encode_joints(windows)) if len(windows) >= 2 else None
    return {"peak_jerk": peak_jerk(curve), "auj": area_under_jerk(curve, reference.mean_jerk), "transition_fid": fid}


def score_generator(pipe, evaluator, items: list[EvalItem], seeds, reference: RealReference, *, steps: int = 10,
                    guidance: float = DEFAULT_GUIDANCE, temperature: float = 1.0, mm_texts: int = 8, mm_reps: int = 4,
                    transition_segments: int = 32, batch_size: int = 32, log=print) -> dict:
    from kmm.eval.metrics import foot_skating_ratio, multimodality

    text_emb = evaluator.encode_texts([it.text for it in items])
    rows = []
    for s in seeds:
        t0 = time.perf_counter()
        # 1. one generation per text at its true length
        results = [pipe.generate([(it.text, it.seconds)], seed=s * 100_003 + i, guidance=guidance, steps=steps,
                                temperature=temperature)
                   for i, it in enumerate(items)]
        joints = [r.joints for r in results]
        emb = evaluator.encode_joints(joints)
        row = embedding_metrics(text_emb, emb, reference, s, batch_size)
        row["foot_skating"] = float(np.mean([foot_skating_ratio(j) for j in joints]))
        # the decoded joints before the pipeline's clean-up (skeleton, floor, foot lock): what the model itself does
        row["foot_skating_raw"] = float(np.mean([foot_skating_ratio(r.raw_joints) for r in results]))
        row.update(plausibility_means(joints))
        row["ait_s"] = float(np.mean([r.timings["total_s"] for r in results]))
        # 2. multimodality: several generations of the same few texts
        mm_items = items[:mm_texts]
        if mm_reps >= 2 and mm_items:
            mm = [[pipe.generate([(it.text, it.seconds)], seed=s * 100_003 + 50_000 + i * mm_reps + r,
                                 guidance=guidance, steps=steps, temperature=temperature).joints
                   for r in range(mm_reps)]
                  for i, it in enumerate(mm_items)]
            mm_emb = evaluator.encode_joints([j for group in mm for j in group]).reshape(len(mm_items), mm_reps, -1)
            row["multimodality"] = multimodality(mm_emb, 10, rng=s)
        # 3. transitions: one timeline of `transition_segments` test (text, length) pairs
        if transition_segments >= 2:
            rng = np.random.default_rng(s)
            pick = rng.choice(len(items), size=transition_segments, replace=len(items) < transition_segments)
            timeline = pipe.generate([(items[i].text, items[i].seconds) for i in pick], seed=s, guidance=guidance,
                                     steps=steps, temperature=temperature)
            row.update(transition_metrics(timeline.joints, timeline.boundaries, evaluator, reference))
        rows.append(row)
        log(f"  {pipe.model_id} seed {s}: R@1 {row['r_precision_top1']:.3f}  FID {row['fid'] or float('nan'):.3f}  "
            f"({time.perf_counter() - t0:.0f} s)")
    return _collect(rows)


def bundle_hashes(weights: Path, generator: str) -> dict:
    from kmm.eval.evaluator import sha256_file

    decoder = {"motion-vae": weights / "motion-vae" / "model.safetensors"} if generator == "motion-mamba" else {
        "tokenizer": weights / "tokenizer" / "model.safetensors", "residual": weights / "residual" / "model.safetensors"}
    files = {"generator": weights / generator / "model.safetensors", **decoder,
             "normalizer": weights / "normalizer.safetensors"}
    return {k: sha256_file(p) for k, p in files.items() if p.is_file()}


def run_evaluation(*, data=None, split: str = "test", evaluator_dir="assets/evaluator", weights="assets/kmm",
                   models=DEFAULT_MODELS, n_seeds: int = 3, max_texts: int | None = 128, steps: int = 10,
                   guidance: float = DEFAULT_GUIDANCE, temperature: float = 1.0, mm_texts: int = 8, mm_reps: int = 4,
                   transition_segments: int = 32, device: str | None = None, log=print) -> dict:
    """The whole protocol; returns the JSON-ready result (see module docstring)."""
    import torch

    from kmm.data import load_dataset, resolve_data_dirs
    from kmm.eval.evaluator import FrozenEvaluator
    from kmm.pipeline import Pipeline

    t_start = time.perf_counter()
    dataset = load_dataset(resolve_data_dirs(data))
    if split not in dataset.splits:
        raise KeyError(f"unknown split {split!r}; have {dataset.splits}")
    evaluator = FrozenEvaluator.load(evaluator_dir)
    seeds = list(range(n_seeds))
    items = select_items(dataset, split, max_texts)
    reference = real_reference(evaluator, dataset, split)
    log(f"evaluate: split {split}, {len(items)} texts, seeds {seeds}, models {list(models)}")
    out = {"kind": "kmm-eval", "split": split, "data": [str(d) for d in dataset.dirs], "seeds": seeds,
           "n_texts": len(items), "n_real": len(reference.emb),
           "settings": {"steps": steps, "guidance": guidance, "temperature": temperature,
                        "r_precision_batch": 32, "diversity_pairs": 300,
                        "mm_texts": mm_texts, "mm_reps": mm_reps, "transition_segments": transition_segments,
                        "transition_window": TRANSITION_WINDOW, "caption": "first caption of each clip",
                        "threads": torch.get_num_threads()},
           "evaluator": {"path": str(evaluator_dir), "sha256": evaluator.weights_sha256()},
           "real_mean_jerk": reference.mean_jerk, "models": {}}
    for name in models:
        t0 = time.perf_counter()
        if name == "gt":
            metrics, hashes = score_ground_truth(evaluator, items, seeds, reference), None
        else:
            pipe = Pipeline.from_pretrained(weights, generator=name, device=device)
            metrics = score_generator(pipe, evaluator, items, seeds, reference, steps=steps, guidance=guidance,
                                      temperature=temperature, mm_texts=mm_texts, mm_reps=mm_reps,
                                      transition_segments=transition_segments,
                                      log=log)
            hashes = {"path": str(Path(weights) / name), "sha256": bundle_hashes(Path(weights), name)}
            out["device"] = str(pipe.device)
        out["models"][name] = {"metrics": metrics, "weights": hashes, "wall_s": time.perf_counter() - t0}
        log(f"{name}: done in {time.perf_counter() - t0:.0f} s")
    out["wall_s"] = time.perf_counter() - t_start
    out["python"] = platform.python_version()
    out["torch"] = torch.__version__
    return out


# ----------------------------------------------------------------------------------------------
# command line


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score ground truth and generators with the frozen evaluator",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="dataset folder(s) or a parent (default: $KMM_DATA or ../shared/data)")
    p.add_argument("--split", default="test")
    p.add_argument("--json", type=Path, default=Path("results/eval.json"), help="where to write every number")
    p.add_argument("--weights", type=Path, default=Path("assets/kmm"), help="generator bundle folder")
    p.add_argument("--evaluator", type=Path, default=Path("assets/evaluator"))
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma list of gt, kmm, kmm-random, transformer, bamm, motion-mamba")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    p.add_argument("--max-texts", type=int, default=128, help="texts (clips) scored; 0 = the whole split")
    p.add_argument("--steps", type=int, default=10, help="mask-predict steps")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (all models alike)")
    p.add_argument("--mm-texts", type=int, default=8, help="MultiModality: texts")
    p.add_argument("--mm-reps", type=int, default=4, help="MultiModality: generations per text")
    p.add_argument("--transition-segments", type=int, default=32, help="segments in the transition timeline")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--append", action="store_true",
                   help="add these models' rows to the existing --json file (same split, texts, seeds, settings "
                        "and evaluator, checked); for models trained after the rest")
    p.set_defaults(func=cmd_evaluate)


def merge_results(old: dict, new: dict) -> dict:
    """`old` with `new`'s model rows added; refuses results measured under a different protocol."""
    for key in ("kind", "split", "data", "seeds", "n_texts", "n_real", "evaluator"):
        if old.get(key) != new.get(key):
            raise ValueError(f"cannot append: {key!r} differs ({old.get(key)!r} vs {new.get(key)!r})")
    defaults = {"temperature": 1.0}          # settings added later: files written before them used these
    a = {**defaults, **{k: v for k, v in old["settings"].items() if k != "threads"}}
    b = {**defaults, **{k: v for k, v in new["settings"].items() if k != "threads"}}
    if a != b:
        raise ValueError(f"cannot append: settings differ ({a} vs {b})")
    merged = dict(old)
    merged["models"] = {**old["models"], **new["models"]}
    merged["wall_s"] = old.get("wall_s", 0) + new.get("wall_s", 0)
    merged.setdefault("appended", []).append({"models": list(new["models"]), "arguments": new.get("arguments")})
    return merged


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from kmm.errors import CliError
    from kmm.eval.report import render_eval
    from kmm.model.weights import WeightsError
    from kmm.segment import TimelineError

    torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in DEFAULT_MODELS]
    if bad or not models:
        raise CliError(f"unknown model(s) {bad}; choose from {', '.join(DEFAULT_MODELS)}")
    if args.seeds < 1:
        raise CliError("--seeds must be at least 1")
    if not 0.05 <= args.temperature <= 5.0:
        raise CliError("--temperature must be between 0.05 and 5")
    try:
        result = run_evaluation(data=args.data, split=args.split, evaluator_dir=args.evaluator, weights=args.weights,
                                models=models, n_seeds=args.seeds, max_texts=args.max_texts or None,
                                steps=args.steps, guidance=args.guidance, temperature=args.temperature,
                                mm_texts=args.mm_texts,
                                mm_reps=args.mm_reps, transition_segments=args.transition_segments,
                                device=args.device, log=lambda m: print(m, file=sys.stderr, flush=True))
    except (WeightsError, TimelineError, KeyError) as e:
        raise CliError(str(e).strip("'\"")) from None
    result["arguments"] = {k: v if isinstance(v, (int, float, type(None))) else str(v)
                           for k, v in vars(args).items() if k != "func"}
    if args.append and args.json.is_file():
        try:
            result = merge_results(json.loads(args.json.read_text()), result)
        except ValueError as e:
            raise CliError(str(e)) from None
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(render_eval(result))
    print(f"\nwrote {args.json} ({result['wall_s']:.0f} s)")
    return 0
