"""The ablation's bookkeeping: plan round trip and validation, the summary's intervals over training seeds."""
import json

import numpy as np
import pytest

from kmm.eval.ablate import AblationPlan, load_plan, run_name, summarize
from kmm.eval.report import render_ablation
from kmm.errors import CliError


def _score(out, variant, seed, step, fid_values, r1):
    f = out / "scores" / f"{run_name(variant, seed)}-step{step}.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    m = {"fid": {"mean": float(np.mean(fid_values)), "values": fid_values},
         "r_precision_top1": {"mean": r1, "values": [r1, r1]}}
    f.write_text(json.dumps({"variant": variant, "seed": seed, "step": step, "metrics": m}))


def test_plan_round_trip_and_validation(tmp_path):
    plan = AblationPlan(steps=8, curve=(4, 8), seeds=(0, 1))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan.to_dict()))
    assert load_plan(path) == plan
    assert len(plan.runs()) == 2 * len(plan.variants)
    path.write_text(json.dumps({**plan.to_dict(), "curve": [4]}))
    with pytest.raises(CliError, match="must end at steps=8"):
        load_plan(path)
    path.write_text("{not json")
    with pytest.raises(CliError, match="bad ablation plan"):
        load_plan(path)


def test_summary_interval_is_over_training_seeds(tmp_path):
    plan = AblationPlan(variants={"kmm": {}, "kmm-random": {"masking": "random"},
                                  "kmm-keyshare1": {"key_frame_share": 1.0}}, seeds=(0, 1, 2), steps=8, curve=(4, 8))
    for seed, fid in enumerate([0.30, 0.32, 0.34]):
        _score(tmp_path, "kmm", seed, 8, [fid - 0.01, fid + 0.01], 0.5)
        _score(tmp_path, "kmm-random", seed, 8, [0.40, 0.40], 0.4)
        _score(tmp_path, "kmm-keyshare1", seed, 8, [0.36, 0.36], 0.4)
    _score(tmp_path, "kmm", 0, 4, [0.9, 0.9], 0.1)          # one seed of the curve's first point
    result = summarize(plan, tmp_path)
    cell = result["table"]["kmm"]["8"]["fid"]
    assert cell["per_seed"] == pytest.approx([0.30, 0.32, 0.34])
    assert cell["mean"] == pytest.approx(0.32)
    # t(0.975, 2) · s / √3 with s = 0.02 over the three seeds' means
    assert cell["ci95_train"] == pytest.approx(4.3027 * 0.02 / np.sqrt(3), rel=1e-3)
    assert cell["n_values"] == 6 and cell["ci95_all"] < cell["ci95_train"]
    assert result["table"]["kmm-random"]["8"]["fid"]["ci95_train"] == pytest.approx(0.0)
    assert result["table"]["kmm"]["4"]["fid"]["n_seeds"] == 1
    md = render_ablation(result)
    assert "0.320 ± 0.050" in md and "0.80× random masking's" in md
    assert "| random masking | 0.400 ± 0.000" in md
    assert "| key frames take the whole masking budget (share 1.0) | 0.360 ± 0.000" in md
    assert "With key frames taking the whole masking budget: 0.90×." in md
