"""`python -m kmm data import-bvh` and `data import-humanml3d` (parsers + commands; wired in kmm/cli.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from kmm.data import DataError


def add_parsers(data_sub) -> None:
    p = data_sub.add_parser("import-bvh", help="BVH folder + captions file (CSV/JSONL) -> dataset folder")
    p.add_argument("dir", type=Path, help="folder of .bvh files (searched recursively)")
    p.add_argument("--captions", required=True, type=Path,
                   help="CSV (header: file,caption[,start,end,split,...]) or JSONL ({file, captions, start, end})")
    p.add_argument("--out", required=True, type=Path, help="dataset folder to write")
    p.add_argument("--mapping", type=Path, default=None,
                   help="JSON {our joint: rig joint} for a rig that is not ours/SMPL/CMU/Mixamo")
    p.add_argument("--unit", default=None, help="m, cm, mm, inch or cmu (default: detected from the body size)")
    p.add_argument("--up", default="y", choices=("y", "z"), help="the files' up axis (default y)")
    _split_args(p, by_choices=True)
    p.set_defaults(func=cmd_import_bvh)

    h = data_sub.add_parser("import-humanml3d", help="HumanML3D folder (new_joints/, texts/, splits) -> dataset folder")
    h.add_argument("dir", type=Path, help="folder with new_joints/, texts/, train.txt, val.txt, test.txt")
    h.add_argument("--out", required=True, type=Path, help="dataset folder to write")
    h.add_argument("--keep-mirrored", action="store_true", help="also import HumanML3D's M* mirrored copies")
    _split_args(h, by_choices=False)
    h.set_defaults(func=cmd_import_humanml3d)


def _split_args(p: argparse.ArgumentParser, by_choices: bool) -> None:
    if by_choices:
        p.add_argument("--split-by", default="file",
                       help="clips sharing this key share a split: file (default), subject (captions column, else "
                            "the file name up to the first _ or -), caption, or any captions-file column")
        p.add_argument("--split", default="80,10,10", help="train,val,test proportions of the keys (default 80,10,10)")
        p.add_argument("--seed", type=int, default=0, help="seed of the split assignment")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    p.add_argument("--float16", action="store_true", help="store joints as float16 (as the shipped folders)")


def _finish(clips, report, out: Path, args, readme: str) -> int:
    from kmm.importers.common import parse_fractions, write_dataset

    print(report.text())
    if not clips:
        raise DataError("no clip could be imported (see the list above); nothing written")
    try:
        fractions = parse_fractions(getattr(args, "split", "80,10,10"))
    except ValueError as e:
        raise DataError(str(e)) from None
    skipped = "".join(f"- {name}: {why}\n" for name, why in report.skipped) or "- none\n"
    write_dataset(clips, out, fractions=fractions, seed=getattr(args, "seed", 0), overwrite=args.overwrite,
                  float16=args.float16, readme=readme + f"\n## Skipped inputs\n{skipped}")
    from kmm.data import load_dataset

    print(load_dataset(out, prepare=False).summary())
    print(f"wrote {out}; next: python -m kmm data check {out}")
    return 0


def cmd_import_bvh(args: argparse.Namespace) -> int:
    from kmm.importers.bvh import import_bvh_folder

    try:
        clips, report = import_bvh_folder(args.dir, args.captions, mapping=args.mapping, unit=args.unit,
                                          up=args.up, split_by=args.split_by)
    except ValueError as e:
        raise DataError(str(e)) from None
    readme = (f"# {args.out.name}\n\nImported by `python -m kmm data import-bvh {args.dir} --captions "
              f"{args.captions}` from {len({c.meta['source'] for c in clips})} BVH file(s): {len(clips)} clips, "
              f"22 joints (SMPL order), 20 fps, metres, Y up, floor at y = 0; splits by {args.split_by!r}.\n"
              "Per-clip rig, unit and source frame rate are in captions.jsonl. Licence: that of the source "
              "files (fill in).\n")
    return _finish(clips, report, args.out, args, readme)


def cmd_import_humanml3d(args: argparse.Namespace) -> int:
    from kmm.importers.humanml3d import import_humanml3d

    try:
        clips, report = import_humanml3d(args.dir, keep_mirrored=args.keep_mirrored)
    except ValueError as e:
        raise DataError(str(e)) from None
    readme = (f"# {args.out.name}\n\nImported by `python -m kmm data import-humanml3d {args.dir}`: {len(clips)} "
              "clips (captioned time spans are clips of their own), HumanML3D's splits, floor at y = 0.\n"
              "Licence: HumanML3D's and AMASS's terms apply (non-commercial research).\n")
    return _finish(clips, report, args.out, args, readme)
