"""Rotation helpers for the motion representation (paper §3.1 data; METHOD.md §1).

Pure numpy functions, batched over any leading dims, float64 inside. Conventions:
- a rotation matrix acts on column vectors, ``v' = R @ v``; shapes ``(..., 3, 3)``;
- quaternions are ``(w, x, y, z)``, shapes ``(..., 4)``;
- 6D = the first two columns of the matrix, flattened column by column: ``(c0, c1)`` -> ``(..., 6)``;
- Euler "ZXY" means ``R = Rz(a) @ Rx(b) @ Ry(c)`` (intrinsic, in the order the BVH channels list them).
"""

import numpy as np

_EPS = 1e-12


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def normalize(v, axis: int = -1) -> np.ndarray:
    """Unit vectors along ``axis``; zero vectors stay zero."""
    v = _f64(v)
    n = np.linalg.norm(v, axis=axis, keepdims=True)
    return v / np.maximum(n, _EPS)


# ----------------------------------------------------------------------------- quaternions

def quat_mul(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Hamilton product ``q * r``: (..., 4), (..., 4) -> (..., 4)."""
    q, r = _f64(q), _f64(r)
    w1, x1, y1, z1 = np.moveaxis(q, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(r, -1, 0)
    return np.stack([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ], axis=-1)


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Conjugate (= inverse of a unit quaternion): (..., 4) -> (..., 4)."""
    return _f64(q) * np.array([1.0, -1.0, -1.0, -1.0])


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors by unit quaternions: (..., 4), (..., 3) -> (..., 3)."""
    q, v = _f64(q), _f64(v)
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternion -> (..., 3, 3) rotation matrix."""
    w, x, y, z = np.moveaxis(normalize(q), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], axis=-2)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrix -> (..., 4) unit quaternion with w >= 0 (Shepperd's method)."""
    m = _f64(m)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 1. four candidate solutions, each well conditioned where its |component| is largest
    cands = np.stack([
        np.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                  m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                  m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                  m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                  1 - m00 - m11 + m22], -1),
    ], axis=-2)  # (..., 4 candidates, 4)
    # 2. pick the candidate whose diagonal term is largest
    best = np.argmax(np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                               1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1), axis=-1)
    q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    q = normalize(q)
    return np.where(q[..., :1] < 0, -q, q)


def quat_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Shortest-arc (minimal twist) rotation taking direction ``u`` to direction ``v``.

    (..., 3), (..., 3) -> (..., 4). Opposite vectors rotate by pi about an axis perpendicular to u;
    a zero vector gives the identity. Example: u = +X, v = +Y -> 90 degrees about +Z.
    """
    u, v = normalize(u), normalize(v)
    dot = np.sum(u * v, axis=-1, keepdims=True)  # (..., 1)
    axis = np.cross(u, v)  # (..., 3)
    q = np.concatenate([1.0 + dot, axis], axis=-1)  # (..., 4), = 2cos(a/2) * q_true
    # 1. opposite directions: any axis perpendicular to u works
    opposite = (1.0 + dot[..., 0]) < 1e-9
    if np.any(opposite):
        pick = np.where(np.abs(u[..., :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
        perp = normalize(np.cross(u, pick))
        q = np.where(opposite[..., None], np.concatenate([np.zeros_like(dot), perp], -1), q)
    # 2. zero-length input: identity
    zero = (np.linalg.norm(u, axis=-1) < 0.5) | (np.linalg.norm(v, axis=-1) < 0.5)
    q = np.where(zero[..., None], np.array([1.0, 0.0, 0.0, 0.0]), q)
    return normalize(q)


# ----------------------------------------------------------------------------- matrices

def rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Matrix form of :func:`quat_between`: (..., 3), (..., 3) -> (..., 3, 3)."""
    return quat_to_matrix(quat_between(u, v))


def yaw_matrix(angle: np.ndarray) -> np.ndarray:
    """Rotation about +Y by ``angle`` rad (takes +Z to (sin a, 0, cos a)): (...,) -> (..., 3, 3)."""
    a = _f64(angle)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def apply(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``m @ v`` for batches: (..., 3, 3), (..., 3) -> (..., 3)."""
    return np.einsum("...ij,...j->...i", _f64(m), _f64(v))


def matrix_to_6d(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 6): first column then second column."""
    m = _f64(m)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def sixd_to_matrix(d6: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two columns (Zhou et al. 2019)."""
    d6 = _f64(d6)
    c0 = normalize(d6[..., :3])
    c1 = normalize(d6[..., 3:] - np.sum(c0 * d6[..., 3:], -1, keepdims=True) * c0)
    return np.stack([c0, c1, np.cross(c0, c1)], axis=-1)


def kabsch(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Best-fit rotation R minimising sum_i w_i |R src_i - dst_i|^2 (no translation, no reflection).

    (..., N, 3), (..., N, 3) -> (..., 3, 3). Points are used as given (centre them first if needed).
    """
    src, dst = _f64(src), _f64(dst)
    if weights is not None:
        src = src * _f64(weights)[..., None]
    # 1. cross-covariance H = sum_i src_i dst_i^T
    h = np.einsum("...ni,...nj->...ij", src, dst)  # (..., 3, 3)
    # 2. SVD, then flip the smallest axis if the fit would be a reflection
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.swapaxes(-1, -2) @ u.swapaxes(-1, -2)))
    d = np.where(d == 0, 1.0, d)
    fix = np.stack([np.ones_like(d), np.ones_like(d), d], -1)  # (..., 3)
    return vt.swapaxes(-1, -2) @ (fix[..., :, None] * u.swapaxes(-1, -2))


def euler_zxy_to_matrix(angles: np.ndarray) -> np.ndarray:
    """(..., 3) radians (z, x, y) -> (..., 3, 3) = Rz(z) @ Rx(x) @ Ry(y)."""
    a = _f64(angles)
    z, x, y = a[..., 0], a[..., 1], a[..., 2]
    cz, sz, cx, sx, cy, sy = np.cos(z), np.sin(z), np.cos(x), np.sin(x), np.cos(y), np.sin(y)
    return np.stack([
        np.stack([cz * cy - sz * sx * sy, -sz * cx, cz * sy + sz * sx * cy], -1),
        np.stack([sz * cy + cz * sx * sy, cz * cx, sz * sy - cz * sx * cy], -1),
        np.stack([-cx * sy, sx, cx * cy], -1),
    ], axis=-2)


def matrix_to_euler_zxy(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) radians (z, x, y) with m = Rz(z) @ Rx(x) @ Ry(y); x in [-pi/2, pi/2]."""
    m = _f64(m)
    # 1. x from m[2,1] = sin x, using atan2 for precision near the poles
    cx = np.hypot(m[..., 0, 1], m[..., 1, 1])
    x = np.arctan2(m[..., 2, 1], cx)
    # 2. regular case
    z = np.arctan2(-m[..., 0, 1], m[..., 1, 1])
    y = np.arctan2(-m[..., 2, 0], m[..., 2, 2])
    # 3. gimbal lock (cos x ~ 0): z and y share one axis; put it all in z
    lock = cx < 1e-9
    if np.any(lock):
        z = np.where(lock, np.arctan2(m[..., 1, 0], m[..., 0, 0]), z)
        y = np.where(lock, 0.0, y)
    return np.stack([z, x, y], axis=-1)
