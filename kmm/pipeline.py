"""Text → motion: the one place that loads weights and runs the models — paper §3.2 inference, §3.4.

    pipe = Pipeline.from_pretrained("assets/kmm")           # or a Hub repo id (see kmm.hub)
    out = pipe.generate([("a person walks forward", 4.0), ("a person waves the right hand", None)], seed=0)
    out.joints  # (T, 22, 3) metres, Y up, 20 fps; out.boundaries = [0, 80, ...]; out.texts

Token grid (the one documented rounding): a segment of s seconds gets n = max(1, round(s · 20 / 4))
tokens = 4n frames, so lengths are multiples of 0.2 s (3 s → 60 frames, 2 s → 40, 2.5 s → 48).
All segments are generated jointly (each token conditioned on its own segment's text); timelines longer
than the generator's window are generated in overlapping windows (overlap fixed from the previous window).

Output joints (`kmm.motion.cleanup.clean_joints`): on the one fixed skeleton `retarget.REST_OFFSETS` (constant
bone lengths), feet on the floor, planted feet locked (`foot_lock=True`); the raw decoded features stay in the
result, so editing and the tokens are untouched by this clean-up.

Segment texts reach the text encoders as the training captions read (`model_text`): a clause without a
subject ("kicks with the right leg", "walk forward", split off a longer prompt) becomes "a person kicks with
the right leg" / "a person walks forward". Every training caption is such a sentence; a bare verb phrase is far
from all of them in the sentence encoder, and the Motion Mamba baseline's guided diffusion extrapolated it
into broken bodies (bones ×3-10, pelvis at 2 m).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from kmm.backends import BammBackend, LatentBackend, MaskedBackend
from kmm.config import DEFAULT_GUIDANCE
from kmm.generators.bamm.model import Bamm
from kmm.generators.kmm.model import MaskedGenerator
from kmm.model.residual import ResidualPredictor
from kmm.model.text import TextTop
from kmm.model.tokenizer import MotionTokenizer
from kmm.model.weights import WeightsError
from kmm.motion.cleanup import clean_joints
from kmm.motion.features import Normalizer, features_to_joints
from kmm.motion.skeleton import FPS
from kmm.segment import Segment, validate_timeline

GENERATOR_NAMES = ("kmm", "kmm-random", "transformer", "bamm", "motion-mamba")


def available_generators(path: str | Path) -> list[str]:
    """The generators a bundle folder holds weights for, in GENERATOR_NAMES order (a bundle may ship a subset)."""
    root = Path(path)
    return [g for g in GENERATOR_NAMES
            if (root / g / "model.safetensors").is_file() and (g != "motion-mamba" or (root / "motion-vae").is_dir())]
DECODER_CONTEXT_TOKENS = 9   # tokenizer / VAE decoder receptive field (±8.5 tokens), rounded up
EDIT_FADE_FRAMES = 8         # an edit eases from the kept joints into the re-cleaned ones over this many frames


@dataclass
class MotionResult:
    joints: np.ndarray              # (T, 22, 3) float32
    features: np.ndarray            # (T, 263) float32, un-normalised
    codes: torch.Tensor             # (N, Q) token ids, or (N, C) latents for motion-mamba (kept for editing)
    boundaries: list[int]           # frame boundaries, len = segments + 1
    texts: list[str]
    seconds: list[float]            # per segment, after the token grid
    seed: int
    guidance: float
    model_id: str
    timings: dict = field(default_factory=dict)
    foot_lock: bool = True          # whether `joints` had planted feet locked
    control: dict = field(default_factory=dict)   # key poses / path asked for and how they were met (kmm.control)

    @property
    def n_frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def raw_joints(self) -> np.ndarray:
        """(T, 22, 3) joints straight from the decoded features (before the skeleton / floor / foot clean-up)."""
        return features_to_joints(self.features)


def get_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def frames_per_token() -> int:
    return 4


_SUBJECT = re.compile(r"^(a|an|the|one|this|that|some)\s+\w+|^(someone|somebody|person|people|he|she|they|"
                      r"i|we|you|it|man|woman|human|character|figure|dancer|actor)\b", re.IGNORECASE)


def _third_person(verb: str) -> str:
    """walk -> walks, punch -> punches, carry -> carries, go -> goes; kicks / press -> kicks / presses."""
    low = verb.lower()
    if low in {"go", "do"}:
        return verb + "es"
    if low == "have":
        return verb[:-2] + "s"
    if low.endswith(("ss", "sh", "ch", "x", "z")):
        return verb + "es"
    if low.endswith("s"):
        return verb
    if re.search(r"[^aeiou]y$", low):
        return verb[:-1] + "ies"
    return verb + "s"


def model_text(text: str) -> str:
    """A segment text as the training captions read: "kicks with the right leg" -> "a person kicks with the
    right leg", "Walk forward" -> "a person walks forward"; a text with a subject ("a man bows", "someone
    jumps") is returned unchanged. Only the first word (a verb, when there is no subject) is touched."""
    t = " ".join(text.split())
    if not t or _SUBJECT.match(t):
        return t
    first, _, rest = t.partition(" ")
    if not first.isalpha() or first.lower().endswith("ly"):      # "slowly walk ...": leave the verb alone
        return f"a person {t[0].lower()}{t[1:]}"
    first = _third_person(first[0].lower() + first[1:])
    return f"a person {first} {rest}".strip()


def seconds_to_tokens(seconds: float) -> int:
    """3.0 -> 15 tokens (60 frames); 2.5 -> 12 tokens (48 frames); never below 1 token."""
    return max(1, int(round(seconds * FPS / frames_per_token())))


class Pipeline:
    """Holds one backend (kmm.backends) plus the normaliser and text encoder; `generate` / `regenerate_segment`."""

    def __init__(self, backend, normalizer: Normalizer, text_backbone, model_id: str, device=None):
        self.device = get_device(device)
        self.backend = backend
        for m in vars(backend).values():
            if isinstance(m, torch.nn.Module):
                m.to(self.device).eval()
        self.normalizer = normalizer
        self.backbone = text_backbone
        self.model_id = model_id
        # the token backends' parts, for the model card's measurements
        self.tokenizer = getattr(backend, "tokenizer", None)
        self.residual = getattr(backend, "residual", None)
        self.generator = getattr(backend, "generator", None) or getattr(backend, "bamm", None) \
            or getattr(backend, "denoiser", None)
        self.residual_layers = getattr(backend, "n_residual", 0)

    # --- loading ------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, generator: str = "kmm", device: str | None = None,
                        text_backbone=None, model_id: str | None = None) -> "Pipeline":
        """Loads a bundle folder: normalizer.safetensors, tokenizer/, residual/, <generator>/
        (motion-mamba: motion-vae/ and motion-mamba/ instead of tokenizer/, residual/).

        residual/ is optional: without it, or when pipeline.json says "residual_layers": 0, the token
        generators decode the base codebook layer alone (no ResidualPredictor is loaded).
        pipeline.json "residual_root": "base" takes the root's path from the base layer when residual layers are
        decoded ("all", the default: from all layers; `kmm.backends._TokenDecoder`)."""
        from kmm.config import TextConfig
        from kmm.text_backbone import shared_backbone

        root = Path(path)
        if not root.is_dir():
            raise WeightsError(f"weights folder not found: {root}")
        if generator not in GENERATOR_NAMES:
            raise WeightsError(f"unknown generator {generator!r}; choose from {GENERATOR_NAMES}")
        if generator not in available_generators(root):
            raise WeightsError(f"{root} has no weights for {generator!r}; it holds {available_generators(root)}")
        norm_path = root / "normalizer.safetensors"
        if not norm_path.is_file():
            raise WeightsError(f"missing {norm_path}")
        try:
            stats = {k: v.numpy() for k, v in load_file(str(norm_path)).items()}
        except Exception as e:  # noqa: BLE001
            raise WeightsError(f"corrupt {norm_path}: {e}") from e
        text_cfg = TextConfig()
        backbone = text_backbone or shared_backbone(None, text_cfg.max_tokens)
        frozen_text = TextTop(text_cfg).eval()
        frozen_text.load_bert_layer(backbone.last_layer_state(), "")
        if generator == "motion-mamba":
            from kmm.generators.motion_mamba.model import MotionMambaDenoiser
            from kmm.generators.motion_mamba.vae import MotionVAE

            backend = LatentBackend(MotionVAE.from_pretrained(root / "motion-vae"),
                                    MotionMambaDenoiser.from_pretrained(root / "motion-mamba"), frozen_text)
        else:
            tok = MotionTokenizer.from_pretrained(root / "tokenizer")
            q = tok.config.n_quantizers - 1
            settings = {}
            if (root / "pipeline.json").is_file():
                try:
                    settings = json.loads((root / "pipeline.json").read_text())
                except ValueError as e:
                    raise WeightsError(f"bad {root / 'pipeline.json'}: {e}") from e
            # how many residual codebook layers the predictor fills in (0 = base layer only); chosen per bundle on
            # the validation split by `python -m kmm export-weights` and stored in pipeline.json
            n_res = settings.get("residual_layers")
            has_res = (root / "residual").is_dir()
            n_res = (q if has_res else 0) if n_res is None else max(0, min(q, int(n_res)))
            if n_res > 0 and not has_res:
                raise WeightsError(f"{root / 'pipeline.json'} asks for {n_res} residual layers but "
                                   f"{root / 'residual'} is missing")
            res = ResidualPredictor.from_pretrained(root / "residual") if n_res > 0 else None
            # where the root's path comes from when residual layers are decoded (kmm.backends._TokenDecoder)
            root_mode = settings.get("residual_root", "all")
            if root_mode not in ("all", "base"):
                raise WeightsError(f"{root / 'pipeline.json'}: residual_root must be \"all\" or \"base\", "
                                   f"not {root_mode!r}")
            if generator == "bamm":
                backend = BammBackend(Bamm.from_pretrained(root / "bamm"), tok, res, frozen_text, n_res)
            else:
                backend = MaskedBackend(MaskedGenerator.from_pretrained(root / generator), tok, res, frozen_text, n_res)
            backend.root_from_base = root_mode == "base"
        return cls(backend, Normalizer.from_dict(stats), backbone, model_id or f"{root.name}/{generator}", device)

    # --- text -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _text(self, texts: list[str]):  # -> generator text (S, 384), residual text (S, 384)
        hidden, mask = self.backbone([model_text(t) for t in texts])
        return self.backend.text(hidden.to(self.device), mask.to(self.device))

    @torch.no_grad()
    def predict_seconds(self, texts: list[str], seed: int = 0) -> list[float]:
        """The model's own length for each text, in seconds (length head; BAMM: its [END] token)."""
        n = self.backend.predict_tokens(self._text(texts), self._generator(seed))
        return [int(k) * frames_per_token() / FPS for k in n]

    # --- generation -----------------------------------------------------------------------------
    def _plan(self, segments, seed: int = 0):
        segs = validate_timeline([s if isinstance(s, Segment) else Segment(*s) for s in segments])
        texts = [s.text for s in segs]
        missing = [i for i, s in enumerate(segs) if s.seconds is None]
        seconds = [s.seconds for s in segs]
        if missing:
            guess = self.predict_seconds([texts[i] for i in missing], seed)
            for i, g in zip(missing, guess):
                seconds[i] = g
        n_tok = [seconds_to_tokens(s) for s in seconds]
        return texts, n_tok

    def _seg_ids(self, n_tok):  # -> (1, N)
        return torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(n_tok)])[None].to(self.device)

    @torch.no_grad()
    def _decode(self, codes):  # (N, ...) -> features (4N, 263) float32 numpy
        feats = self.normalizer.denormalize(self.backend.decode(codes)[None])[0]
        return feats.float().cpu().numpy()

    @staticmethod
    def _joints(features: np.ndarray, foot_lock: bool = True) -> np.ndarray:
        return clean_joints(features, foot_lock=foot_lock)

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(int(seed))

    @torch.no_grad()
    def generate(self, segments, seed: int = 0, guidance: float = DEFAULT_GUIDANCE, steps: int = 10,
                 temperature: float = 1.0, foot_lock: bool = True, *, keyposes=None, path=None,
                 candidates: int = 1) -> MotionResult:
        """segments: [(text, seconds or None), ...] -> MotionResult. Same seed → same joints.
        `foot_lock`: lock the feet the model predicts as planted (module docstring); off keeps them as decoded.
        Control (kmm.control): `keyposes` {"times": (K,) s, "joints": (K, 22, 3)} or [(s, (22, 3)), ...] the motion
        passes through; `path` "T:X,Z;..." or [(s, x, z), ...] floor waypoints the pelvis reaches, both in the
        output's frame (frame 0's pelvis at x = z = 0, facing +Z, +X the body's left). `candidates` > 1 samples
        that many motions (seed, then derived seeds) and keeps the one the path had to bend least."""
        from kmm.control import Control

        t0 = time.perf_counter()
        control = Control.make(keyposes, path)
        texts, n_tok = self._plan(segments, seed)
        cond = self._text(texts)
        seg_ids = self._seg_ids(n_tok)
        t1 = time.perf_counter()
        if control is None:
            codes = self.backend.sample(cond, seg_ids, self._generator(seed), guidance, steps, temperature)
            t2 = time.perf_counter()
            features = self._decode(codes)
            joints = self._joints(features, foot_lock)
            info = {}
        else:
            codes, features, joints, info, t_tok = self._controlled(control, cond, seg_ids, seed, guidance, steps,
                                                                    temperature, foot_lock, candidates)
            t2 = t1 + t_tok
        t3 = time.perf_counter()
        out = self._result(joints, features, codes, n_tok, texts, seed, guidance,
                           {"text_s": t1 - t0, "tokens_s": t2 - t1, "decode_s": t3 - t2, "total_s": t3 - t0},
                           foot_lock)
        if control is not None:
            out.control = {**control.summary(out.n_frames), **info}
        return out

    def _controlled(self, control, cond, seg_ids, seed, guidance, steps, temperature, foot_lock, candidates):
        """Key-pose tokens in-painted (kmm.control.keyposes), the root path warped after decoding; of
        `candidates` samples the one with the least path correction. -> codes, features, joints, info, token seconds."""
        from kmm.control.keyposes import keypose_codes

        n = seg_ids.shape[1]
        control.targets(n * frames_per_token())           # times checked against the length before any compute
        fixed, mask = keypose_codes(self.backend, self.normalizer, control.keyposes, n) if control.keyposes \
            else (None, None)
        if fixed is not None:
            fixed, mask = fixed.to(self.device), mask.to(self.device)
        best, t_tok = None, 0.0
        for i in range(max(1, int(candidates))):
            t = time.perf_counter()
            codes = self.backend.sample(cond, seg_ids, self._generator(seed + 7919 * i), guidance, steps,
                                        temperature, fixed=fixed, fixed_mask=mask)
            t_tok += time.perf_counter() - t
            features, joints, info = control.apply(self._decode(codes), foot_lock)
            info = {**info, "candidate": i}
            if best is None or info.get("path_cost", 0.0) < best[3].get("path_cost", 0.0):
                best = (codes, features, joints, info)
        return (*best, t_tok)

    def _result(self, joints, features, codes, n_tok, texts, seed, guidance, timings, foot_lock=True):
        fpt = frames_per_token()
        bounds = [0] + list(np.cumsum([n * fpt for n in n_tok]).astype(int))
        return MotionResult(joints, features, codes.cpu(), [int(b) for b in bounds], list(texts),
                            [n * fpt / FPS for n in n_tok], int(seed), float(guidance), self.model_id, timings,
                            bool(foot_lock))

    @torch.no_grad()
    def regenerate_segment(self, result: MotionResult, index: int, *, seed: int, text: str | None = None,
                           guidance: float | None = None, steps: int = 10, margin_tokens: int = 2,
                           foot_lock: bool = True) -> MotionResult:
        """Regenerates segment `index` (0-based) with a new seed and/or text; every other token stays.

        The tokens of the segment plus `margin_tokens` on each side (the two transitions) are resampled.
        Decoded features are spliced: outside the resampled tokens ± the decoder's receptive field they are
        copied bit for bit from `result`, so the other segments' poses stay exactly as they were (their
        global placement after the edit follows the new segment's root path). The output joints are cleaned
        again from the spliced features (`foot_lock` as in `generate`).
        """
        S = len(result.texts)
        if not 0 <= index < S:
            raise ValueError(f"segment index {index + 1} out of range 1..{S}")
        texts = list(result.texts)
        if text is not None:
            texts[index] = text
        fpt = frames_per_token()
        n_tok = [(result.boundaries[i + 1] - result.boundaries[i]) // fpt for i in range(S)]
        segs = validate_timeline([Segment(t, n * fpt / FPS) for t, n in zip(texts, n_tok)])
        texts = [s.text for s in segs]
        g = result.guidance if guidance is None else guidance
        cond = self._text(texts)
        seg_ids = self._seg_ids(n_tok)
        a, b = result.boundaries[index] // fpt, result.boundaries[index + 1] // fpt
        lo, hi = max(0, a - margin_tokens), min(sum(n_tok), b + margin_tokens)
        old = result.codes.to(self.device)
        fixed_mask = torch.ones(old.shape[0], dtype=torch.bool, device=self.device)
        fixed_mask[lo:hi] = False
        codes = self.backend.sample(cond, seg_ids, self._generator(seed), g, steps, 1.0, fixed=old,
                                    fixed_mask=fixed_mask)
        new_feats = self._decode(codes)
        f_lo = max(0, (lo - DECODER_CONTEXT_TOKENS) * fpt)
        f_hi = min(len(new_feats), (hi + DECODER_CONTEXT_TOKENS) * fpt)
        features = result.features.copy()
        features[f_lo:f_hi] = new_feats[f_lo:f_hi]
        joints = self._joints(features, foot_lock)
        if result.foot_lock == foot_lock and f_lo > 0:
            # the clean-up (floor, foot lock) looks a few frames across: before the edit, keep the shown joints
            # bit for bit, easing into the new ones over frames whose tokens were kept (nearly equal features)
            fade = min(EDIT_FADE_FRAMES, f_hi - f_lo)
            w = (np.arange(1, fade + 1) / (fade + 1))[:, None, None]
            joints[f_lo:f_lo + fade] = (1 - w) * result.joints[f_lo:f_lo + fade] + w * joints[f_lo:f_lo + fade]
            joints[:f_lo] = result.joints[:f_lo]
        return self._result(joints, features, codes, n_tok, texts, seed, g, {}, foot_lock)
