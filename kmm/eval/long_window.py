"""Long timelines decoded in training-length windows or in longer, linear-time windows — paper §3.4.

    python -m kmm long-window --seeds 8 --windows 56,66,4096 --json results/long_window.json   # the committed run
    python -m kmm long-window --seeds 1 --segments 8 --json /tmp/lw.json        # a quick look

A transformer decodes a long timeline in overlapping windows of its training length (64 tokens, 12.8 s), each
window's overlap (16 tokens) fixed from the one before: attention costs the square of the window. A Mamba
generator's cost is linear in the length, so it decodes windows `kmm.backends.LONG_WINDOW` times longer
(`kmm.backends.decode_window`): fewer tokens decoded twice in overlaps, fewer and bigger passes. This command
measures what that does to quality, on the held-out split, with the frozen evaluator:

1. per seed, `segments` held-out (caption, true length) pairs (as `evaluate`'s transition timeline) form one
   timeline; it is generated once per mode with the same seed: "training" (training-length windows, the
   transformer's way and the one before issue #16), "long-one-schedule" (long windows, one unmasking schedule
   per window) and "long" (long windows, every segment on its own schedule: `mask_predict(groups=...)`, the
   default), plus "window-N" (segment schedules) for every N of `--windows` (4096: a whole 13-min timeline);
2. each segment is cut at its boundaries and scored against its own caption: R-precision (batches of 32 over all
   seeds' segments), MM-Dist, FID against every real clip of the split, diversity;
3. transitions (`evaluate.transition_metrics`): peak jerk, area under jerk, transition FID;
4. the wall time of the token decoding and of the whole `generate`;
5. what a person sees first: every example of `examples/` at seeds 0..7, judged by its own kinematic checks
   (`kmm.eval.example_seeds.failures`, as `tests/test_examples.py` does) — the number of (example, seed) passes;
6. the same checks inside one long timeline: all examples' segments back to back (`tiled_timeline`, about 110 s,
   560 tokens; at seed s the order starts at example s, so every example sits at other places in the windows),
   each example's checks run on its own segments — the number of (example, seed) passes.
Per-seed numbers are mean ± 95% interval over seeds (embedding metrics: once over all seeds' segments).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from kmm.config import DEFAULT_GUIDANCE


def default_modes(training_window: int, long_window: int, extra_windows=()) -> dict:
    """mode name -> (window tokens, one schedule per segment): the three modes of the module docstring, plus a
    "window-N" mode (segment schedules) for every N in `extra_windows`."""
    modes = {"training": (training_window, False), "long-one-schedule": (long_window, False),
             "long": (long_window, True)}
    modes.update({f"window-{n}": (int(n), True) for n in extra_windows})
    return modes


def timeline_items(items, n_segments: int, seed: int) -> list:
    """`n_segments` items drawn with this seed (without replacement when the split has enough)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(items), size=n_segments, replace=len(items) < n_segments)
    return [items[i] for i in pick]


def tiled_timeline(examples, seed: int) -> tuple[list, list]:
    """All examples' segments in one timeline, the order rotated by `seed`.
    -> ([(text, seconds or None)], [(example key, [(segment index in the timeline, check name)])])."""
    order = [examples[(seed + i) % len(examples)] for i in range(len(examples))]
    segments, checks = [], []
    for e in order:
        checks.append((e.key, [(len(segments) + k, name) for k, name in e.checks]))
        segments += [(s.text, s.seconds) for s in e.segments]
    return segments, checks


def tiled_passes(pipe, examples, seeds, guidance: float = DEFAULT_GUIDANCE, steps: int = 10) -> dict:
    """{example key: number of seeds at which all its checks pass inside the tiled timeline of that seed}."""
    from kmm.eval import kinematic_checks as K

    passes = {e.key: 0 for e in examples}
    for s in seeds:
        segments, checks = tiled_timeline(examples, s)
        r = pipe.generate(segments, seed=s, guidance=guidance, steps=steps)
        b = r.boundaries
        for key, items in checks:
            passes[key] += all(K.run_check(name, r.joints[b[k]:b[k + 1]]).passed for k, name in items)
    return passes


def run_long_window(*, data=None, split: str = "test", evaluator_dir="assets/evaluator", weights="assets/kmm",
                    model: str = "kmm", n_seeds: int = 4, n_segments: int = 32, steps: int = 10,
                    guidance: float = DEFAULT_GUIDANCE, extra_windows=(), examples_dir="examples",
                    example_seeds: int = 8, device: str | None = None, log=print) -> dict:
    import torch

    from kmm.app_logic import load_examples
    from kmm.backends import decode_window
    from kmm.data import load_dataset, resolve_data_dirs
    from kmm.eval.evaluate import (embedding_metrics, real_reference, select_items, summarize,
                                   transition_metrics)
    from kmm.eval.evaluator import FrozenEvaluator
    from kmm.eval.example_seeds import failures
    from kmm.pipeline import Pipeline

    t_start = time.perf_counter()
    dataset = load_dataset(resolve_data_dirs(data))
    if split not in dataset.splits:
        raise KeyError(f"unknown split {split!r}; have {dataset.splits}")
    evaluator = FrozenEvaluator.load(evaluator_dir)
    items = select_items(dataset, split)
    reference = real_reference(evaluator, dataset, split)
    pipe = Pipeline.from_pretrained(weights, generator=model, device=device)
    backend = pipe.backend
    if not hasattr(backend, "overlap"):
        raise ValueError(f"{model!r} is not a masked generator (kmm, kmm-random, transformer)")
    modes = default_modes(pipe.generator.config.max_tokens, decode_window(pipe.generator.config, long=True),
                          extra_windows)
    seeds = list(range(n_seeds))
    examples = load_examples(examples_dir) if examples_dir else []
    out = {"kind": "kmm-long-window", "split": split, "model": model, "weights": str(weights), "seeds": seeds,
           "segments": n_segments, "overlap": backend.overlap,
           "settings": {"steps": steps, "guidance": guidance, "threads": torch.get_num_threads()},
           "modes": {}}
    default = backend.window, backend.segment_schedules
    try:
        for mode, (window, schedules) in modes.items():
            backend.window, backend.segment_schedules = window, schedules
            texts, segments, rows, tokens = [], [], [], []
            for s in seeds:
                chosen = timeline_items(items, n_segments, s)
                r = pipe.generate([(it.text, it.seconds) for it in chosen], seed=s, guidance=guidance, steps=steps)
                b = r.boundaries
                texts += [it.text for it in chosen]
                segments += [r.joints[b[k]:b[k + 1]] for k in range(len(chosen))]
                tokens.append(r.n_frames // 4)
                rows.append({**transition_metrics(r.joints, b, evaluator, reference),
                             "tokens_s": r.timings["tokens_s"], "total_s": r.timings["total_s"]})
                log(f"  {mode} seed {s}: {r.n_frames / 20:.0f} s of motion, tokens {r.timings['tokens_s']:.2f} s, "
                    f"peak jerk {rows[-1]['peak_jerk']:.0f}")
            passes = {e.key: sum(not failures(pipe, e, s) for s in range(example_seeds)) for e in examples}
            tiled = tiled_passes(pipe, examples, range(example_seeds), guidance, steps) if examples else {}
            if examples:
                log(f"  {mode} examples: {sum(passes.values())}/{example_seeds * len(examples)} pass ({passes})")
                log(f"  {mode} examples in one long timeline: {sum(tiled.values())}/{example_seeds * len(examples)}"
                    f" pass ({tiled})")
            emb = evaluator.encode_joints(segments)
            metrics = embedding_metrics(evaluator.encode_texts(texts), emb, reference, 0)
            out["modes"][mode] = {
                "window_tokens": window, "segment_schedules": schedules, "timeline_tokens": tokens,
                "segment_metrics": metrics, "examples_passed": passes, "tiled_examples_passed": tiled,
                "example_seeds": example_seeds,
                "per_seed": {k: summarize([row[k] for row in rows]) for k in rows[0]}}
    finally:
        backend.window, backend.segment_schedules = default
    out["wall_s"] = time.perf_counter() - t_start
    out["torch"] = torch.__version__
    return out


def tiled_cell(mode: dict) -> str:
    """"passes/total" of step 6, or – for a file written before it existed."""
    t = mode.get("tiled_examples_passed")
    return "–" if not t else f"{sum(t.values())}/{mode['example_seeds'] * len(t)}"


def render(result: dict) -> str:
    """A markdown table: one row per mode."""
    def fmt(d, digits=3):
        if d is None:
            return "–"
        if isinstance(d, dict):
            return f"{d['mean']:.{digits}f} ± {d['ci95']:.{digits}f}"
        return f"{d:.{digits}f}"

    lines = [f"Model `{result['model']}`, {len(result['seeds'])} seeds × {result['segments']}-segment timelines of "
             f"held-out captions ({result['split']} split)",
             "",
             "| decoding | window (tokens) | R@1 | R@3 | MM-Dist | FID | peak jerk | AUJ | transition FID | "
             "tokens s | total s | examples passed | in one long timeline |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode, m in result["modes"].items():
        e, p = m["segment_metrics"], m["per_seed"]
        lines.append(f"| {mode} | {m['window_tokens']} | {fmt(e['r_precision_top1'])} | {fmt(e['r_precision_top3'])} "
                     f"| {fmt(e['mm_dist'])} | {fmt(e['fid'])} | {fmt(p['peak_jerk'], 0)} | {fmt(p['auj'], 0)} "
                     f"| {fmt(p['transition_fid'])} | {fmt(p['tokens_s'], 2)} | {fmt(p['total_s'], 2)} "
                     f"| {sum(m['examples_passed'].values())}/{m['example_seeds'] * len(m['examples_passed'])} "
                     f"| {tiled_cell(m)} |")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("long-window", help="long timelines: training-length windows vs longer linear-time windows",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="dataset folder(s) or a parent (default: $KMM_DATA or ../shared/data)")
    p.add_argument("--split", default="test")
    p.add_argument("--json", type=Path, default=Path("results/long_window.json"))
    p.add_argument("--weights", type=Path, default=Path("assets/kmm"))
    p.add_argument("--evaluator", type=Path, default=Path("assets/evaluator"))
    p.add_argument("--model", default="kmm", help="a masked generator of the bundle: kmm, kmm-random or transformer")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--segments", type=int, default=32, help="segments per timeline")
    p.add_argument("--windows", default="", help="comma list of further window lengths (tokens) to compare")
    p.add_argument("--examples", type=Path, default=Path("examples"), help="examples folder ('' = skip step 5)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_long_window)


def cmd_long_window(args: argparse.Namespace) -> int:
    import torch

    from kmm.errors import CliError
    from kmm.model.weights import WeightsError

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.seeds < 1 or args.segments < 2:
        raise CliError("--seeds must be at least 1 and --segments at least 2")
    try:
        result = run_long_window(data=args.data, split=args.split, evaluator_dir=args.evaluator,
                                 weights=args.weights, model=args.model, n_seeds=args.seeds,
                                 n_segments=args.segments, steps=args.steps, guidance=args.guidance,
                                 extra_windows=[int(w) for w in args.windows.split(",") if w.strip()],
                                 examples_dir=args.examples if str(args.examples) not in ("", ".") else None,
                                 device=args.device, log=lambda m: print(m, file=sys.stderr, flush=True))
    except (WeightsError, KeyError, ValueError) as e:
        raise CliError(str(e).strip("'\"")) from None
    result["command"] = "python -m kmm long-window " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "func" and v is not None)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    print(f"\nwrote {args.json} ({result['wall_s']:.0f} s)")
    return 0
