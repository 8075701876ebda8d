"""Breadth: does the model do the common actions people type? (ours; issue "the model does what people type")

`python -m kmm breadth --json results/breadth.json` does two things:

1. **Validates every check on real held-out motion first.** For each action, the real clips of the held-out
   split whose own caption names the action (`keywords`) are the positives; clips that name none of the
   action's keywords are the negatives. A check is only trusted when it passes most positives and few
   negatives; both rates are in the report.
2. **Generates each action** with paraphrased prompts (written here, checked not to be training captions
   verbatim), for every model and 3 seeds (prompt k with seed k), and applies the action's check. An action
   counts as done by a model when at least 2 of the 3 seeds pass.

Every check is a pure function of `(T, 22, 3)` joints (metres, Y up, 20 fps), physical and simple, so a failure
reads as a fact about the motion: both feet in the air, the pelvis lower, the head near the floor, the body
displaced backwards in its own frame, and so on. Thresholds are stated next to each check.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kmm.config import DEFAULT_GUIDANCE
from kmm.eval import kinematic_checks as kc
from kmm.motion.skeleton import FOOT_JOINTS, FPS

HEAD, L_WRIST, R_WRIST = 15, 20, 21
SECONDS = 6.0          # length of every generated motion


# --- checks (joints (T, 22, 3) -> (passed, value)) ------------------------------------------------------

def check_jump(j):      # both feet >= 5 cm above their local ground for >= 2 frames
    c = kc.jumps(j)
    return c.passed, c.value


def check_hop(j):       # both feet off the ground (>= 3 cm) for >= 2 frames: one-legged hops have a flight too
    c = kc.jumps(j, clearance=0.03)
    return c.passed, c.value


def check_sit(j):       # both thighs within 45 degrees of level for >= 1 s (seated; a high stool counts too)
    c = kc.seated(j)
    return c.passed, c.value


def check_squat(j):     # thighs within 45 degrees of level for >= 0.25 s, pelvis >= 0.2 m down, < 0.5 m travel
    c = kc.squats(j)
    return c.passed, c.value


def check_kick(j):      # a foot >= 0.3 m above its first-frame height
    c = kc.kicks(j)
    return c.passed, c.value


def check_punch(j):     # a wrist >= 0.4 m in front of the shoulders
    c = kc.punches(j)
    return c.passed, c.value


def check_crawl(j):     # head below 0.7 m for >= 1 s
    low = j[:, HEAD, 1] < 0.7
    run = kc.longest_run(low)
    return run >= FPS, run / FPS


def check_pick_up(j):   # a wrist within 0.45 m of the floor
    lowest = float(j[:, [L_WRIST, R_WRIST], 1].min())
    return lowest <= 0.45, lowest


def check_walk_backwards(j):   # >= 0.8 m travelled backwards in the body's own frame
    c = kc.walks_backwards(j)
    return c.passed, c.value


def check_sidestep(j):  # >= 0.5 m sideways in the body's own frame, more than forwards/backwards
    c = kc.sidesteps(j)
    return c.passed, c.value


def check_turn_around(j):   # facing changes by >= 120 degrees
    c = kc.turns_around(j)
    return c.passed, c.value


def check_dance(j):     # arms and feet busy in place: wrist >= 0.4 m/s and foot >= 0.3 m/s relative to the
    #                     pelvis, net travel <= 0.3 m/s (weak: see the validation columns)
    rel = j[:, [L_WRIST, R_WRIST, 10, 11]] - j[:, :1]
    speed = np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean(0) * FPS                # (4,)
    travel = float(np.linalg.norm(j[-1, 0, [0, 2]] - j[0, 0, [0, 2]])) / max(len(j) / FPS, 1.0)
    return bool(speed[:2].max() >= 0.4 and speed[2:].max() >= 0.3 and travel <= 0.3), float(speed[:2].max())


def check_climb(j):     # the lower foot stays >= 0.15 m above the floor for >= 0.5 s (standing on a step)
    lowest = j[:, list(FOOT_JOINTS), 1].min(axis=1) - j[:, list(FOOT_JOINTS), 1].min()
    run = kc.longest_run(lowest >= 0.15)
    return run >= FPS // 2, run / FPS


def check_throw(j):     # a wrist above the head, then a wrist faster than 3 m/s relative to the pelvis
    rel = j[:, [L_WRIST, R_WRIST]] - j[:, :1]
    speed = np.linalg.norm(np.diff(rel, axis=0), axis=-1).max(axis=1) * FPS      # (T-1,)
    above = (j[:, [L_WRIST, R_WRIST], 1] > j[:, HEAD:HEAD + 1, 1]).any(axis=1)
    peak = float(speed.max())
    return bool(above.any()) and peak >= 3.0, peak


@dataclass(frozen=True)
class Action:
    name: str
    check: Callable
    keywords: str            # regex over the real clip's own caption (label): the positives
    prompts: tuple           # 3 paraphrased prompts (not training captions verbatim)


ACTIONS = (
    Action("jump", check_jump, r"\bjump", ("a person jumps up in place", "someone leaps up into the air",
                                           "a person does a big jump")),
    Action("hop", check_hop, r"\bhop", ("a person hops forward on one leg", "someone hops on one foot",
                                        "a person hops a few times")),
    Action("sit down", check_sit, r"\bsit", ("a person sits down on a chair", "someone takes a seat",
                                             "a person lowers themself onto a seat")),
    Action("squat", check_squat, r"\bsquat", ("a person squats down and stands back up", "someone does squats",
                                              "a person crouches into a deep squat")),
    Action("kick", check_kick, r"\bkick", ("a person kicks with the right leg", "someone does a high front kick",
                                           "a person kicks forward hard")),
    Action("punch", check_punch, r"\bpunch|\bboxing", ("a person punches forward with the right fist",
                                                    "someone throws a few punches",
                                                    "a person boxes, punching the air")),
    Action("crawl", check_crawl, r"\bcrawl", ("a person crawls along the floor",
                                              "someone crawls forward on hands and knees",
                                              "a person is crawling on the ground")),
    Action("pick up", check_pick_up, r"\bpick", ("a person bends down and picks something up",
                                                 "someone picks an object up from the ground",
                                                 "a person reaches down to the floor and lifts a box")),
    Action("walk backwards", check_walk_backwards, r"backward", ("a person walks backwards slowly",
                                                                 "someone steps back several steps",
                                                                 "a person is walking backward")),
    Action("sidestep", check_sidestep, r"side ?step|sideways|sidestep", ("a person sidesteps to the left",
                                                                           "someone steps sideways to the right",
                                                                           "a person shuffles sideways")),
    Action("turn around", check_turn_around, r"turn around|turns around|180|360|turn in place",
           ("a person turns around to walk back", "someone turns around to face the other way", "a person spins all the way around")),
    Action("dance", check_dance, r"\bdanc|salsa|charleston|waltz|ballet", ("a person dances energetically",
                                                                           "someone is dancing happily",
                                                                           "a person dances the salsa")),
    Action("climb steps", check_climb, r"\bclimb|stairs|step up|ledge", ("a person climbs up the stairs",
                                                                         "someone walks up some steps",
                                                                         "a person goes up a staircase")),
    Action("throw", check_throw, r"\bthrow|\btoss|\bpitch", ("a person throws a ball overhand",
                                                             "someone throws something far",
                                                             "a person pitches a baseball")),
)


# --- 1. validation on real clips -----------------------------------------------------------------------

def caption_text(clip) -> str:
    """A real clip's own caption (its label where it has one): what the action patterns are matched against."""
    return " ".join(clip.labels or clip.captions)


def caption_split(clips, pattern: str, max_negatives: int | None, rng) -> tuple[list, list]:
    """(positives, negatives): the clips whose own caption (label) matches `pattern` (a regex, any case), and
    the others, at most `max_negatives` of them (drawn with `rng`, kept in their order; None: all)."""
    pat = re.compile(pattern, re.I)
    hit = [bool(pat.search(caption_text(c))) for c in clips]
    pos = [c for c, h in zip(clips, hit) if h]
    neg = [c for c, h in zip(clips, hit) if not h]
    if max_negatives is not None and len(neg) > max_negatives:
        neg = [neg[i] for i in sorted(rng.choice(len(neg), max_negatives, replace=False))]
    return pos, neg


def validate_checks(clips, max_negatives: int = 150, max_seconds: float = 10.0, seed: int = 0,
                    fallback_clips=()) -> dict:
    """Per action: pass rate of the check on real positives (caption names the action) and on real negatives
    (caption names none of its keywords), on windows of at most `max_seconds` (whole positives: the action
    may happen anywhere in a long trial). An action with no held-out positive is validated on the positives
    of `fallback_clips` (the training split: the checks are rules, nothing was fitted to them), and says so."""
    rng = np.random.default_rng(seed)
    out = {}
    for a in ACTIONS:
        pos, neg = caption_split(clips, a.keywords, max_negatives, rng)
        source = "held-out"
        if not pos:
            pos, _ = caption_split(fallback_clips, a.keywords, None, rng)
            source = "train"
        n = int(max_seconds * FPS)
        p_rate = float(np.mean([a.check(c.joints)[0] for c in pos])) if pos else None
        n_rate = float(np.mean([a.check(c.joints[:n])[0] for c in neg])) if neg else None
        out[a.name] = {"positives": len(pos), "pass_positives": p_rate, "negatives": len(neg),
                       "pass_negatives": n_rate, "positives_from": source}
    return out


# --- 2. generation ---------------------------------------------------------------------------------------

def run_breadth(weights: Path, models: list[str], n_seeds: int = 3, device=None, log=print,
                foot_lock: bool | None = None, guidance: float | None = None) -> dict:
    """{model: {action: {"passes": [bool per seed], "values": [...], "prompts": [...]}}}."""
    from kmm.pipeline import Pipeline

    results = {}
    for model in models:
        pipe = Pipeline.from_pretrained(weights, generator=model, device=device)
        per = {}
        for a in ACTIONS:
            passes, values, prompts = [], [], []
            for s in range(n_seeds):
                prompt = a.prompts[s % len(a.prompts)]
                kwargs = {} if foot_lock is None else {"foot_lock": foot_lock}
                if guidance is not None:
                    kwargs["guidance"] = guidance
                out = pipe.generate([(prompt, SECONDS)], seed=s, **kwargs)
                ok, value = a.check(np.asarray(out.joints))
                passes.append(bool(ok))
                values.append(round(float(value), 3))
                prompts.append(prompt)
            per[a.name] = {"passes": passes, "values": values, "prompts": prompts,
                           "done": sum(passes) * 2 > n_seeds}
            log(f"{model:13s} {a.name:15s} {''.join('x' if p else '.' for p in passes)}  {values}")
        results[model] = per
    return results


def training_caption_overlap(captions: set[str]) -> list[str]:
    """Prompts that are training captions verbatim (should be none: the breadth test uses paraphrases)."""
    norm = {re.sub(r"[^a-z ]", "", c.lower()).strip() for c in captions}
    return [p for a in ACTIONS for p in a.prompts if re.sub(r"[^a-z ]", "", p.lower()).strip() in norm]


def render_breadth(result: dict) -> str:
    models = list(result["models"])
    lines = ["| Action | check | real clips: pass (positives) | real clips: pass (others) | "
             + " | ".join(models) + " |",
             "|---|---|---|---|" + "---|" * len(models)]
    val = result["validation"]
    for a in ACTIONS:
        v = val[a.name]
        pp = "–" if v["pass_positives"] is None else f"{v['pass_positives']:.2f} (n={v['positives']})"
        if v.get("positives_from") == "train":
            pp += " train clips"
        pn = "–" if v["pass_negatives"] is None else f"{v['pass_negatives']:.2f} (n={v['negatives']})"
        doc = (a.check.__doc__ or "").strip() or _inline_doc(a.check)
        cells = []
        for m in models:
            r = result["models"][m][a.name]
            cells.append(f"{sum(r['passes'])}/{len(r['passes'])}" + (" ✓" if r["done"] else ""))
        lines.append(f"| {a.name} | {doc} | {pp} | {pn} | " + " | ".join(cells) + " |")
    summary = ", ".join(f"{m}: {sum(r['done'] for r in result['models'][m].values())}/{len(ACTIONS)}"
                        for m in models)
    lines.append("")
    n = result.get("n_seeds", 3)
    lines.append(f"Actions done (more than half of the {n} seeds pass: ≥ {n // 2 + 1} of {n}): {summary}.")
    return "\n".join(lines)


def _inline_doc(fn) -> str:
    import inspect

    src = inspect.getsource(fn).splitlines()[0]
    return src.split("#", 1)[1].strip() if "#" in src else fn.__name__


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("breadth", help="generate common actions and judge each with a kinematic check",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="dataset folder(s) or a parent (default: $KMM_DATA or ../shared/data)")
    p.add_argument("--split", default="test,val", help="held-out split(s) for validating the checks")
    p.add_argument("--weights", type=Path, default=Path("assets/kmm"))
    p.add_argument("--models", default="kmm,kmm-random,transformer,bamm,motion-mamba")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--json", type=Path, default=Path("results/breadth.json"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default=None)
    p.add_argument("--append", action="store_true", help="add these models to the existing --json file")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the pipeline's)")
    p.set_defaults(func=cmd_breadth)


def cmd_breadth(args: argparse.Namespace) -> int:
    import torch

    from kmm.data import load_dataset, resolve_data_dirs

    torch.set_num_threads(args.threads)
    t0 = time.time()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    dataset = load_dataset(resolve_data_dirs(args.data))
    train_caps = {c for clip in dataset.clips("train") for c in clip.captions}
    overlap = training_caption_overlap(train_caps)
    held_out = [c for split in args.split.split(",") for c in dataset.clips(split.strip())]
    validation = validate_checks(held_out, fallback_clips=dataset.clips("train"))
    for name, v in validation.items():
        log(f"check {name:15s} positives {v['pass_positives']} (n={v['positives']})  "
            f"others {v['pass_negatives']} (n={v['negatives']})")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    result = {"kind": "kmm-breadth", "validation": validation, "prompts_in_training_captions": overlap, "seconds": SECONDS,
              "n_seeds": args.seeds, "guidance": args.guidance if args.guidance is not None else DEFAULT_GUIDANCE,
              "models": run_breadth(args.weights, models, args.seeds, device=args.device, log=log,
                                    guidance=args.guidance)}
    result["wall_s"] = round(time.time() - t0, 1)
    if args.append and args.json.is_file():
        old = json.loads(args.json.read_text())
        if (old.get("n_seeds") != result["n_seeds"] or old.get("seconds") != result["seconds"]
                or old.get("guidance", 3.0) != result["guidance"]):   # files before round 7: guidance 3
            raise SystemExit("cannot append: seeds, length or guidance differ")
        result["models"] = {**old["models"], **result["models"]}
        result["wall_s"] += old.get("wall_s", 0)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(render_breadth(result))
    print(f"\nwrote {args.json} ({result['wall_s']:.0f} s)")
    return 0
