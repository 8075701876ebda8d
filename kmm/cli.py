"""Command line: `python -m kmm <command> ...`.

Adding a command: write `add_<name>_parser(sub)` that creates a subparser and sets
`func=<function taking the parsed args, returning an exit code>`, then append it to
`PARSER_BUILDERS`. Heavy imports (torch models, features, exporters) go inside the command
function so `python -m kmm --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from kmm.config import DEFAULT_GUIDANCE
from kmm.errors import CliError, DataError   # CliError: defined in kmm/errors.py, this name kept


# ----------------------------------------------------------------------------------------------
# data check


def add_data_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="dataset tools")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    check = data_sub.add_parser(
        "check", help="validate dataset folder(s), print a summary and the feature round-trip error")
    check.add_argument("dir", nargs="?", default=None,
                       help="dataset folder(s) or a parent of them, comma separated "
                            "(default: $KMM_DATA or ../shared/data)")
    check.set_defaults(func=cmd_data_check)
    from kmm.importers.commands import add_parsers as add_import_parsers   # import-bvh, import-humanml3d

    add_import_parsers(data_sub)


def cmd_data_check(args: argparse.Namespace) -> int:
    import numpy as np

    from kmm.data import load_dataset, resolve_data_dirs

    dataset = load_dataset(resolve_data_dirs(args.dir), prepare=False)
    print(dataset.summary())

    from kmm.motion.features import canonicalize, features_to_joints, joints_to_features

    per_source: dict[str, list[tuple[float, float]]] = {}
    for clip in dataset.clips():
        target = np.asarray(canonicalize(clip.joints), dtype=np.float64)
        rebuilt = np.asarray(features_to_joints(joints_to_features(clip.joints)), dtype=np.float64)
        if rebuilt.shape != target.shape:
            raise CliError(f"{clip.source}/{clip.id}: round trip gave shape {rebuilt.shape}, "
                           f"expected {target.shape}")
        err_mm = np.linalg.norm(rebuilt - target, axis=-1) * 1000.0  # (T, 22)
        per_source.setdefault(clip.source, []).append((float(err_mm.max()), float(err_mm.mean())))
    print("feature round trip (features_to_joints(joints_to_features(j)) vs canonicalize(j)):")
    overall = 0.0
    for source, errs in per_source.items():
        max_mm = max(e[0] for e in errs)
        mean_mm = float(np.mean([e[1] for e in errs]))
        overall = max(overall, max_mm)
        print(f"  {source}: clips={len(errs)} max_mm={max_mm:.4f} mean_mm={mean_mm:.4f}")
    print(f"roundtrip_max_mm={overall:.6f}")
    return 0


# ----------------------------------------------------------------------------------------------
# export


EXPORT_FORMATS = (".bvh", ".npz")


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="write one dataset clip as .bvh or .npz")
    export.add_argument("dir", help="dataset folder(s) or a parent of them, comma separated")
    export.add_argument("--clip", required=True, help="clip id, e.g. 05_02")
    export.add_argument("--out", required=True, type=Path, help="output file, .bvh or .npz")
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from kmm.data import load_dataset, resolve_data_dirs
    from kmm.motion import skeleton

    out: Path = args.out
    suffix = out.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise CliError(f"{out}: unknown output format {out.suffix or '(none)'!r}; "
                       f"use one of {', '.join(EXPORT_FORMATS)}")
    dataset = load_dataset(resolve_data_dirs(args.dir), prepare=False)
    if args.clip not in dataset:
        raise CliError(f"clip {args.clip!r} not found in {', '.join(str(d) for d in dataset.dirs)}")
    clip = dataset[args.clip]
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".bvh":
        from kmm.motion.bvh import write_bvh

        write_bvh(out, clip.joints, fps=skeleton.FPS)
    else:
        from kmm.motion.features import joints_to_features
        from kmm.motion.npz import save_motion_npz

        save_motion_npz(out, clip.joints, features=joints_to_features(clip.joints),
                        fps=skeleton.FPS, segment_texts=(clip.captions[0],),
                        boundaries=(0, clip.n_frames),
                        model_id=f"ground-truth:{clip.source}/{clip.id}")
    print(f"wrote {out} ({clip.source}/{clip.id}, {clip.n_frames} frames, "
          f"{clip.seconds:.2f} s: {clip.captions[0]!r})")
    return 0


# ----------------------------------------------------------------------------------------------
# wiring


PARSER_BUILDERS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_data_parser,
    add_export_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kmm", description="KMM: Key Frame Mask Mamba text-to-motion")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in PARSER_BUILDERS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, CliError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


# ----------------------------------------------------------------------------------------------
# train


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train tokenizer, residual predictor and generators (resumable)")
    p.add_argument("--data", default=None, help="dataset folder(s) or a parent (default: $KMM_DATA or ../shared/data)")
    p.add_argument("--out", type=Path, default=Path("runs/kmm"), help="run folder (checkpoints, logs, bundle)")
    p.add_argument("--recipe", default="default", help="'default', 'tiny', or a recipe JSON file")
    p.add_argument("--stages", default="tokenizer,residual,generators,motion-mamba",
                   help="comma list of tokenizer, base-decoder, residual, generators, motion-mamba")
    p.add_argument("--generators", default=None, help="comma list of kmm, kmm-random, transformer, bamm")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cache", type=Path, default=Path(".cache"), help="feature cache folder")
    p.add_argument("--steps", type=int, default=None,
                   help="override every stage's step count (quick runs and tests); the recipe JSON records it")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from kmm.data import load_dataset, resolve_data_dirs
    from kmm.train import GENERATOR_VARIANTS, Recipe, tiny_recipe, train_all

    if args.recipe == "default":
        recipe = Recipe()
    elif args.recipe == "tiny":
        recipe = tiny_recipe()
    elif Path(args.recipe).is_file():
        recipe = Recipe.load(args.recipe)
    else:
        raise CliError(f"unknown recipe {args.recipe!r} (default, tiny, or a JSON file)")
    if args.generators:
        names = tuple(n.strip() for n in args.generators.split(",") if n.strip())
        bad = [n for n in names if n not in GENERATOR_VARIANTS]
        if bad:
            raise CliError(f"unknown generator(s) {bad}; choose from {sorted(GENERATOR_VARIANTS)}")
        recipe = dataclasses.replace(recipe, generators=names)
    if args.threads:
        recipe = dataclasses.replace(recipe, threads=args.threads)
    if args.steps is not None:
        if args.steps < 1:
            raise CliError(f"--steps must be at least 1, got {args.steps}")
        recipe = dataclasses.replace(recipe, **{k: args.steps for k in (
            "tokenizer_steps", "decoder_steps", "generator_steps", "residual_steps", "vae_steps",
            "motion_mamba_steps")})
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    dataset = load_dataset(resolve_data_dirs(args.data))
    from kmm import distributed as ddp   # under torchrun: join the process group (gloo; kmm/distributed.py)

    try:
        world = ddp.init()
        main = ddp.is_main()
        if main:
            print(dataset.summary() + (f"\ndata-parallel: {world} processes" if world > 1 else ""))
        out = train_all(dataset, args.out, recipe, stages=stages, cache_dir=args.cache)
    except ddp.DistributedError as e:
        raise CliError(str(e)) from e
    finally:
        ddp.shutdown()
    if main:
        print(f"run folder: {out}")
    return 0


PARSER_BUILDERS.append(add_train_parser)


# ----------------------------------------------------------------------------------------------
# generate


DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "kmm"


def add_generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="text (one or several segments) -> motion .npz / .bvh")
    p.add_argument("prompt", help='e.g. "walk forward, then turn left, then sit down" (split into segments)')
    p.add_argument("--lengths", default=None, help="seconds per segment, e.g. 3,2,4 or 3,auto,4 (default: auto)")
    p.add_argument("--seconds", type=float, default=None, help="one length for every segment")
    p.add_argument("--no-split", action="store_true", help="treat the whole prompt as one segment")
    p.add_argument("--model", default="kmm", help="kmm, kmm-random, transformer, bamm or motion-mamba")
    p.add_argument("--weights", default=None, help=f"bundle folder (default: Hub if configured, else {DEFAULT_WEIGHTS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-foot-lock", dest="foot_lock", action="store_false",
                   help="keep the feet as decoded (default: planted feet are locked in place)")
    p.add_argument("--out", required=True, type=Path, help="output .npz or .bvh")
    ctl = p.add_argument_group(
        "control", "coordinates are the output's own frame: frame 0's pelvis at x = z = 0, facing +Z, +X the "
                   "body's left (metres on the floor); times in seconds")
    ctl.add_argument("--path", default=None, metavar='"T:X,Z;T:X,Z"',
                     help='pelvis waypoints the body walks through, e.g. "4:0,3;8:2,5" (at 4 s at x=0, z=3 m)')
    ctl.add_argument("--keyposes", type=Path, default=None, metavar="FILE",
                     help=".npz with joints (K,22,3) metres and times (K,) seconds: poses the motion passes through")
    ctl.add_argument("--candidates", type=int, default=1,
                     help="with --path/--keyposes: sample this many motions, keep the one bent least (default 1)")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    import time

    from kmm.model.weights import WeightsError
    from kmm.segment import TimelineError, parse_lengths, split_prompt

    if args.out.suffix.lower() not in EXPORT_FORMATS:
        raise CliError(f"--out must end in .npz or .bvh, got {args.out.name!r}")
    try:
        texts = [args.prompt.strip()] if args.no_split else split_prompt(args.prompt)
        if args.lengths is not None and args.seconds is not None:
            raise CliError("give --lengths or --seconds, not both")
        if args.seconds is not None:
            lengths = [args.seconds] * len(texts)
        elif args.lengths is not None:
            lengths = parse_lengths(args.lengths, len(texts))
        else:
            lengths = [None] * len(texts)
        from kmm.pipeline import Pipeline

        weights, source = _resolve_weights(args.weights)
        t0 = time.perf_counter()
        pipe = Pipeline.from_pretrained(weights, generator=args.model, device=args.device)
        pipe.predict_seconds(["warm-up"])  # loads the text encoder before timing
        t_load = time.perf_counter() - t0
        from kmm.control import ControlError, load_keyposes

        control = {"path": args.path, "candidates": args.candidates,
                   "keyposes": load_keyposes(args.keyposes) if args.keyposes else None}
        result = pipe.generate(list(zip(texts, lengths)), seed=args.seed, guidance=args.guidance, steps=args.steps,
                               foot_lock=args.foot_lock, **control)
    except (TimelineError, WeightsError, ControlError) as e:
        raise CliError(str(e)) from e
    _write_result(args.out, result)
    print(f"weights: {source} ({args.model}); load {t_load:.2f} s")
    for i, (t, a, b) in enumerate(zip(result.texts, result.boundaries[:-1], result.boundaries[1:])):
        print(f"  segment {i + 1}: frames {a}-{b} ({(b - a) / 20:.1f} s) {t!r}")
    print(f"frames={result.n_frames} boundaries={result.boundaries}")
    if result.control:
        _print_control(result)
    print(f"generate_seconds={result.timings['total_s']:.3f} (text {result.timings['text_s']:.3f}, "
          f"tokens {result.timings['tokens_s']:.3f}, decode {result.timings['decode_s']:.3f})")
    print(f"wrote {args.out}")
    return 0


def _print_control(result) -> None:
    from kmm.control.report import control_errors

    for line in control_errors(result.joints, result.control)["lines"]:
        print(f"  {line}")


def _resolve_weights(explicit: str | None):
    if explicit:
        return Path(explicit), f"local {explicit}"
    try:
        from kmm.hub import resolve_weights
    except ImportError:
        return DEFAULT_WEIGHTS, f"bundled {DEFAULT_WEIGHTS}"
    return resolve_weights()


def _write_result(out: Path, result) -> None:
    from kmm.motion.bvh import write_bvh
    from kmm.motion.npz import save_motion_npz

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".bvh":
        from kmm.motion.retarget import REST_OFFSETS

        write_bvh(out, result.joints, offsets=REST_OFFSETS)   # the skeleton the pipeline's joints live on
    else:
        from kmm.control.report import control_arrays

        save_motion_npz(out, result.joints, features=result.features, fps=20, segment_texts=result.texts,
                        boundaries=result.boundaries, model_id=result.model_id, seed=result.seed,
                        extra=control_arrays(result.control))


PARSER_BUILDERS.append(add_generate_parser)


# ----------------------------------------------------------------------------------------------
# evaluation: train-evaluator, evaluate, bench, report (each parser lives next to its code in kmm/eval/)


def add_eval_parsers(sub: argparse._SubParsersAction) -> None:
    from kmm.eval import ablate, bench, breadth, control_eval, evaluate, long_window, report, train_evaluator

    for module in (train_evaluator, evaluate, bench, report, breadth, ablate, control_eval, long_window):
        module.add_parser(sub)


PARSER_BUILDERS.append(add_eval_parsers)


# ----------------------------------------------------------------------------------------------
# vocabulary (training captions + embeddings for the app; the parser lives in kmm/vocabulary.py)


def add_vocabulary_parser(sub: argparse._SubParsersAction) -> None:
    from kmm import vocabulary

    vocabulary.add_parser(sub)


PARSER_BUILDERS.append(add_vocabulary_parser)


# ----------------------------------------------------------------------------------------------
# prune (a smaller KMM generator for fine-tuning; the parser lives in kmm/prune_cli.py)


def add_prune_parser(sub: argparse._SubParsersAction) -> None:
    from kmm import prune_cli

    prune_cli.add_parser(sub)


PARSER_BUILDERS.append(add_prune_parser)


# ----------------------------------------------------------------------------------------------
# export-weights (bundle + model card)


def add_export_weights_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-weights", help="copy a training run's weights into a bundle and write its model card")
    p.add_argument("--run", type=Path, default=Path("runs/kmm"))
    p.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--data", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--command", default="python -m kmm train --out runs/kmm", help="the training command, for the card")
    p.add_argument("--note", default="", help="a remark on how the run went, printed in the card's training section")
    p.add_argument("--metrics-only", action="store_true",
                   help="copy nothing, write no card: recompute the held-out numbers of the weights now in --out "
                        "(after one part was replaced) into its metrics.json")
    p.set_defaults(func=cmd_export_weights)


def cmd_export_weights(args: argparse.Namespace) -> int:
    import json

    from kmm.card import copy_bundle, held_out_numbers, refresh_metrics, write_card
    from kmm.data import load_dataset, resolve_data_dirs

    if args.metrics_only:
        if not (args.out / "kmm" / "config.json").is_file():
            raise CliError(f"{args.out} is not a weights bundle (no kmm/config.json)")
        numbers = refresh_metrics(args.out, load_dataset(resolve_data_dirs(args.data)), args.split)
        print(json.dumps(numbers, indent=2))
        print(f"wrote {args.out / 'metrics.json'}")
        return 0
    if not (args.run / "train_log.jsonl").is_file():
        raise CliError(f"{args.run} is not a training run folder (no train_log.jsonl)")
    dataset = load_dataset(resolve_data_dirs(args.data))
    copy_bundle(args.run, args.out)
    numbers = held_out_numbers(args.out, dataset, args.split)
    print(json.dumps(numbers, indent=2))
    print(f"wrote {write_card(args.out, args.run, dataset, numbers, args.command, args.note)}")
    return 0


PARSER_BUILDERS.append(add_export_weights_parser)


# ----------------------------------------------------------------------------------------------
# push-to-hub (kmm/publish.py)


def add_push_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push-to-hub", help="upload a weights bundle to the Hugging Face Hub; prints the revision to pin")
    p.add_argument("bundle", type=Path, help="bundle folder (python -m kmm export-weights --out ...)")
    p.add_argument("--repo", required=True, help="USER/NAME on the Hub")
    p.add_argument("--dry-run", action="store_true", help="list the files and validate the card; send nothing")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--message", default=None, help="commit message")
    p.set_defaults(func=cmd_push)


def cmd_push(args: argparse.Namespace) -> int:
    from kmm.publish import PublishError, format_plan, pin_lines, plan_upload, push_to_hub

    files, problems = plan_upload(args.bundle)
    print(format_plan(files))
    if args.dry_run:
        if problems:
            raise CliError("the bundle would be refused:\n  " + "\n  ".join(problems))
        print(f"dry run: card and files valid; nothing sent to {args.repo}")
        return 0
    try:
        sha = push_to_hub(args.bundle, args.repo, private=args.private, message=args.message)
    except PublishError as e:
        raise CliError(str(e)) from e
    print(f"revision: {sha}")
    print(pin_lines(args.repo, sha))
    return 0


PARSER_BUILDERS.append(add_push_parser)


# ----------------------------------------------------------------------------------------------
# render (mannequin mesh: .mp4 video or animated .glb)


RENDER_FORMATS = (".mp4", ".glb", ".png")


def add_render_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a motion .npz as a mannequin video (.mp4), animated .glb or .png")
    p.add_argument("motion", type=Path, help="motion .npz written by save_motion_npz (key 'joints')")
    p.add_argument("--out", required=True, type=Path, help="output file: .mp4, .glb or .png (one frame)")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default: the file's fps)")
    p.add_argument("--size", default="480x360", help="video size WIDTHxHEIGHT (default 480x360)")
    p.add_argument("--frame", type=int, default=0, help="frame for .png output")
    p.set_defaults(func=cmd_render)


def cmd_render(args: argparse.Namespace) -> int:
    suffix = args.out.suffix.lower()
    if suffix not in RENDER_FORMATS:
        raise CliError(f"{args.out}: unknown output format {suffix or '(none)'!r}; use {', '.join(RENDER_FORMATS)}")
    if not args.motion.is_file():
        raise CliError(f"{args.motion}: no such file")
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise CliError(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 480x360") from None

    from kmm.motion.npz import load_motion_npz

    motion = load_motion_npz(args.motion)
    joints, fps = motion["joints"], args.fps or motion["fps"]
    if suffix == ".glb":
        from kmm.viz.mesh import motion_to_glb

        motion_to_glb(joints, args.out, fps=fps)
    else:
        from kmm.viz.render import RenderError, render_mp4, render_png

        try:
            if suffix == ".mp4":
                render_mp4(joints, args.out, fps=fps, size=(width, height))
            else:
                render_png(joints, args.out, frame=args.frame, fps=fps, size=(width, height))
        except RenderError as e:
            raise CliError(str(e)) from e
    print(f"wrote {args.out} ({len(joints)} frames, {len(joints) / fps:.2f} s)")
    return 0


PARSER_BUILDERS.append(add_render_parser)
