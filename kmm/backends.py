"""The three ways a loaded model turns a timeline into motion latents; `kmm.pipeline.Pipeline` drives one of them.

- `MaskedBackend`: KMM and the masked baselines (kmm-random, transformer) — windowed mask-predict over base-layer
  tokens, then the residual layers (paper §3.2 inference, §3.4).
- `BammBackend`: BAMM — cascaded decoding (autoregressive round with [END], then bidirectional refinement),
  then the same residual layers and tokenizer decoder.
- `LatentBackend`: Motion Mamba — DDIM in the motion VAE's latent space, decoded by the VAE.
Every backend works on the same grid (one code/latent per 4 frames), so timelines, windows and editing are
shared. Models arrive loaded; no I/O here.

Interface: `text(hidden, mask) -> cond`, `predict_tokens(cond, generator) -> (S,) tokens`,
`sample(cond, seg_ids, generator, guidance, steps, temperature, fixed, fixed_mask) -> codes (N, ...)`,
`decode(codes) -> normalised features (4N, 263)`, `encode(normalised features (1, 4N, 263)) -> codes (N, ...)`
(key-pose in-painting, kmm.control).
"""
from __future__ import annotations

import torch

from kmm.generators.bamm.decoding import cascaded_decode
from kmm.generators.kmm.sampling import guided, mask_predict, residual_layers, sample_windows, sample_windows_batched
from kmm.motion.skeleton import FEATURE_SLICES


# the root's path channels: yaw velocity and planar velocity (the height stays with the pose)
ROOT_PATH = slice(FEATURE_SLICES["root_rot_vel"].start, FEATURE_SLICES["root_lin_vel"].stop)


class _TokenDecoder:
    """Base layer -> residual layers -> tokenizer decoder (shared by the masked generators and BAMM).

    `root_from_base` (pipeline.json "residual_root": "base"; ours, issue #13): decode the residual layers for the
    body, but take the root's path (yaw and planar velocity, `ROOT_PATH`) from the base layer decoded alone. The
    predicted residual codes are mostly guesses (the predictor is right for ~5% of codes), and besides the limb
    detail they add (higher kicks, clearer jumps) they add small per-frame root velocities that the path
    integrates into drift: squats in place travelled 0.5-1.3 m. The base layer the generator chose keeps the path.
    """

    root_from_base = False

    def __init__(self, tokenizer, residual, residual_text, n_residual: int):
        self.tokenizer, self.residual, self.residual_text = tokenizer, residual, residual_text
        self.n_residual = n_residual

    def finish(self, base, text_res, seg_ids, fixed=None, fixed_mask=None):  # base (1, N) -> codes (N, Q)
        """The residual layers are filled only when a predictor is loaded (`residual` may be None: base layer only)."""
        N = base.shape[1]
        if self.residual is None:
            self.n_residual = 0
        lengths = torch.tensor([N], device=base.device)
        codes = residual_layers(self.residual, self.tokenizer.code_vectors, base, lengths, text_res[None], seg_ids,
                                self.n_residual + 1,
                                fixed=None if fixed is None else fixed[None],
                                fixed_mask=None if fixed_mask is None else fixed_mask[None])[0]
        unused = self.tokenizer.config.n_quantizers - codes.shape[-1]
        if unused:  # layers the decoder should skip (code -1)
            codes = torch.cat([codes, codes.new_full((N, unused), -1)], dim=-1)
        return codes

    def decode(self, codes):  # (N, Q) -> (4N, 263) normalised features
        feats = self.tokenizer.decode(codes[None])[0]
        if self.root_from_base and codes.shape[-1] > 1 and bool((codes[..., 1:] >= 0).any()):
            base = codes.clone()
            base[..., 1:] = -1                                                      # the base layer alone
            feats = feats.clone()
            feats[..., ROOT_PATH] = self.tokenizer.decode(base[None])[0][..., ROOT_PATH]
        return feats

    def encode(self, features):  # (1, 4N, 263) normalised -> (N, Q) token ids
        device = next(self.tokenizer.parameters()).device
        return self.tokenizer.encode(features.to(device))[0]


def _windows(window_fn, N, window, fixed, fixed_mask, empty):
    """Runs kmm.generators.kmm.sampling.sample_windows with a quarter-window overlap; fixed (N, ...) / fixed_mask (N,)."""
    return sample_windows(window_fn, N, window, window // 4,
                          fixed=None if fixed is None else fixed[None].cpu(),
                          fixed_mask=None if fixed_mask is None else fixed_mask[None].cpu(), empty=empty)


OVERLAP = 16      # tokens (3.2 s) each window takes over from the one before: context for the transition
LONG_WINDOW = 4   # opt-in long windows: this many times the training length (MaskedBackend.window)


def decode_window(config, long: bool = False) -> int:
    """Tokens per decoding window: the training length `max_tokens` (64, 12.8 s), or with `long` for a Mamba
    generator LONG_WINDOW × that (256 tokens): its cost is linear in the length, so fewer tokens are decoded twice
    in overlaps and a 10-minute timeline takes 13 windows instead of 63 — 35–45% less decoding time. Not the
    default: the shipped generator was trained on windows of at most 64 tokens, and past that length the timeline
    examples' checks pass at 55 of 80 seeds instead of 61 (the 14–16-s examples 06–08: 2 of 24 instead of 14;
    round 15, with residual layers: 56 instead of 63, and inside one timeline of all the examples 46 instead of
    55: results/profile.md §14),
    while held-out captions move little (`python -m kmm long-window`, results/long_window.json). A generator trained
    on longer windows (`generator.max_tokens` 256, `Recipe.window_min_tokens`, `Recipe.pair_at_boundaries`)
    decodes in them by default (results/long_windows_training/; issue #16)."""
    return LONG_WINDOW * config.max_tokens if long and getattr(config, "backbone", "") == "mamba" else config.max_tokens


class MaskedBackend(_TokenDecoder):
    batch_windows = False   # True: long timelines' windows in two batches (faster, jerkier; kmm.generators.kmm.sampling)
    segment_schedules = True  # windows longer than the training clips: one unmasking schedule per segment

    def __init__(self, generator, tokenizer, residual, residual_text, n_residual: int):
        super().__init__(tokenizer, residual, residual_text, n_residual)
        self.generator = generator
        self.window = decode_window(generator.config)                   # tokens per window: the training length
        self.overlap = min(OVERLAP, generator.config.max_tokens // 4)   # tokens fixed from the previous window

    def set_generator(self, generator) -> None:
        """Use `generator`, with the windows of its own training length (as a new backend would)."""
        self.__init__(generator, self.tokenizer, self.residual, self.residual_text, self.n_residual)

    def text(self, hidden, mask):  # -> (fine-tuned text (S, 384), frozen text (S, 384))
        return self.generator.encode_text(hidden, mask), self.residual_text(hidden, mask)[1]

    def predict_tokens(self, cond, generator=None):  # length head, most likely class
        return self.generator.length_logits(cond[0]).argmax(-1) + 1

    def sample(self, cond, seg_ids, generator, guidance, steps, temperature, fixed=None, fixed_mask=None):
        gen, device = self.generator, seg_ids.device
        text = cond[0][None]                                                         # (1, S, 384)

        def batch_fn(spans, fixed_b, known_b, lengths):  # B windows at once (kmm.generators.kmm.sampling.sample_windows_batched)
            W = fixed_b.shape[1]
            seg = torch.stack([torch.nn.functional.pad(seg_ids[0, a:b], (0, W - (b - a))) for a, b in spans])
            lengths = lengths.to(device)
            fn = guided(gen, lengths, text.expand(len(spans), -1, -1), seg, guidance)
            # a window longer than the training clips: each segment on its own unmasking schedule
            groups = seg if W > gen.config.max_tokens and self.segment_schedules else None
            return mask_predict(fn, lengths, W, gen.mask_id, steps, generator, fixed=fixed_b.to(device),
                                fixed_mask=known_b.to(device), temperature=temperature, groups=groups).cpu()

        N = seg_ids.shape[1]
        base = sample_windows_batched(batch_fn, N, self.window, self.overlap,
                                      fixed=None if fixed is None else fixed[None, :, 0].cpu(),
                                      fixed_mask=None if fixed_mask is None else fixed_mask[None].cpu(),
                                      batched=self.batch_windows).to(device)
        return self.finish(base, cond[1], seg_ids, fixed, fixed_mask)


class BammBackend(_TokenDecoder):
    """Guidance g from the caller becomes (g + 1, g) for the two rounds: the default 3 gives the paper's 4 / 3.
    `steps` does not apply (round 1 is one step per token, round 2 one pass)."""

    def __init__(self, bamm, tokenizer, residual, residual_text, n_residual: int):
        super().__init__(tokenizer, residual, residual_text, n_residual)
        self.bamm = bamm
        self.window = bamm.config.max_tokens

    def text(self, hidden, mask):  # frozen sentence embedding for both (paper: frozen CLIP)
        pooled = self.residual_text(hidden, mask)[1]
        return pooled, pooled

    def predict_tokens(self, cond, generator):  # round 1 alone, per text, until [END]
        return torch.tensor([cascaded_decode(self.bamm, t[None, None], generator, refine=False).shape[1]
                             for t in cond[0]])

    def sample(self, cond, seg_ids, generator, guidance, steps, temperature, fixed=None, fixed_mask=None):
        device = seg_ids.device
        text = cond[0][None]

        def window_fn(start, end, fixed_w, known_w):
            seg = seg_ids[:, start:end]
            seg = torch.cat([seg, seg[:, -1:]], 1)                                   # [END] slot: last segment
            return cascaded_decode(self.bamm, text, generator, length=end - start, seg_ids=seg,
                                   guidance=(guidance + 1.0, guidance), fixed=fixed_w.to(device),
                                   fixed_mask=known_w.to(device), temperature=temperature)

        base = _windows(window_fn, seg_ids.shape[1], self.window, None if fixed is None else fixed[:, 0],
                        fixed_mask, None).to(device)
        return self.finish(base, cond[1], seg_ids, fixed, fixed_mask)


class LatentBackend:
    """`steps` = DDIM steps; guidance s as in (1 + s)·cond − s·uncond. Every DDIM step clamps the predicted clean
    latents to ±`clip_x0` (in units of the training latents' per-channel std; `kmm.generators.motion_mamba.diffusion.clip_prediction`):
    without it, guided sampling with few steps leaves the range the VAE decoder was trained on, and the decoded
    body breaks (bones ×2-4, pelvis up to 1.6 m; issue #14)."""

    clip_x0 = 2.0

    def __init__(self, vae, denoiser, text_top):
        self.vae, self.denoiser, self.text_top = vae, denoiser, text_top
        self.window = denoiser.config.max_tokens

    def text(self, hidden, mask):
        pooled = self.text_top(hidden, mask)[1]
        return pooled, pooled

    def predict_tokens(self, cond, generator=None):
        return self.denoiser.length_logits(cond[0]).argmax(-1) + 1

    def sample(self, cond, seg_ids, generator, guidance, steps, temperature, fixed=None, fixed_mask=None):
        from kmm.generators.motion_mamba.diffusion import sample_latents

        device = seg_ids.device
        text = cond[0][None]
        C = self.denoiser.config.latent_dim

        def window_fn(start, end, fixed_w, known_w):
            known = bool(known_w.any())
            return sample_latents(self.denoiser, text, seg_ids[:, start:end], generator, guidance=guidance,
                                  steps=steps, fixed=fixed_w.to(device) if known else None,
                                  fixed_mask=known_w.to(device) if known else None, clip_x0=self.clip_x0).cpu()

        N = seg_ids.shape[1]
        return _windows(window_fn, N, self.window, fixed, fixed_mask, torch.zeros(1, N, C))[0].to(device)

    def decode(self, latents):  # (N, C) -> (4N, 263)
        return self.vae.decode(latents[None])[0]

    def encode(self, features):  # (1, 4N, 263) normalised -> (N, C) posterior means
        device = next(self.vae.parameters()).device
        return self.vae.encode(features.to(device))[0][0]
