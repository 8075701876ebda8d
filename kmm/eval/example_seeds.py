"""Which seeds make each example pass its own checks? (re-picking `examples/*.json` seeds after a retrain)

    python -m kmm.eval.example_seeds --weights assets/kmm --seeds 0-7
    python -m kmm.eval.example_seeds --weights runs/other --only 06_walk_jump_sit,07_walk_squat_back_sit --seeds 0-11

For every example: generate its segments with the chosen generator at each seed and run the example's checks
(`kmm.eval.kinematic_checks`) on their segments, as `tests/test_examples.py` does for the example's own seed.
Prints one line per example and seed (PASS, or the failing "segment:check" pairs; with `--values`, what each
failing check measured, or for a pass what every check measured) and a count per example.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def parse_seeds(text: str) -> list[int]:
    """"0-3,7" -> [0, 1, 2, 3, 7]."""
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def check_results(pipe, example, seed: int, guidance: float | None = None) -> list[tuple[str, object]]:
    """[("segment:check" (1-based segment), kinematic_checks.Check)] for every check of `example` at `seed`."""
    from kmm.eval import kinematic_checks as K

    kwargs = {} if guidance is None else {"guidance": guidance}
    out = pipe.generate([(s.text, s.seconds) for s in example.segments], seed=seed, **kwargs)
    b = out.boundaries
    return [(f"{k + 1}:{name}", K.run_check(name, out.joints[b[k]:b[k + 1]])) for k, name in example.checks]


def failures(pipe, example, seed: int, guidance: float | None = None) -> list[str]:
    """The "segment:check" pairs (1-based segments) of `example` that fail at `seed`; [] = it passes."""
    return [label for label, check in check_results(pipe, example, seed, guidance) if not check.passed]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=Path("assets/kmm"))
    p.add_argument("--model", default="kmm")
    p.add_argument("--examples", type=Path, default=Path("examples"))
    p.add_argument("--only", default="", help="comma list of example keys (file names without .json)")
    p.add_argument("--seeds", default="0-3", help='e.g. "0-7" or "0,2,5"')
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the pipeline's)")
    p.add_argument("--values", action="store_true", help="also print what each failing check measured (for a pass: every check)")
    args = p.parse_args(argv)
    import torch

    from kmm import app_logic as logic
    from kmm.pipeline import Pipeline

    torch.set_num_threads(1)
    pipe = Pipeline.from_pretrained(args.weights, generator=args.model)
    keys = {k for k in args.only.split(",") if k}
    seeds = parse_seeds(args.seeds)
    for ex in logic.load_examples(args.examples):
        if keys and ex.key not in keys:
            continue
        passed = 0
        for seed in seeds:
            results = check_results(pipe, ex, seed, args.guidance)
            bad = [(label, c) for label, c in results if not c.passed]
            passed += not bad
            shown = [f"{label} ({c.message})" if args.values else label for label, c in bad]
            if not bad and args.values:           # a pass, with what its checks measured (how close to failing)
                shown = ["PASS"] + [f"{label} ({c.message})" for label, c in results]
            print(f"{ex.key} seed {seed}: {' '.join(shown) if shown else 'PASS'}", flush=True)
        print(f"{ex.key}: passes at {passed} of {len(seeds)} seeds (the file's seed: {ex.seed})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
