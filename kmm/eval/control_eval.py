"""`python -m kmm control-eval --json results/control.json`: how well each generator meets key poses and paths.

For every generator of the bundle (all of them take control: token in-painting works on the masked generators,
BAMM and the Motion Mamba latents alike) and every seed:
- path cases (text, seconds, waypoints): the pelvis's floor distance from each waypoint with control and, for
  reference, in the free motion of the same seed; the sliding the warp had to add (`residual_m`); the facing error
  (deg between facing and travel); foot skating ratio and mean jerk with and without control;
- key-pose cases (text, seconds, pose source): a pose is taken from another motion (source text, seed + 100, at
  the pin time) and pinned; mean joint error at the pin with the full method, before the final blend (in-painting
  and placement alone), and with the blend alone on the free motion (no in-painting); jerk within ±0.75 s of the
  pin and skating, with and without control; the error before the final blend with and without in-painting
  shows what the in-painted tokens do on their own.
Prints a markdown table (README "Control"); writes every number to --json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

PATH_CASES = (
    ("a person walks", 8.0, "4:0,3;8:2,5"),                         # the acceptance command
    ("a person walks forward", 6.0, "3:1,2;6:3,2.5"),               # bends left
    ("a person walks forward", 6.0, "2:-0.5,1.5;4:-1.5,2.5;6:-3,2.5"),   # bends right
    ("a person jogs", 6.0, "3:0,4;6:3,6"),
)
KEYPOSE_CASES = (                                                    # (text, seconds, source text, pin times)
    ("a person walks", 6.0, "a person walks", (3.0,)),
    ("a person walks", 6.0, "a person walks", (2.0, 4.5)),
    ("a person waves with the right hand", 6.0, "a person raises both arms", (3.0,)),
)
NEAR_FRAMES = 15                                                     # ±0.75 s around a pin


def _mean(values) -> float:
    v = [x for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def evaluate_generator(pipe, seeds: list[int], log=print) -> dict:
    """-> {"path": {...means...}, "keyposes": {...means...}, "runs": [per case and seed]}."""
    from kmm.control import Control
    from kmm.control.report import facing_error_deg, jerk_near, keypose_errors, waypoint_errors
    from kmm.eval.metrics import foot_skating_ratio, jerk_curve

    runs = []
    for text, secs, path in PATH_CASES:
        for seed in seeds:
            free = pipe.generate([(text, secs)], seed=seed)
            out = pipe.generate([(text, secs)], seed=seed, path=path)
            wp = out.control["waypoints"]
            runs.append({"kind": "path", "text": text, "path": path, "seed": seed,
                         "waypoint_m": waypoint_errors(out.joints, wp),
                         "free_waypoint_m": waypoint_errors(free.joints, wp),
                         "residual_m": out.control["residual_m"], "speed_range": out.control["speed_range"],
                         "facing_deg": facing_error_deg(out.joints), "free_facing_deg": facing_error_deg(free.joints),
                         "skating": foot_skating_ratio(out.joints), "free_skating": foot_skating_ratio(free.joints),
                         "jerk": float(jerk_curve(out.joints).mean()),
                         "free_jerk": float(jerk_curve(free.joints).mean())})
            log(f"  path {path!r} seed {seed}: waypoint error {max(runs[-1]['waypoint_m']):.3f} m")
    for text, secs, source, times in KEYPOSE_CASES:
        for seed in seeds:
            src = pipe.generate([(source, secs)], seed=seed + 100)
            frames = [int(round(t * 20)) for t in times]
            poses = src.joints[frames]
            kp = {"times": list(times), "joints": poses}
            free = pipe.generate([(text, secs)], seed=seed)
            out = pipe.generate([(text, secs)], seed=seed, keyposes=kp)
            _, blend_only, blend_info = Control.make(kp, None).apply(free.features, free.foot_lock)
            runs.append({"kind": "keyposes", "text": text, "source": source, "times": list(times), "seed": seed,
                         "pose_m": keypose_errors(out.joints, frames, poses),
                         "pose_m_before_blend": out.control["keypose_m_before_blend"],
                         "no_inpaint_pose_m_before_blend": blend_info["keypose_m_before_blend"],
                         "free_pose_m": keypose_errors(free.joints, frames, poses),
                         "blend_only_pose_m": keypose_errors(blend_only, frames, poses),
                         "residual_m": out.control["residual_m"],
                         "jerk_near": jerk_near(out.joints, frames, NEAR_FRAMES),
                         "free_jerk_near": jerk_near(free.joints, frames, NEAR_FRAMES),
                         "blend_only_jerk_near": jerk_near(blend_only, frames, NEAR_FRAMES),
                         "jerk": float(jerk_curve(out.joints).mean()),
                         "free_jerk": float(jerk_curve(free.joints).mean()),
                         "skating": foot_skating_ratio(out.joints), "free_skating": foot_skating_ratio(free.joints)})
            log(f"  key poses {times} in {text!r} seed {seed}: pose error {max(runs[-1]['pose_m']) * 100:.1f} cm")
    path_runs = [r for r in runs if r["kind"] == "path"]
    kp_runs = [r for r in runs if r["kind"] == "keyposes"]
    summary_path = {k: _mean([np.mean(r[k]) for r in path_runs]) for k in
                    ("waypoint_m", "free_waypoint_m", "residual_m", "facing_deg", "free_facing_deg", "skating",
                     "free_skating", "jerk", "free_jerk")}
    summary_path["waypoint_max_m"] = float(max(max(r["waypoint_m"]) for r in path_runs))
    summary_kp = {k: _mean([np.mean(r[k]) for r in kp_runs]) for k in
                  ("pose_m", "pose_m_before_blend", "no_inpaint_pose_m_before_blend", "free_pose_m",
                   "blend_only_pose_m", "residual_m", "jerk_near", "free_jerk_near", "blend_only_jerk_near", "jerk",
                   "free_jerk", "skating", "free_skating")}
    summary_kp["pose_max_m"] = float(max(max(r["pose_m"]) for r in kp_runs))
    summary_kp["jerk_near_ratio_max"] = float(max(r["jerk_near"] / r["free_jerk_near"] for r in kp_runs))
    return {"path": summary_path, "keyposes": summary_kp, "runs": runs}


def render_control(result: dict) -> str:
    """Markdown tables of `result["generators"]` (README "Control")."""
    rows = ["| generator | waypoint error (m), mean / max | free motion's distance (m) | sliding added (m) | "
            "facing error (deg), ctrl / free | skating, ctrl / free | jerk (m/s³), ctrl / free |",
            "|---|---|---|---|---|---|---|"]
    for name, r in result["generators"].items():
        p = r["path"]
        rows.append(f"| {name} | {p['waypoint_m']:.3f} / {p['waypoint_max_m']:.3f} | {p['free_waypoint_m']:.2f} | "
                    f"{p['residual_m']:.3f} | {p['facing_deg']:.0f} / {p['free_facing_deg']:.0f} | "
                    f"{p['skating']:.2f} / {p['free_skating']:.2f} | {p['jerk']:.0f} / {p['free_jerk']:.0f} |")
    rows += ["", "| generator | pose error at pin (cm), mean / max | before the final blend (cm), in-painted / "
             "not | blend only, no in-painting (cm) | free motion (cm) | jerk ±0.75 s (m/s³): ctrl / blend only / "
             "free | skating, ctrl / free |", "|---|---|---|---|---|---|---|"]
    for name, r in result["generators"].items():
        k = r["keyposes"]
        rows.append(f"| {name} | {k['pose_m'] * 100:.2f} / {k['pose_max_m'] * 100:.2f} | "
                    f"{k['pose_m_before_blend'] * 100:.1f} / {k['no_inpaint_pose_m_before_blend'] * 100:.1f} | "
                    f"{k['blend_only_pose_m'] * 100:.2f} | "
                    f"{k['free_pose_m'] * 100:.1f} | {k['jerk_near']:.0f} / {k['blend_only_jerk_near']:.0f} / "
                    f"{k['free_jerk_near']:.0f} | {k['skating']:.2f} / {k['free_skating']:.2f} |")
    return "\n".join(rows)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("control-eval", help="key-pose and path control: errors at pins and waypoints, skating, jerk",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=Path("assets/kmm"))
    p.add_argument("--models", default=None, help="comma list (default: every generator the bundle holds)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--json", type=Path, default=Path("results/control.json"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_control_eval)


def cmd_control_eval(args: argparse.Namespace) -> int:
    import torch

    from kmm.errors import CliError
    from kmm.pipeline import Pipeline, available_generators

    torch.set_num_threads(args.threads)
    if not args.weights.is_dir():
        raise CliError(f"weights folder not found: {args.weights}")
    have = available_generators(args.weights)
    models = [m.strip() for m in args.models.split(",")] if args.models else have
    missing = [m for m in models if m not in have]
    if missing:
        raise CliError(f"{args.weights} has no weights for {missing}; it holds {have}")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.time()
    result = {"command": "python -m kmm control-eval " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["control-eval"]
              else "python -m kmm control-eval", "weights": str(args.weights), "seeds": args.seeds,
              "path_cases": [list(c) for c in PATH_CASES], "keypose_cases": [list(c) for c in KEYPOSE_CASES],
              "generators": {}}
    for name in models:
        log(f"{name}:")
        pipe = Pipeline.from_pretrained(args.weights, name, device=args.device)
        result["generators"][name] = evaluate_generator(pipe, list(range(args.seeds)), log)
    result["seconds"] = round(time.time() - t0, 1)
    from kmm.eval.report import write_json

    write_json(args.json, result)
    print(render_control(result))
    print(f"wrote {args.json} ({result['seconds']} s)")
    return 0
