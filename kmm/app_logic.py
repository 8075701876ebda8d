"""Logic behind the Gradio app (no gradio import): UI rows → timeline, request checks, output files, stats.

`MotionService` is the one object the app talks to: it resolves the weights once (Hub or bundled, see
`kmm.hub`), loads a pipeline per generator lazily on first use, and runs generation. Everything else is a
small pure function that the tests call directly.
"""
from __future__ import annotations

import html
import json
import os
import re
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmm.motion.skeleton import FPS
from kmm.segment import (MAX_SECONDS, MAX_SEGMENTS, MIN_SECONDS, Segment, TimelineError, parse_lengths,
                         split_prompt, validate_timeline)

MODEL_LABELS = {  # generator folder -> label shown in the UI
    "kmm": "KMM (key-frame masking)",
    "kmm-random": "KMM, random masking (ablation)",
    "transformer": "Transformer baseline",
    "bamm": "BAMM baseline (bidirectional autoregressive)",
    "motion-mamba": "Motion Mamba baseline (latent diffusion)",
}
DEFAULT_MODEL = "kmm"
MIN_STEPS, MAX_STEPS = 1, 50
MIN_GUIDANCE, MAX_GUIDANCE = 0.0, 10.0
MAX_SEED = 2**31 - 1
ENGLISH_NOTE = "Note: the model was trained on English captions; other languages may give generic motion."


# --- requests ------------------------------------------------------------------------------------

def check_models(chosen) -> list[str]:
    """Comparison-tab choice -> generator names in the UI's order; none chosen or an unknown one is an error."""
    chosen = list(chosen or [])
    unknown = [c for c in chosen if c not in MODEL_LABELS]
    if unknown:
        raise TimelineError(f"Unknown model(s) {unknown}; choose from {', '.join(MODEL_LABELS)}.")
    if not chosen:
        raise TimelineError("Choose at least one generator to compare.")
    return [m for m in MODEL_LABELS if m in chosen]


def prompt_to_texts(prompt: str, max_segments: int = MAX_SEGMENTS) -> list[str]:
    """Split a prompt for the editable rows; too many pieces is an error, not a silent cut.

    >>> prompt_to_texts("walk forward, then sit down")
    ['walk forward', 'sit down']
    """
    texts = split_prompt(prompt)
    if len(texts) > max_segments:
        raise TimelineError(f"The prompt splits into {len(texts)} segments; the limit is {max_segments}. "
                            "Merge some actions or generate in several parts.")
    return texts


def rows_to_segments(texts: Sequence[str], seconds: Sequence[float | None], auto: Sequence[bool],
                     n_rows: int) -> list[Segment]:
    """The first `n_rows` UI rows → a validated timeline (auto rows get `None`: the model picks the length).

    >>> rows_to_segments(["walk", "sit", "unused"], [3, 2, 5], [False, True, False], 2)
    [Segment(text='walk', seconds=3.0), Segment(text='sit', seconds=None)]
    """
    n = max(0, min(int(n_rows), len(texts)))
    segs = [Segment(texts[i] or "", None if auto[i] else _as_seconds(seconds[i], i + 1)) for i in range(n)]
    return validate_timeline(segs)


def _as_seconds(value, index: int) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise TimelineError(f"Segment {index}: give a length in seconds or tick 'auto'.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TimelineError(f"Segment {index}: length {value!r} is not a number of seconds.") from None


def api_segments(prompt: str, lengths: str | None) -> list[Segment]:
    """API request → timeline: the prompt is split as in the UI; `lengths` like "3,2,auto" (empty = all auto).

    >>> api_segments("walk forward, then sit down", "3, auto")
    [Segment(text='walk forward', seconds=3.0), Segment(text='sit down', seconds=None)]
    """
    texts = prompt_to_texts(prompt)
    spec = "auto" if lengths is None or not str(lengths).strip() else str(lengths)
    return validate_timeline([Segment(t, s) for t, s in zip(texts, parse_lengths(spec, len(texts)))])


@dataclass(frozen=True)
class Settings:
    seed: int
    guidance: float
    steps: int
    model: str


def check_settings(seed, guidance, steps, model) -> Settings:
    """Validate the advanced options; model may be a folder name or its UI label."""
    try:
        seed_f, guidance_f, steps_f = float(seed), float(guidance), float(steps)
    except (TypeError, ValueError):
        raise TimelineError("Seed, guidance and steps must be numbers.") from None
    if not (np.isfinite(seed_f) and seed_f == int(seed_f) and 0 <= seed_f <= MAX_SEED):
        raise TimelineError(f"Seed must be a whole number between 0 and {MAX_SEED}, got {seed!r}.")
    if not (np.isfinite(guidance_f) and MIN_GUIDANCE <= guidance_f <= MAX_GUIDANCE):
        raise TimelineError(f"Guidance must be between {MIN_GUIDANCE:g} and {MAX_GUIDANCE:g}, got {guidance!r}.")
    if not (steps_f == int(steps_f) and MIN_STEPS <= steps_f <= MAX_STEPS):
        raise TimelineError(f"Steps must be a whole number between {MIN_STEPS} and {MAX_STEPS}, got {steps!r}.")
    return Settings(int(seed_f), guidance_f, int(steps_f), model_name(model))


def model_name(choice: str | None) -> str:
    """'KMM (key-frame masking)' or 'kmm' → 'kmm'; anything else is a clear error."""
    if not choice:
        return DEFAULT_MODEL
    for name, label in MODEL_LABELS.items():
        if choice in (name, label):
            return name
    raise TimelineError(f"Unknown model {choice!r}; choose one of: {', '.join(MODEL_LABELS)}.")


def language_note(texts: Sequence[str]) -> str:
    """ENGLISH_NOTE if any text has letters outside the Latin script, else ''.

    >>> language_note(["walk"]), bool(language_note(["идти вперёд"]))
    ('', True)
    """
    for text in texts:
        for ch in text:
            if ch.isalpha() and not unicodedata.name(ch, "").startswith("LATIN"):
                return ENGLISH_NOTE
    return ""


# --- outputs -------------------------------------------------------------------------------------

def output_stem(seed: int, n_frames: int) -> str:
    """Safe file stem: `kmm_<seed>_<n>frames` (digits only from the request, so no path tricks).

    >>> output_stem(7, 100)
    'kmm_7_100frames'
    """
    return f"kmm_{int(seed)}_{int(n_frames)}frames"


def request_dir(root: str | Path | None = None) -> Path:
    """A fresh folder for one request's files (never shared between users)."""
    return Path(tempfile.mkdtemp(prefix="kmm-req-", dir=root))


def write_outputs(result, out_dir: str | Path) -> tuple[Path, Path]:
    """MotionResult → (.npz, .bvh) in `out_dir`."""
    from kmm.motion.bvh import write_bvh
    from kmm.motion.npz import save_motion_npz

    out_dir = Path(out_dir)
    stem = output_stem(result.seed, result.n_frames)
    npz = save_motion_npz(out_dir / f"{stem}.npz", result.joints, features=result.features, fps=FPS,
                          segment_texts=result.texts, boundaries=result.boundaries, model_id=result.model_id,
                          seed=result.seed, extra=smpl_extra(result.joints) or None)
    bvh = write_bvh(out_dir / f"{stem}.bvh", result.joints, fps=FPS)
    return npz, bvh


def smpl_extra(joints: np.ndarray, model_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """SMPL parameters (`smpl_*` arrays) for the .npz when the SMPL model files are available
    (KMM_SMPL_DIR, see `kmm.motion.smpl`), else {}; a broken SMPL setup is logged, never fatal."""
    from kmm.motion import smpl

    if smpl.find_smpl_model(model_dir) is None:
        return {}
    try:
        return smpl.smpl_npz_extra(joints, model_dir)
    except (smpl.SmplUnavailable, ImportError, OSError, ValueError, RuntimeError) as e:
        print(f"[app] SMPL parameters skipped: {e}")
        return {}


# --- body mesh (the 'mesh' view) -------------------------------------------------------------------

VIEW_FAST, VIEW_MESH = "fast (skeleton)", "mesh"
VIEW_CHOICES = (VIEW_FAST, VIEW_MESH)
MP4_MAX_SECONDS = 10.0      # the mp4 costs ~0.2 s per frame on CPU: only short motions get one
MP4_S_PER_FRAME = 0.2


def mp4_max_seconds(env: Mapping[str, str] | None = None) -> float:
    """The mp4 length limit: $KMM_MP4_MAX_SECONDS (0 = never render), else MP4_MAX_SECONDS.

    >>> mp4_max_seconds({"KMM_MP4_MAX_SECONDS": "4"}), mp4_max_seconds({"KMM_MP4_MAX_SECONDS": "x"})
    (4.0, 10.0)
    """
    env = os.environ if env is None else env
    try:
        value = float(env.get("KMM_MP4_MAX_SECONDS", MP4_MAX_SECONDS))
    except ValueError:
        return MP4_MAX_SECONDS
    return value if np.isfinite(value) else MP4_MAX_SECONDS


def mesh_paths(result, out_dir: str | Path) -> tuple[Path, Path]:
    """(.glb, .mp4) paths for a result, named like its .npz/.bvh.

    >>> from types import SimpleNamespace
    >>> [p.name for p in mesh_paths(SimpleNamespace(seed=3, n_frames=40), "/tmp/x")]
    ['kmm_3_40frames.glb', 'kmm_3_40frames.mp4']
    """
    stem = output_stem(result.seed, result.n_frames)
    return Path(out_dir) / f"{stem}.glb", Path(out_dir) / f"{stem}.mp4"


def want_mp4(n_frames: int, fps: float = FPS, max_seconds: float = MP4_MAX_SECONDS) -> bool:
    """Render an mp4 only for motions of at most `max_seconds` (0 or less: never).

    >>> want_mp4(200), want_mp4(201), want_mp4(20, max_seconds=0)
    (True, False, False)
    """
    return max_seconds > 0 and 0 < n_frames <= round(max_seconds * fps)


@dataclass(frozen=True)
class MeshOutputs:
    glb: Path | None
    mp4: Path | None
    message: str        # one line for the UI: what was built, what was skipped and why


def build_mesh(result, out_dir: str | Path, progress: Callable[[float, str], None] | None = None,
               max_mp4_seconds: float = MP4_MAX_SECONDS) -> MeshOutputs:
    """The 'mesh' view of a result: the animated mannequin .glb, plus an mp4 for short motions.

    Files already in `out_dir` (same request, same result) are reused. Failures come back as a message
    (e.g. no OpenGL backend for the mp4), never as an exception."""
    from kmm.viz.mesh import motion_to_glb

    report = progress or (lambda fraction, desc: None)
    glb, mp4 = mesh_paths(result, out_dir)
    n = int(result.n_frames)
    report(0.05, "building the mesh (.glb)")
    try:
        if not glb.is_file():
            motion_to_glb(result.joints, glb, fps=FPS)
    except (ImportError, OSError, ValueError) as e:
        return MeshOutputs(None, None, f"⚠️ Mesh not built: {user_message(e)}")
    parts = [f"Mesh: animated .glb, {n} frames ({n / FPS:.1f} s)"]
    if not want_mp4(n, FPS, max_mp4_seconds):
        parts.append(f"mp4 skipped: only motions up to {max_mp4_seconds:g} s are rendered "
                     f"(~{MP4_S_PER_FRAME:g} s per frame)")
        return MeshOutputs(glb, None, " · ".join(parts))
    report(0.3, f"rendering the mp4 ({n} frames, ~{n * MP4_S_PER_FRAME:.0f} s)")
    try:
        if not mp4.is_file():
            from kmm.viz.render import render_mp4

            render_mp4(result.joints, mp4, fps=FPS)
    except (ImportError, OSError, ValueError, RuntimeError) as e:   # RenderError is a RuntimeError
        mp4.unlink(missing_ok=True)
        parts.append(f"⚠️ mp4 not rendered: {user_message(e)}")
        return MeshOutputs(glb, None, " · ".join(parts))
    parts.append("mp4 rendered")
    return MeshOutputs(glb, mp4, " · ".join(parts))


def motion_stats(joints: np.ndarray, fps: float = FPS) -> dict:
    """Per-motion quality numbers for the Compare table: foot skating ratio and mean jerk (m/s³)."""
    from kmm.eval.metrics import foot_skating_ratio, jerk_curve

    joints = np.asarray(joints)
    stats = {"frames": int(len(joints)), "seconds": round(len(joints) / fps, 2)}
    stats["foot_skating"] = round(foot_skating_ratio(joints, fps), 4) if len(joints) >= 2 else float("nan")
    stats["mean_jerk"] = round(float(jerk_curve(joints, fps).mean()), 2) if len(joints) >= 4 else float("nan")
    return stats


def evaluator_distance(evaluator, text: str, joints: np.ndarray) -> float:
    """Text–motion distance in the evaluator's embedding space (lower = motion matches the text better)."""
    t = evaluator.encode_texts([text])[0]
    m = evaluator.encode_joints([np.asarray(joints, dtype=np.float32)])[0]
    return round(float(np.linalg.norm(t - m)), 3)


def timeline_html(texts: Sequence[str], boundaries: Sequence[int], fps: float = FPS) -> str:
    """A strip of coloured boxes, one per segment, width ∝ length, labelled `#k start–end s` and its text."""
    total = max(int(boundaries[-1]), 1)
    colors = ("#e3f2fd", "#fff3e0", "#e8f5e9", "#fce4ec", "#ede7f6", "#f9fbe7")
    cells = []
    for k, text in enumerate(texts):
        a, b = int(boundaries[k]), int(boundaries[k + 1])
        cells.append(
            f'<div class="kmm-seg" title="{html.escape(text)}" style="flex:{max(b - a, 1)};'
            f'background:{colors[k % len(colors)]};border:1px solid #bbb;border-radius:4px;padding:4px 6px;'
            f'min-width:0;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;color:#222">'
            f"<b>#{k + 1}</b> {a / fps:.1f}–{b / fps:.1f} s<br>{html.escape(text)}</div>")
    return (f'<div class="kmm-timeline" style="display:flex;gap:3px;width:100%;font-size:13px">{"".join(cells)}'
            f"</div><div style='font-size:12px;color:#666'>total {total / fps:.1f} s · {total} frames</div>")


def result_info(result, source: str) -> dict:
    """What the API returns next to the files (JSON-serialisable)."""
    return {
        "frames": result.n_frames, "fps": FPS, "seconds": [round(s, 2) for s in result.seconds],
        "segments": [{"text": t, "start_s": round(a / FPS, 2), "end_s": round(b / FPS, 2)}
                     for t, a, b in zip(result.texts, result.boundaries, result.boundaries[1:])],
        "boundaries": list(result.boundaries), "seed": result.seed, "guidance": result.guidance,
        "model_id": result.model_id, "weights": source,
        "generation_s": round(float(result.timings.get("total_s", 0.0)), 3),
    }


def status_line(result, source: str, wall_s: float) -> str:
    return (f"Generated {result.n_frames} frames ({result.n_frames / FPS:.1f} s, {len(result.texts)} segments) "
            f"with `{result.model_id}` in {wall_s:.2f} s · weights: {source}")


def info_json(info: Mapping) -> str:
    return json.dumps(info, ensure_ascii=False, indent=1)


# --- captions for Compare ------------------------------------------------------------------------

def caption_index(clips) -> dict[str, object]:
    """First caption of each held-out clip → clip (first clip wins on duplicates), sorted by caption."""
    index: dict[str, object] = {}
    for clip in clips:
        if clip.captions:
            index.setdefault(" ".join(clip.captions[0].split()), clip)
    return dict(sorted(index.items()))


def clip_seconds(n_frames: int) -> float:
    """A clip's length snapped to the slider's 0.2 s grid and range.

    >>> clip_seconds(97), clip_seconds(5), clip_seconds(10_000)
    (4.8, 1.0, 20.0)
    """
    return round(float(min(MAX_SECONDS, max(MIN_SECONDS, round(n_frames / FPS / 0.2) * 0.2))), 1)


# --- the model object ------------------------------------------------------------------------------

class MotionService:
    """Lazily loaded pipelines, one per generator name, behind one lock-protected cache.

    factory(name, weights_dir) -> Pipeline; `pipelines` (name -> Pipeline) skips loading entirely.
    """

    def __init__(self, factory: Callable | None = None, pipelines: Mapping | None = None,
                 weights: Callable[[], tuple[Path, str]] | None = None):
        self._factory = factory or _default_factory
        self._pipelines = dict(pipelines or {})
        self._weights = weights
        self._source: tuple[Path, str] | None = None
        self._lock = threading.Lock()

    @property
    def source(self) -> str:
        if self._pipelines and self._source is None and self._weights is None:
            return "preloaded pipelines"
        return self.weights()[1]

    def weights(self) -> tuple[Path, str]:
        with self._lock:
            if self._source is None:
                if self._weights is not None:
                    self._source = self._weights()
                else:
                    from kmm.hub import resolve_weights
                    self._source = resolve_weights()
            return self._source

    def pipeline(self, name: str):
        name = model_name(name)
        if name in self._pipelines:
            return self._pipelines[name]
        path, _ = self.weights()
        with self._lock:
            if name not in self._pipelines:
                self._pipelines[name] = self._factory(name, path)
            return self._pipelines[name]

    def generate(self, segments: Sequence[Segment], settings: Settings):
        pipe = self.pipeline(settings.model)
        return pipe.generate([(s.text, s.seconds) for s in segments], seed=settings.seed,
                             guidance=settings.guidance, steps=settings.steps)

    def regenerate(self, result, index0: int, seed: int, text: str | None = None, model: str | None = None):
        if result is None:
            raise TimelineError("Generate a motion first; then a segment of it can be regenerated.")
        if not 0 <= index0 < len(result.texts):
            raise TimelineError(f"Segment #{index0 + 1} does not exist: the motion has segments 1..{len(result.texts)}.")
        check_settings(seed, result.guidance, 1, model)
        text = " ".join(text.split()) if text and text.strip() else None
        pipe = self.pipeline(model or _model_from_id(result.model_id))
        return pipe.regenerate_segment(result, index0, seed=int(seed), text=text)


def _model_from_id(model_id: str) -> str:
    tail = str(model_id).rsplit("/", 1)[-1]
    return tail if tail in MODEL_LABELS else DEFAULT_MODEL


def _default_factory(name: str, path: Path):
    from kmm.pipeline import Pipeline

    return Pipeline.from_pretrained(path, generator=name)


def user_message(error: BaseException) -> str:
    """One line for the UI from an expected error (TimelineError, WeightsError, ...)."""
    text = " ".join(str(error).split())
    return re.sub(r"^--lengths ", "Lengths ", text) or error.__class__.__name__
