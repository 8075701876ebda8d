"""Offscreen mp4 of the posed mannequin (kmm.viz.mesh) with pyrender: floor grid, lights, following camera.

Backend: ``PYOPENGL_PLATFORM`` is set to ``egl`` (Mesa's EGL works headless, no display needed) unless
the caller already set it; set ``PYOPENGL_PLATFORM=osmesa`` to use OSMesa instead (needs
``libosmesa6`` and PyOpenGL >= 3.1.10; pyrender pins 3.1.0, which breaks OSMesa). The platform is read
when pyrender is first imported, so import this module before anything else imports pyrender.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kmm.errors import RenderError  # noqa: F401  (defined in kmm/errors.py; this name kept)
from kmm.motion.skeleton import FPS
from kmm.viz.camera import camera_targets  # noqa: F401  (kept importable from here)

BODY_COLOR = (0.78, 0.6, 0.42, 1.0)
BACKGROUND = (0.93, 0.94, 0.96, 1.0)
TILE = 0.5  # floor checker size, metres
CAMERA_DISTANCE = 4.0  # metres from the followed point
CAMERA_ELEVATION = 0.35  # radians above the horizon
CAMERA_AZIMUTH = np.pi / 6  # from +Z (the rest facing direction) towards +X: a 3/4 front view


def _import_pyrender():
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    try:
        import pyrender
    except Exception as e:  # ImportError or OpenGL's platform errors
        raise RenderError(f"pyrender could not load with PYOPENGL_PLATFORM={os.environ['PYOPENGL_PLATFORM']}: {e}. "
                          "Install libegl1 libgl1 libgles2 (EGL) or libosmesa6 + PyOpenGL==3.1.10 (osmesa).") from e
    return pyrender


def floor_mesh(center_xz: np.ndarray, half_size: float, y: float):
    """A checkerboard floor (trimesh) of ``TILE`` squares around ``center_xz`` at height ``y``."""
    import trimesh

    n = int(np.ceil(half_size / TILE))
    x0, z0 = np.floor(np.asarray(center_xz) / TILE) * TILE
    verts, faces, colors = [], [], []
    for i in range(-n, n):
        for k in range(-n, n):
            a, b = x0 + i * TILE, z0 + k * TILE
            base = len(verts)
            verts += [(a, y, b), (a + TILE, y, b), (a + TILE, y, b + TILE), (a, y, b + TILE)]
            faces += [(base, base + 2, base + 1), (base, base + 3, base + 2)]  # normals face +Y
            shade = (200, 200, 205, 255) if (i + k) % 2 else (150, 152, 160, 255)
            colors += [shade, shade]
    return trimesh.Trimesh(np.array(verts), np.array(faces), face_colors=np.array(colors, np.uint8), process=False)


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4x4 camera pose (OpenGL: the camera looks down its -Z, +Y up) at ``eye`` looking at ``target``."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right = right / np.linalg.norm(right)
    up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, eye
    return pose


def render_frames(joints: np.ndarray, fps: float = FPS, size: tuple[int, int] = (480, 360)):
    """Yield (H, W, 3) uint8 frames of the posed mannequin, one per motion frame."""
    pyrender = _import_pyrender()
    import trimesh

    from kmm.viz.mesh import pose_mannequin

    x = np.asarray(joints, dtype=np.float64)
    vertices, faces = pose_mannequin(x)  # (T, V, 3)
    floor_y = float(vertices[..., 1].min())
    targets = camera_targets(x, fps)
    extent = np.ptp(x[:, 0, [0, 2]], axis=0).max() / 2 + CAMERA_DISTANCE * 1.5
    floor = floor_mesh(x[:, 0, [0, 2]].mean(0), extent, floor_y)

    scene = pyrender.Scene(bg_color=BACKGROUND, ambient_light=(0.3, 0.3, 0.3))
    scene.add(pyrender.Mesh.from_trimesh(floor, smooth=False))
    material = pyrender.MetallicRoughnessMaterial(baseColorFactor=BODY_COLOR, metallicFactor=0.0, roughnessFactor=0.7)
    camera = scene.add(pyrender.PerspectiveCamera(yfov=np.pi / 4, aspectRatio=size[0] / size[1]))
    light = scene.add(pyrender.DirectionalLight(intensity=3.0))
    offset = CAMERA_DISTANCE * np.array([np.cos(CAMERA_ELEVATION) * np.sin(CAMERA_AZIMUTH), np.sin(CAMERA_ELEVATION),
                                         np.cos(CAMERA_ELEVATION) * np.cos(CAMERA_AZIMUTH)])
    try:
        renderer = pyrender.OffscreenRenderer(*size)
    except Exception as e:  # no EGL / OSMesa context: say what to install
        raise RenderError(f"no offscreen OpenGL context (PYOPENGL_PLATFORM={os.environ['PYOPENGL_PLATFORM']}): {e}. "
                          "Install libegl1 libgl1 libgles2 libegl-mesa0 (EGL) or libosmesa6 + PyOpenGL==3.1.10 "
                          "(PYOPENGL_PLATFORM=osmesa).") from e
    body = None
    try:
        for t in range(len(x)):
            if body is not None:
                scene.remove_node(body)
            mesh = trimesh.Trimesh(vertices[t], faces, process=False)
            body = scene.add(pyrender.Mesh.from_trimesh(mesh, material=material, smooth=True))
            eye = targets[t] + offset
            scene.set_pose(camera, look_at(eye, targets[t]))
            # key light from above, over the camera's shoulder
            scene.set_pose(light, look_at(targets[t] + offset * [1.5, 2.5, 0.5] + [1.0, 0.0, 0.0], targets[t]))
            color, _ = renderer.render(scene)
            yield color[..., :3]
    finally:
        renderer.delete()


def render_mp4(joints: np.ndarray, path, fps: float = FPS, size: tuple[int, int] = (480, 360)) -> Path:
    """Render (T, 22, 3) joints to an H.264 mp4 at ``path`` (``size`` = width, height); returns the path."""
    import imageio.v2 as imageio

    path = Path(path)
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, pixelformat="yuv420p",
                            macro_block_size=8) as writer:
        for frame in render_frames(joints, fps, size):
            writer.append_data(frame)
    return path


def render_png(joints: np.ndarray, path, frame: int = 0, fps: float = FPS, size: tuple[int, int] = (480, 360)) -> Path:
    """Render one frame of the motion to a PNG (the camera smoothing sees the whole clip)."""
    import imageio.v2 as imageio

    for t, image in enumerate(render_frames(joints, fps, size)):
        if t == frame:
            imageio.imwrite(path, image)
            return Path(path)
    raise IndexError(f"frame {frame} out of range for {len(joints)} frames")
