"""Can the motion tokenizer represent each action at all? (issue #13: breadth; #14: tokenizer)

    python -m kmm.eval.tokenizer_breadth --json results/tokenizer_breadth.json

A generator over tokens can only produce what the tokenizer decodes. For every action of `kmm.eval.breadth`,
its real held-out clips (test + val, caption names the action: the same positives the breadth checks are
validated on) go through the shipped tokenizer, and the action's check runs on each version after the
pipeline's clean-up (`clean_joints`):
    capture       the clip itself (features → clean-up)
    autoencoder   encoder → decoder without quantisation (what the network can carry)
    all layers    encode → all residual codebook layers → decode (the best any generator could do)
    base layer    encode → base layer only → decode (what the shipped pipeline decodes: residual_layers 0)
Reported per action: the pass rate of the check at each stage and the mean value of its measure.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

STAGES = ("capture", "autoencoder", "all layers", "base layer")


def stage_features(tokenizer, normalizer, features: np.ndarray) -> dict:
    """(T, 263) real features -> {stage: (T', 263) features}, T' = T rounded down to the tokenizer's stride."""
    import torch

    T = len(features) // tokenizer.downsample * tokenizer.downsample
    x = torch.from_numpy(normalizer.normalize(features[:T])).float()[None]
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


def render(result: dict) -> str:
    lines = ["| action | real clips | " + " | ".join(STAGES) + " |", "|---|---|" + "---|" * len(STAGES)]
    for name, r in result["actions"].items():
        if r["clips"]:
            lines.append(f"| {name} | {r['clips']} | "
                         + " | ".join(f"{r[s]['pass']:.2f} ({r[s]['value']:.2f})" for s in STAGES) + " |")
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
              "stages": list(STAGES), "actions": measure(pipe.tokenizer, pipe.normalizer, by_action)}
    print(render(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
