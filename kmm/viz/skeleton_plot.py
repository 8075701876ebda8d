"""Animated 3D stick-figure plots (plotly) of `(T, 22, 3)` joint positions (metres, Y up, 20 fps).

Data (x, y, z) with Y up is drawn as plotly (x, -z, y): plotly's vertical axis is z, and a
rotation (not the plain swap (x, z, y), a mirror that would show the left side as the right)
keeps left and right where they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from kmm.motion import skeleton

LEFT_COLOR = "#d62728"  # red = left, as in the dataset previews
RIGHT_COLOR = "#1f77b4"
SPINE_COLOR = "#444444"
FLOOR_COLOR = "#cccccc"
TRAJECTORY_COLOR = "#2ca02c"


def _bone_groups() -> dict[str, list[tuple[int, int]]]:
    groups: dict[str, list[tuple[int, int]]] = {"left": [], "right": [], "spine": []}
    for child, parent in enumerate(skeleton.PARENTS):
        if parent < 0:
            continue
        side = ("left" if child in skeleton.LEFT_CHAIN
                else "right" if child in skeleton.RIGHT_CHAIN else "spine")
        groups[side].append((parent, child))
    return groups


BONES = _bone_groups()
GROUP_COLORS = {"left": LEFT_COLOR, "right": RIGHT_COLOR, "spine": SPINE_COLOR}


def _to_plot(joints: np.ndarray) -> np.ndarray:
    """(..., 3) data (x, y up, z) → plotly (x, -z, y up)."""
    return np.stack([joints[..., 0], -joints[..., 2], joints[..., 1]], axis=-1)


def _segments(points: np.ndarray, bones: list[tuple[int, int]]) -> tuple[list, list, list]:
    """Line coordinates for one frame's bones, separated by None (one trace per limb group)."""
    xs, ys, zs = [], [], []
    for parent, child in bones:
        for j in (parent, child):
            xs.append(float(points[j, 0]))
            ys.append(float(points[j, 1]))
            zs.append(float(points[j, 2]))
        xs.append(None)
        ys.append(None)
        zs.append(None)
    return xs, ys, zs


def _frame_indices(n_frames: int, max_frames: int) -> np.ndarray:
    if n_frames <= max_frames:
        return np.arange(n_frames)
    return np.unique(np.linspace(0, n_frames - 1, max_frames).round().astype(int))


def _segment_label(frame: int, segment_texts: Sequence[str] | None,
                   boundaries: Sequence[int] | None, n_frames: int) -> str:
    """Text of the segment holding `frame`.

    boundaries are segment start frames, optionally followed by the end (e.g. [0, 60, T] for two
    segments); without them the texts split the motion evenly.
    """
    if not segment_texts:
        return ""
    n = len(segment_texts)
    if boundaries is None or len(boundaries) == 0:
        boundaries = np.linspace(0, n_frames, n + 1)
    k = int(np.searchsorted(np.asarray(boundaries), frame, side="right")) - 1
    return str(segment_texts[min(max(k, 0), n - 1)])


def _check_joints(joints) -> np.ndarray:
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (skeleton.N_JOINTS, 3) or len(joints) == 0:
        raise ValueError(f"expected joints of shape (T, {skeleton.N_JOINTS}, 3), got {joints.shape}")
    return joints


def _floor_grid(x_range: tuple[float, float], y_range: tuple[float, float],
                step: float) -> go.Scatter3d:
    xs, ys, zs = [], [], []
    for x in np.arange(x_range[0], x_range[1] + 1e-9, step):
        xs += [x, x, None]
        ys += [y_range[0], y_range[1], None]
        zs += [0.0, 0.0, None]
    for y in np.arange(y_range[0], y_range[1] + 1e-9, step):
        xs += [x_range[0], x_range[1], None]
        ys += [y, y, None]
        zs += [0.0, 0.0, None]
    return go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", name="floor", hoverinfo="skip",
                        showlegend=False, line=dict(color=FLOOR_COLOR, width=2))


def _animated_figure(motions: list[tuple[str, np.ndarray]], *, fps: float, title: str,
                     segment_texts: Sequence[str] | None, boundaries: Sequence[int] | None,
                     max_frames: int) -> go.Figure:
    """motions: (name, plot-space points (T_i, 22, 3)); shorter motions hold their last pose."""
    n_frames = max(len(p) for _, p in motions)
    shown = _frame_indices(n_frames, max_frames)
    every = [p[np.minimum(shown, len(p) - 1)] for _, p in motions]  # (F, 22, 3) each

    # 1. fixed scene extent over the whole motion, equal scale on every axis
    allp = np.concatenate([p.reshape(-1, 3) for _, p in motions])
    lo, hi = allp.min(0), allp.max(0)
    margin = 0.3
    x_range = (float(lo[0] - margin), float(hi[0] + margin))
    y_range = (float(lo[1] - margin), float(hi[1] + margin))
    z_range = (float(min(lo[2], 0.0) - 0.05), float(hi[2] + margin + (0.4 if len(motions) > 2 else 0.0)))  # names
    spans = np.array([x_range[1] - x_range[0], y_range[1] - y_range[0], z_range[1] - z_range[0]])
    aspect = spans / spans.max()

    # 2. static traces: floor grid at y = 0, root ground trajectories, names
    static: list[go.Scatter3d] = [_floor_grid(x_range, y_range, step=0.5)]
    for i, (name, p) in enumerate(motions):
        root = p[:, 0]
        static.append(go.Scatter3d(
            x=root[:, 0], y=root[:, 1], z=np.zeros(len(root)), mode="lines",
            name=f"{name} root path" if name else "root path", hoverinfo="skip", showlegend=False,
            line=dict(color=TRAJECTORY_COLOR, width=3)))
        if name and len(motions) > 1:
            static.append(go.Scatter3d(
                # every other name a little higher, so names of neighbouring motions never overlap
                x=[root[0, 0]], y=[root[0, 1]], z=[float(p[..., 2].max()) + 0.15 + 0.35 * (i % 2)],
                mode="text", text=[name], showlegend=False, hoverinfo="skip"))

    # 3. animated traces: per motion one trace per limb group (left, right, spine)
    def bodies(frame: int) -> list[go.Scatter3d]:
        traces = []
        for (name, _), pts in zip(motions, every):
            for group, bones in BONES.items():
                xs, ys, zs = _segments(pts[frame], bones)
                traces.append(go.Scatter3d(
                    x=xs, y=ys, z=zs, mode="lines+markers",
                    name=f"{name} {group}".strip(), legendgroup=group, showlegend=False,
                    line=dict(color=GROUP_COLORS[group], width=7),
                    marker=dict(color=GROUP_COLORS[group], size=3)))
        return traces

    animated_ids = list(range(len(static), len(static) + 3 * len(motions)))
    labels = [f"{shown[k] / fps:.2f} s" for k in range(len(shown))]
    texts = [_segment_label(int(f), segment_texts, boundaries, n_frames) for f in shown]
    labels = [f"{lab} · {txt}" if txt else lab for lab, txt in zip(labels, texts)]
    frames = [go.Frame(data=bodies(k), traces=animated_ids, name=str(k)) for k in range(len(shown))]

    # 4. playback controls: one frame per shown pose, timed so playback runs at real speed
    frame_ms = 1000.0 / fps * (shown[-1] / max(len(shown) - 1, 1) if len(shown) > 1 else 1.0)
    play = dict(label="▶ Play", method="animate",
                args=[None, dict(frame=dict(duration=frame_ms, redraw=True), fromcurrent=True,
                                 transition=dict(duration=0), mode="immediate")])
    pause = dict(label="❚❚ Pause", method="animate",
                 args=[[None], dict(frame=dict(duration=0, redraw=False),
                                    transition=dict(duration=0), mode="immediate")])
    steps = [dict(method="animate", label=labels[k],
                  args=[[str(k)], dict(frame=dict(duration=0, redraw=True),
                                       transition=dict(duration=0), mode="immediate")])
             for k in range(len(shown))]

    axis = dict(showbackground=False, zeroline=False)
    fig = go.Figure(data=static + bodies(0), frames=frames)
    fig.update_layout(
        title=title or None,
        margin=dict(l=0, r=0, t=40 if title else 10, b=0),
        scene=dict(
            xaxis=dict(range=x_range, title="x (m)", **axis),
            yaxis=dict(range=y_range, title="-z (m)", **axis),
            zaxis=dict(range=z_range, title="y, up (m)", **axis),
            aspectmode="manual",
            aspectratio=dict(x=float(aspect[0]), y=float(aspect[1]), z=float(aspect[2])),
            camera=dict(up=dict(x=0, y=0, z=1), eye=dict(x=0.0, y=-1.8, z=0.6)),
        ),
        updatemenus=[dict(type="buttons", direction="left", showactive=False, x=0.0, y=0.0,
                          xanchor="left", yanchor="top", pad=dict(t=10, r=10),
                          buttons=[play, pause])],
        sliders=[dict(active=0, steps=steps, x=0.15, len=0.85, y=0.0, yanchor="top",
                      pad=dict(t=10), currentvalue=dict(prefix="t = ", visible=True),
                      transition=dict(duration=0))],
    )
    return fig


def skeleton_figure(joints, *, fps: float = skeleton.FPS, title: str = "",
                    segment_texts: Sequence[str] | None = None,
                    boundaries: Sequence[int] | None = None, max_frames: int = 400) -> go.Figure:
    """Animated 3D stick figure of one motion `(T, 22, 3)` (metres, Y up).

    Left limbs red, right limbs blue, spine grey; floor grid at y = 0; the root's ground path;
    play/pause and a slider labelled with time (and the current segment's text if given).
    At most `max_frames` frames, picked evenly when T is larger.
    """
    points = _to_plot(_check_joints(joints))
    return _animated_figure([("", points)], fps=fps, title=title, segment_texts=segment_texts,
                            boundaries=boundaries, max_frames=max_frames)


def side_by_side_figure(motions: Sequence[tuple[str, object]], *, fps: float = skeleton.FPS,
                        title: str = "", segment_texts: Sequence[str] | None = None,
                        boundaries: Sequence[int] | None = None, max_frames: int = 400,
                        gap: float = 1.0) -> go.Figure:
    """Several named motions in one scene, side by side along X, played with one slider.

    Each motion is moved so its first root position is at the floor origin, then offset along
    X so the motions' swept extents are `gap` metres apart.
    """
    if not motions:
        raise ValueError("side_by_side_figure needs at least one motion")
    placed: list[tuple[str, np.ndarray]] = []
    offset = 0.0
    for name, joints in motions:
        joints = _check_joints(joints).copy()
        joints[..., [0, 2]] -= joints[0, 0, [0, 2]]
        x_lo, x_hi = joints[..., 0].min(), joints[..., 0].max()
        if placed:
            offset += -x_lo
        joints[..., 0] += offset
        placed.append((str(name), _to_plot(joints)))
        offset += x_hi + gap
    return _animated_figure(placed, fps=fps, title=title, segment_texts=segment_texts,
                            boundaries=boundaries, max_frames=max_frames)
