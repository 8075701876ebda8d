"""Data-parallel training with PyTorch's own engine (`torchrun` + DistributedDataParallel).

    torchrun --standalone --nproc_per_node=2 -m kmm train --recipe tiny --out runs/tiny

How a step is shared (every rank runs the same code):
1. every rank holds the same numpy / torch generators (same seed), so every rank draws the same *global*
   batch — clip indices, crops, captions and the training noise (mask ratios, masked positions, diffusion
   steps) — exactly as a single process does;
2. each rank keeps its contiguous slice of it (`shard`): rank r of W gets rows [r·B/W, (r+1)·B/W);
3. the forward pass and the loss run on the slice inside DistributedDataParallel (`wrap`), which averages
   the gradients in the backward pass; for a loss that is a mean over equal-sized slices this is the
   single-process gradient (the tokenizer: the same weights up to float rounding, see tests);
4. the EMA codebooks of the tokenizer's quantisers are updated from the gathered global batch
   (`sync_ema_quantizers`), so they too match a single process;
5. rank 0 alone writes checkpoints, the normaliser, the feature cache and the log; every rank reads them.

Nothing here changes a single-process run: with WORLD_SIZE unset or 1 every helper is the identity.
Backends: gloo for CPU tensors (the training loops run on the CPU), NCCL when a CUDA device is passed.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

from kmm.errors import DistributedError  # noqa: F401  (defined in kmm/errors.py; this name kept)


def env_world_size() -> int:
    """WORLD_SIZE as torchrun sets it (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def init(device: str | torch.device = "cpu") -> int:
    """Join the process group described by torchrun's env vars (RANK, WORLD_SIZE, MASTER_ADDR, ...).

    Returns the world size; does nothing (returns 1) outside torchrun. Idempotent.
    """
    if is_distributed():
        return dist.get_world_size()
    if env_world_size() <= 1:
        return 1
    device = torch.device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return dist.get_world_size()


def shutdown() -> None:
    """Leave the process group (no barrier: a rank that failed must not hang the others' exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. writes a cache file), then the other ranks (which read it)."""
    if is_main():
        yield
        barrier()
    else:
        barrier()
        yield


def shard_bounds(n: int, rank_: int, world: int) -> tuple[int, int]:
    """Rows [start, stop) of a global batch of n that rank `rank_` of `world` trains on.

    >>> shard_bounds(8, 1, 2)
    (4, 8)
    """
    if n % world:
        raise DistributedError(f"global batch {n} does not split evenly across {world} processes: choose a "
                               f"batch divisible by the number of processes (nproc_per_node × nnodes)")
    per = n // world
    return rank_ * per, (rank_ + 1) * per


def shard(batch):
    """This rank's slice (along dim 0) of a global batch: a tensor, array or list. Identity in one process."""
    if not is_distributed():
        return batch
    start, stop = shard_bounds(len(batch), rank(), world_size())
    return batch[start:stop]


def check_batch(name: str, n: int) -> None:
    """Refuse a recipe batch that does not split evenly (raises DistributedError naming the field)."""
    if is_distributed() and n % world_size():
        raise DistributedError(f"recipe field {name}={n} does not split evenly across {world_size()} processes")


class _LossModule(nn.Module):
    """model + loss function as one module, so DDP sees every parameter the loss touches."""

    def __init__(self, model: nn.Module, loss_fn: Callable):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, *args, **kwargs):
        return self.loss_fn(self.model, *args, **kwargs)


def wrap(model: nn.Module, loss_fn: Callable) -> Callable:
    """`loss_fn(model, *args)` as a callable `step(*args)`; under torchrun it runs inside
    DistributedDataParallel, whose backward pass averages the gradients over ranks.

    The model itself stays unwrapped (saving, validation and inference use it as usual). Buffers are not
    broadcast: every rank keeps them identical by construction (same seed, same updates).
    """
    if not is_distributed():
        return functools.partial(loss_fn, model)
    device_ids = [torch.cuda.current_device()] if next(model.parameters()).is_cuda else None
    no_buffer_sync = ({"forward_sync_buffers": False}   # torch >= 2.13 name of broadcast_buffers=False
                      if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
                      else {"broadcast_buffers": False})
    return nn.parallel.DistributedDataParallel(_LossModule(model, loss_fn), device_ids=device_ids, **no_buffer_sync)


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's (N_r, ...) tensor along dim 0, in rank order (= the global batch order)."""
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def sync_ema_quantizers(model: nn.Module) -> None:
    """Make every EMA quantiser of `model` update its codebook from the whole global batch.

    Each quantiser's `_update(x, idx)` gets the rows of all ranks (gathered in rank order), so the codebook,
    its dead-code restarts and the random rows they draw are those of a single process on the global batch.
    No-op in one process.
    """
    if not is_distributed():
        return
    from kmm.model.quantizer import EMAQuantizer

    for module in model.modules():
        if isinstance(module, EMAQuantizer) and not getattr(module, "_kmm_synced", False):
            local_update = module._update

            def update(x, idx, _local=local_update):
                _local(gather_rows(x), gather_rows(idx))

            module._update = update
            module._kmm_synced = True


def mean_for_log(loss: torch.Tensor, parts: dict) -> tuple[float, dict]:
    """The loss and its parts averaged over ranks (the global batch's values), for the log.

    Every rank must call it at the same step. One process: `(loss.item(), parts)` unchanged.
    """
    if not is_distributed():
        return loss.item(), parts
    keys = list(parts)
    values = torch.tensor([float(loss.item())] + [float(parts[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    values /= world_size()
    return float(values[0]), {k: float(v) for k, v in zip(keys, values[1:])}

