"""Can the motion tokenizer represent each action at all? (issue #13: breadth; #14: tokenizer)

    python -m kmm.eval.tokenizer_breadth --json results/tokenizer_breadth.json

A generator over tokens can only produce what the tokenizer decodes. For every action of `kmm.eval.breadth`,
its real held-out clips (test + val, caption names the action: the same positives the breadth checks are
validated on) go through the shipped tokenizer, and the action's check runs on each version after the
pipeline's clean-up (`clean_joints`):
    capture       the clip itself (features → clean-up)
    autoencoder   encoder → decoder without quantisation (what the network can carry)
    all layers    encode → all residual codebook layers → decode (the best any generator could do)
    base layer    encode → base layer only → decode (the code the generators choose; since round 15 the
                  pipeline adds residual layers predicted from it, not the true ones: pipeline.json)
Reported per action: the pass rate of the check at each stage and the mean value of its measure; and over all
the split's clips, the mean per-joint position error of each stage against the capture (`reconstruction_error`):
with the root path integrated over the whole clip (drift included, issue #14) and of the pose alone; and how
many of the base layer's codes those clips use, with the perplexity of their use (`code_usage`: a codebook whose
codes go unused cannot keep rare poses apart, however large it is).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

STAGES = ("capture", "autoencoder", "all layers", "base layer")


def _tokenizer_input(tokenizer, normalizer, features: np.ndarray):
    """(T, 263) real features -> (T', normalised (1, T', 263) tensor), T' = T rounded down to the tokenizer's stride."""
    import torch

    T = len(features) // tokenizer.downsample * tokenizer.downsample
    return T, torch.from_numpy(normalizer.normalize(features[:T])).float()[None]


def stage_features(tokenizer, normalizer, features: np.ndarray) -> dict:
    """(T, 263) real features -> {stage: (T', 263) features}, T' = T rounded down to the tokenizer's stride."""
    import torch

    T, x = _tokenizer_input(tokenizer, normalizer, features)
    with torch.no_grad():
        codes = tokenizer.encode(x)                                                  # (1, T/4, Q)
        out = {"autoencoder": tokenizer.decode_latent(tokenizer._latent(x)),
               "all layers": tokenizer.decode(codes),
               "base layer": tokenizer.decode(codes[..., :1])}
    return {"capture": features[:T],
            **{k: normalizer.denormalize(v)[0].numpy() for k, v in out.items()}}


def measure(tokenizer, normalizer, clips_by_action: dict) -> dict:
    """{action name: (check, [clip joints (T, 22, 3)])} -> {action: {"clips", stage: {"pass", "value"}}}."""
    from kmm.motion.cleanup import clean_joints
    from kmm.motion.features import joints_to_features

    out = {}
    for name, (check, clips) in clips_by_action.items():
        rows = {s: [] for s in STAGES}
        for joints in clips:
            for stage, f in stage_features(tokenizer, normalizer, joints_to_features(joints)).items():
                passed, value = check(clean_joints(f))
                rows[stage].append((float(passed), float(value)))
        out[name] = {"clips": len(clips), **{s: {"pass": round(float(np.mean([r[0] for r in v])), 3),
                                                 "value": round(float(np.mean([r[1] for r in v])), 3)}
                                             for s, v in rows.items() if v}}
    return out


def reconstruction_error(tokenizer, normalizer, clips: list) -> dict:
    """[(T, 22, 3) joints] -> {stage: {"root_integrated_mm", "pose_mm"}} for the stages after capture.

    Joints come back from features by integrating the root's velocities from frame 0 (as the pipeline does), so
    "root_integrated_mm" includes every centimetre of drift over the clip; "pose_mm" subtracts the pelvis per
    frame. Frame-weighted means over all clips."""
    import torch

    from kmm.motion.features import features_to_joints, joints_to_features

    sums = {s: np.zeros(2) for s in STAGES[1:]}
    frames = 0
    for joints in clips:
        out = stage_features(tokenizer, normalizer, joints_to_features(joints))
        ref = features_to_joints(torch.from_numpy(out["capture"]).double())            # (T', 22, 3)
        for stage in STAGES[1:]:
            rec = features_to_joints(torch.from_numpy(out[stage]).double())
            sums[stage] += [float((rec - ref).norm(dim=-1).mean()) * len(ref),
                            float(((rec - rec[:, :1]) - (ref - ref[:, :1])).norm(dim=-1).mean()) * len(ref)]
        frames += len(ref)
    return {s: {"root_integrated_mm": round(1000 * v[0] / max(frames, 1), 2),
                "pose_mm": round(1000 * v[1] / max(frames, 1), 2)} for s, v in sums.items()}


def code_usage(tokenizer, normalizer, clips: list) -> dict:
    """[(T, 22, 3) joints] -> {"codes": codebook size, "used": distinct base-layer codes, "perplexity":
    exp(entropy) of their frequencies} over all clips (perplexity = codes if every code were used equally)."""
    import torch

    from kmm.motion.features import joints_to_features

    counts = np.zeros(tokenizer.config.n_codes)
    with torch.no_grad():
        for joints in clips:
            T, x = _tokenizer_input(tokenizer, normalizer, joints_to_features(joints))
            if T == 0:
                continue
            codes = tokenizer.encode(x)[0, :, 0]
            counts += np.bincount(codes.numpy(), minlength=len(counts))
    p = counts[counts > 0] / counts.sum()
    return {"codes": int(len(counts)), "used": int((counts > 0).sum()),
            "perplexity": round(float(np.exp(-(p * np.log(p)).sum())), 1)}


def render(result: dict) -> str:
    lines = ["| action | real clips | " + " | ".join(STAGES) + " |", "|---|---|" + "---|" * len(STAGES)]
    for name, r in result["actions"].items():
        if r["clips"]:
            lines.append(f"| {name} | {r['clips']} | "
                         + " | ".join(f"{r[s]['pass']:.2f} ({r[s]['value']:.2f})" for s in STAGES) + " |")
    if result.get("reconstruction"):
        rec = result["reconstruction"]
        lines += ["", f"| position error over {result['reconstruction_clips']} clips (mm) | " + " | ".join(rec) + " |",
                  "|---|" + "---|" * len(rec),
                  "| root path integrated over the clip | " + " | ".join(f"{v['root_integrated_mm']:.1f}"
                                                                      for v in rec.values()) + " |",
                  "| pose relative to the pelvis | " + " | ".join(f"{v['pose_mm']:.1f}" for v in rec.values()) + " |"]
    if result.get("base_codes"):
        u = result["base_codes"]
        lines += ["", f"Base layer codes used by these clips: {u['used']} of {u['codes']}, perplexity {u['perplexity']}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="dataset folder(s) (default: $KMM_DATA or ../shared/data)")
    p.add_argument("--weights", type=Path, default=Path("assets/kmm"))
    p.add_argument("--split", default="test,val")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    import torch

    from kmm.data import load_dataset, resolve_data_dirs
    from kmm.eval.breadth import ACTIONS
    from kmm.eval.report import write_json
    from kmm.pipeline import Pipeline

    torch.set_num_threads(1)
    pipe = Pipeline.from_pretrained(args.weights, generator="kmm")
    dataset = load_dataset(resolve_data_dirs(args.data))
    clips = [c for s in args.split.split(",") for c in dataset.clips(s)]
    by_action = {}
    for a in ACTIONS:
        pat = re.compile(a.keywords, re.I)
        by_action[a.name] = (a.check, [c.joints for c in clips if pat.search(" ".join(c.labels or c.captions))])
    result = {"kind": "kmm-tokenizer-breadth", "split": args.split, "weights": str(args.weights),
              "stages": list(STAGES), "actions": measure(pipe.tokenizer, pipe.normalizer, by_action),
              "reconstruction_clips": len(clips),
              "reconstruction": reconstruction_error(pipe.tokenizer, pipe.normalizer, [c.joints for c in clips]),
              "base_codes": code_usage(pipe.tokenizer, pipe.normalizer, [c.joints for c in clips])}
    print(render(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
