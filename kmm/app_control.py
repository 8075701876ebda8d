"""The app's control panel (issue #19), without Gradio: pins, the waypoint table, the floor view, the generate call.

The panel works on the motion on screen (a `kmm.app_logic.Take`): "Pin this frame" stores that motion's pose at a
time (its own frame: frame 0's pelvis at x = z = 0, facing +Z, +X the body's left); the waypoint table holds
(seconds, x, z) rows; "Generate with control" regenerates the motion's segments (same texts, lengths, seed and
settings) through the pins and the path (``Pipeline.generate(keyposes=, path=)``). The floor view is an SVG top
view: the pelvis path, waypoints (numbered circles), pins (squares), with the body's left (+X) drawn to the left.
"""
from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

from kmm.control import Control, ControlError
from kmm.control.report import control_errors
from kmm.motion.skeleton import FPS

MAX_WAYPOINTS = 32
MAX_PINS = 16
WAYPOINT_HEADERS = ["seconds", "x (m)", "z (m)"]


def _rows(table) -> list[list]:
    """A Gradio Dataframe value (pandas DataFrame, {"data": ...} or list of lists) -> list of rows."""
    if table is None:
        return []
    if hasattr(table, "values") and hasattr(table, "columns"):
        return table.values.tolist()
    if isinstance(table, dict):
        return list(table.get("data") or [])
    return [list(r) for r in table]


def waypoint_rows(table) -> list[list[float]]:
    """Table rows -> [[seconds, x, z], ...]: blank rows skipped; a row with text or a missing number is an error."""
    out = []
    for i, row in enumerate(_rows(table)):
        cells = [c for c in row[:3]]
        if all(c is None or (isinstance(c, str) and not c.strip()) or (isinstance(c, float) and math.isnan(c))
               for c in cells):
            continue
        try:
            t, x, z = (float(c) for c in cells)
        except (TypeError, ValueError):
            raise ControlError(f"waypoint row {i + 1}: give seconds, x and z as numbers, got {cells}") from None
        out.append([t, x, z])
    if len(out) > MAX_WAYPOINTS:
        raise ControlError(f"at most {MAX_WAYPOINTS} waypoints")
    return out


def add_waypoint(table, seconds, x, z) -> list[list[float]]:
    """The table with one more row, kept in time order; the new row checked like any other."""
    rows = waypoint_rows(table)
    try:
        new = [float(seconds), float(x), float(z)]
    except (TypeError, ValueError):
        raise ControlError("a waypoint needs a time (s) and x, z (m) as numbers") from None
    rows = sorted(rows + [new], key=lambda r: r[0])
    Control.make(None, rows)                          # times > 0, increasing, finite
    return rows


def pin_frame(take, seconds, pins: Sequence[dict] | None) -> list[dict]:
    """Pins the pose of the motion on screen at `seconds` -> the new pin list ({"seconds", "joints" (22, 3) list})."""
    if take is None:
        raise ControlError("Generate a motion first; then pin one of its frames.")
    result = getattr(take, "result", take)
    try:
        t = float(seconds)
    except (TypeError, ValueError):
        raise ControlError(f"the pin time must be a number of seconds, got {seconds!r}") from None
    n = result.n_frames
    if not 0 <= t <= (n - 1) / FPS + 1e-9:
        raise ControlError(f"the pin time must be between 0 and {(n - 1) / FPS:g} s (the motion on screen)")
    f = int(round(t * FPS))
    pins = [p for p in (pins or []) if abs(p["seconds"] - f / FPS) > 0.5 / FPS]
    if len(pins) >= MAX_PINS:
        raise ControlError(f"at most {MAX_PINS} pinned frames")
    pins.append({"seconds": f / FPS, "joints": np.asarray(result.joints[f], dtype=np.float32).tolist()})
    return sorted(pins, key=lambda p: p["seconds"])


def keyposes_of(pins: Sequence[dict] | None):
    """Pins -> the `keyposes` argument of Pipeline.generate (None without pins)."""
    if not pins:
        return None
    return {"times": [p["seconds"] for p in pins], "joints": np.array([p["joints"] for p in pins], dtype=np.float64)}


def pins_markdown(pins: Sequence[dict] | None) -> str:
    if not pins:
        return "No pinned frames."
    return "Pinned frames: " + ", ".join(f"**{p['seconds']:.2f} s** (pelvis at x {p['joints'][0][0]:.2f}, "
                                         f"z {p['joints'][0][2]:.2f})" for p in pins)


def generate_controlled(service, take, pins, table, settings):
    """Regenerates the motion on screen (its segments and lengths) with the pins and the path -> a new Take."""
    from kmm.app_logic import Take

    if take is None:
        raise ControlError("Generate a motion first; control regenerates it through your pins and path.")
    r = take.result
    waypoints = waypoint_rows(table)
    keyposes = keyposes_of(pins)
    if not waypoints and not keyposes:
        raise ControlError("Pin a frame or add a waypoint first.")
    pipe = service.pipeline(settings.model)
    segments = list(zip(r.texts, r.seconds))
    out = pipe.generate(segments, seed=settings.seed, guidance=settings.guidance, steps=settings.steps,
                        foot_lock=settings.foot_lock, keyposes=keyposes, path=waypoints or None)
    return Take(out, settings.seed)


def control_report(result) -> str:
    """Markdown: the measured error at every waypoint and pin of a controlled result ('' without control)."""
    if not getattr(result, "control", None):
        return ""
    return "  \n".join(control_errors(result.joints, result.control)["lines"])


def floor_svg(joints=None, waypoints: Sequence[Sequence[float]] = (), pins: Sequence[dict] = (),
              size: int = 320) -> str:
    """Top view of the floor (SVG): pelvis path of `joints` (T, 22, 3), waypoints, pins; +Z up, +X (the body's
    left at frame 0) to the left, as seen from above behind the body's start. 1 m grid."""
    pts = [np.zeros((1, 2))]
    path = None
    if joints is not None:
        path = np.asarray(joints, dtype=np.float64)[:, 0][:, [0, 2]]
        pts.append(path)
    if len(waypoints):
        pts.append(np.asarray(waypoints, dtype=np.float64)[:, 1:3])
    if pins:
        pts.append(np.array([[p["joints"][0][0], p["joints"][0][2]] for p in pins]))
    allp = np.concatenate(pts)
    lo, hi = allp.min(0) - 0.75, allp.max(0) + 0.75
    span = max(float((hi - lo).max()), 3.0)                                   # metres shown across
    centre = (lo + hi) / 2
    scale = (size - 20) / span

    def xy(p):  # floor (x, z) -> svg (u, v): +X to the left, +Z up
        return 10 + (size - 20) / 2 - (p[0] - centre[0]) * scale, 10 + (size - 20) / 2 - (p[1] - centre[1]) * scale

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}" '
             f'id="floor-svg" style="background:#f5f6f8;border-radius:6px">']
    for g in range(int(math.floor(centre[0] - span)), int(math.ceil(centre[0] + span)) + 1):
        u, _ = xy((g, 0))
        parts.append(f'<line x1="{u:.1f}" y1="0" x2="{u:.1f}" y2="{size}" stroke="#dde" stroke-width="1"/>')
    for g in range(int(math.floor(centre[1] - span)), int(math.ceil(centre[1] + span)) + 1):
        _, v = xy((0, g))
        parts.append(f'<line x1="0" y1="{v:.1f}" x2="{size}" y2="{v:.1f}" stroke="#dde" stroke-width="1"/>')
    u0, v0 = xy((0, 0))
    parts.append(f'<path d="M{u0:.1f},{v0 + 7:.1f} L{u0 - 5:.1f},{v0 + 12:.1f} L{u0:.1f},{v0 - 6:.1f} '
                 f'L{u0 + 5:.1f},{v0 + 12:.1f} Z" fill="#555"><title>start: facing +Z</title></path>')
    if path is not None:
        d = " ".join(f"{'M' if i == 0 else 'L'}{u:.1f},{v:.1f}" for i, (u, v) in enumerate(xy(p) for p in path[::2]))
        parts.append(f'<path d="{d}" fill="none" stroke="#2a6fdb" stroke-width="2" class="floor-path"/>')
    for i, (t, x, z) in enumerate(waypoints):
        u, v = xy((x, z))
        parts.append(f'<circle cx="{u:.1f}" cy="{v:.1f}" r="7" fill="#f0a020" class="floor-waypoint">'
                     f'<title>{html.escape(f"{t:g} s: x {x:g}, z {z:g}")}</title></circle>'
                     f'<text x="{u:.1f}" y="{v + 4:.1f}" font-size="10" text-anchor="middle">{i + 1}</text>')
    for p in pins or ():
        u, v = xy((p["joints"][0][0], p["joints"][0][2]))
        label = html.escape(f"pin {p['seconds']:.2f} s")
        parts.append(f'<rect x="{u - 5:.1f}" y="{v - 5:.1f}" width="10" height="10" fill="#c0392b" '
                     f'class="floor-pin"><title>{label}</title></rect>')
    parts.append(f'<text x="6" y="{size - 6}" font-size="10" fill="#667">grid 1 m · +Z up · +X left</text></svg>')
    return "".join(parts)
