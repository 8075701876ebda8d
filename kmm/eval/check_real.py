"""The example checks on real motion: does each check in `kmm.eval.kinematic_checks` pass real clips of its
action, fail the others, and what do real clips measure?

    python -m kmm.eval.check_real --split test,val
    python -m kmm.eval.check_real --split test --only sit --clips

The breadth checks are validated this way inside `python -m kmm breadth` (`kmm.eval.breadth.validate_checks`).
The checks that `examples/*.json` use (`sit`, `jump`, `kick`, ...) were thresholds chosen by hand; this command
measures them on held-out capture, so a model that "nearly" passes can be read against what people do:

1. positives: clips whose own caption (label) matches the check's pattern (`PATTERNS`); the whole clip is
   checked, since the action may happen anywhere in a long trial;
2. negatives: up to `max_negatives` other clips, their first `max_seconds` (as the breadth validation does);
3. per check: pass rates of both, and the median measured value of the positives (metres, frames, seconds,
   degrees: the check's own unit).
"""
from __future__ import annotations

import argparse

import numpy as np

from kmm.eval import kinematic_checks as K
from kmm.eval.breadth import ACTIONS, caption_split, caption_text
from kmm.motion.skeleton import FPS

_KEYWORDS = {a.name: a.keywords for a in ACTIONS}
# check name -> regex over a real clip's caption/label that names the action (its positives): the breadth
# action's own pattern where there is one
PATTERNS = {
    "jump": _KEYWORDS["jump"], "sit": _KEYWORDS["sit down"], "seated": _KEYWORDS["sit down"],
    "kick": _KEYWORDS["kick"], "walk": r"\bwalk", "turn_around": _KEYWORDS["turn around"],
    "punch": _KEYWORDS["punch"], "squat": _KEYWORDS["squat"], "walk_backwards": _KEYWORDS["walk backwards"],
    "sidestep": _KEYWORDS["sidestep"],
}


def validate_example_checks(clips, names=None, max_negatives: int = 150, max_seconds: float = 10.0,
                            seed: int = 0) -> dict:
    """{check: {"positives", "pass_positives", "median_positive", "negatives", "pass_negatives", "clips"}};
    "clips" lists (caption, seconds, measured value, passed) for every positive."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in names or list(PATTERNS):
        pos, neg = caption_split(clips, PATTERNS[name], max_negatives, rng)
        n = int(max_seconds * FPS)
        p = [K.run_check(name, c.joints) for c in pos]
        q = [K.run_check(name, c.joints[:n]) for c in neg]
        out[name] = {
            "positives": len(p), "pass_positives": float(np.mean([c.passed for c in p])) if p else None,
            "median_positive": float(np.median([c.value for c in p])) if p else None,
            "negatives": len(q), "pass_negatives": float(np.mean([c.passed for c in q])) if q else None,
            "threshold": p[0].threshold if p else (q[0].threshold if q else None),
            "clips": [(caption_text(c)[:60], round(len(c.joints) / FPS, 2), round(r.value, 3), r.passed)
                      for c, r in zip(pos, p)],
        }
    return out


def render(result: dict, show_clips: bool = False) -> str:
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines = ["| check | threshold | real positives: n, pass | median measured | real others: n, pass |",
             "|---|---|---|---|---|"]
    for name, r in result.items():
        lines.append(f"| {name} | {fmt(r['threshold'])} | {r['positives']}, {fmt(r['pass_positives'])} | "
                     f"{fmt(r['median_positive'])} | {r['negatives']}, {fmt(r['pass_negatives'])} |")
    if show_clips:
        for name, r in result.items():
            lines.append(f"\n{name}:")
            lines += [f"  {'PASS' if ok else 'fail'} {v:8.3f}  {sec:6.2f} s  {cap}" for cap, sec, v, ok in r["clips"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="data folders (default: KMM_DATA or ../shared/data)")
    p.add_argument("--split", default="test,val", help="comma list of splits whose clips are used")
    p.add_argument("--only", default="", help="comma list of check names (default: all)")
    p.add_argument("--clips", action="store_true", help="also list every positive clip and its measured value")
    p.add_argument("--json", default="", help="write the result here")
    args = p.parse_args(argv)
    from kmm.data import load_dataset, resolve_data_dirs

    names = [n for n in args.only.split(",") if n] or None
    unknown = [n for n in names or [] if n not in PATTERNS]
    if unknown:
        p.error(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(PATTERNS)}")
    dataset = load_dataset(resolve_data_dirs(args.data))
    clips = [c for split in args.split.split(",") for c in dataset.clips(split.strip())]
    result = validate_example_checks(clips, names)
    print(render(result, args.clips))
    if args.json:
        import json
        with open(args.json, "w") as f:
            json.dump({"split": args.split, "checks": result}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
