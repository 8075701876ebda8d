"""`train-evaluator`, `evaluate`, `bench` and `report` end to end on a tiny bundle and the mini data."""

import json
import os
from pathlib import Path

import pytest
import torch

from kmm.cli import main

REPO = Path(__file__).resolve().parents[1]
MINI = Path(os.environ.get("KMM_DATA") or REPO.parent / "shared" / "data") / "cmu-desc-s01-07-mini"

pytestmark = pytest.mark.skipif(not (MINI / "motions.npz").exists(), reason=f"no test data at {MINI}")
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny generator bundle and a tiny evaluator, trained in-process (about 20 s)."""
    root = tmp_path_factory.mktemp("evalcli")
    cache = root / "cache"
    assert main(["train", "--data", str(MINI), "--recipe", "tiny", "--out", str(root / "bundle"),
                 "--cache", str(cache), "--generators", "kmm,bamm"]) == 0
    assert main(["train-evaluator", "--data", str(MINI), "--out", str(root / "evaluator"), "--steps", "5",
                 "--batch", "8", "--width", "16", "--cache", str(cache)]) == 0
    return root


def test_evaluate_writes_every_metric(trained, capsys):
    out = trained / "eval.json"
    assert main(["evaluate", "--data", str(MINI), "--weights", str(trained / "bundle"),
                 "--evaluator", str(trained / "evaluator"), "--json", str(out), "--models", "gt,kmm,bamm,motion-mamba",
                 "--seeds", "2", "--max-texts", "3", "--steps", "2", "--mm-texts", "2", "--mm-reps", "2",
                 "--transition-segments", "3", "--temperature", "0.7"]) == 0
    result = json.loads(out.read_text())
    assert result["kind"] == "kmm-eval" and result["split"] == "test" and result["seeds"] == [0, 1]
    assert result["settings"]["temperature"] == 0.7
    assert len(result["evaluator"]["sha256"]["model.safetensors"]) == 64
    assert set(result["models"]) == {"gt", "kmm", "bamm", "motion-mamba"}
    for model in ("kmm", "bamm", "motion-mamba"):
        row = result["models"][model]
        assert len(row["weights"]["sha256"]["generator"]) == 64
        for name in ("r_precision_top1", "r_precision_top2", "r_precision_top3", "mm_dist", "fid", "diversity",
                     "multimodality", "foot_skating", "peak_jerk", "auj", "ait_s"):
            value = row["metrics"][name]
            assert set(value) == {"mean", "ci95", "values"} and len(value["values"]) == 2, (model, name)
    assert "motion-vae" in result["models"]["motion-mamba"]["weights"]["sha256"]
    gt = result["models"]["gt"]["metrics"]
    assert gt["multimodality"] is None and 0.0 <= gt["r_precision_top1"]["mean"] <= 1.0
    assert result["wall_s"] > 0
    assert "| Ground truth |" in capsys.readouterr().out


def test_bench_and_report(trained, capsys):
    bench = trained / "bench.json"
    assert main(["bench", "--weights", str(trained / "bundle"), "--json", str(bench), "--models", "kmm,bamm,motion-mamba",
                 "--repeats", "1", "--max-minutes", "0.2", "--steps", "2"]) == 0
    result = json.loads(bench.read_text())
    assert result["kind"] == "kmm-bench"
    assert {"cpu", "cores", "torch", "device", "threads"} <= set(result["hardware"])
    for model in ("kmm", "bamm", "motion-mamba"):
        row = result["models"][model]
        assert row["single_10s"]["mean"] > 0 and row["timeline_4x10s"]["mean"] > 0
        assert row["generator_params_m"] > 0
        [point] = row["scaling"]
        assert point["seconds"] == 10.0 and point["wall_s"] > 0, point
        assert point["peak_rss_kib"] > 0 and point["rss_delta_kib"] >= 0
    capsys.readouterr()

    files = [str(bench)] + ([str(trained / "eval.json")] if (trained / "eval.json").exists() else [])
    assert main(["report", *files]) == 0
    md = capsys.readouterr().out
    assert ("| Model | generator parameters (M) | generator passes per step | 10 s prompt (s) | 4 × 10 s timeline (s) |"
            in md)
    assert "| 2 | " in md                      # plain classifier-free guidance: two passes per step
    assert "| KMM (key-frame masking) | 10 s | 1 |" in md
    assert "| BAMM (ours, from the paper) |" in md and "| Motion Mamba (ours, from the paper) |" in md


def test_report_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_evaluate_unknown_model_is_an_error(capsys):
    assert main(["evaluate", "--models", "gt,nope"]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "9"])
def test_evaluate_temperature_out_of_range_is_an_error(value, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--temperature", value, "--json", str(out)]) == 2
    assert "--temperature" in capsys.readouterr().err and not out.exists()


def test_append_accepts_files_from_before_a_setting_existed():
    from kmm.eval.evaluate import merge_results

    base = {"kind": "kmm-eval", "split": "test", "data": ["d"], "seeds": [0], "n_texts": 2, "n_real": 2,
            "evaluator": {"sha256": "x"}, "models": {"gt": {}}}
    old = {**base, "settings": {"steps": 10, "threads": 1}}                       # written before --temperature
    merged = merge_results(old, {**base, "settings": {"steps": 10, "temperature": 1.0, "threads": 2},
                                 "models": {"kmm": {}}})
    assert set(merged["models"]) == {"gt", "kmm"}
    with pytest.raises(ValueError, match="settings differ"):
        merge_results(old, {**base, "settings": {"steps": 10, "temperature": 0.7}, "models": {"kmm": {}}})


def test_long_window_compares_window_lengths_on_held_out_timelines(trained, tmp_path, capsys):
    """`long-window` on the tiny bundle (training window 16 tokens): every mode decodes the same timelines (same
    lengths), the long modes use 4× windows, the table names each mode; bad arguments are refused."""
    out = tmp_path / "lw.json"
    assert main(["long-window", "--data", str(MINI), "--weights", str(trained / "bundle"),
                 "--evaluator", str(trained / "evaluator"), "--json", str(out), "--seeds", "2", "--segments", "3",
                 "--steps", "2", "--windows", "8", "--examples", ""]) == 0
    result = json.loads(out.read_text())
    modes = result["modes"]
    assert list(modes) == ["training", "long-one-schedule", "long", "window-8"]
    assert [m["window_tokens"] for m in modes.values()] == [16, 64, 64, 8]
    assert [m["segment_schedules"] for m in modes.values()] == [False, False, True, True]
    lengths = {tuple(m["timeline_tokens"]) for m in modes.values()}
    assert len(lengths) == 1 and all(n > 16 for n in lengths.pop())      # longer than the training window
    for m in modes.values():
        assert 0.0 <= m["segment_metrics"]["r_precision_top1"] <= 1.0 and m["segment_metrics"]["mm_dist"] > 0
        assert len(m["per_seed"]["peak_jerk"]["values"]) == 2 and m["examples_passed"] == {}
    assert "| long | 64 |" in capsys.readouterr().out
    assert main(["long-window", "--segments", "1", "--json", str(tmp_path / "no.json")]) == 2
    assert "--segments" in capsys.readouterr().err and not (tmp_path / "no.json").exists()
