"""`python -m kmm prune`: a copy of a bundle whose KMM generator has fewer channels (kmm/training/prune.py).

    python -m kmm prune --weights assets/kmm --out /work/runs/pruned --d-inner 160 --ff-dim 384

1. copy the bundle to --out (which must not exist yet)
2. calibration: generate --per-group training captions of every action group of the bundle's vocabulary
   (the first ones in the group, --seconds each, seeds 0, 1, ...; a bundle without vocabulary: "a person
   <action>" for every action of `kmm.vocabulary.ACTIONS`) while `collect_importance` records the channel
   importances
3. `prune_generator`, saved over out/kmm; the card's numbers are no longer this model's until it is
   fine-tuned and evaluated again (the command says so)
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def calibration_prompts(groups: dict[str, list[str]], per_group: int) -> list[str]:
    """{"jump": [a, b, c], "sit": [d]} , 2 -> [a, b, d]: the first per_group captions of each group, in
    sorted group order, without repeats."""
    out: list[str] = []
    for name in sorted(groups):
        for text in groups[name][:per_group]:
            if text not in out:
                out.append(text)
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="copy a bundle with a smaller (pruned) KMM generator, for fine-tuning")
    p.add_argument("--weights", type=Path, default=Path("assets/kmm"), help="bundle folder to start from")
    p.add_argument("--out", type=Path, required=True, help="new bundle folder (must not exist)")
    p.add_argument("--d-inner", type=int, required=True, help="Mamba channels kept per direction and block")
    p.add_argument("--ff-dim", type=int, required=True, help="feed-forward units kept per block")
    p.add_argument("--per-group", type=int, default=4, help="calibration captions per action group")
    p.add_argument("--seconds", type=float, default=6.0, help="length of each calibration generation")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_prune)


def cmd_prune(args: argparse.Namespace) -> int:
    import torch

    from kmm.errors import CliError
    from kmm.model.weights import WeightsError
    from kmm.pipeline import Pipeline
    from kmm.training.prune import collect_importance, prune_generator
    from kmm.vocabulary import ACTIONS, Vocabulary

    torch.set_num_threads(args.threads)
    if args.out.exists():
        raise CliError(f"{args.out} exists; choose a new folder")
    try:
        pipe = Pipeline.from_pretrained(args.weights, generator="kmm")
    except (WeightsError, ValueError) as e:
        raise CliError(str(e)) from None
    try:
        groups = Vocabulary.load(args.weights).groups
    except ValueError:                                      # no vocabulary in the bundle: the action names
        groups = {name: [f"a person {name}"] for name in ACTIONS}
    gen = pipe.generator
    d_inner, ff_dim = gen.blocks[0].fwd.d_inner, gen.blocks[0].ff[0].out_features   # the model's own widths
    if not (0 < args.d_inner <= d_inner and 0 < args.ff_dim <= ff_dim):
        raise CliError(f"--d-inner must be in 1..{d_inner} and --ff-dim in 1..{ff_dim} (this model's widths)")
    prompts = calibration_prompts(groups, args.per_group)
    t0 = time.perf_counter()
    with collect_importance(gen) as importance:                                           # 2.
        for i, text in enumerate(prompts):
            pipe.generate([(text, args.seconds)], seed=i)
    pruned = prune_generator(gen, importance, args.d_inner, args.ff_dim)                 # 3.
    shutil.copytree(args.weights, args.out)                                               # 1.
    pruned.save_pretrained(args.out / "kmm")
    n_before = sum(p.numel() for p in gen.parameters())
    n_after = sum(p.numel() for p in pruned.parameters())
    print(f"pruned kmm: d_inner {d_inner} -> {args.d_inner}, ff_dim {ff_dim} -> {args.ff_dim}, parameters "
          f"{n_before / 1e6:.2f} M -> {n_after / 1e6:.2f} M ({len(prompts)} calibration generations, "
          f"{time.perf_counter() - t0:.0f} s); written to {args.out}. Fine-tune it (recipe generator.d_inner/"
          f"ff_dim and init_from) and evaluate before use: the bundle's card describes the unpruned model.")
    return 0
