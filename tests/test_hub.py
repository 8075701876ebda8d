"""kmm.hub against the real huggingface_hub code, offline, with a Hub cache built in tmp_path."""
import json

import pytest
import torch
from safetensors.torch import save_file

from kmm import hub

REPO = "kmm-test/kmm-tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _write_bundle(root):
    root.mkdir(parents=True, exist_ok=True)
    save_file({"mean": torch.zeros(4), "std": torch.ones(4)}, str(root / "normalizer.safetensors"))
    for d in hub.MODEL_DIRS:
        (root / d).mkdir(exist_ok=True)
        (root / d / "config.json").write_text(json.dumps({"name": d}))
        save_file({"w": torch.ones(2, 3)}, str(root / d / "model.safetensors"))
    return root


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """A Hub cache in the layout snapshot_download reads: models--org--name/{refs,snapshots/<commit>}."""
    cache = tmp_path / "hf-cache"
    repo_dir = cache / ("models--" + REPO.replace("/", "--"))
    snapshot = _write_bundle(repo_dir / "snapshots" / COMMIT)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "v1").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))   # hub.resolve_weights reads it at call time
    monkeypatch.setenv(hub.WEIGHTS_ENV, str(_write_bundle(tmp_path / "bundled")))
    for name in (hub.REPO_ENV, hub.REVISION_ENV):
        monkeypatch.delenv(name, raising=False)
    return snapshot


def test_resolves_pinned_tag_from_cache(hf_cache, monkeypatch):
    monkeypatch.setenv(hub.REPO_ENV, REPO)
    monkeypatch.setenv(hub.REVISION_ENV, "v1")
    path, source = hub.resolve_weights()
    assert path == hf_cache
    assert REPO in source and "offline" in source


def test_resolves_commit_hash_from_args(hf_cache):
    path, source = hub.resolve_weights(REPO, COMMIT)
    assert path == hf_cache and COMMIT in source


def test_missing_file_falls_back(hf_cache, tmp_path):
    (hf_cache / "kmm" / "model.safetensors").unlink()
    path, source = hub.resolve_weights(REPO, "v1")
    assert path == tmp_path / "bundled"
    assert source.startswith("bundled weights") and "missing kmm/model.safetensors" in source


@pytest.mark.parametrize("payload", [b"garbage!", b"\xff" * 64, (40).to_bytes(8, "little") + b"{}"])
def test_corrupt_safetensors_falls_back(hf_cache, tmp_path, payload):
    (hf_cache / "tokenizer" / "model.safetensors").write_bytes(payload)
    path, source = hub.resolve_weights(REPO, "v1")
    assert path == tmp_path / "bundled"
    assert "corrupt tokenizer/model.safetensors" in source


def test_truncated_safetensors_detected(tmp_path):
    f = tmp_path / "model.safetensors"
    save_file({"w": torch.ones(100)}, str(f))
    assert hub.check_safetensors_header(f) is None
    f.write_bytes(f.read_bytes()[:-40])
    assert "outside the file" in hub.check_safetensors_header(f)


def test_repo_not_in_cache_offline_falls_back(hf_cache, tmp_path):
    path, source = hub.resolve_weights("kmm-test/absent", "v1")
    assert path == tmp_path / "bundled"
    assert "Hub unavailable" in source and "kmm-test/absent" in source


def test_no_repo_configured_uses_bundled(hf_cache, tmp_path):
    path, source = hub.resolve_weights()
    assert path == tmp_path / "bundled"
    assert "no KMM_MODEL_REPO" in source


def test_unpinned_repo_refused(hf_cache, tmp_path, monkeypatch):
    monkeypatch.setenv(hub.REPO_ENV, REPO)
    path, source = hub.resolve_weights()
    assert path == tmp_path / "bundled"
    assert "no pinned revision" in source


def test_import_does_not_touch_hub():
    import subprocess
    import sys
    code = "import sys, kmm.hub; assert 'huggingface_hub' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_push_layout_check(tmp_path):
    root = _write_bundle(tmp_path / "b")
    assert hub.push_layout_check(root) == ["missing README.md (model card: license, training data, intended use)"]
    (root / "README.md").write_text("---\nlicense: mit\n---\n# KMM\n")
    assert hub.push_layout_check(root) == []
    (root / "transformer" / "config.json").unlink()
    assert hub.push_layout_check(root) == ["missing transformer/config.json"]
