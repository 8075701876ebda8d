"""Structured pruning of the KMM generator (issue #16: speed on a CPU; not in the paper).

KMM's bidirectional Mamba block does ~1.24× the multiply-adds of a same-width transformer layer
(results/profile.md), so at fp32 it cannot be as fast without doing less work. This removes whole channels:
Mamba channels of each direction (`d_inner`: in_proj x/z rows, the depthwise conv, x_proj columns, dt_proj
rows, A, D, out_proj columns) and feed-forward units (`ff_dim`), keeping those that matter most. The pruned
model is then fine-tuned (a recipe with `generator.d_inner` / `generator.ff_dim` and `init_from` the pruned
bundle) and evaluated like any other.

Importance (activation × weight, as in Wanda, Sun et al. 2023), measured on calibration generations:
    Mamba channel c:      mean |y_c| · ‖out_proj[:, c]‖   (y: the gated scan output, out_proj's input)
    feed-forward unit j:  mean |a_j| · ‖W2[:, j]‖          (a: the GELU output, W2's input)
A Mamba channel also feeds Δ, B, C of the others through x_proj; that path is not scored (the fine-tune that
follows absorbs it).

1. `collect_importance`: forward pre-hooks on every out_proj and second feed-forward linear while the caller
   runs calibration generations (the reference scan path, so the hooks see y; same outputs to float rounding).
2. `prune_generator`: keep the top-k channels per direction and block (in their original order) and the top-k
   feed-forward units per block; every other parameter is copied unchanged.
No file or network I/O here; the command in kmm/prune_cli.py does it.
"""
from __future__ import annotations

import contextlib
import dataclasses

import torch

from kmm.generators.kmm.model import MaskedGenerator
from kmm.model.mamba import BiMambaBlock, Mamba
from kmm.model.shared_mamba import SharedBiMambaBlock
from kmm.ops.scan import reference_scan


@contextlib.contextmanager
def collect_importance(gen: MaskedGenerator):
    """Within the block, generator passes accumulate channel importances; yields a dict filled on exit:
    {"blocks.{i}.fwd" / ".bwd": (d_inner,) and "blocks.{i}.ff": (ff_dim,) importance tensors}."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    result: dict[str, torch.Tensor] = {}
    handles = []

    def hook(name):
        def pre(_module, inputs):                         # inputs[0]: (..., C) activations
            a = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).double()
            sums[name] = sums.get(name, 0) + a.sum(0)
            counts[name] = counts.get(name, 0) + a.shape[0]
        return pre

    weights = {}
    for i, block in enumerate(gen.blocks):
        if not isinstance(block, BiMambaBlock) or isinstance(block, SharedBiMambaBlock):
            raise TypeError("pruning needs the Mamba backbone with one Mamba per direction (not shared_proj)")
        for side in ("fwd", "bwd"):
            m: Mamba = getattr(block, side)
            handles.append(m.out_proj.register_forward_pre_hook(hook(f"blocks.{i}.{side}")))
            weights[f"blocks.{i}.{side}"] = m.out_proj.weight
        handles.append(block.ff[2].register_forward_pre_hook(hook(f"blocks.{i}.ff")))
        weights[f"blocks.{i}.ff"] = block.ff[2].weight
    try:
        with reference_scan():
            yield result
    finally:
        for h in handles:
            h.remove()
    if not sums:
        raise RuntimeError("no generator pass ran inside collect_importance")
    for name, s in sums.items():                                                   # mean |a| · ‖column‖
        result[name] = (s / counts[name]).float() * weights[name].detach().norm(dim=0).float()


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest scores, in increasing index order (channels keep their order)."""
    if not 0 < k <= len(scores):
        raise ValueError(f"cannot keep {k} of {len(scores)} channels")
    return scores.topk(k).indices.sort().values


def _prune_mamba(src: Mamba, dst: Mamba, keep: torch.Tensor) -> None:
    d = src.d_inner
    with torch.no_grad():
        dst.in_proj.weight.copy_(src.in_proj.weight[torch.cat([keep, d + keep])])     # rows [x | z]
        dst.conv1d.weight.copy_(src.conv1d.weight[keep])
        dst.conv1d.bias.copy_(src.conv1d.bias[keep])
        dst.x_proj.weight.copy_(src.x_proj.weight[:, keep])
        dst.dt_proj.weight.copy_(src.dt_proj.weight[keep])
        dst.dt_proj.bias.copy_(src.dt_proj.bias[keep])
        dst.A_log.copy_(src.A_log[keep])
        dst.D.copy_(src.D[keep])
        dst.out_proj.weight.copy_(src.out_proj.weight[:, keep])


def prune_generator(gen: MaskedGenerator, importance: dict, d_inner: int, ff_dim: int) -> MaskedGenerator:
    """-> a new MaskedGenerator with `d_inner` Mamba channels per direction and `ff_dim` feed-forward units per
    block (the most important ones, `collect_importance`); all other weights copied."""
    config = dataclasses.replace(gen.config, d_inner=d_inner, ff_dim=ff_dim)
    out = MaskedGenerator(config)
    src_state = gen.state_dict()
    skip = ("blocks.",)
    out.load_state_dict({k: v for k, v in src_state.items() if not k.startswith(skip)}, strict=False)
    for i, (src, dst) in enumerate(zip(gen.blocks, out.blocks)):
        dst.norm.load_state_dict(src.norm.state_dict())
        dst.norm_ff.load_state_dict(src.norm_ff.state_dict())
        for side in ("fwd", "bwd"):
            _prune_mamba(getattr(src, side), getattr(dst, side), _top(importance[f"blocks.{i}.{side}"], d_inner))
        keep = _top(importance[f"blocks.{i}.ff"], ff_dim)
        with torch.no_grad():
            dst.ff[0].weight.copy_(src.ff[0].weight[keep])
            dst.ff[0].bias.copy_(src.ff[0].bias[keep])
            dst.ff[2].weight.copy_(src.ff[2].weight[:, keep])
            dst.ff[2].bias.copy_(src.ff[2].bias)
    return out.eval()
