"""Speed benchmark: wall time from text to joints, and how it grows with timeline length (METHOD.md §5).

    python -m kmm bench --json results/bench.json                      # kmm and transformer, up to 10 min
    python -m kmm bench --max-minutes 0.2 --repeats 1                  # a tiny run (CI)

Per model: a 10-s single prompt and a 4 × 10-s timeline, timed `repeats` times after one warm-up (model
loading excluded); then the scaling curve over timelines of 10 s, 1 min, 5 min and 10 min made of 10-s
segments (capped by `--max-minutes`). Each curve point runs in a fresh Python process so its memory is
its own: the process loads the model, warms up on a 10-s prompt, then generates the timeline once;
we report its wall time, the peak resident memory of the whole process (`ru_maxrss`, which includes
loading), and the growth of resident memory during the generation (the highest VmRSS seen by a 5-ms
sampler thread minus VmRSS just before), plus peak CUDA memory on a GPU. psutil is not required.
The default run (kmm and transformer, 3 repeats, curve up to 10 min) takes about 5–10 min on one thread
of a 2-core CPU, most of it in the 5- and 10-min timelines.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_MODELS = ("kmm", "transformer", "bamm", "motion-mamba")
SCALING_SECONDS = (10.0, 60.0, 300.0, 600.0)
SEGMENT_SECONDS = 10.0
PROMPTS = ("a person walks forward", "a person waves the right hand", "a person turns to the left",
           "a person jumps in place", "a person bows", "a person walks backward slowly")
REPO_ROOT = Path(__file__).resolve().parents[2]


def timeline(seconds: float) -> list[tuple[str, float]]:
    """60 s -> six 10-s segments cycling through PROMPTS; a remainder below 10 s becomes its own segment."""
    n_full, rest = divmod(round(seconds, 6), SEGMENT_SECONDS)
    lengths = [SEGMENT_SECONDS] * int(n_full) + ([rest] if rest >= 1.0 else [])
    return [(PROMPTS[i % len(PROMPTS)], s) for i, s in enumerate(lengths)]


def hardware(device: str | None = None) -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "device": dev}
    if dev.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        kib = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        info["memory_gib"] = round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return info


def _current_rss_kib() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class RssSampler:
    """Highest VmRSS (KiB) seen while the `with` block runs, polled from a thread every `interval` s."""

    def __init__(self, interval: float = 0.005):
        import threading

        self.interval, self.peak = interval, _current_rss_kib() or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _current_rss_kib() or 0)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _current_rss_kib() or 0)


def _sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_generate(pipe, segments, repeats: int, steps: int, guidance: float) -> dict:
    """Wall seconds of `repeats` generations (seeds 0..repeats-1), as a summary with mean ± 95% interval."""
    from kmm.eval.evaluate import summarize

    times = []
    for r in range(repeats):
        _sync(pipe.device)
        t0 = time.perf_counter()
        pipe.generate(segments, seed=r, steps=steps, guidance=guidance)
        _sync(pipe.device)
        times.append(time.perf_counter() - t0)
    return summarize(times)


def bench_model(weights: Path, name: str, *, repeats: int = 3, steps: int = 10, guidance: float = 3.0,
                device: str | None = None) -> dict:
    from kmm.eval.evaluate import bundle_hashes
    from kmm.pipeline import Pipeline

    t0 = time.perf_counter()
    pipe = Pipeline.from_pretrained(weights, generator=name, device=device)
    load_s = time.perf_counter() - t0
    single, four = timeline(10.0), timeline(40.0)
    pipe.generate(single, seed=0, steps=steps, guidance=guidance)            # warm-up (lazy init, caches)
    return {"load_s": load_s,
            "single_10s": time_generate(pipe, single, repeats, steps, guidance),
            "timeline_4x10s": time_generate(pipe, four, repeats, steps, guidance),
            "sha256": bundle_hashes(Path(weights), name)}


def measure_point(weights: Path, name: str, seconds: float, *, steps: int, guidance: float, device: str | None,
                  threads: int, timeout_s: float = 1800) -> dict:
    """One curve point in a fresh process (see module docstring)."""
    spec = {"weights": str(Path(weights).resolve()), "name": name, "seconds": seconds, "steps": steps,
            "guidance": guidance, "device": device, "threads": threads}
    point = {"seconds": seconds, "segments": len(timeline(seconds))}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run([sys.executable, "-m", "kmm.eval.bench", "--point", json.dumps(spec)], env=env,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {**point, "wall_s": None, "error": f"timeout after {timeout_s:.0f} s"}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {**point, "wall_s": None, "error": f"exit {proc.returncode}: {tail[:200]}"}
    return {**point, **json.loads(lines[-1])}


def _point_main(spec: dict) -> None:
    """Child side of measure_point: prints one JSON line."""
    import resource

    import torch

    from kmm.pipeline import Pipeline

    torch.set_num_threads(int(spec["threads"]))
    pipe = Pipeline.from_pretrained(spec["weights"], generator=spec["name"], device=spec["device"])
    steps, guidance = int(spec["steps"]), float(spec["guidance"])
    pipe.generate(timeline(10.0), seed=0, steps=steps, guidance=guidance)   # warm-up
    cuda = str(pipe.device).startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss_before = _current_rss_kib()
    with RssSampler() as sampler:
        _sync(pipe.device)
        t0 = time.perf_counter()
        out = pipe.generate(timeline(float(spec["seconds"])), seed=0, steps=steps, guidance=guidance)
        _sync(pipe.device)
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss                    # KiB on Linux
    row = {"wall_s": wall, "frames": out.n_frames, "peak_rss_kib": peak,
           "rss_delta_kib": None if rss_before is None else max(0, sampler.peak - rss_before)}
    if cuda:
        row["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(row), flush=True)


def run_bench(*, weights="assets/kmm", models=DEFAULT_MODELS, repeats: int = 3, max_minutes: float = 10.0,
              steps: int = 10, guidance: float = 3.0, device: str | None = None, threads: int = 1,
              log=print) -> dict:
    import torch

    t_start = time.perf_counter()
    weights = Path(weights)
    lengths = [s for s in SCALING_SECONDS if s <= max_minutes * 60 + 1e-9]
    out = {"kind": "kmm-bench", "hardware": hardware(device), "weights": str(weights), "repeats": repeats,
           "steps": steps, "guidance": guidance, "max_minutes": max_minutes, "segment_seconds": SEGMENT_SECONDS,
           "models": {}}
    for name in models:
        t0 = time.perf_counter()
        row = bench_model(weights, name, repeats=repeats, steps=steps, guidance=guidance, device=device)
        log(f"{name}: 10 s prompt {row['single_10s']['mean']:.3f} s, 4 x 10 s {row['timeline_4x10s']['mean']:.3f} s")
        row["scaling"] = []
        for seconds in lengths:
            point = measure_point(weights, name, seconds, steps=steps, guidance=guidance, device=device,
                                  threads=threads)
            row["scaling"].append(point)
            log(f"  {name} {seconds / 60:g} min: " + (f"{point['wall_s']:.2f} s" if point.get("wall_s") is not None
                                                      else point.get("error", "failed")))
        row["wall_s"] = time.perf_counter() - t0
        out["models"][name] = row
    out["hardware"]["threads"] = torch.get_num_threads()
    out["wall_s"] = time.perf_counter() - t_start
    return out


# ----------------------------------------------------------------------------------------------
# command line


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time text-to-joints per model and its growth with timeline length",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, default=Path("results/bench.json"))
    p.add_argument("--weights", type=Path, default=Path("assets/kmm"), help="generator bundle folder")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma list of kmm, kmm-random, transformer, bamm, motion-mamba")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-minutes", type=float, default=10.0, help="longest timeline of the scaling curve")
    p.add_argument("--steps", type=int, default=10, help="mask-predict steps")
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from kmm.cli import CliError
    from kmm.eval.report import render_bench
    from kmm.model.weights import WeightsError
    from kmm.pipeline import GENERATOR_NAMES

    torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in GENERATOR_NAMES]
    if bad or not models:
        raise CliError(f"unknown model(s) {bad}; choose from {', '.join(GENERATOR_NAMES)}")
    if args.repeats < 1:
        raise CliError("--repeats must be at least 1")
    try:
        result = run_bench(weights=args.weights, models=models, repeats=args.repeats, max_minutes=args.max_minutes,
                           steps=args.steps, guidance=args.guidance, device=args.device, threads=args.threads,
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    except WeightsError as e:
        raise CliError(str(e)) from None
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(render_bench(result))
    print(f"\nwrote {args.json} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--point":
        _point_main(json.loads(sys.argv[2]))
    else:
        sys.exit("usage: python -m kmm.eval.bench --point JSON (internal; use `python -m kmm bench`)")
