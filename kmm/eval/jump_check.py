"""Do jumps leave the ground and land? (issue #14: "walk, then jump, then walk")

    python -m kmm.eval.jump_check --json results/jump_check.json          # KMM, seeds 0-5, every variant

Generates "a person walks forward" (3 s), a jump, "a person walks forward" (3 s) — the jump in each wording and
length of `VARIANTS` (None: the model's own length) — and judges the joints the app shows (after the clean-up):
    1. flight: the longest run of frames with both feet more than 5 cm above the floor (`airborne_stats`) inside
       the jump segment must last 0.1-0.8 s (a real standing jump: 0.5-0.7 s);
    2. landing: in the last walk segment the lowest foot is back on the floor (≤ 5 cm) on at least 90% of frames,
       and the pelvis is no higher than 0.15 m above its median height in the first walk (no floating body).
"""
from __future__ import annotations

import argparse
import json

import numpy as np

SEGMENTS = (("a person walks forward", 3.0), ("a person jumps", 2.0), ("a person walks forward", 3.0))   # + VARIANTS
VARIANTS = tuple((text, sec) for text in ("a person jumps", "a person jumps forward", "a person jumps up in place",
                                         "a person does a big jump") for sec in (None, 2.0, 3.0))
FLIGHT_S = (0.1, 0.8)
GROUNDED_SHARE = 0.9
PELVIS_RISE_M = 0.15


def judge(joints: np.ndarray, boundaries, fps: float = 20.0) -> dict:
    """(T, 22, 3) joints of the three segments + their frame boundaries -> measures and "passed"."""
    from kmm.eval.metrics import AIRBORNE_HEIGHT, FOOT_JOINTS, airborne_stats

    b = list(boundaries)
    jump = joints[b[1]:b[2]]
    after = joints[b[2]:b[3]]
    flight = airborne_stats(jump, fps=fps)["airborne_max_s"]
    grounded = float((after[:, list(FOOT_JOINTS), 1].min(axis=1) <= AIRBORNE_HEIGHT).mean())
    rise = float(np.median(after[:, 0, 1]) - np.median(joints[b[0]:b[1], 0, 1]))
    ok = FLIGHT_S[0] <= flight <= FLIGHT_S[1] and grounded >= GROUNDED_SHARE and rise <= PELVIS_RISE_M
    return {"flight_s": round(flight, 3), "grounded_after": round(grounded, 3), "pelvis_rise_after_m": round(rise, 3),
            "passed": bool(ok)}


def run(pipe, seeds=range(6), segments=SEGMENTS) -> dict:
    rows = []
    for s in seeds:
        r = pipe.generate(list(segments), seed=s)
        rows.append({"seed": s, **judge(r.joints, r.boundaries)})
    return {"segments": [list(x) for x in segments], "passed": sum(r["passed"] for r in rows), "runs": len(rows),
            "rows": rows}


def main(argv=None) -> int:
    import torch

    from kmm.pipeline import Pipeline

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default="assets/kmm")
    p.add_argument("--generator", default="kmm")
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--jump", default=None, help="one jump text instead of every variant")
    p.add_argument("--seconds", type=float, default=None, help="its length (default: the model's own)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    pipe = Pipeline.from_pretrained(args.weights, generator=args.generator)
    variants = [(args.jump, args.seconds)] if args.jump else VARIANTS
    out = {"weights": str(args.weights), "generator": args.generator, "flight_s": FLIGHT_S, "variants": []}
    for text, sec in variants:
        v = run(pipe, range(args.seeds), (SEGMENTS[0], (text, sec), SEGMENTS[2]))
        out["variants"].append(v)
        flights = ", ".join(f"{r['flight_s']:.2f}" for r in v["rows"])
        length = "auto" if sec is None else f"{sec:g} s"
        print(f"{text!r} ({length}): {v['passed']}/{v['runs']} pass; in the air (s) by seed: {flights}")
    out["passed"] = sum(v["passed"] for v in out["variants"])
    out["runs"] = sum(v["runs"] for v in out["variants"])
    print(f"{out['passed']}/{out['runs']} passed")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
