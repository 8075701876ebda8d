"""Shared fixtures: `mini_dir` (the 16-clip data set) and `tiny_bundle` (a complete weights folder trained
once per test session with the tiny recipe, ~20 s on CPU). Test processes use one torch thread."""
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

DATA_ROOT = Path(os.environ.get("KMM_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
MINI_DATA = DATA_ROOT / "cmu-desc-s01-07-mini"


@pytest.fixture(scope="session")
def mini_dir() -> Path:
    if not (MINI_DATA / "motions.npz").is_file():
        pytest.skip(f"mini data set not found at {MINI_DATA} (set KMM_DATA to the data folder)")
    return MINI_DATA


@pytest.fixture(scope="session")
def mini_motions(mini_dir) -> dict:
    """clip id -> (T, 22, 3) joints of the mini set, as stored (float16)."""
    with np.load(mini_dir / "motions.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


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


@pytest.fixture(scope="module")
def app_server(request, tiny_bundle, mini_dir):
    """The Gradio app (build_demo) served on a free 127.0.0.1 port with the tiny bundle; yields its URL.

    A test module may set `APP_ENV = {...}` for extra environment variables.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KMM_WEIGHTS", str(tiny_bundle))
        mp.setenv("KMM_DATA", str(mini_dir))
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        mp.delenv("KMM_MODEL_REPO", raising=False)
        for k, v in getattr(request.module, "APP_ENV", {}).items():
            mp.setenv(k, v)
        import app

        demo = app.build_demo().queue(default_concurrency_limit=2, max_size=32)
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            demo.close()
