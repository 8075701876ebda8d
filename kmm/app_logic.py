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

from kmm.config import MAX_GUIDANCE, MIN_GUIDANCE  # noqa: F401 (app.py reads them from here)
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
WARM_TEXT, WARM_SECONDS = "a person stands still", 2.0   # MotionService.warm's tiny generation


def shown_models(weights_dir=None) -> dict:
    """MODEL_LABELS limited to the generators the bundled weights hold (a bundle may ship a subset, e.g. while a
    baseline is still being retrained); all of them when the folder cannot be read."""
    from kmm.hub import bundled_weights_dir
    from kmm.pipeline import available_generators

    have = available_generators(weights_dir or bundled_weights_dir())
    return {k: v for k, v in MODEL_LABELS.items() if k in have} or dict(MODEL_LABELS)
MIN_STEPS, MAX_STEPS = 1, 50
MAX_SEED = 2**31 - 1
FRAMES_PER_TOKEN = 4        # the token grid (kmm.pipeline.frames_per_token)
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
    return check_words(validate_timeline(segs))


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
    return check_words(validate_timeline([Segment(t, s) for t, s in zip(texts, parse_lengths(spec, len(texts)))]))


def has_words(text: str) -> bool:
    """True when the text has at least one letter or digit (any script).

    >>> has_words("a person jumps"), has_words("😀 !!"), has_words("人が歩く")
    (True, False, True)
    """
    return any(ch.isalnum() for ch in str(text or ""))


def check_words(segments: Sequence[Segment]) -> list[Segment]:
    """Word-less segments (emoji, punctuation) are an error naming the segment, not 32 s of generic motion."""
    for i, seg in enumerate(segments, start=1):
        if not has_words(seg.text):
            raise TimelineError(f"Segment {i} ({seg.text!r}) has no words: describe an action in words, "
                                "e.g. 'a person jumps'.")
    return list(segments)


def same_prompt(a: str | None, b: str | None) -> bool:
    """Prompts equal up to whitespace.

    >>> same_prompt("walk,  then sit", "walk, then sit "), same_prompt("walk", "run")
    (True, False)
    """
    return " ".join(str(a or "").split()) == " ".join(str(b or "").split())


@dataclass(frozen=True)
class RowPlan:
    """The rows Generate will use: `resplit` says they were rebuilt from the prompt (the UI shows them)."""
    texts: list[str]
    seconds: list
    auto: list[bool]
    n: int
    resplit: bool


def plan_rows(prompt: str, split_from: str | None, texts: Sequence[str], seconds: Sequence, auto: Sequence[bool],
              n_rows: int, max_rows: int = MAX_SEGMENTS) -> RowPlan:
    """Generate always follows what the prompt says now: the rows are rebuilt from the prompt (auto lengths)
    when they are empty or were split from another prompt; otherwise the user's rows are used as they are.

    >>> plan_rows("walk, then sit", None, ["", ""], [3, 3], [True, True], 1).texts
    ['walk', 'sit']
    >>> plan_rows("walk, then sit", "walk, then sit", ["march", "sit"], [2, 3], [False, True], 2).texts
    ['march', 'sit']
    """
    n = max(0, min(int(n_rows or 0), len(texts)))
    rows_empty = not any((t or "").strip() for t in texts[:n])
    stale = rows_empty or not same_prompt(prompt, split_from)
    if not stale or (not (prompt or "").strip() and not rows_empty):   # rows typed by hand, prompt cleared
        return RowPlan(list(texts), list(seconds), list(auto), n, False)
    pieces = prompt_to_texts(prompt or "", max_rows)
    k = len(pieces)
    return RowPlan(pieces + list(texts[k:]), list(seconds), [True] * k + list(auto[k:]), k, True)


def length_note(seconds, auto: bool, picked: float | None = None) -> str:
    """What a row's length control means, next to the row: auto, or the seconds on the token grid
    (round(5·s) tokens of 4 frames), or why the value cannot be used.

    >>> length_note(3.0, False), length_note(2.5, False), length_note(3, True)
    ('3.0 s = 15 tokens (60 frames)', '2.5 s → 2.4 s (12 tokens of 4 frames)', 'auto: the model picks the length')
    >>> length_note(30, False)
    '⚠️ 30 s is outside 1–20 s'
    """
    if auto:
        return "auto: the model picks the length" + (f" (last time {picked:.1f} s)" if picked else "")
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return "⚠️ not a number of seconds"
    if not np.isfinite(s) or not MIN_SECONDS <= s <= MAX_SECONDS:
        return f"⚠️ {s:g} s is outside {MIN_SECONDS:g}–{MAX_SECONDS:g} s"
    tokens = max(1, int(round(s * FPS / FRAMES_PER_TOKEN)))
    grid = tokens * FRAMES_PER_TOKEN / FPS
    if abs(grid - s) < 1e-6:
        return f"{s:.1f} s = {tokens} tokens ({tokens * FRAMES_PER_TOKEN} frames)"
    return f"{s:g} s → {grid:.1f} s ({tokens} tokens of {FRAMES_PER_TOKEN} frames)"


@dataclass(frozen=True)
class Settings:
    seed: int
    guidance: float
    steps: int
    model: str
    foot_lock: bool = True


def check_settings(seed, guidance, steps, model, foot_lock: bool = True) -> Settings:
    """Validate the advanced options; model may be a folder name or its UI label."""
    try:
        seed_f, guidance_f, steps_f = float(seed), float(guidance), float(steps)
    except (TypeError, ValueError):
        bad = [name for name, v in (("Seed", seed), ("Guidance", guidance), ("Steps", steps)) if not _is_number(v)]
        raise TimelineError(f"{', '.join(bad) or 'Seed, guidance and steps'} must be a number.") from None
    if not (np.isfinite(seed_f) and seed_f == int(seed_f) and 0 <= seed_f <= MAX_SEED):
        raise TimelineError(f"Seed must be a whole number between 0 and {MAX_SEED}, got {seed!r}.")
    if not (np.isfinite(guidance_f) and MIN_GUIDANCE <= guidance_f <= MAX_GUIDANCE):
        raise TimelineError(f"Guidance must be between {MIN_GUIDANCE:g} and {MAX_GUIDANCE:g}, got {guidance!r}.")
    if not (steps_f == int(steps_f) and MIN_STEPS <= steps_f <= MAX_STEPS):
        raise TimelineError(f"Steps must be a whole number between {MIN_STEPS} and {MAX_STEPS}, got {steps!r}.")
    return Settings(int(seed_f), guidance_f, int(steps_f), model_name(model), bool(foot_lock))


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


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

@dataclass(frozen=True)
class Take:
    """What the Generate tab shows: a MotionResult plus how it was made (the base seed, and the edits
    by 'Regenerate one segment': (segment index 0-based, seed, text) each)."""
    result: object
    base_seed: int
    edits: tuple = ()

    @property
    def stem(self) -> str:
        last = self.edits[-1] if self.edits else None
        return output_stem(model_short(self.result.model_id), self.base_seed, len(self.result.texts),
                           self.result.n_frames, edit=(last[0] + 1, last[1]) if last else None)


def model_short(model_id: str) -> str:
    """'assets-kmm/kmm-random' -> 'kmm-random' (the generator's name)."""
    return str(model_id).rsplit("/", 1)[-1] or DEFAULT_MODEL


def output_stem(model: str, seed: int, n_segments: int, n_frames: int, edit: tuple[int, int] | None = None) -> str:
    """Safe file stem with the model, seed, segment count and length (only [a-z0-9-] from the request).

    >>> output_stem("kmm", 7, 2, 100), output_stem("bamm", 0, 3, 60, edit=(2, 5))
    ('kmm_seed7_2seg_100frames', 'bamm_seed0-edit2s5_3seg_60frames')
    """
    name = re.sub(r"[^a-z0-9-]+", "-", str(model).lower()).strip("-") or "motion"
    seed_part = f"seed{int(seed)}" + (f"-edit{int(edit[0])}s{int(edit[1])}" if edit else "")
    return f"{name}_{seed_part}_{int(n_segments)}seg_{int(n_frames)}frames"


def as_take(result) -> Take:
    return result if isinstance(result, Take) else Take(result, int(result.seed))


def request_dir(root: str | Path | None = None) -> Path:
    """A fresh folder for one request's files (never shared between users)."""
    return Path(tempfile.mkdtemp(prefix="kmm-req-", dir=root))


def write_outputs(take, out_dir: str | Path) -> tuple[Path, Path]:
    """Take (or MotionResult) → (.npz, .bvh) in `out_dir`. The .npz's `seed` is the base seed; edits add
    `edit_segments` (1-based) and `edit_seeds`."""
    from kmm.motion.bvh import write_bvh
    from kmm.motion.npz import save_motion_npz

    take = as_take(take)
    result = take.result
    out_dir = Path(out_dir)
    extra = dict(smpl_extra(result.joints))
    if take.edits:
        extra["edit_segments"] = np.array([e[0] + 1 for e in take.edits], dtype=np.int64)
        extra["edit_seeds"] = np.array([e[1] for e in take.edits], dtype=np.int64)
    npz = save_motion_npz(out_dir / f"{take.stem}.npz", result.joints, features=result.features, fps=FPS,
                          segment_texts=result.texts, boundaries=result.boundaries, model_id=result.model_id,
                          seed=take.base_seed, extra=extra or None)
    bvh = write_bvh(out_dir / f"{take.stem}.bvh", result.joints, fps=FPS)
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


def mesh_paths(take, out_dir: str | Path) -> tuple[Path, Path]:
    """(.glb, .mp4) paths for a take, named like its .npz/.bvh."""
    stem = as_take(take).stem
    return Path(out_dir) / f"{stem}.glb", Path(out_dir) / f"{stem}.mp4"


def viewer_glb_path(glb: Path) -> Path:
    """The viewer's copy of a .glb (camera-following version, see kmm.viz.mesh): `x.glb` -> `x_viewer.glb`."""
    return glb.with_name(f"{glb.stem}_viewer.glb")


def want_mp4(n_frames: int, fps: float = FPS, max_seconds: float = MP4_MAX_SECONDS) -> bool:
    """Render an mp4 only for motions of at most `max_seconds` (0 or less: never).

    >>> want_mp4(200), want_mp4(201), want_mp4(20, max_seconds=0)
    (True, False, False)
    """
    return max_seconds > 0 and 0 < n_frames <= round(max_seconds * fps)


@dataclass(frozen=True)
class MeshOutputs:
    glb: Path | None     # the motion as it is (world coordinates), for download
    mp4: Path | None
    message: str         # one line for the UI: what was built, what was skipped and why
    view: Path | None = None   # the viewer's .glb: body kept in the middle, the floor slides under it


def build_mesh(result, out_dir: str | Path, progress: Callable[[float, str], None] | None = None,
               max_mp4_seconds: float = MP4_MAX_SECONDS) -> MeshOutputs:
    """The 'mesh' view of a result: the animated mannequin .glb (download) and its camera-following copy
    (viewer), plus an mp4 for short motions.

    gradio's Model3D frames the whole animation once and keeps its camera still, so a walk of 40 m would show
    a tiny body; the viewer's copy keeps the body in the middle instead (kmm.viz.mesh, follow=True).
    Files already in `out_dir` (same request, same result) are reused. Failures come back as a message
    (e.g. no OpenGL backend for the mp4), never as an exception."""
    from kmm.viz import mesh as mesh_mod

    report = progress or (lambda fraction, desc: None)
    glb, mp4 = mesh_paths(result, out_dir)
    view = viewer_glb_path(glb)
    result = as_take(result).result
    n = int(result.n_frames)
    report(0.05, "building the mesh (.glb)")
    try:
        if not (glb.is_file() and view.is_file()):
            pose = mesh_mod.mannequin_pose(result.joints)
            mesh_mod.motion_to_glb(result.joints, glb, fps=FPS, pose=pose)
            mesh_mod.motion_to_glb(result.joints, view, fps=FPS, follow=True, pose=pose)
    except (ImportError, OSError, ValueError) as e:
        return MeshOutputs(None, None, f"⚠️ Mesh not built: {user_message(e)}")
    parts = [f"Mesh: animated .glb, {n} frames ({n / FPS:.1f} s)"]
    if not want_mp4(n, FPS, max_mp4_seconds):
        parts.append(f"mp4 skipped: only motions up to {max_mp4_seconds:g} s are rendered "
                     f"(~{MP4_S_PER_FRAME:g} s per frame)")
        return MeshOutputs(glb, None, " · ".join(parts), view)
    report(0.3, f"rendering the mp4 ({n} frames, ~{n * MP4_S_PER_FRAME:.0f} s)")
    try:
        if not mp4.is_file():
            from kmm.viz.render import render_mp4

            render_mp4(result.joints, mp4, fps=FPS)
    except (ImportError, OSError, ValueError, RuntimeError) as e:   # RenderError is a RuntimeError
        mp4.unlink(missing_ok=True)
        parts.append(f"⚠️ mp4 not rendered: {user_message(e)}")
        return MeshOutputs(glb, None, " · ".join(parts), view)
    parts.append("mp4 rendered")
    return MeshOutputs(glb, mp4, " · ".join(parts), view)


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
    """A strip of coloured chips, one per segment, width ∝ length (at least a readable minimum; the strip
    scrolls sideways for long timelines), labelled `#k start–end s` and its text. Its own colours, so it
    reads the same in light and dark mode."""
    total = max(int(boundaries[-1]), 1)
    colors = ("#dbeafe", "#ffedd5", "#dcfce7", "#fce7f3", "#ede9fe", "#fef9c3")
    cells = []
    for k, text in enumerate(texts):
        a, b = int(boundaries[k]), int(boundaries[k + 1])
        cells.append(
            f'<div class="kmm-seg" title="#{k + 1} {html.escape(text)}" style="flex:{max(b - a, 1)} 0 0;'
            f'min-width:118px;background:{colors[k % len(colors)]};border:1px solid #94a3b8;border-radius:5px;'
            f'padding:3px 6px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;color:#111827;'
            f'line-height:1.35"><b style="color:#111827">#{k + 1}</b> {a / fps:.1f}–{b / fps:.1f} s<br>'
            f'<span style="color:#111827">{html.escape(text)}</span></div>')
    return (f'<div class="kmm-timeline-box" style="background:#f8fafc;border:1px solid #cbd5e1;border-radius:8px;'
            f'padding:6px;color:#111827">'
            f'<div class="kmm-timeline" style="display:flex;gap:3px;width:100%;overflow-x:auto;font-size:13px;'
            f'padding-bottom:4px">{"".join(cells)}</div>'
            f'<div style="font-size:12px;color:#374151">total {total / fps:.1f} s · {total} frames · '
            f'{len(texts)} segment{"s" if len(texts) != 1 else ""}</div></div>')


def understanding(texts: Sequence[str], matches: Sequence[Sequence[tuple[str, float]]],
                  warn_below: float | None = None) -> list[dict]:
    """Per segment: its text, closest training captions with cosine similarity, and a plain line."""
    from kmm.vocabulary import WARN_BELOW, understood

    limit = WARN_BELOW if warn_below is None else warn_below
    return [{"text": t, "closest": [{"caption": c, "similarity": sim} for c, sim in m],
             "warning": bool(m) and m[0][1] < limit, "line": understood(t, m, limit)}
            for t, m in zip(texts, matches)]


def understanding_html(items: Sequence[dict]) -> str:
    """The 'What the model understood' box: one line per segment, warnings in amber."""
    if not items:
        return ""
    rows = []
    for k, item in enumerate(items, start=1):
        color = "#92400e" if item["warning"] else "#1f2937"
        bg = "#fef3c7" if item["warning"] else "transparent"
        rows.append(f'<li style="color:{color};background:{bg};padding:1px 4px;border-radius:4px">'
                    f'<b>#{k}</b> {html.escape(item["line"] or item["text"])}</li>')
    return ('<div class="kmm-understood" style="background:#f8fafc;border:1px solid #cbd5e1;border-radius:8px;'
            'padding:6px 8px;color:#111827;font-size:13px;max-height:220px;overflow-y:auto">'
            '<div style="font-weight:600;margin-bottom:2px">What the model understood</div>'
            f'<ul style="margin:0;padding-left:18px">{"".join(rows)}</ul></div>')


def abilities_line(groups: Mapping[str, Sequence[str]]) -> str:
    """'walk (123 captions), wave (86), …' from the vocabulary's action groups, most captions first."""
    items = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    return ", ".join(f"{a} ({len(c)}{' captions' if i == 0 else ''})" for i, (a, c) in enumerate(items))


def result_info(result, source: str, understood: Sequence[dict] | None = None) -> dict:
    """What the API returns next to the files (JSON-serialisable)."""
    take = as_take(result)
    result = take.result
    info = {
        "frames": result.n_frames, "fps": FPS, "seconds": [round(s, 2) for s in result.seconds],
        "segments": [{"text": t, "start_s": round(a / FPS, 2), "end_s": round(b / FPS, 2)}
                     for t, a, b in zip(result.texts, result.boundaries, result.boundaries[1:])],
        "boundaries": list(result.boundaries), "seed": take.base_seed, "guidance": result.guidance,
        "model_id": result.model_id, "weights": source,
        "generation_s": round(float(result.timings.get("total_s", 0.0)), 3),
    }
    if take.edits:
        info["edits"] = [{"segment": e[0] + 1, "seed": e[1], "text": e[2]} for e in take.edits]
    if understood is not None:
        for seg, item in zip(info["segments"], understood):
            seg["closest_captions"] = item["closest"]
            if item["warning"]:
                seg["warning"] = item["line"]
    return info


def status_line(result, source: str | None, wall_s: float) -> str:
    """One plain line: what was generated, with which model, how fast (no file paths or env vars)."""
    take = as_take(result)
    result = take.result
    name = MODEL_LABELS.get(model_short(result.model_id), model_short(result.model_id))
    line = (f"Generated {result.n_frames} frames ({result.n_frames / FPS:.1f} s, {len(result.texts)} segments) "
            f"with {name}, seed {take.base_seed}")
    if take.edits:
        line += ", " + ", ".join(f"segment {e[0] + 1} regenerated with seed {e[1]}" for e in take.edits)
    return line + f" in {wall_s:.2f} s."


def weights_plain(source: str) -> str:
    """The weights' origin in plain words for the About box (the full sentence stays in the API's info).

    >>> weights_plain("bundled weights assets/kmm (no KMM_MODEL_REPO set)")
    'the weights bundled with the app (assets/kmm)'
    """
    m = re.match(r"bundled weights (\S+)", source or "")
    if m:
        return f"the weights bundled with the app ({m.group(1)})"
    return f"weights downloaded from the Hugging Face Hub: {(source or '').split(' (')[0]}"


# --- examples (examples/*.json) --------------------------------------------------------------------

@dataclass(frozen=True)
class Example:
    key: str                     # file stem
    title: str
    segments: list[Segment]
    seed: int
    checks: list[tuple[int, str]]   # (segment index 0-based, kinematic check name)

    @property
    def prompt(self) -> str:
        return ", then ".join(s.text for s in self.segments)


def load_example(path: str | Path) -> Example:
    """One example timeline file: {"title", "segments": [{"text", "seconds" (or null = auto)}], "seed",
    "checks": [{"segment": k (1-based), "check": name}]}; a bad file is a ValueError naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        segments = validate_timeline([Segment(s["text"], s.get("seconds")) for s in data["segments"]])
        seed = int(data.get("seed", 0))
        checks = [(int(c["segment"]) - 1, str(c["check"])) for c in data.get("checks", [])]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"example {path}: {e}") from e
    if any(not 0 <= k < len(segments) for k, _ in checks):
        raise ValueError(f"example {path}: a check names a segment outside 1..{len(segments)}")
    return Example(path.stem, str(data.get("title") or path.stem), segments, seed, checks)


def load_examples(folder: str | Path) -> list[Example]:
    """All examples/*.json, sorted by file name (a missing folder gives [])."""
    folder = Path(folder)
    return [load_example(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


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
        self._vocab_lock = threading.Lock()
        self._vocab, self._vocab_loaded = None, False
        self._preloaded = bool(self._pipelines) and weights is None   # no weights folder to read a vocabulary from

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

    def warm(self, name: str = DEFAULT_MODEL) -> threading.Thread:
        """Loads `name`'s pipeline (torch, weights, text encoder) and runs one tiny generation (the scan kernel)
        in a background thread, so the first Generate does not pay for them (issue #16, cold start). A failure
        is only printed: the click that needs the pipeline reports it as usual. -> the started thread."""
        def run():
            try:
                self.pipeline(name).generate([(WARM_TEXT, WARM_SECONDS)], seed=0, steps=1)
            except Exception as e:   # noqa: BLE001 -- reported again, to the user, by the first Generate
                print(f"[app] warm-up of {name!r} skipped: {type(e).__name__}: {e}")

        thread = threading.Thread(target=run, name=f"warm-{name}", daemon=True)
        thread.start()
        return thread

    def generate(self, segments: Sequence[Segment], settings: Settings):
        pipe = self.pipeline(settings.model)
        kwargs = dict(seed=settings.seed, guidance=settings.guidance, steps=settings.steps)
        if accepts_keyword(pipe.generate, "foot_lock"):
            kwargs["foot_lock"] = settings.foot_lock
        return pipe.generate([(s.text, s.seconds) for s in segments], **kwargs)

    def regenerate(self, result, index0: int, seed, text: str | None = None, model: str | None = None,
                   foot_lock: bool = True) -> Take:
        """Regenerate segment `index0` of a Take (or MotionResult); returns a Take that remembers the base seed."""
        if result is None:
            raise TimelineError("Generate a motion first; then a segment of it can be regenerated.")
        take = as_take(result)
        n = len(take.result.texts)
        if not 0 <= index0 < n:
            raise TimelineError(f"Segment # must be between 1 and {n} (the motion has {n} segments), "
                                f"got {index0 + 1}.")
        try:
            check_settings(seed, take.result.guidance, 1, model)
        except TimelineError as e:
            raise TimelineError(str(e).replace("Seed must", "New seed must")) from None
        text = " ".join(text.split()) if text and text.strip() else None
        if text is not None and not has_words(text):
            raise TimelineError(f"New text ({text!r}) has no words: describe an action in words, "
                                "e.g. 'a person jumps'.")
        pipe = self.pipeline(model or _model_from_id(take.result.model_id))
        kwargs = {"foot_lock": bool(foot_lock)} if accepts_keyword(pipe.regenerate_segment, "foot_lock") else {}
        new = pipe.regenerate_segment(take.result, index0, seed=int(seed), text=text, **kwargs)
        return Take(new, take.base_seed, take.edits + ((index0, int(seed), new.texts[index0]),))

    def vocabulary(self):
        """The weights' training-caption vocabulary (kmm.vocabulary files in the weights folder), or None."""
        with self._vocab_lock:
            if not self._vocab_loaded:
                folder = None
                if not self._preloaded:
                    try:
                        folder = self.weights()[0]
                    except (OSError, ValueError) as e:   # WeightsError is a ValueError; it shows on Generate
                        print(f"[app] no vocabulary: {e}")
                self._vocab = load_vocabulary([folder] if folder is not None else [])
                self._vocab_loaded = True
            return self._vocab

    def understand(self, texts: Sequence[str], k: int = 3) -> list[dict] | None:
        """Closest training captions per text (see `understanding`), or None without a vocabulary."""
        vocab = self.vocabulary()
        if vocab is None:
            return None
        return understanding(texts, vocab.closest(list(texts), k))


def accepts_keyword(fn, name: str) -> bool:
    """Does `fn` take a keyword argument `name` (or **kwargs)?"""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def load_vocabulary(dirs: Sequence[Path]):
    """The first readable vocabulary bundle among `dirs`, else None (logged: the app works without it)."""
    from kmm.vocabulary import Vocabulary

    for d in dirs:
        try:
            return Vocabulary.load(d)
        except ValueError as e:
            print(f"[app] {e}")
    return None


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
