"""What one generator pass costs, per block shape, on this CPU (ours; issue #16 "Mamba at least as fast as the
transformer"). Used to pick a generator shape before spending CPU hours training it.

    python -m kmm.eval.pass_cost                       # the shapes below, batch 2 × 50 tokens (a guided 10-s prompt)
    python -m kmm.eval.pass_cost --rows 64x64 --json out.json

1. Build each shape with random weights (a pass's time does not depend on the weights) in eval mode.
2. Warm up, then time `repeats` rounds of `passes` forward passes each, the shapes interleaved within a round, on
   one torch thread, CPU time of this thread (`time.thread_time`), so another job on the machine inflates the
   numbers less than wall time would.
3. Report the median per-pass time, its ratio to the transformer's, and each shape's block parameters.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

SHAPES = {   # name -> GeneratorConfig overrides of the default (this bundle's) KMM config
    "kmm (shipped shape)": {},
    "transformer": {"backbone": "transformer"},
    "kmm d_inner 128, ff 256 (pruned / round 12 lean)": {"d_inner": 128, "ff_dim": 256},
    "kmm shared projections, ff 256": {"shared_proj": True, "ff_dim": 256},
    "kmm shared projections, ff 512": {"shared_proj": True},
    "transformer, ff 256 (for reference: not the bench's baseline)": {"backbone": "transformer", "ff_dim": 256},
}


def measure(shapes: dict, batch: int, tokens: int, passes: int, repeats: int) -> dict:
    import torch

    from kmm.config import GeneratorConfig
    from kmm.generators.kmm.model import MaskedGenerator

    torch.set_num_threads(1)
    base = GeneratorConfig()
    gen = torch.Generator().manual_seed(0)
    tok = torch.randint(0, base.n_codes, (batch, tokens), generator=gen)
    lengths = torch.full((batch,), tokens)
    text = torch.randn(batch, 1, base.text.dim, generator=gen)
    seg = torch.zeros(batch, tokens, dtype=torch.long)
    models = {}
    for name, over in shapes.items():
        torch.manual_seed(0)
        models[name] = MaskedGenerator(dataclasses.replace(base, **over)).eval()
    times = {name: [] for name in models}
    with torch.no_grad():
        for m in models.values():
            for _ in range(3):
                m(tok, lengths, text, seg)
        for _ in range(repeats):
            for name, m in models.items():
                t = time.thread_time()
                for _ in range(passes):
                    m(tok, lengths, text, seg)
                times[name].append((time.thread_time() - t) / passes * 1000)
    ref = sorted(times["transformer"])[len(times["transformer"]) // 2] if "transformer" in times else None
    rows = {}
    for name, ts in times.items():
        med = sorted(ts)[len(ts) // 2]
        rows[name] = {"overrides": shapes[name], "median_ms": round(med, 3), "min_ms": round(min(ts), 3),
                      "vs_transformer": round(med / ref, 3) if ref else None,
                      "block_params_m": round(sum(p.numel() for p in models[name].blocks.parameters()) / 1e6, 3)}
    return {"kind": "kmm-pass-cost", "batch": batch, "tokens": tokens, "passes": passes, "repeats": repeats,
            "threads": 1, "clock": "thread CPU time", "torch": torch.__version__, "shapes": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", default="2x50", help="batch x tokens (default 2x50: a guided 10-s prompt)")
    p.add_argument("--passes", type=int, default=20)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    batch, tokens = (int(v) for v in args.rows.lower().split("x"))
    out = measure(SHAPES, batch, tokens, args.passes, args.repeats)
    print(f"| shape | pass (ms, median of {args.repeats}) | ÷ transformer | block parameters (M) |")
    print("|---|---|---|---|")
    for name, r in out["shapes"].items():
        print(f"| {name} | {r['median_ms']:.2f} | {r['vs_transformer']:.2f} | {r['block_params_m']:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
