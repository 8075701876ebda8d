"""Speed benchmark: wall time from text to joints, and how it grows with timeline length (METHOD.md §5).

    python -m kmm bench --json results/bench.json                      # all models, up to 10 min
    python -m kmm bench --quick --json /tmp/bench.json                 # smoke test: kmm vs transformer, 1 repeat, up to 1 min
    python -m kmm bench --max-minutes 0.2 --repeats 1                  # a tiny run (CI)

Every model runs with the same settings (threads, steps, guidance, seeds, timelines). All models are loaded
first and warmed up once; then a 10-s single prompt and a 4 × 10-s timeline are timed `repeats` times with
the models interleaved (repeat 1 of every model, then repeat 2, ...), so a background load hits all of
them alike (model loading excluded). Then the scaling curve over timelines of 10 s, 1 min, 5 min and 10 min
made of 10-s segments (capped by `--max-minutes`). Each curve point runs in a fresh Python process so its memory is
its own: the process loads the model, warms up on a 10-s prompt, then generates the timeline once;
we report its wall time, the peak resident memory of the whole process (`ru_maxrss`, which includes
loading), and the growth of resident memory during the generation (the highest VmRSS seen by a 5-ms
sampler thread minus VmRSS just before), plus peak CUDA memory on a GPU. psutil is not required.
`--threads` defaults to torch's default (one per physical core); the JSON records it, the selective-scan
path (`hardware.scan`: C kernel or reference) and, for KMM, its time relative to the transformer.

Cold start (`cold_start`): `python -m kmm generate "a person walks forward" --seconds 10` in a fresh process,
wall seconds from launch to the written file (imports, weight loading, text encoder, kernel load, generation),
with the same threads; the CPU seconds it used are recorded beside it (on a busy machine wall ≫ CPU).
App cold start (`app_cold_start`): `python app.py` in a fresh process with the same weights and threads; as soon as
the page answers, one `/generate` of the same 10-s prompt through gradio_client (a person who clicks Generate at
once): seconds from launch to the page and to the first result. Then the same in a second fresh process, with the
click 3 s after the page answers (`app_click_3s`, a person who reads the page first): seconds the Generate took.

A bundle without trained transformer weights still gets a transformer row: a masked transformer with the KMM
generator's width, depth, vocabulary and text encoder (`backbone="transformer"`) and random weights (seed 0). Its
block keeps the default shape whatever KMM's speed choices (feed-forward 2 · d_model, the recipe's 64-token
window): a KMM generator trained narrower (`ff_dim`, `d_inner`, `shared_proj`, issue #16) is timed against the
same baseline as before, not against a transformer shrunk with it (`python -m kmm.eval.pass_cost` also times a
transformer with a 256-unit feed-forward, for reference). The row is marked `"weights": "random-init"`. Its time
is honest: the number of passes and their shapes do not depend on the weights (the same steps, windows and batch
sizes), only the tokens do. It is always a
plain classifier-free-guidance model (two passes per step, as one doubled batch), also when the KMM generator
was guidance-distilled into one pass; each row's `passes_per_step` says which.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from kmm.config import DEFAULT_GUIDANCE

DEFAULT_MODELS = ("kmm", "transformer", "bamm", "motion-mamba")
QUICK = {"models": ("kmm", "transformer"), "repeats": 1, "max_minutes": 1.0}
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
    from kmm.ops.scan import cpu_scan_backend

    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "device": dev,
            "scan": cpu_scan_backend() if dev == "cpu" else "cuda"}
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


RANDOM_INIT = "random-init"


def load_pipeline(weights: Path, name: str, device: str | None = None):
    """-> (Pipeline, weights note). "transformer" missing from the bundle -> a random-init transformer with the KMM
    generator's config (module docstring) and the note RANDOM_INIT; otherwise the bundle's weights and None."""
    import dataclasses

    import torch

    from kmm.config import GeneratorConfig
    from kmm.generators.kmm.model import MaskedGenerator
    from kmm.pipeline import Pipeline, available_generators

    have = available_generators(weights)
    if name != "transformer" or name in have or "kmm" not in have:
        return Pipeline.from_pretrained(weights, generator=name, device=device), None
    pipe = Pipeline.from_pretrained(weights, generator="kmm", device=device,
                                    model_id=f"{Path(weights).name}/transformer ({RANDOM_INIT})")
    # a plain two-pass classifier-free-guidance transformer, as trained baselines are, even when the KMM
    # generator was guidance-distilled into one pass (`guidance_head`), with the recipe's training window (64
    # tokens) also when the KMM generator was trained on longer ones (attention costs the square of the window),
    # and the default block (feed-forward 2 · d_model) also when the KMM generator was trained narrower
    default = GeneratorConfig()
    config = dataclasses.replace(pipe.generator.config, backbone="transformer", guidance_head=False,
                                 max_tokens=default.max_tokens, ff_dim=default.ff_dim, d_inner=default.d_inner,
                                 shared_proj=default.shared_proj)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MaskedGenerator(config)
    pipe.generator = model.to(pipe.device).eval()
    pipe.backend.set_generator(pipe.generator)
    return pipe, RANDOM_INIT


def guidance_passes(generator) -> int:
    """Generator passes per decoding step with guidance: 1 for a guidance-distilled generator (`guidance_head`,
    kmm.generators.kmm.sampling.guided), else 2 (conditional + unconditional, as one doubled batch)."""
    return 1 if getattr(getattr(generator, "config", None), "guidance_head", False) else 2


def time_generate(pipe, segments, repeats: int, steps: int, guidance: float) -> dict:
    """Wall seconds of `repeats` generations (seeds 0..repeats-1), as a summary with mean ± 95% interval."""
    from kmm.eval.evaluate import summarize

    return summarize([_time_once(pipe, segments, r, steps, guidance) for r in range(repeats)])


def _time_once(pipe, segments, seed: int, steps: int, guidance: float) -> float:
    _sync(pipe.device)
    t0 = time.perf_counter()
    pipe.generate(segments, seed=seed, steps=steps, guidance=guidance)
    _sync(pipe.device)
    return time.perf_counter() - t0


def bench_models(weights: Path, names, *, repeats: int = 3, steps: int = 10, guidance: float = DEFAULT_GUIDANCE,
                 device: str | None = None) -> dict:
    """name -> {load_s, single_10s, timeline_4x10s, sha256}; the models' repeats are interleaved."""
    from kmm.eval.evaluate import bundle_hashes, summarize

    pipes, rows = {}, {}
    for name in names:
        t0 = time.perf_counter()
        pipes[name], note = load_pipeline(weights, name, device)
        rows[name] = {"load_s": time.perf_counter() - t0,
                      "generator_params_m": round(sum(p.numel() for p in pipes[name].generator.parameters()) / 1e6, 3),
                      "passes_per_step": guidance_passes(pipes[name].generator)}
        if note:
            rows[name]["weights"] = note
        pipes[name].generate(timeline(10.0), seed=0, steps=steps, guidance=guidance)   # warm-up (lazy init, caches)
    for key, segments in (("single_10s", timeline(10.0)), ("timeline_4x10s", timeline(40.0))):
        times = {name: [] for name in names}
        for r in range(repeats):
            for name in names:
                times[name].append(_time_once(pipes[name], segments, r, steps, guidance))
        for name in names:
            rows[name][key] = summarize(times[name])
    for name in names:
        rows[name]["sha256"] = bundle_hashes(Path(weights), "kmm" if rows[name].get("weights") else name)
        if rows[name].get("weights"):
            rows[name]["sha256"].pop("generator", None)          # random generator: only the shared parts are hashed
    return rows


def bench_model(weights: Path, name: str, *, repeats: int = 3, steps: int = 10, guidance: float = DEFAULT_GUIDANCE,
                device: str | None = None) -> dict:
    return bench_models(weights, [name], repeats=repeats, steps=steps, guidance=guidance, device=device)[name]


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


def measure_cold_start(weights: Path, *, threads: int, device: str | None = None, timeout_s: float = 600) -> dict:
    """`python -m kmm generate` of a 10-s prompt in a fresh process -> {"wall_s", "cpu_s"} or {"error"}."""
    import resource
    import tempfile

    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "kmm", "generate", PROMPTS[0], "--seconds", "10", "--weights",
               str(Path(weights).resolve()), "--out", str(Path(tmp) / "cold.npz")]
        if device:
            cmd += ["--device", device]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"wall_s": None, "error": f"timeout after {timeout_s:.0f} s"}
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0 or not (Path(tmp) / "cold.npz").is_file():
            return {"wall_s": None, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "command": "python -m kmm generate " + shlex.join(cmd[4:-4])}


def measure_app_cold_start(weights: Path, *, threads: int, timeout_s: float = 180, click_after_s: float = 0.0) -> dict:
    """`python app.py` in a fresh process, then one `/generate` of a 10-s prompt `click_after_s` after the page
    answers (0: as a person who clicks Generate at once) -> {"server_up_s", "first_result_s", "click_after_s",
    "generate_s" (the click to its result)} or {"error"}."""
    import socket
    import urllib.request

    try:
        from gradio_client import Client
    except ImportError:
        return {"first_result_s": None, "error": "gradio_client is not installed"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from kmm.hub import WEIGHTS_ENV

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PORT": str(port),
           WEIGHTS_ENV: str(Path(weights).resolve()), "GRADIO_ANALYTICS_ENABLED": "False"}
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "app.py")], cwd=str(REPO_ROOT), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            if proc.poll() is not None:
                tail = (proc.stderr.read().strip().splitlines() or ["no output"])[-1]
                return {"first_result_s": None, "error": f"app exited {proc.returncode}: {tail[:200]}"}
            if time.perf_counter() - t0 > timeout_s:
                return {"first_result_s": None, "error": f"no page after {timeout_s:.0f} s"}
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        t_up = time.perf_counter()
        client = Client(url, verbose=False)
        time.sleep(max(0.0, click_after_s - (time.perf_counter() - t_up)))
        t_click = time.perf_counter()
        client.predict(PROMPTS[0], "10", 0, DEFAULT_GUIDANCE, 10, "kmm", api_name="/generate")
        t_done = time.perf_counter()
    except Exception as e:   # the app's own error, shown as the measurement's
        return {"first_result_s": None, "error": f"{type(e).__name__}: {str(e)[:200]}"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    when = f"{click_after_s:g} s after the page answers" if click_after_s else "as soon as the page answers"
    return {"server_up_s": t_up - t0, "first_result_s": t_done - t0, "click_after_s": click_after_s,
            "generate_s": t_done - t_click,
            "command": f"python app.py, then /generate {PROMPTS[0]!r} 10 s {when}"}


def _point_main(spec: dict) -> None:
    """Child side of measure_point: prints one JSON line."""
    import resource

    import torch

    torch.set_num_threads(int(spec["threads"]))
    pipe, _ = load_pipeline(Path(spec["weights"]), spec["name"], spec["device"])
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
              steps: int = 10, guidance: float = DEFAULT_GUIDANCE, device: str | None = None, threads: int | None = None,
              log=print) -> dict:
    import torch

    t_start = time.perf_counter()
    if threads is None:
        threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    weights = Path(weights)
    lengths = [s for s in SCALING_SECONDS if s <= max_minutes * 60 + 1e-9]
    out = {"kind": "kmm-bench", "hardware": hardware(device), "weights": str(weights), "repeats": repeats,
           "steps": steps, "guidance": guidance, "max_minutes": max_minutes, "segment_seconds": SEGMENT_SECONDS,
           "models": {}}
    rows = bench_models(weights, models, repeats=repeats, steps=steps, guidance=guidance, device=device)
    for name in models:
        row = rows[name]
        log(f"{name}: 10 s prompt {row['single_10s']['mean']:.3f} s, 4 x 10 s {row['timeline_4x10s']['mean']:.3f} s")
    for name in models:
        row = rows[name]
        t0 = time.perf_counter()
        row["scaling"] = []
        for seconds in lengths:
            point = measure_point(weights, name, seconds, steps=steps, guidance=guidance, device=device,
                                  threads=threads)
            row["scaling"].append(point)
            log(f"  {name} {seconds / 60:g} min: " + (f"{point['wall_s']:.2f} s" if point.get("wall_s") is not None
                                                      else point.get("error", "failed")))
        row["wall_s"] = time.perf_counter() - t0             # its scaling curve
        out["models"][name] = row
    if "kmm" in models:
        out["cold_start"] = measure_cold_start(weights, threads=threads, device=device)
        cs = out["cold_start"]
        log("cold start (python -m kmm generate, 10 s): " + (f"{cs['wall_s']:.2f} s wall, {cs['cpu_s']:.2f} s CPU"
                                                             if cs.get("wall_s") else cs.get("error", "failed")))
        out["app_cold_start"] = app = measure_app_cold_start(weights, threads=threads)
        log("app cold start (python app.py to the first 10-s result): "
            + (f"page {app['server_up_s']:.2f} s, first result {app['first_result_s']:.2f} s"
               if app.get("first_result_s") else app.get("error", "failed")))
        out["app_click_3s"] = later = measure_app_cold_start(weights, threads=threads, click_after_s=3.0)
        log("app, Generate clicked 3 s after the page: " + (f"{later['generate_s']:.2f} s" if later.get("generate_s")
                                                            else later.get("error", "failed")))
    if "kmm" in rows and "transformer" in rows:
        out["kmm_vs_transformer"] = relative_speed(out["models"]["kmm"], out["models"]["transformer"])
        log("kmm / transformer time: " + ", ".join(f"{k} {v:.2f}" for k, v in out["kmm_vs_transformer"].items()
                                                  if v is not None))
    out["hardware"]["threads"] = torch.get_num_threads()
    out["wall_s"] = time.perf_counter() - t_start
    return out


def relative_speed(kmm: dict, transformer: dict) -> dict:
    """KMM's time divided by the transformer's (< 1: KMM is faster) per measured length, from the same run."""
    ratio = {}
    for key in ("single_10s", "timeline_4x10s"):
        a, b = (kmm.get(key) or {}).get("mean"), (transformer.get(key) or {}).get("mean")
        ratio[key] = a / b if a and b else None
    points = {p["seconds"]: p.get("wall_s") for p in transformer.get("scaling", [])}
    for p in kmm.get("scaling", []):
        a, b = p.get("wall_s"), points.get(p["seconds"])
        ratio[f"timeline_{p['seconds']:g}s"] = a / b if a and b else None
    return ratio


# ----------------------------------------------------------------------------------------------
# command line


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time text-to-joints per model and its growth with timeline length",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, default=None,
                   help="output file (default results/bench.json; with --quick nothing is written unless given)")
    p.add_argument("--weights", type=Path, default=Path("assets/kmm"), help="generator bundle folder")
    p.add_argument("--models", default=None,
                   help=f"comma list of kmm, kmm-random, transformer, bamm, motion-mamba (default {','.join(DEFAULT_MODELS)})")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per model (default 3)")
    p.add_argument("--max-minutes", type=float, default=None, help="longest timeline of the scaling curve (default 10)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: kmm and transformer, 1 repeat, curve up to 1 min (explicit options still win)")
    p.add_argument("--steps", type=int, default=10, help="mask-predict steps")
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's, one per core)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from kmm.errors import CliError
    from kmm.eval.report import render_bench
    from kmm.model.weights import WeightsError
    from kmm.pipeline import GENERATOR_NAMES

    if args.threads is not None:
        if args.threads < 1:
            raise CliError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    preset = QUICK if args.quick else {"models": DEFAULT_MODELS, "repeats": 3, "max_minutes": 10.0}
    models = [m.strip() for m in (args.models or ",".join(preset["models"])).split(",") if m.strip()]
    repeats = preset["repeats"] if args.repeats is None else args.repeats
    max_minutes = preset["max_minutes"] if args.max_minutes is None else args.max_minutes
    bad = [m for m in models if m not in GENERATOR_NAMES]
    if bad or not models:
        raise CliError(f"unknown model(s) {bad}; choose from {', '.join(GENERATOR_NAMES)}")
    if repeats < 1:
        raise CliError("--repeats must be at least 1")
    try:
        result = run_bench(weights=args.weights, models=models, repeats=repeats, max_minutes=max_minutes,
                           steps=args.steps, guidance=args.guidance, device=args.device,
                           threads=torch.get_num_threads(),
                           log=lambda m: print(m, file=sys.stderr, flush=True))
    except WeightsError as e:
        raise CliError(str(e)) from None
    out = args.json or (None if args.quick else Path("results/bench.json"))
    print(render_bench(result))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {out} ({result['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--point":
        _point_main(json.loads(sys.argv[2]))
    else:
        sys.exit("usage: python -m kmm.eval.bench --point JSON (internal; use `python -m kmm bench`)")
