"""Evaluation metrics (METHOD.md §5), pure numpy/scipy functions on embeddings and joint positions.

Embedding metrics take evaluator embeddings as arrays: text ``(N, D)``, motion ``(N, D)`` where row i of
each is a matching (text, motion) pair. Motion metrics take joint positions ``(T, 22, 3)`` in metres,
Y up, at ``fps`` frames per second. Randomness comes only from the ``rng`` argument (a
``numpy.random.Generator``, an int seed, or ``None`` for fresh entropy), so a fixed seed gives fixed numbers.

Where we differ from the common HumanML3D (T2M) evaluation scripts, it is said in the docstring:
R-precision breaks distance ties against the true motion, diversity/multimodality never pair a sample
with itself, and confidence intervals use the t-distribution instead of 1.96.
"""

from __future__ import annotations

import numpy as np

from kmm.motion.skeleton import FOOT_JOINTS, FPS, PARENTS


def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {x.shape}")
    return x


def _pairs(rng: np.random.Generator, n: int, size) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random index pairs ``(i, j)`` with ``i != j`` from ``range(n)``; arrays of shape ``size``."""
    i = rng.integers(n, size=size)
    j = (i + rng.integers(1, n, size=size)) % n  # offset in 1..n-1 -> j uniform over the others
    return i, j


# --- text-motion matching ---------------------------------------------------------------------------

def euclidean_distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances: ``(N, D), (M, D) -> (N, M)``.

    >>> euclidean_distance_matrix(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [0.0, 1.0]]))
    array([[5., 1.]])
    """
    a, b = _as_2d(a, "a"), _as_2d(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T  # (N, M)
    return np.sqrt(np.maximum(sq, 0.0))  # rounding can make a zero distance slightly negative


def r_precision(
    text_emb: np.ndarray,
    motion_emb: np.ndarray,
    top_k: int = 3,
    batch_size: int = 32,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """R-precision top-1..k: how often a text's own motion is among its k nearest motions in a batch.

    Steps: 1. order the N pairs (shuffled by ``rng`` if given, else as given); 2. cut them into batches
    of ``batch_size`` pairs, dropping an incomplete last batch (unless N < batch_size: then one batch of
    N); 3. in each batch rank the batch's motions by distance to each text; 4. return, for k = 1..top_k,
    the fraction of texts whose true motion ranks within the first k.

    The rank of the true motion counts every motion at distance ``<=`` the true one, so ties go against
    it: an evaluator that maps everything to one point scores 0, not 1.

    Perfect embeddings (``motion_emb == text_emb``, distinct rows) give ``[1., 1., 1.]``; random ones
    give about ``[1/32, 2/32, 3/32]``.
    """
    text_emb, motion_emb = _as_2d(text_emb, "text_emb"), _as_2d(motion_emb, "motion_emb")
    if text_emb.shape != motion_emb.shape:
        raise ValueError(f"text and motion embeddings differ in shape: {text_emb.shape} vs {motion_emb.shape}")
    n = len(text_emb)
    if n == 0 or top_k < 1 or batch_size < 1:
        raise ValueError("need at least one pair, top_k >= 1 and batch_size >= 1")

    # 1. order
    order = np.random.default_rng(rng).permutation(n) if rng is not None else np.arange(n)
    # 2. batches
    size = min(batch_size, n)
    n_batches = n // size
    hits = np.zeros(top_k)
    for b in range(n_batches):
        idx = order[b * size:(b + 1) * size]
        dist = euclidean_distance_matrix(text_emb[idx], motion_emb[idx])  # (B, B) text x motion
        # 3. rank of the true motion (0 = nearest), ties counted against it
        true = np.diag(dist)[:, None]  # (B, 1)
        rank = (dist <= true).sum(1) - 1  # (B,)
        # 4. top-k hits
        hits += (rank[:, None] < np.arange(1, top_k + 1)[None, :]).sum(0)
    return hits / (n_batches * size)


def mm_dist(text_emb: np.ndarray, motion_emb: np.ndarray) -> float:
    """MM-Dist: mean Euclidean distance between each text and its own motion.

    >>> mm_dist(np.zeros((2, 2)), np.array([[3.0, 4.0], [1.0, 0.0]]))
    3.0
    """
    text_emb, motion_emb = _as_2d(text_emb, "text_emb"), _as_2d(motion_emb, "motion_emb")
    if text_emb.shape != motion_emb.shape:
        raise ValueError(f"text and motion embeddings differ in shape: {text_emb.shape} vs {motion_emb.shape}")
    return float(np.linalg.norm(text_emb - motion_emb, axis=1).mean())


# --- distribution metrics ---------------------------------------------------------------------------

def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    d² = |mu1 − mu2|² + tr(sigma1 + sigma2 − 2 (sigma1 sigma2)^½), as in the standard FID code: if the
    matrix square root is not finite (singular product) it is retried with ``eps`` added to both
    diagonals; a numerically complex root keeps its real part when the imaginary residue is small
    (else it is retried with the offset too, then it raises). The result is clipped at 0, since only
    rounding makes it negative.

    >>> frechet_distance(np.zeros(2), np.eye(2), np.array([3.0, 4.0]), np.eye(2))
    25.0
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, sigma {sigma1.shape}/{sigma2.shape}")

    def sqrt_product(offset: float) -> np.ndarray | None:
        shift = np.eye(len(mu1)) * offset
        from scipy import linalg   # lazy: keeps scipy out of the generate cold start

        root = linalg.sqrtm((sigma1 + shift) @ (sigma2 + shift))
        if not np.isfinite(root).all():
            return None
        if np.iscomplexobj(root):
            if not np.allclose(np.diagonal(root).imag, 0.0, atol=1e-3):
                return None
            root = root.real
        return root

    covmean = sqrt_product(0.0)
    if covmean is None:
        covmean = sqrt_product(eps)
    if covmean is None:
        raise ValueError("matrix square root of sigma1 @ sigma2 failed even with a diagonal offset")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


def fid(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """FID between two embedding sets ``(N, D)`` and ``(M, D)``: fit a Gaussian to each (mean,
    unbiased covariance) and take :func:`frechet_distance`. Needs at least 2 rows per set.
    """
    emb_a, emb_b = _as_2d(emb_a, "emb_a"), _as_2d(emb_b, "emb_b")
    if len(emb_a) < 2 or len(emb_b) < 2:
        raise ValueError("FID needs at least 2 embeddings per set")
    return frechet_distance(
        emb_a.mean(0), np.cov(emb_a, rowvar=False), emb_b.mean(0), np.cov(emb_b, rowvar=False)
    )


def diversity(
    emb: np.ndarray, n_pairs: int = 300, rng: np.random.Generator | int | None = None
) -> float:
    """Diversity: mean distance over ``n_pairs`` random pairs of distinct embeddings ``(N, D)``, N >= 2.

    Unlike the T2M script (two independent index draws), a sample is never paired with itself.
    Identical embeddings give 0.
    """
    emb = _as_2d(emb, "emb")
    if len(emb) < 2:
        raise ValueError("diversity needs at least 2 embeddings")
    i, j = _pairs(np.random.default_rng(rng), len(emb), n_pairs)
    return float(np.linalg.norm(emb[i] - emb[j], axis=1).mean())


def multimodality(
    emb: np.ndarray, n_pairs: int = 10, rng: np.random.Generator | int | None = None
) -> float:
    """MultiModality: mean distance between pairs of generations for the same text.

    ``emb`` is ``(n_texts, n_repeats, D)`` with n_repeats >= 2; for every text, ``n_pairs`` random pairs
    of distinct repeats are drawn and the mean distance over all texts and pairs is returned.
    """
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 3 or emb.shape[1] < 2:
        raise ValueError(f"emb must be (n_texts, n_repeats >= 2, D), got shape {emb.shape}")
    n_texts, n_repeats, _ = emb.shape
    i, j = _pairs(np.random.default_rng(rng), n_repeats, (n_texts, n_pairs))  # (n_texts, n_pairs)
    rows = np.arange(n_texts)[:, None]
    return float(np.linalg.norm(emb[rows, i] - emb[rows, j], axis=-1).mean())


# --- motion quality ---------------------------------------------------------------------------------

def jerk_curve(joints: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Per-frame jerk: ``(T, J, 3) -> (T - 3,)`` in m/s³.

    Third finite difference of positions times fps³, L1 over xyz (|jx|+|jy|+|jz|), max over joints.
    FlowMDM reports the same quantity without the fps³ factor (m/frame³): divide by ``fps**3`` to compare.

    Constant velocity or constant acceleration gives zeros; x = t³ (t in seconds) gives 6 everywhere.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[-1] != 3 or joints.shape[0] < 4:
        raise ValueError(f"joints must be (T >= 4, J, 3), got shape {joints.shape}")
    d3 = np.diff(joints, n=3, axis=0) * float(fps) ** 3  # (T-3, J, 3)
    return np.abs(d3).sum(-1).max(-1)  # (T-3,)


def transition_jerk(
    joints: np.ndarray, boundaries, window: int = 60, fps: float = FPS
) -> np.ndarray:
    """Mean jerk curve around segment transitions (FlowMDM protocol): ``-> (window - 3,)``.

    ``boundaries`` are frame indices where a new segment starts. For each internal boundary b
    (0 < b < T) take frames ``[b - window // 2, b - window // 2 + window)``, skip it if that window does
    not fit in the clip, compute :func:`jerk_curve` on it, and average the curves.

    Example: T = 200, boundaries [0, 100, 190], window 60 → only b = 100 is used (190 runs past the end).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if window < 4:
        raise ValueError("window must be at least 4 frames")
    n_frames = len(joints)
    curves = []
    for b in np.asarray(boundaries, dtype=np.int64).ravel():
        start = int(b) - window // 2
        if not 0 < b < n_frames or start < 0 or start + window > n_frames:
            continue
        curves.append(jerk_curve(joints[start:start + window], fps))
    if not curves:
        raise ValueError(f"no {window}-frame window around the boundaries {list(boundaries)} fits in {n_frames} frames")
    return np.mean(curves, axis=0)


def peak_jerk(curve: np.ndarray) -> float:
    """Peak Jerk (PJ): the maximum of a (transition) jerk curve. ``peak_jerk([1, 5, 2]) == 5.0``."""
    return float(np.max(curve))


def area_under_jerk(curve: np.ndarray, real_mean_jerk: float) -> float:
    """Area Under Jerk (AUJ) = Σ_t |curve[t] − real_mean_jerk|, a plain sum over the curve's frames
    (no division by fps), as in FlowMDM's evaluation code.

    ``real_mean_jerk`` is the mean jerk of real motion, in the same units as ``curve``.
    ``area_under_jerk([1, 3], 2) == 2.0``.
    """
    return float(np.abs(np.asarray(curve, dtype=np.float64) - real_mean_jerk).sum())


def foot_skating_ratio(
    joints: np.ndarray,
    fps: float = FPS,
    height_thresh: float = 0.05,
    speed_thresh: float = 0.5,
    foot_joints=FOOT_JOINTS,
) -> float:
    """Fraction of frame steps in which a foot slides while on the floor, in ``[0, 1]``.

    A step t → t+1 skates when, for some foot joint, its height is below ``height_thresh`` (metres above
    the clip's lowest foot-joint height) at both frames, and its horizontal (xz) speed exceeds
    ``speed_thresh`` m/s. The default 0.5 m/s is 2.5 cm per frame at 20 fps, as in common protocols
    (GMD, OmniControl). Returns skating steps / (T − 1).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[-1] != 3 or joints.shape[0] < 2:
        raise ValueError(f"joints must be (T >= 2, J, 3), got shape {joints.shape}")
    feet = joints[:, list(foot_joints)]  # (T, F, 3)
    height = feet[..., 1] - feet[..., 1].min()  # (T, F), relative to the lowest foot height
    on_floor = (height[:-1] < height_thresh) & (height[1:] < height_thresh)  # (T-1, F)
    speed = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=0), axis=-1) * fps  # (T-1, F) m/s
    skating = (on_floor & (speed > speed_thresh)).any(-1)  # (T-1,)
    return float(skating.mean())


# --- physical plausibility (ours) -------------------------------------------------------------------
# The floor is y = 0 (the data folders' convention); generated joints are scored as they are shown.

AIRBORNE_HEIGHT = 0.05    # m: the lowest foot joint higher than this is off the ground
SUPPORT_SPEED = 1.0       # m/s: a lowest foot joint slower than this is carrying the body


def _lowest_foot(joints: np.ndarray, fps: float, foot_joints=FOOT_JOINTS) -> tuple[np.ndarray, np.ndarray]:
    """(T, J, 3) -> height (T,) of the lowest foot joint, speed (T,) m/s of that same joint (central)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[-1] != 3 or joints.shape[0] < 2:
        raise ValueError(f"joints must be (T >= 2, J, 3), got shape {joints.shape}")
    feet = joints[:, list(foot_joints)]                                        # (T, F, 3)
    low = feet[..., 1].argmin(axis=1)                                          # (T,)
    vel = np.gradient(feet, axis=0) * fps                                      # (T, F, 3)
    rows = np.arange(len(feet))
    return feet[rows, low, 1], np.linalg.norm(vel[rows, low], axis=-1)


def foot_float(joints: np.ndarray, fps: float = FPS, foot_joints=FOOT_JOINTS) -> float:
    """Mean height (m) of the lowest foot joint above the floor on frames where it carries the body (slower than
    SUPPORT_SPEED): a body that stands, walks or lands touches the floor, so real motion scores about 0.
    Below the floor counts as 0 here (see :func:`foot_penetration`); nan when no frame is supported.

    A body standing still 0.1 m above the floor: 0.1.
    """
    height, speed = _lowest_foot(joints, fps, foot_joints)
    supported = speed < SUPPORT_SPEED
    return float(np.maximum(height[supported], 0.0).mean()) if supported.any() else float("nan")


def foot_penetration(joints: np.ndarray, foot_joints=FOOT_JOINTS) -> float:
    """Mean depth (m) of the lowest foot joint below the floor, over all frames (0 when never below)."""
    joints = np.asarray(joints, dtype=np.float64)
    low = joints[:, list(foot_joints), 1].min(axis=1)
    return float(np.maximum(-low, 0.0).mean())


def airborne_stats(joints: np.ndarray, fps: float = FPS, foot_joints=FOOT_JOINTS,
                   height: float = AIRBORNE_HEIGHT) -> dict:
    """Time off the ground: {"airborne_share": share of frames whose lowest foot is above `height`,
    "airborne_max_s": the longest such run in seconds}. A real standing jump is off the ground 0.5-0.7 s."""
    joints = np.asarray(joints, dtype=np.float64)
    off = joints[:, list(foot_joints), 1].min(axis=1) > height                # (T,)
    longest, run = 0, 0
    for v in off:
        run = run + 1 if v else 0
        longest = max(longest, run)
    return {"airborne_share": float(off.mean()), "airborne_max_s": longest / float(fps)}


def bone_length_spread(joints: np.ndarray) -> float:
    """Largest over bones of the standard deviation over frames of the bone's length (m): 0 on one fixed
    skeleton; how much a decoded body stretches and shrinks otherwise."""
    joints = np.asarray(joints, dtype=np.float64)
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, list(PARENTS[1:])], axis=-1)   # (T, 21)
    return float(lengths.std(axis=0).max())


def body_integrity(joints: np.ndarray, rest_lengths: np.ndarray, foot_joints=FOOT_JOINTS,
                   height: float = AIRBORNE_HEIGHT) -> dict:
    """Is the body whole? {"bone_ratio_max": longest bone over its rest length, "leg_ratio_max": the same over the
    thighs and shins only (short bones such as the collars stretch most under decoder noise), "pelvis_max_m": the
    highest pelvis above the floor (y = 0) on frames where a foot is down (lowest foot joint <= `height`), nan
    when there is none}. A broken decoded body: ratios ≫ 1 and a pelvis near 2 m; a body on the fixed skeleton
    standing: 1, 1, ~0.9 m."""
    joints = np.asarray(joints, dtype=np.float64)
    ratio = np.linalg.norm(joints[:, 1:] - joints[:, list(PARENTS[1:])], axis=-1) / np.asarray(rest_lengths)
    legs = [j - 1 for j in (4, 5, 7, 8)]                                        # knees, ankles: thigh, shin bones
    down = joints[:, list(foot_joints), 1].min(axis=1) <= height
    return {"bone_ratio_max": float(ratio.max()), "leg_ratio_max": float(ratio[:, legs].max()),
            "pelvis_max_m": float(joints[down, 0, 1].max()) if down.any() else float("nan")}


def plausibility(joints: np.ndarray, fps: float = FPS) -> dict:
    """All of the above for one motion: float_m, penetration_m, airborne_share, airborne_max_s, bone_spread_m."""
    return {"float_m": foot_float(joints, fps), "penetration_m": foot_penetration(joints),
            **airborne_stats(joints, fps), "bone_spread_m": bone_length_spread(joints)}


# --- reporting --------------------------------------------------------------------------------------

def mean_ci95(values) -> tuple[float, float]:
    """Mean and half-width of its 95% confidence interval over repeats (e.g. seeds).

    Half-width = t(0.975, n−1) · s / √n with the sample standard deviation s (t-distribution, not the
    1.96 of the T2M scripts, which is too narrow for a handful of seeds); 0 for a single value.

    >>> mean, half = mean_ci95([1.0, 2.0, 3.0])  # s = 1, t(0.975, 2) = 4.3027
    >>> mean, round(half, 4)  # 4.3027 / sqrt(3)
    (2.0, 2.4841)
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("mean_ci95 needs at least one value")
    mean = float(values.mean())
    if values.size == 1:
        return mean, 0.0
    from scipy import stats

    half = stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return mean, float(half)
