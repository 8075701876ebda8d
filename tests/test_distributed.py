"""Data-parallel training: 2 CPU processes under torchrun (gloo) train every stage of the tiny recipe, log
world_size 2, and give the tokenizer the weights and loss of one process on the same global batch."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kmm import distributed as ddp

REPO = Path(__file__).resolve().parents[1]
STEPS = 3


def test_shard_bounds_split_the_global_batch():
    assert [ddp.shard_bounds(8, r, 2) for r in range(2)] == [(0, 4), (4, 8)]
    assert [ddp.shard_bounds(6, r, 3) for r in range(3)] == [(0, 2), (2, 4), (4, 6)]
    with pytest.raises(ddp.DistributedError, match="does not split evenly across 3"):
        ddp.shard_bounds(8, 0, 3)


def test_one_process_helpers_change_nothing():
    x = torch.arange(6.0)
    assert ddp.world_size() == 1 and ddp.is_main() and ddp.shard(x) is x
    loss = torch.tensor(2.5)
    assert ddp.mean_for_log(loss, {"a": 1.0}) == (2.5, {"a": 1.0})
    step = ddp.wrap(torch.nn.Linear(2, 1), lambda model, v: model(v).sum())
    assert not isinstance(step, torch.nn.parallel.DistributedDataParallel)


def _rows(run: Path, stage: str):
    return [r for r in map(json.loads, (run / "train_log.jsonl").read_text().splitlines())
            if r.get("stage") == stage and "step" in r]


def test_torchrun_two_processes_match_one(mini_dir, tmp_path):
    from kmm.data import load_dataset
    from kmm.train import tiny_recipe, train_all

    run2 = tmp_path / "run2"
    env = {**os.environ, "KMM_DATA": str(mini_dir), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "kmm", "train",
           "--recipe", "tiny", "--steps", str(STEPS), "--generators", "kmm,bamm",   # kmm-random/transformer: kmm's path
           "--out", str(run2), "--cache", str(tmp_path / "cache2")]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    # every stage trained under DDP, rank 0 alone wrote the log, every row says world_size 2
    rows = [json.loads(x) for x in (run2 / "train_log.jsonl").read_text().splitlines()]
    assert rows and all(r["world_size"] == 2 for r in rows)
    for stage in ("tokenizer", "residual", "kmm", "bamm", "motion-vae", "motion-mamba"):
        assert [r["step"] for r in _rows(run2, stage)] == [STEPS], stage
        assert (run2 / stage / "model.safetensors").is_file()
    # one process, same recipe and global batch: the tokenizer's weights and logged loss agree
    run1 = tmp_path / "run1"
    recipe = dataclasses.replace(tiny_recipe(), tokenizer_steps=STEPS)
    try:
        train_all(load_dataset(mini_dir), run1, recipe, stages=("tokenizer",), cache_dir=tmp_path / "cache1")
    finally:
        torch.set_num_threads(1)
    one, two = load_file(str(run1 / "tokenizer" / "model.safetensors")), load_file(str(run2 / "tokenizer" /
                                                                                       "model.safetensors"))
    assert one.keys() == two.keys()
    moved = max(float((one[k].float() - two[k].float()).abs().max()) for k in one)   # EMA codebooks too
    assert moved < 1e-4, moved
    assert _rows(run1, "tokenizer")[-1]["loss"] == pytest.approx(_rows(run2, "tokenizer")[-1]["loss"], rel=1e-5)
