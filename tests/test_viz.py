"""Plotly skeleton figures: frames, slider, colours, fixed scene."""

import numpy as np

from kmm.motion import skeleton
from kmm.viz.skeleton_plot import LEFT_COLOR, RIGHT_COLOR, side_by_side_figure, skeleton_figure


def walking(T=30):
    rng = np.random.default_rng(0)
    joints = rng.normal(scale=0.2, size=(T, 22, 3)) + np.array([0.0, 1.0, 0.0])
    joints[:, :, 2] += np.linspace(0, 2, T)[:, None]  # walks 2 m along +Z
    return joints.astype(np.float32)


def test_frames_and_slider():
    fig = skeleton_figure(walking(30), fps=20, segment_texts=["walk", "stop"], boundaries=[0, 15, 30])
    assert len(fig.frames) == 30
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 30
    assert steps[0].label == "0.00 s · walk" and steps[-1].label == "1.45 s · stop"
    assert {b.label for b in fig.layout.updatemenus[0].buttons} >= {"▶ Play", "❚❚ Pause"}


def test_subsamples_long_motion():
    fig = skeleton_figure(walking(500), max_frames=100)
    assert len(fig.frames) == 100
    assert fig.layout.sliders[0].steps[-1].label == f"{499 / 20:.2f} s"


def test_left_right_colours_and_fixed_equal_scene():
    joints = walking(20)
    fig = skeleton_figure(joints)
    colours = {t.name: t.line.color for t in fig.frames[0].data}
    assert colours["left"] == LEFT_COLOR and colours["right"] == RIGHT_COLOR
    assert len({colours["left"], colours["right"], colours["spine"]}) == 3
    scene = fig.layout.scene
    # Ranges fixed and covering every frame (data Y up is plotly z).
    assert scene.zaxis.range[0] <= 0.0 and scene.zaxis.range[1] >= joints[..., 1].max()
    assert scene.xaxis.range[0] <= joints[..., 0].min() and scene.xaxis.range[1] >= joints[..., 0].max()
    spans = [r[1] - r[0] for r in (scene.xaxis.range, scene.yaxis.range, scene.zaxis.range)]
    ratio = [scene.aspectratio.x, scene.aspectratio.y, scene.aspectratio.z]
    assert np.allclose(np.array(spans) / max(spans), ratio)


def test_left_stays_left():
    """A body facing +Z has its left at +X; plotly x must keep that (no mirroring)."""
    joints = walking(3).astype(np.float64)
    fig = skeleton_figure(joints)
    left = fig.frames[0].data[0]
    xs = [x for x in left.x if x is not None]
    assert set(np.round(xs, 5)) <= set(np.round(joints[0, :, 0], 5))
    # Data Y (up) is drawn on plotly z.
    zs = [z for z in left.z if z is not None]
    assert set(np.round(zs, 5)) <= set(np.round(joints[0, :, 1], 5))


def test_side_by_side_shares_one_slider():
    fig = side_by_side_figure([("a", walking(20)), ("b", walking(30))], max_frames=25)
    assert len(fig.frames) == 25 and len(fig.layout.sliders) == 1
    assert len(fig.frames[0].data) == 6  # 3 limb groups per motion
    xa = [x for x in fig.frames[0].data[0].x if x is not None]
    xb = [x for x in fig.frames[0].data[3].x if x is not None]
    assert min(xb) > max(xa)  # offset along X, no overlap
    assert skeleton.N_JOINTS == 22
