"""How much jerk the output clean-up adds to real motion (issue #14, transitions; `kmm.motion.cleanup` step 6)

    python -m kmm.eval.cleanup_jerk --json results/cleanup_jerk.json

Real val clips (already on the one skeleton) are turned into features and back through `clean_joints`, as a
generated motion would be. Reported per stage, mean over clips: mean jerk (m/s³, `metrics.jerk_curve`: third
difference, L1 over xyz, max over joints), its 99th percentile and foot skating, for the capture itself, the
clean-up without step 6 (skeleton, floor, foot lock) and the full clean-up. A clean-up that leaves real motion's
jerk where it was adds no jerk of its own to generated motion either.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def measure(features_list) -> dict:
    """[(T, 263) real features] -> {stage: {"mean_jerk", "p99_jerk", "foot_skating"}} averaged over clips."""
    from kmm.eval.metrics import foot_skating_ratio, jerk_curve
    from kmm.motion.cleanup import clean_joints
    from kmm.motion.features import features_to_joints

    rows: dict[str, list] = {"capture": [], "clean-up without step 6": [], "clean-up": []}
    for f in features_list:
        stages = {"capture": features_to_joints(np.asarray(f, dtype=np.float32)),
                  "clean-up without step 6": clean_joints(f, smooth=False),
                  "clean-up": clean_joints(f)}
        for name, x in stages.items():
            j = jerk_curve(x)
            rows[name].append((j.mean(), np.percentile(j, 99), foot_skating_ratio(x)))
    return {k: dict(zip(("mean_jerk", "p99_jerk", "foot_skating"), np.round(np.mean(v, 0), 3).tolist()))
            for k, v in rows.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="dataset folder(s) (default: $KMM_DATA or ../shared/data)")
    p.add_argument("--split", default="val")
    p.add_argument("--clips", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    from kmm.corpus import build_corpus
    from kmm.data import load_dataset, resolve_data_dirs

    corpus = build_corpus(load_dataset(resolve_data_dirs(args.data)), args.split)
    long_enough = [i for i, f in enumerate(corpus.features) if len(f) >= 40]
    pick = np.random.default_rng(args.seed).choice(long_enough, min(args.clips, len(long_enough)), replace=False)
    out = {"kind": "kmm-cleanup-jerk", "split": args.split, "clips": len(pick),
           "stages": measure([corpus.features[i][:400] for i in pick])}
    print(json.dumps(out, indent=1))
    if args.json:
        from kmm.eval.report import write_json

        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
