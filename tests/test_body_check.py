"""Bodies stay whole: `metrics.body_integrity`, DDIM x̂₀ clipping, and the shipped Motion Mamba on multi-segment
timelines (issue #14: before the clipping, bones stretched ×2-4 and the pelvis rose to 1.6 m after the first
segment). The full 10 timelines × 3 seeds: `python -m kmm.eval.body_check --seeds 3`."""
from pathlib import Path

import numpy as np
import pytest
import torch

from kmm.generators.motion_mamba.diffusion import clip_prediction, scaled_linear_alphas_cumprod
from kmm.eval import body_check
from kmm.eval.metrics import body_integrity
from kmm.motion.retarget import REST_OFFSETS

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "kmm"
REST = np.linalg.norm(REST_OFFSETS[1:], axis=-1)


def _standing(T=10):
    from kmm.motion import ik

    x = ik.forward_kinematics(np.broadcast_to(np.eye(3), (T, 22, 3, 3)), REST_OFFSETS, np.zeros((T, 3)))
    x[..., 1] -= x[:, [7, 8, 10, 11], 1].min()
    return x


def test_body_integrity_of_a_whole_and_a_stretched_body():
    x = _standing()
    ok = body_integrity(x, REST)
    assert abs(ok["bone_ratio_max"] - 1) < 1e-9 and abs(ok["leg_ratio_max"] - 1) < 1e-9
    assert 0.8 < ok["pelvis_max_m"] < 1.0
    broken = x.copy()
    broken[:, [0, 1, 2, 3, 4, 5, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], 1] += 1.0   # everything above the ankles
    bad = body_integrity(broken, REST)
    assert bad["leg_ratio_max"] > 2 and bad["pelvis_max_m"] > 1.8


def test_clip_prediction_clamps_x0_and_stays_consistent_with_x_t():
    ac = scaled_linear_alphas_cumprod(1000)
    t = torch.tensor([500])
    x_t, x0 = torch.randn(1, 6, 4), torch.randn(1, 6, 4) * 5
    c0, eps = clip_prediction(x_t, x0, t, ac, 2.0)
    assert c0.abs().max() <= 2.0
    a = ac[500]
    assert torch.allclose(a.sqrt() * c0 + (1 - a).sqrt() * eps, x_t, atol=1e-5)


@pytest.mark.skipif(not (SHIPPED / "motion-mamba" / "model.safetensors").is_file(), reason="no shipped weights")
def test_shipped_motion_mamba_keeps_bodies_whole_on_timelines():
    from kmm.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(SHIPPED, generator="motion-mamba")
    out = body_check.run(pipe, body_check.TIMELINES[:3], seeds=(0, 1))
    worst = out["worst"]
    assert worst["shown_bone_ratio_max"] <= body_check.BONE_LIMIT
    assert worst["shown_pelvis_max_m"] < body_check.PELVIS_LIMIT_M
    assert worst["raw_pelvis_max_m"] < body_check.PELVIS_LIMIT_M        # the decoded body itself stays down
    assert worst["raw_leg_ratio_max"] <= body_check.RAW_LEG_LIMIT
    assert out["passed"] == out["runs"], out["rows"]
