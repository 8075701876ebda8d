"""Render results/eval.json and results/bench.json as Markdown tables (the README includes this verbatim).

    python -m kmm report results/eval.json results/bench.json > results/report.md
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

# (key, column title, digits)
EVAL_COLUMNS = (
    ("r_precision_top1", "R@1 ↑", 3), ("r_precision_top2", "R@2 ↑", 3), ("r_precision_top3", "R@3 ↑", 3),
    ("fid", "FID ↓", 3), ("mm_dist", "MM-Dist ↓", 3), ("diversity", "Diversity →", 3),
    ("multimodality", "MModality ↑", 3), ("foot_skating", "Skate ↓", 3),
)
PHYSICAL_COLUMNS = (
    ("foot_skating_raw", "Skate raw ↓", 3), ("foot_skating", "Skate shown ↓", 3), ("float_m", "Float (m) ↓", 3),
    ("penetration_m", "Below floor (m) ↓", 3), ("airborne_max_s", "Longest air (s)", 2),
    ("bone_spread_m", "Bone spread (m) ↓", 4),
)
TRANSITION_COLUMNS = (
    ("peak_jerk", "PJ (m/s³) ↓", 1), ("auj", "AUJ (m/s³) ↓", 0), ("transition_fid", "Trans. FID ↓", 3),
    ("ait_s", "AIT (s) ↓", 3),
)
MODEL_TITLES = {"gt": "Ground truth", "kmm": "KMM (key-frame masking)", "kmm-random": "KMM, random masking",
                "transformer": "Transformer (MoMask-style)", "bamm": "BAMM (ours, from the paper)",
                "motion-mamba": "Motion Mamba (ours, from the paper)"}


def write_json(path: Path, result: dict, indent: int = 1) -> None:
    """A result file of any eval command: parent folders made, JSON with a final newline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=indent) + "\n")


def fmt_value(v: dict | None, digits: int = 3) -> str:
    """{"mean": 0.5, "ci95": 0.01} -> "0.500 ± 0.010"; a single seed -> "0.500"; None -> "–"."""
    if v is None:
        return "–"
    if len(v.get("values", [])) <= 1:
        return f"{v['mean']:.{digits}f}"
    return f"{v['mean']:.{digits}f} ± {v['ci95']:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def render_eval(result: dict) -> str:
    models = result["models"]
    seeds = result["seeds"]
    s = result.get("settings", {})
    lines = [f"### Text-to-motion on the `{result['split']}` split",
             "",
             f"{result['n_texts']} texts × {len(seeds)} seed(s) {seeds}; mean ± 95% interval over seeds; "
             f"{s.get('steps', '?')} decoding steps, guidance {s.get('guidance', '?')}; FID against all "
             f"{result.get('n_real', '?')} real clips of the split; frozen evaluator `{result['evaluator']['path']}`.",
             ""]
    rows = [[MODEL_TITLES.get(n, n)] + [fmt_value(m["metrics"].get(k), d) for k, _, d in EVAL_COLUMNS]
            for n, m in models.items()]
    lines += _table(["Model"] + [t for _, t, _ in EVAL_COLUMNS], rows)
    if any(m["metrics"].get("float_m") is not None for m in models.values()):
        lines += ["", "### Physical plausibility (floor y = 0)", "",
                  "Skate raw: the decoded joints; shown: after the pipeline's clean-up (one skeleton, grounded root, "
                  "foot lock). Float: mean height of the lowest foot while it carries the body; longest air: the "
                  "longest time with both feet more than 5 cm up; bone spread: std of a bone's length over frames, "
                  "worst bone.", ""]
        rows = [[MODEL_TITLES.get(n, n)] + [fmt_value(m["metrics"].get(k), d) for k, _, d in PHYSICAL_COLUMNS]
                for n, m in models.items()]
        lines += _table(["Model"] + [t for _, t, _ in PHYSICAL_COLUMNS], rows)
    gens = {n: m for n, m in models.items() if n != "gt"}
    if gens:
        lines += ["", f"### Transitions ({s.get('transition_segments', '?')} segments in one timeline, "
                      f"{s.get('transition_window', 60)}-frame windows) and speed", "",
                  f"Real-motion mean jerk: {result.get('real_mean_jerk', float('nan')):.1f} m/s³ "
                  "(AUJ is measured against it; divide jerk by 8000 for FlowMDM's m/frame³).", ""]
        rows = [[MODEL_TITLES.get(n, n)] + [fmt_value(m["metrics"].get(k), d) for k, _, d in TRANSITION_COLUMNS]
                for n, m in gens.items()]
        lines += _table(["Model"] + [t for _, t, _ in TRANSITION_COLUMNS], rows)
    ev = result["evaluator"].get("sha256", {})
    lines += ["", f"Wall time {result['wall_s'] / 60:.1f} min on {result.get('device', 'cpu')} "
                  f"({s.get('threads', '?')} thread(s)); evaluator sha256 "
                  f"`{ev.get('model.safetensors', '?')[:12]}…`."]
    return "\n".join(lines)


def _length(seconds: float) -> str:
    """10 -> "10 s"; 60 -> "1 min"; 90 -> "1.5 min"."""
    return f"{seconds:g} s" if seconds < 60 else f"{seconds / 60:g} min"


def _mib(kib) -> str:
    return "–" if kib is None else f"{kib / 1024:.0f}"


def _ratio_name(key: str) -> str:
    """kmm_vs_transformer keys: "single_10s" -> "10 s prompt", "timeline_4x10s" -> "4 × 10 s",
    "timeline_600s" -> "10 min timeline"."""
    fixed = {"single_10s": "10 s prompt", "timeline_4x10s": "4 × 10 s"}
    if key in fixed:
        return fixed[key]
    try:
        return _length(float(key.removeprefix("timeline_").removesuffix("s"))) + " timeline"
    except ValueError:
        return key


def render_bench(result: dict) -> str:
    hw = result["hardware"]
    lines = ["### Speed (text → joints)", "",
             f"{hw.get('cpu', '?')}, {hw.get('cores', '?')} cores, {hw.get('threads', '?')} torch thread(s), "
             f"device {hw.get('device', '?')}, torch {hw.get('torch', '?')}; mean ± 95% interval over "
             f"{result['repeats']} repeats after one warm-up; {result.get('steps', '?')} decoding steps.", ""]
    def title(n, m):
        return MODEL_TITLES.get(n, n) + (" ¹" if m.get("weights") == "random-init" else "")

    def params(m):
        return "–" if m.get("generator_params_m") is None else f"{m['generator_params_m']:.2f}"

    passes = any("passes_per_step" in m for m in result["models"].values())   # benches before round 9 lack it
    rows = [[title(n, m), params(m)] + ([str(m.get("passes_per_step", "–"))] if passes else [])
            + [fmt_value(m.get("single_10s"), 3), fmt_value(m.get("timeline_4x10s"), 3)]
            for n, m in result["models"].items()]
    lines += _table(["Model", "generator parameters (M)"] + (["generator passes per step"] if passes else [])
                    + ["10 s prompt (s)", "4 × 10 s timeline (s)"], rows)
    if any(m.get("passes_per_step") == 1 for m in result["models"].values()):
        lines += ["", "One pass per step: guidance distilled into the generator (a second output head gives the "
                      "guidance direction, `guidance_head`); two: classifier-free guidance as a conditional and an "
                      "unconditional pass in one doubled batch."]
    if any(m.get("weights") == "random-init" for m in result["models"].values()):
        lines += ["", "¹ No trained weights in the bundle: a generator with the KMM generator's config and random weights. "
                      "Its time is still its time: the passes and their shapes do not depend on the weights."]
    cold = result.get("cold_start") or {}
    if cold.get("wall_s"):
        lines += ["", f"Cold start: `{cold.get('command', 'python -m kmm generate')}` in a fresh process, launch to "
                      f"written file: {cold['wall_s']:.2f} s wall ({cold.get('cpu_s', float('nan')):.2f} s CPU)."]
    app = result.get("app_cold_start") or {}
    if app.get("first_result_s"):
        lines += ["", f"App cold start: `python app.py` in a fresh process, then one 10-s `/generate` as soon as the "
                      f"page answers: page {app['server_up_s']:.2f} s, first result {app['first_result_s']:.2f} s "
                      "after launch."]
    later = result.get("app_click_3s") or {}
    if later.get("generate_s"):
        lines += ["", f"The same in a fresh process, with Generate clicked {later['click_after_s']:g} s after the page "
                      f"answered (the default model loads in the background meanwhile): the first 10-s motion took "
                      f"{later['generate_s']:.2f} s."]
    ratio = {k: v for k, v in (result.get("kmm_vs_transformer") or {}).items() if v is not None}
    if ratio:
        lines += ["", "KMM's time ÷ the transformer's, same run (< 1: KMM faster): "
                  + ", ".join(f"{_ratio_name(k)} {v:.2f}" for k, v in ratio.items()) + "."]
    curve_rows = []
    for n, m in result["models"].items():
        for p in m.get("scaling", []):
            curve_rows.append([title(n, m), _length(p["seconds"]), str(p["segments"]),
                               "–" if p.get("wall_s") is None else f"{p['wall_s']:.2f}",
                               "–" if p.get("wall_s") is None else f"{p['wall_s'] / p['seconds']:.3f}",
                               _mib(p.get("peak_rss_kib")), _mib(p.get("rss_delta_kib")),
                               p.get("error", "")])
    if curve_rows:
        lines += ["", "Scaling with timeline length (10-s segments; one fresh process per point; peak RSS of that "
                      "process including model loading, and the RSS growth during the generation itself):", ""]
        lines += _table(["Model", "Timeline", "Segments", "Wall (s)", "s per s of motion", "Peak RSS (MiB)",
                         "RSS growth (MiB)", "Note"], curve_rows)
    return "\n".join(lines)


ABLATION_COLUMNS = (
    ("fid", "FID ↓", 3), ("r_precision_top1", "R@1 ↑", 3), ("r_precision_top3", "R@3 ↑", 3),
    ("mm_dist", "MM-Dist ↓", 3), ("transition_fid", "Trans. FID ↓", 3), ("peak_jerk", "PJ ↓", 0), ("auj", "AUJ ↓", 0),
)
ABLATION_TITLES = {"kmm": "KMM (key-frame masking + alignment)", "kmm-random": "random masking",
                   "kmm-noalign": "no text–motion alignment",
                   "kmm-keyshare1": "key frames take the whole masking budget (share 1.0)"}


def _fmt_cell(c: dict | None, digits: int) -> str:
    if not c:
        return "–"
    return f"{c['mean']:.{digits}f} ± {c['ci95_train']:.{digits}f}" if c["n_seeds"] > 1 else f"{c['mean']:.{digits}f}"


def render_ablation(result: dict) -> str:
    """results/ablation.json (python -m kmm ablate --summarize) -> the ablation table and the learning curve."""
    plan, table = result["plan"], result["table"]
    last = str(plan["steps"])
    seeds = {c["fid"]["n_seeds"] for v in table.values() for c in v.values() if c.get("fid")}
    n_train = len(plan["seeds"])
    lines = [f"### Ablation: key-frame masking and text–motion alignment (paper Table 3), {plan['steps']} steps, "
             f"{n_train} training seed{'s' if n_train > 1 else ''}", "",
             f"`python -m kmm ablate --plan {result.get('plan_file', 'recipes/ablation.json')}`: each variant trained "
             f"{plan['steps']} steps × "
             f"{plan['batch']} with training seeds {list(plan['seeds'])} (same tokenizer, data, budget and "
             f"initialisation per seed), scored on {plan['eval_texts']} `{plan['split']}` texts × {plan['eval_seeds']} "
             f"sampling seeds and one {plan['transition_segments']}-segment timeline per sampling seed. "
             + ("Mean ± 95% interval over the training seeds' means (training noise included); "
                f"{'/'.join(str(n) for n in sorted(seeds))} training seed(s) finished." if n_train > 1 else
                "One training seed, so no interval: read it against the training-seed spread of the 3-seed table."),
             ""]
    rows = [[ABLATION_TITLES.get(v, v)] + [_fmt_cell(table[v].get(last, {}).get(k), d) for k, _, d in ABLATION_COLUMNS]
            for v in table if last in table[v]]
    lines += _table(["Variant"] + [t for _, t, _ in ABLATION_COLUMNS], rows)
    if "kmm" in table and "kmm-random" in table and table["kmm"].get(last, {}).get("fid") \
            and table["kmm-random"].get(last, {}).get("fid"):
        ratio = table["kmm"][last]["fid"]["mean"] / table["kmm-random"][last]["fid"]["mean"]
        lines += ["", f"KMM's FID is {ratio:.2f}× random masking's (the paper: 0.34 / 0.48 = 0.71×; target ≤ 0.75×)."]
        share1 = table.get("kmm-keyshare1", {}).get(last, {}).get("fid")
        if share1:
            lines[-1] += (f" With key frames taking the whole masking budget: "
                          f"{share1['mean'] / table['kmm-random'][last]['fid']['mean']:.2f}×.")
    curve = [str(n) for n in plan["curve"]]
    lines += ["", "Learning curve (FID ↓ / R@1 ↑ at each checkpoint of the same runs):", ""]
    rows = [[ABLATION_TITLES.get(v, v)] + [
        f"{_fmt_cell(table[v].get(n, {}).get('fid'), 3)} / {_fmt_cell(table[v].get(n, {}).get('r_precision_top1'), 3)}"
        for n in curve] for v in table]
    lines += _table(["Variant"] + [f"step {n}" for n in curve], rows)
    return "\n".join(lines)


def render(results: list[dict]) -> str:
    parts = []
    for r in results:
        kind = r.get("kind")
        if kind == "kmm-eval":
            parts.append(render_eval(r))
        elif kind == "kmm-bench":
            parts.append(render_bench(r))
        elif kind == "kmm-ablation":
            parts.append(render_ablation(r))
        elif kind == "kmm-breadth":
            from kmm.eval.breadth import render_breadth

            parts.append(f"### Breadth: common actions judged by kinematic checks\n\n"
                         f"`python -m kmm breadth`: {r['n_seeds']} seeds × one paraphrased prompt each, "
                         f"{r['seconds']:g} s per motion; each check validated first on real held-out clips "
                         f"(pass rate on clips whose caption names the action, and on the others).\n\n"
                         + render_breadth(r))
        else:
            raise ValueError(f"unknown result kind {kind!r} (expected kmm-eval, kmm-bench, kmm-breadth or kmm-ablation)")
    return "\n\n".join(parts) + "\n"


README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
README_FILES = ("results/eval.json", "results/breadth.json", "results/ablation.json", "results/ablation_long.json",
                "results/bench.json")
README_HEADER = ("## Results\n\nRendered by `python -m kmm report " + " ".join(README_FILES) + " --readme README.md` "
                 "from the JSON files committed in `results/`.\n\n")


def readme_section(markdown: str) -> str:
    return f"{README_START}\n{README_HEADER}{markdown}{README_END}"


def replace_readme_section(readme: str, markdown: str) -> str:
    """Swaps the text between the results markers for `markdown` (markers kept)."""
    a, b = readme.find(README_START), readme.find(README_END)
    if a < 0 or b < a:
        raise ValueError(f"README has no {README_START} ... {README_END} section")
    return readme[:a] + readme_section(markdown) + readme[b + len(README_END):]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render eval/bench JSON results as Markdown")
    p.add_argument("files", nargs="+", type=Path, help="results/eval.json, results/bench.json")
    p.add_argument("--readme", type=Path, default=None, help="also write the tables into this README's results section")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from kmm.errors import CliError

    results = []
    for path in args.files:
        try:
            results.append(json.loads(path.read_text()))
        except FileNotFoundError:
            raise CliError(f"{path}: not found") from None
        except json.JSONDecodeError as e:
            raise CliError(f"{path}: not JSON ({e.msg})") from None
    try:
        markdown = render(results)
        if args.readme is not None:
            args.readme.write_text(replace_readme_section(args.readme.read_text(), markdown))
    except (ValueError, KeyError) as e:
        raise CliError(f"cannot render: {e}") from None
    print(markdown, end="")
    return 0
