"""Does a generator keep bodies whole on multi-segment timelines? (issue #14, Motion Mamba)

    python -m kmm.eval.body_check --generator motion-mamba --seeds 3          # the 10 timelines × 3 seeds

For each timeline and seed: `metrics.body_integrity` of the joints shown (after the clean-up: one skeleton, so
every bone is at its rest length) and of the raw decoded joints (whose bones drift: the motion VAE's own
reconstruction of real test clips stretches thighs and shins by up to 11%, short bones by up to 70%).
Pass: shown bones <= 110% of rest, pelvis below 1.3 m whenever a foot is down (jumps excepted), raw thighs and
shins <= `RAW_LEG_LIMIT` of rest.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from kmm.config import DEFAULT_GUIDANCE

TIMELINES = (
    (("a person walks forward", 3.0), ("a person kicks with the right leg", 2.0), ("a person bows", 3.0)),
    (("a person waves the right hand", 3.0), ("a person jumps", 2.0), ("a person sits down", 3.0)),
    (("a person runs", 3.0), ("a person turns around", 2.0), ("a person walks backwards", 3.0)),
    (("a person bows", 3.0), ("a person walks forward", 3.0)),
    (("a person walks forward", 2.0), ("a person jumps", 2.0), ("a person walks forward", 2.0)),
    (("a person squats", 3.0), ("a person stands up", 2.0), ("a person throws a ball", 2.0)),
    (("a person punches", 2.0), ("a person kicks", 2.0), ("a person punches", 2.0), ("a person bows", 2.0)),
    (("a person dances", 4.0), ("a person walks to the left", 3.0)),
    (("a person walks in a circle", 4.0), ("a person sits down", 3.0), ("a person stands up", 2.0)),
    (("a person jogs forward", 3.0), ("a person stops and waves", 3.0)),
)
PELVIS_LIMIT_M = 1.3
BONE_LIMIT = 1.10
RAW_LEG_LIMIT = 1.5     # a broken body stretches its legs ×2-4; the shipped Motion Mamba reaches ×1.39 (10 × 3)


def check(pipe, segments, seed: int, guidance: float = DEFAULT_GUIDANCE) -> dict:
    """One timeline and seed -> {"shown": body_integrity, "raw": body_integrity, "passed": bool}."""
    from kmm.eval.metrics import body_integrity
    from kmm.motion.retarget import REST_OFFSETS

    rest = np.linalg.norm(REST_OFFSETS[1:], axis=-1)
    r = pipe.generate(list(segments), seed=seed, guidance=guidance)
    shown, raw = body_integrity(r.joints, rest), body_integrity(r.raw_joints, rest)
    ok = (shown["bone_ratio_max"] <= BONE_LIMIT and not shown["pelvis_max_m"] >= PELVIS_LIMIT_M
          and raw["leg_ratio_max"] <= RAW_LEG_LIMIT)
    return {"shown": shown, "raw": raw, "passed": bool(ok)}


def run(pipe, timelines=TIMELINES, seeds=(0, 1, 2), guidance: float = DEFAULT_GUIDANCE) -> dict:
    rows = [{"timeline": [t for t, _ in tl], "seed": s, **check(pipe, tl, s, guidance)}
            for tl in timelines for s in seeds]
    worst = {k: max(r[part][key] for r in rows) for k, (part, key) in
             {"shown_bone_ratio_max": ("shown", "bone_ratio_max"), "shown_pelvis_max_m": ("shown", "pelvis_max_m"),
              "raw_leg_ratio_max": ("raw", "leg_ratio_max"), "raw_bone_ratio_max": ("raw", "bone_ratio_max"),
              "raw_pelvis_max_m": ("raw", "pelvis_max_m")}.items()}
    return {"passed": sum(r["passed"] for r in rows), "runs": len(rows), "worst": worst, "rows": rows}


def main(argv=None) -> int:
    import torch

    from kmm.pipeline import Pipeline

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="assets/kmm")
    p.add_argument("--generator", default="motion-mamba")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--json", default=None, help="write every row here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = run(Pipeline.from_pretrained(args.weights, generator=args.generator), seeds=range(args.seeds),
              guidance=args.guidance)
    for r in out["rows"]:
        print(f"{'ok  ' if r['passed'] else 'FAIL'} seed {r['seed']} {' / '.join(r['timeline'])}: "
              f"raw legs ×{r['raw']['leg_ratio_max']:.2f}, raw pelvis {r['raw']['pelvis_max_m']:.2f} m, "
              f"shown bones ×{r['shown']['bone_ratio_max']:.3f}, shown pelvis {r['shown']['pelvis_max_m']:.2f} m")
    print(f"{out['passed']}/{out['runs']} passed; worst {json.dumps({k: round(v, 3) for k, v in out['worst'].items()})}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0 if out["passed"] == out["runs"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
