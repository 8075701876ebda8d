"""kmm.eval.tokenizer_breadth: the four stages a real clip goes through, and the per-action table."""
import numpy as np
import torch

from kmm.eval.tokenizer_breadth import STAGES, measure, render, stage_features
from kmm.pipeline import Pipeline

torch.set_num_threads(1)


def test_stages_are_the_tokenizer_round_trips(tiny_bundle, mini_dir):
    from kmm.data import load_dataset
    from kmm.motion.features import joints_to_features

    pipe = Pipeline.from_pretrained(tiny_bundle)
    tok, norm = pipe.tokenizer, pipe.normalizer
    clip = next(iter(load_dataset([mini_dir]).clips("test")))
    f = joints_to_features(clip.joints)[:41]                        # 41 frames: cut to 40 (stride 4)
    out = stage_features(tok, norm, f)
    assert list(out) == list(STAGES)
    assert all(v.shape == (40, f.shape[1]) for v in out.values())
    assert np.array_equal(out["capture"], f[:40])
    x = torch.from_numpy(norm.normalize(f[:40])).float()[None]
    assert np.allclose(out["all layers"], norm.denormalize(tok.reconstruct(x))[0].numpy(), atol=1e-5)
    assert not np.allclose(out["all layers"], out["base layer"], atol=1e-4)   # the residual layers add detail

    calls = []

    def check(joints):                                            # records what it is given
        calls.append(joints.shape)
        return len(calls) % 2 == 0, float(len(calls))

    n = min(80, len(clip.joints)) // 4 * 4
    result = measure(tok, norm, {"walk": (check, [clip.joints[:n]]), "none": (check, [])})
    assert len(calls) == len(STAGES) and all(s == (n, 22, 3) for s in calls)
    walk = result["walk"]
    assert walk["clips"] == 1 and [walk[s]["pass"] for s in STAGES] == [0.0, 1.0, 0.0, 1.0]
    assert result["none"] == {"clips": 0}
    table = render({"actions": result})
    assert "| walk | 1 | 0.00 (1.00) | 1.00 (2.00) | 0.00 (3.00) | 1.00 (4.00) |" in table and "| none |" not in table
