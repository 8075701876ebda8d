"""Shared fixtures: `mini_dir` (the 16-clip data set) and `tiny_bundle` (a complete weights folder trained
once per test session with the tiny recipe, ~20 s on CPU). Test processes use one torch thread."""
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

MINI_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmu-desc-s01-07-mini"


@pytest.fixture(scope="session")
def mini_dir() -> Path:
    if not (MINI_DATA / "motions.npz").is_file():
        pytest.skip(f"mini data set not found at {MINI_DATA}")
    return MINI_DATA


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, mini_dir) -> Path:
    """normalizer + tokenizer/ residual/ kmm/ kmm-random/ transformer/ (+ train_log.jsonl, trainer_state.json)."""
    from kmm.data import load_dataset
    from kmm.train import tiny_recipe, train_all

    out = tmp_path_factory.mktemp("tiny-bundle")
    try:
        train_all(load_dataset(mini_dir), out, tiny_recipe(), cache_dir=tmp_path_factory.mktemp("tiny-cache"))
    finally:
        torch.set_num_threads(1)   # train_all sets the recipe's thread count
    return out
