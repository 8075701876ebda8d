"""A licence-free body mesh for 22-joint motion: the ``mannequin-x`` wooden mannequin (Apache-2.0).

The mannequin (24,256 vertices) is skinned on the SMPL-X skeleton, whose first 22 joints are ours.
We pose it with rotations from our IK solved against the mannequin's *own* rest joints
(``kmm.motion.smpl.pose_against_rest``), then scale it uniformly about the pelvis so that its bone
lengths match the motion's and move its pelvis onto the motion's pelvis. Its joints then land on the
motion's joints up to differences in proportions (a few cm).

- :func:`pose_mannequin`: (T, 22, 3) joints -> vertices (T, V, 3), faces (F, 3);
- :func:`motion_to_glb`: one animated, skinned .glb (glTF skin + node rotation/translation
  animation; plays in gradio's Model3D and three.js / Babylon viewers). With ``follow=True`` the file is
  made for a fixed viewer camera (gradio's Model3D frames the whole animation once): the body stays near
  the origin and a checkered floor patch slides under it, as if the camera followed the body; the
  body then fills the view for a 2-s clip and a 60-s walk alike.

Uses private fields of ``mannequin`` 0.3.0 (skin weights and bind positions) to write the glTF
skin, hence the exact pin in requirements.txt.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kmm.motion import rotations as rot
from kmm.motion.skeleton import FPS, N_JOINTS, PARENTS
from kmm.motion.smpl import pose_against_rest

_PARENT_IDX = np.array([max(p, 0) for p in PARENTS[1:]])  # (21,) parents of joints 1..21


@functools.lru_cache(maxsize=1)
def mannequin():
    """The shared wooden mannequin at zero shape (built once, ~0.2 s)."""
    from mannequin import Mannequin

    return Mannequin("wooden")


def mannequin_rest_joints() -> np.ndarray:
    """(22, 3) the mannequin's rest joints (T-pose facing +Z, left = +X, as our skeleton)."""
    m = mannequin()
    return m.joint_transforms(m.rest_pose())[:N_JOINTS, :3, 3].astype(np.float64)


def bone_scale(joints: np.ndarray) -> float:
    """Motion size / mannequin size: sum of median bone lengths over sum of rest bone lengths."""
    x = np.asarray(joints, dtype=np.float64)
    rest = mannequin_rest_joints()
    ours = np.median(np.linalg.norm(x[:, 1:] - x[:, _PARENT_IDX], axis=-1), axis=0).sum()
    theirs = np.linalg.norm(rest[1:] - rest[_PARENT_IDX], axis=-1).sum()
    return float(ours / theirs)


@dataclass
class MannequinPose:
    """World transforms of the mannequin's joints for one motion, already scaled and placed.

    ``world`` (T, J, 4, 4) in the mannequin's unscaled frame with the pelvis at ``joints[:, 0] / scale``;
    the world position of a point p is ``scale * p``.
    """

    world: np.ndarray
    scale: float


def mannequin_pose(joints: np.ndarray) -> MannequinPose:
    """Fit the mannequin to (T, 22, 3) joints (see the module docstring)."""
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != (N_JOINTS, 3):
        raise ValueError(f"joints must be (T, {N_JOINTS}, 3), got {x.shape}")
    m = mannequin()
    root, body = pose_against_rest(x, mannequin_rest_joints())  # (T, 3), (T, 21, 3)
    pose = m.rest_pose(batch_dims=(len(x),), dtype=np.float64)
    pose["pelvis_rotation"], pose["body_pose"] = root, body
    world = np.array(m.joint_transforms(pose), dtype=np.float64)  # (T, J, 4, 4), pelvis at rest position
    scale = bone_scale(x)
    world[..., :3, 3] += (x[:, 0] / scale - world[:, 0, :3, 3])[:, None]
    return MannequinPose(world, scale)


def pose_mannequin(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 22, 3) joints -> posed mannequin vertices (T, V, 3) float32, faces (F, 3) int64."""
    fit = mannequin_pose(joints)
    m = mannequin()
    vertices = m._skin_vertices(fit.world) * fit.scale  # (T, V, 3)
    return vertices.astype(np.float32), np.asarray(m.faces, dtype=np.int64)


def mannequin_joints(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) the posed mannequin's own joints, in metres (for checking the fit)."""
    fit = mannequin_pose(joints)
    return fit.world[:, :N_JOINTS, :3, 3] * fit.scale


# ----------------------------------------------------------------------------------------------
# animated .glb


def _local_trs(world: np.ndarray, parents: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(T, J, 4, 4) world transforms -> local translations (T, J, 3), rotations (T, J, 4) xyzw."""
    local = world.copy()
    for j, p in enumerate(parents):
        if p >= 0:
            local[:, j] = np.linalg.inv(world[:, p]) @ world[:, j]
    quat = rot.matrix_to_quat(local[..., :3, :3])  # (T, J, 4) wxyz
    # neighbouring frames on the same hemisphere so the viewer's slerp takes the short way
    for t in range(1, len(quat)):
        quat[t] *= np.where(np.sum(quat[t] * quat[t - 1], -1, keepdims=True) < 0, -1.0, 1.0)
    return local[..., :3, 3], np.concatenate([quat[..., 1:], quat[..., :1]], axis=-1)


FOLLOW_LEASH = 0.25      # m: the followed point never strays further than this from the pelvis
FLOOR_TILE = 0.5         # m: checker size of the floor patch in follow mode
FLOOR_HALF = 1.0         # m: the floor patch spans +-FLOOR_HALF around the body (the viewer frames it)


def follow_points(joints: np.ndarray, fps: float = FPS, leash: float = FOLLOW_LEASH) -> np.ndarray:
    """(T, 2) floor-plane (x, z) points a camera follows: the pelvis smoothed over 1 s
    (``kmm.viz.camera.camera_targets``), kept within ``leash`` m of the pelvis.

    >>> follow_points(np.zeros((3, 22, 3))).tolist()
    [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    """
    from kmm.viz.camera import camera_targets

    x = np.asarray(joints, dtype=np.float64)
    pelvis = x[:, 0, [0, 2]]
    target = camera_targets(x, fps)[:, [0, 2]]
    off = target - pelvis
    dist = np.linalg.norm(off, axis=-1, keepdims=True)
    return pelvis + off * np.minimum(1.0, leash / np.maximum(dist, 1e-9))


def wrapped_floor_keys(offset: np.ndarray, fps: float, period: float) -> tuple[np.ndarray, np.ndarray]:
    """Keyframes (times (K,), values (K, 2)) for a periodic floor pattern moved by ``offset`` (T, 2) metres.

    The floor moves by ``offset`` modulo ``period`` (the pattern repeats), so it never leaves the view; where
    the wrap jumps, a key just before the frame ends the old wrap, so linear interpolation never sweeps a
    whole period across the screen.

    >>> t, v = wrapped_floor_keys(np.array([[0.0, 0], [0.4, 0], [0.8, 0]]), 10, 1.0)
    >>> np.round(t, 4).tolist(), np.round(v[:, 0], 4).tolist()
    ([0.0, 0.1, 0.1999, 0.2], [0.0, 0.4, 0.8, -0.2])
    """
    k = np.round(offset / period)                              # (T, 2) whole periods taken off
    times, values = [0.0], [offset[0] - k[0] * period]
    for t in range(1, len(offset)):
        if np.any(k[t] != k[t - 1]):
            times.append(t / fps - 1e-4)
            values.append(offset[t] - k[t - 1] * period)
        times.append(t / fps)
        values.append(offset[t] - k[t] * period)
    return np.asarray(times), np.asarray(values)


def _floor_patch(half: float, tile: float, y: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A checkerboard square of side 2*half at height y: vertices (V, 3), light and dark triangles (·, 3)."""
    n = int(round(2 * half / tile))
    verts, light, dark = [], [], []
    for i in range(n):
        for k in range(n):
            a, b = -half + i * tile, -half + k * tile
            base = len(verts)
            verts += [(a, y, b), (a + tile, y, b), (a + tile, y, b + tile), (a, y, b + tile)]
            tris = [(base, base + 2, base + 1), (base, base + 3, base + 2)]   # normals face +Y
            (light if (i + k) % 2 else dark).extend(tris)
    return np.array(verts, np.float32), np.array(light, np.uint32), np.array(dark, np.uint32)


def motion_to_glb(joints: np.ndarray, path, fps: float = FPS, follow: bool = False,
                  pose: MannequinPose | None = None) -> Path:
    """Write the posed mannequin as one skinned, animated .glb; returns the path.

    Layout: a root node scaling the mannequin to the motion's size; under it the joint hierarchy
    (the skin's joints) and the skinned mesh. One animation ("motion") drives every joint's rotation
    and the pelvis translation, linear interpolation, duration (T - 1) / fps seconds.
    ``follow``: the pelvis moves relative to :func:`follow_points` and a floor patch (a second top-level
    node, its own mesh) slides under the body (see the module docstring); for viewing, not for export.
    ``pose``: a :func:`mannequin_pose` of ``joints`` already computed (writing two files costs one fit).
    """
    import pygltflib as gl

    x = np.asarray(joints, dtype=np.float64)
    fit = pose if pose is not None else mannequin_pose(x)
    m = mannequin()
    parents = m.parents
    n_j = len(parents)
    trans, quat = _local_trs(fit.world, parents)  # (T, J, 3), (T, J, 4)
    if follow:
        centre = follow_points(x, fps)                              # (T, 2) metres
        trans[:, 0, 0] -= centre[:, 0] / fit.scale                   # the pelvis key is in unscaled units
        trans[:, 0, 2] -= centre[:, 1] / fit.scale

    # 1. static mesh data at the bind pose; inverse bind = translate(-bind position) (bind rotations are I)
    verts = m._identity["skin_vertices"].astype(np.float32)  # (V, 3)
    bind = m._identity["skin_bind_positions"].astype(np.float32)  # (J, 3)
    faces = np.asarray(m.faces, dtype=np.uint32)
    normals = _vertex_normals(verts, faces)
    skin_j = m._skin_joint_indices.astype(np.uint8)  # (V, 4); 54 joints fit a byte
    skin_w = m._skin_weights.astype(np.float32)  # (V, 4), rows sum to 1
    ibm = np.tile(np.eye(4, dtype=np.float32), (n_j, 1, 1))
    ibm[:, :3, 3] = -bind
    times = (np.arange(len(x)) / fps).astype(np.float32)

    # 2. one binary buffer, one view per array
    blob = bytearray()
    views, accessors = [], []

    def add(array: np.ndarray, gl_type: str, component: int, target=None, minmax=False) -> int:
        data = np.ascontiguousarray(array).tobytes()
        while len(blob) % 4:
            blob.append(0)
        views.append(gl.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(data), target=target))
        blob.extend(data)
        flat = array.reshape(len(array), -1)
        acc = gl.Accessor(bufferView=len(views) - 1, componentType=component, count=len(array), type=gl_type)
        if minmax:
            acc.min, acc.max = flat.min(0).tolist(), flat.max(0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    a_pos = add(verts, gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER, minmax=True)
    a_nrm = add(normals, gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER)
    a_jnt = add(skin_j, gl.VEC4, gl.UNSIGNED_BYTE, gl.ARRAY_BUFFER)
    a_wgt = add(skin_w, gl.VEC4, gl.FLOAT, gl.ARRAY_BUFFER)
    a_idx = add(faces.reshape(-1), gl.SCALAR, gl.UNSIGNED_INT, gl.ELEMENT_ARRAY_BUFFER, minmax=True)
    a_ibm = add(ibm.transpose(0, 2, 1).copy(), gl.MAT4, gl.FLOAT)  # glTF matrices are column-major
    a_time = add(times, gl.SCALAR, gl.FLOAT, minmax=True)

    # 3. nodes: 0 = scale root, 1 = mesh, 2.. = joints; the first frame is the static pose
    joint_node = [2 + j for j in range(n_j)]
    nodes = [gl.Node(name="mannequin", scale=[fit.scale] * 3, children=[1, joint_node[0]]),
             gl.Node(name="body", mesh=0, skin=0)]
    for j in range(n_j):
        nodes.append(gl.Node(name=m.joint_names[j], translation=trans[0, j].tolist(), rotation=quat[0, j].tolist(),
                             children=[joint_node[c] for c in range(n_j) if parents[c] == j]))

    # 4. animation: rotations of the actuated body joints + the pelvis translation
    samplers, channels = [], []
    for j in range(n_j):
        keys = [("rotation", quat[:, j], gl.VEC4)] if j < N_JOINTS else []
        if j == 0:
            keys.append(("translation", trans[:, 0], gl.VEC3))
        for prop, values, gl_type in keys:
            samplers.append(gl.AnimationSampler(input=a_time, output=add(values.astype(np.float32), gl_type, gl.FLOAT),
                                                interpolation="LINEAR"))
            channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                                target=gl.AnimationChannelTarget(node=joint_node[j], path=prop)))

    meshes = [gl.Mesh(name="mannequin", primitives=[gl.Primitive(
        attributes=gl.Attributes(POSITION=a_pos, NORMAL=a_nrm, JOINTS_0=a_jnt, WEIGHTS_0=a_wgt),
        indices=a_idx, material=0)])]
    materials = [gl.Material(name="wood", doubleSided=False, pbrMetallicRoughness=gl.PbrMetallicRoughness(
        baseColorFactor=[0.78, 0.6, 0.42, 1.0], metallicFactor=0.0, roughnessFactor=0.7))]
    roots = [0]

    # 5. follow mode: a checkered floor patch at the feet's lowest height, moved by the followed point's
    #    travel modulo the pattern's period (two tiles), so it slides under the body and never leaves the view
    if follow:
        low = int(np.argmin(x[..., 1].min(axis=1)))                 # the frame with the lowest joint:
        floor_y = float((m._skin_vertices(fit.world[low:low + 1]) * fit.scale)[..., 1].min())   # its soles
        verts_f, light, dark = _floor_patch(FLOOR_HALF, FLOOR_TILE, floor_y)
        a_fpos = add(verts_f, gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER, minmax=True)
        a_fnrm = add(np.tile(np.float32([0, 1, 0]), (len(verts_f), 1)), gl.VEC3, gl.FLOAT, gl.ARRAY_BUFFER)
        prims = []
        for tris, shade in ((light, 0.75), (dark, 0.45)):
            a_tri = add(tris.reshape(-1), gl.SCALAR, gl.UNSIGNED_INT, gl.ELEMENT_ARRAY_BUFFER, minmax=True)
            # unlit: flat greys that read as a floor, and cheap for software WebGL
            materials.append(gl.Material(name=f"floor{len(materials)}", extensions={"KHR_materials_unlit": {}},
                                         pbrMetallicRoughness=gl.PbrMetallicRoughness(
                                             baseColorFactor=[shade, shade, shade * 1.03, 1.0], metallicFactor=0.0,
                                             roughnessFactor=1.0)))
            prims.append(gl.Primitive(attributes=gl.Attributes(POSITION=a_fpos, NORMAL=a_fnrm), indices=a_tri,
                                      material=len(materials) - 1))
        meshes.append(gl.Mesh(name="floor", primitives=prims))
        nodes.append(gl.Node(name="floor", mesh=1))
        roots.append(len(nodes) - 1)
        key_t, key_v = wrapped_floor_keys(-centre, fps, 2 * FLOOR_TILE)
        key_xyz = np.stack([key_v[:, 0], np.zeros(len(key_v)), key_v[:, 1]], -1).astype(np.float32)
        samplers.append(gl.AnimationSampler(input=add(key_t.astype(np.float32), gl.SCALAR, gl.FLOAT, minmax=True),
                                            output=add(key_xyz, gl.VEC3, gl.FLOAT), interpolation="LINEAR"))
        channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                            target=gl.AnimationChannelTarget(node=len(nodes) - 1,
                                                                             path="translation")))

    gltf = gl.GLTF2(
        asset=gl.Asset(generator="kmm.viz.mesh (mannequin-x, Apache-2.0)"),
        scene=0, scenes=[gl.Scene(nodes=roots)], nodes=nodes, meshes=meshes, materials=materials,
        skins=[gl.Skin(name="mannequin", joints=joint_node, skeleton=joint_node[0], inverseBindMatrices=a_ibm)],
        animations=[gl.Animation(name="motion", samplers=samplers, channels=channels)],
        accessors=accessors, bufferViews=views, buffers=[gl.Buffer(byteLength=len(blob))],
    )
    if follow:
        gltf.extensionsUsed = ["KHR_materials_unlit"]
    gltf.set_binary_blob(bytes(blob))
    path = Path(path)
    gltf.save_binary(str(path))
    return path


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3), (F, 3) -> (V, 3) float32 unit area-weighted vertex normals."""
    tri = verts[faces.astype(np.int64)]  # (F, 3, 3)
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (F, 3)
    n = np.zeros_like(verts, dtype=np.float64)
    for k in range(3):
        np.add.at(n, faces[:, k].astype(np.int64), face_n)
    return rot.normalize(n).astype(np.float32)


def glb_skinned_vertices(path, frame: int) -> np.ndarray:
    """Evaluate a .glb written by :func:`motion_to_glb` at one key frame -> (V, 3) world vertices.

    A small reference evaluator (node hierarchy + linear blend skinning) used to test the file.
    """
    import pygltflib as gl

    gltf = gl.GLTF2().load(str(path))
    blob = gltf.binary_blob()

    def read(i: int) -> np.ndarray:
        acc = gltf.accessors[i]
        view = gltf.bufferViews[acc.bufferView]
        dtype = {gl.FLOAT: np.float32, gl.UNSIGNED_BYTE: np.uint8, gl.UNSIGNED_INT: np.uint32}[acc.componentType]
        width = {gl.SCALAR: 1, gl.VEC3: 3, gl.VEC4: 4, gl.MAT4: 16}[acc.type]
        return np.frombuffer(blob, dtype, acc.count * width, view.byteOffset).reshape(acc.count, width)

    trs = {i: [np.array(n.translation or [0, 0, 0], float), np.array(n.rotation or [0, 0, 0, 1], float),
               np.array(n.scale or [1, 1, 1], float)] for i, n in enumerate(gltf.nodes)}
    anim = gltf.animations[0]
    for ch in anim.channels:
        values = read(gltf.animations[0].samplers[ch.sampler].output)
        trs[ch.target.node][{"translation": 0, "rotation": 1, "scale": 2}[ch.target.path]] = values[frame]

    def matrix(i: int) -> np.ndarray:
        t, q, s = trs[i]
        out = np.eye(4)
        out[:3, :3] = rot.quat_to_matrix(np.array([q[3], q[0], q[1], q[2]])) * s
        out[:3, 3] = t
        return out

    world: dict[int, np.ndarray] = {}

    def visit(i: int, parent: np.ndarray) -> None:
        world[i] = parent @ matrix(i)
        for c in gltf.nodes[i].children or []:
            visit(c, world[i])

    for root in gltf.scenes[0].nodes:
        visit(root, np.eye(4))
    skin = gltf.skins[0]
    attrs = gltf.meshes[0].primitives[0].attributes
    ibm = read(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    joint_mats = np.stack([world[n] for n in skin.joints]) @ ibm  # (J, 4, 4)
    v = np.concatenate([read(attrs.POSITION), np.ones((read(attrs.POSITION).shape[0], 1))], 1)  # (V, 4)
    mats = np.einsum("vk,vkij->vij", read(attrs.WEIGHTS_0), joint_mats[read(attrs.JOINTS_0).astype(int)])
    return np.einsum("vij,vj->vi", mats, v)[:, :3]
