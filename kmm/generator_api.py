"""What the pipeline needs from a generator family: the one small interface behind KMM, its masked baselines,
BAMM and Motion Mamba (documentation + a type; the implementations are in kmm/backends.py).

`kmm.pipeline.Pipeline` holds one `GeneratorBackend` and is the only caller; evaluation (kmm/eval), the
benchmarks, the model card and the app reach a generator only through the pipeline. A sixth generator is
one more class with these five methods, plus its loading branch in `Pipeline.from_pretrained`.

The grid: every backend works on one code (token or latent) per 4 frames, N codes for 4N frames, so the
timeline, the sampling windows, editing and key-pose control are the same for all of them. "Codes" are
whatever the family decodes from: token ids (N, Q) for the token models (base layer + residual layers,
-1 where a layer is skipped), latents (N, C) for Motion Mamba.

    cond = backend.text(hidden, mask)                        # once per timeline (S segments)
    n = backend.predict_tokens(cond, generator)               # (S,) lengths in codes, when the user gave none
    codes = backend.sample(cond, seg_ids, generator, guidance, steps, temperature)   # (N, ...)
    features = backend.decode(codes)                          # (4N, 263), normalised
    known = backend.encode(features[None])                    # (N, ...): key poses / editing in codes

Everything is a tensor on the pipeline's device; `generator` is a `torch.Generator` (same seed, same motion).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

# (per-segment text for the generator (S, D), per-segment text for the residual layers (S, D)); the two are
# the same tensor for the families that use the frozen sentence embedding alone (BAMM, Motion Mamba)
Cond = tuple["torch.Tensor", "torch.Tensor"]


@runtime_checkable
class GeneratorBackend(Protocol):
    window: int
    """Codes one sampling window covers (the model's `max_tokens`); longer timelines are sampled in overlapping
    windows (kmm.generators.kmm.sampling.sample_windows)."""

    def text(self, hidden: torch.Tensor, mask: torch.Tensor) -> Cond:
        """Frozen backbone states (S, L, 384) and their mask (S, L) -> the family's text conditioning."""

    def predict_tokens(self, cond: Cond, generator: torch.Generator | None) -> torch.Tensor:
        """(S,) long: each segment's length in codes, when the user leaves it to the model."""

    def sample(self, cond: Cond, seg_ids: torch.Tensor, generator: torch.Generator | None, guidance: float,
               steps: int, temperature: float, fixed: torch.Tensor | None = None,
               fixed_mask: torch.Tensor | None = None) -> torch.Tensor:
        """seg_ids (1, N): which segment's text each code follows -> codes (N, ...).

        `guidance`: classifier-free guidance scale; `steps`: decoding steps (mask-predict iterations or DDIM
        steps; BAMM ignores it); `fixed` (N, ...) / `fixed_mask` (N,) bool: codes kept as given (editing a
        segment, key poses), the rest generated around them."""

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (N, ...) -> normalised motion features (4N, 263) (kmm.motion.features; the pipeline
        denormalises)."""

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Normalised features (1, 4N, 263) -> codes (N, ...) of the family's own kind (key-pose control)."""
