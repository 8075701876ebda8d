"""push-to-hub: the dry run lists the shipped bundle and validates its card; pickles, oversized files, a model
without config.json and a card without licence are refused before anything is sent; a push (fake HfApi, no
network) uploads exactly the listed files and prints the commit to pin."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from kmm.cli import main
from kmm.hub import MODEL_DIRS

REPO = Path(__file__).resolve().parents[1]
CARD = """---
license: cc-by-4.0
library_name: kmm
---
# My KMM weights

## Training data
| folder | clips |
|---|---|
| mydata | 12 |

Licence: CC BY 4.0. Credits: my own motion capture.
"""


@pytest.fixture()
def bundle(tmp_path) -> Path:
    """A bundle with the shipped layout and tiny tensors (+ a checkpoint leftover that must not be uploaded)."""
    root = tmp_path / "bundle"
    for name in MODEL_DIRS:
        (root / name).mkdir(parents=True)
        save_file({"w": torch.zeros(2)}, str(root / name / "model.safetensors"))
        (root / name / "config.json").write_text("{}")
    save_file({"mean": torch.zeros(3)}, str(root / "normalizer.safetensors"))
    save_file({"m": torch.zeros(2)}, str(root / "kmm" / "optimizer.safetensors"))
    (root / "README.md").write_text(CARD)
    return root


def test_dry_run_of_the_shipped_bundle(capsys):
    assert main(["push-to-hub", str(REPO / "assets" / "kmm"), "--repo", "acme/kmm", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for rel in ("README.md", "normalizer.safetensors", "tokenizer/model.safetensors", "kmm/config.json"):
        assert rel in out
    assert "card and files valid" in out


@pytest.mark.parametrize("breakage, message", [
    ("pickle", "extra.pt: a pickle"),
    ("big", "big.bin: 51.0 MB, over the 50 MB limit"),
    ("no_config", "kmm/model.safetensors: no config.json next to it"),
    ("no_license", "front matter has no `license:`"),
    ("no_front_matter", "no YAML front matter"),
    ("no_data_section", "no training-data section"),
])
def test_bad_bundles_are_refused(bundle, breakage, message, capsys, monkeypatch):
    if breakage == "pickle":
        torch.save({"w": torch.zeros(2)}, bundle / "extra.pt")
    elif breakage == "big":
        with open(bundle / "big.bin", "wb") as fh:   # sparse: no disk used
            fh.truncate(51 * 2**20)
    elif breakage == "no_config":
        (bundle / "kmm" / "config.json").unlink()
    elif breakage == "no_license":
        (bundle / "README.md").write_text(CARD.replace("license: cc-by-4.0\n", ""))
    elif breakage == "no_front_matter":
        (bundle / "README.md").write_text(CARD.split("---\n", 2)[2])
    else:
        (bundle / "README.md").write_text(CARD.replace("## Training data", "## Numbers"))
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", lambda **kw: pytest.fail("nothing may be sent"))
    for extra in (["--dry-run"], []):
        assert main(["push-to-hub", str(bundle), "--repo", "acme/kmm", *extra]) == 2
        assert message in capsys.readouterr().err


def test_push_uploads_the_planned_files_and_prints_the_revision(bundle, capsys, monkeypatch):
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kw):
            calls["create"] = (repo_id, kw)

        def upload_folder(self, **kw):
            calls["upload"] = kw
            info = type("CommitInfo", (str,), {})("https://huggingface.co/acme/kmm/commit/abc")
            info.oid = "0123456789abcdef0123456789abcdef01234567"
            return info

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert main(["push-to-hub", str(bundle), "--repo", "acme/kmm"]) == 0
    out = capsys.readouterr().out
    assert "revision: 0123456789abcdef0123456789abcdef01234567" in out
    assert "KMM_MODEL_REVISION=0123456789abcdef0123456789abcdef01234567" in out
    assert calls["create"] == ("acme/kmm", {"repo_type": "model", "private": False, "exist_ok": True})
    sent = set(calls["upload"]["allow_patterns"])
    assert "kmm/model.safetensors" in sent and "README.md" in sent
    assert "kmm/optimizer.safetensors" not in sent
    assert main(["push-to-hub", str(bundle), "--repo", "not a repo"]) == 2


def test_card_written_by_export_weights_passes(tmp_path):
    """kmm/card.py's card (the shipped one) carries what the validator asks for."""
    from kmm.publish import card_problems

    shutil.copy(REPO / "assets" / "kmm" / "README.md", tmp_path / "README.md")
    assert card_problems(tmp_path / "README.md") == []
    assert card_problems(tmp_path / "missing.md") == ["missing missing.md (model card)"]


def test_export_weights_metrics_only_refreshes_the_held_out_numbers(tmp_path, tiny_bundle, mini_dir, capsys):
    """After one part of a bundle is replaced, `--metrics-only` recomputes metrics.json's held-out numbers for the
    weights now there and keeps the rest of the file; a folder without weights is a clear error."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "metrics.json").write_text(json.dumps({"held_out": {"kmm": {"masked_token_acc": -1.0}},
                                                     "data": {"kept": True}}))
    assert main(["export-weights", "--out", str(bundle), "--metrics-only", "--data", str(mini_dir)]) == 0
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert metrics["data"] == {"kept": True} and "held_out_refreshed" in metrics
    kmm = metrics["held_out"]["kmm"]
    assert 0.0 <= kmm["masked_token_acc"] <= 1.0 and kmm["params_m"] > 0
    assert not (bundle / "README.md").exists()          # no card written
    assert main(["export-weights", "--out", str(tmp_path / "empty"), "--metrics-only"]) == 2
    assert "not a weights bundle" in capsys.readouterr().err


def test_metrics_only_keeps_a_residual_choice_made_on_other_measurements(tmp_path, tiny_bundle, mini_dir):
    """pipeline.json with "chosen_by" (round 15: layers chosen on breadth and examples) survives --metrics-only, and
    metrics.json reports both that choice and the val sweep's own pick; without "chosen_by" the sweep decides."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    chosen = {"residual_layers": 2, "residual_root": "base", "chosen_by": "breadth"}
    (bundle / "pipeline.json").write_text(json.dumps(chosen))
    assert main(["export-weights", "--out", str(bundle), "--metrics-only", "--data", str(mini_dir)]) == 0
    assert json.loads((bundle / "pipeline.json").read_text()) == chosen
    sweep = json.loads((bundle / "metrics.json").read_text())["held_out"]["residual_sweep"]
    assert sweep["chosen_layers"] == 2 and sweep["chosen_on"] == "breadth" and "best_by_val_pose_mpjpe" in sweep
    (bundle / "pipeline.json").write_text(json.dumps({"residual_layers": 2}))
    assert main(["export-weights", "--out", str(bundle), "--metrics-only", "--data", str(mini_dir)]) == 0
    written = json.loads((bundle / "pipeline.json").read_text())
    assert written["residual_layers"] == sweep["best_by_val_pose_mpjpe"] and "chosen_on" in written
