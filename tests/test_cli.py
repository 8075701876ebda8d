"""`python -m kmm data check` and `python -m kmm export` on the mini dataset."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KMM_DATA") or REPO.parent / "shared" / "data")
MINI = SHARED_DATA / "cmu-desc-s01-07-mini"

pytestmark = [
    pytest.mark.skipif(not (MINI / "motions.npz").exists(), reason=f"no test data at {MINI}"),
    pytest.mark.skipif(importlib.util.find_spec("kmm.motion.features") is None,
                       reason="kmm.motion.features not written yet"),
]


def run_kmm(*args):
    return subprocess.run([sys.executable, "-m", "kmm", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def first_clip_id():
    return (MINI / "splits" / "test.txt").read_text().split()[0]


def test_data_check_roundtrip():
    result = run_kmm("data", "check", MINI)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    key, value = last.split("=")
    assert key == "roundtrip_max_mm"
    assert float(value) < 1.0, result.stdout


def test_data_check_missing_folder(tmp_path):
    result = run_kmm("data", "check", tmp_path / "nowhere")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "nowhere" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_bvh(tmp_path):
    out = tmp_path / "clip.bvh"
    result = run_kmm("export", MINI, "--clip", first_clip_id(), "--out", out)
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("HIERARCHY")


def test_export_npz(tmp_path):
    out = tmp_path / "clip.npz"
    clip_id = first_clip_id()
    result = run_kmm("export", MINI, "--clip", clip_id, "--out", out)
    assert result.returncode == 0, result.stderr
    with np.load(out, allow_pickle=False) as npz:
        names = set(npz.files)
        arrays = {k: npz[k] for k in names}
    joints = next(v for v in arrays.values() if v.ndim == 3 and v.shape[1:] == (22, 3))
    with np.load(MINI / "motions.npz") as src:
        assert np.allclose(joints, src[clip_id].astype(np.float32), atol=1e-3)
    assert any(v.ndim == 2 and v.shape == (len(joints), 263) for v in arrays.values())
    assert any(f"cmu-desc-s01-07-mini/{clip_id}" in str(v) for v in arrays.values())


def test_export_bad_clip_id(tmp_path):
    result = run_kmm("export", MINI, "--clip", "no_such_clip", "--out", tmp_path / "x.bvh")
    assert result.returncode == 2
    assert "error:" in result.stderr and "no_such_clip" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_bad_extension(tmp_path):
    result = run_kmm("export", MINI, "--clip", first_clip_id(), "--out", tmp_path / "x.txt")
    assert result.returncode == 2 and ".txt" in result.stderr
