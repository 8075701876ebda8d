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


def test_reconstruction_error_separates_root_drift_from_pose(mini_dir):
    """A tokenizer that returns its input has zero error; one that adds a constant forward velocity to the root
    (drift) has a growing root-integrated error and zero pose error."""
    from kmm.data import load_dataset
    from kmm.eval.tokenizer_breadth import reconstruction_error
    from kmm.motion.features import Normalizer, joints_to_features

    class Fake:
        downsample = 4

        def __init__(self, drift):
            self.drift = drift

        def encode(self, x):                                          # "codes": (B, T, F, Q = 1)
            return x[..., None]

        def _latent(self, x):
            return x

        def decode_latent(self, x):
            y = x.clone()
            y[..., 2] += self.drift                                   # root forward velocity (m / frame)
            return y

        def decode(self, codes):
            return self.decode_latent(codes[..., 0])

    clips = [c.joints[:80] for c in list(load_dataset([mini_dir]).clips("test"))[:2]]
    f = joints_to_features(clips[0])
    identity = Normalizer(np.zeros(f.shape[1], np.float32), np.ones(f.shape[1], np.float32))
    zero = reconstruction_error(Fake(0.0), identity, clips)
    assert set(zero) == set(STAGES[1:])
    assert all(v["root_integrated_mm"] < 1e-3 and v["pose_mm"] < 1e-3 for v in zero.values())
    drift = reconstruction_error(Fake(0.01), identity, clips)        # 1 cm / frame: 10·t mm at frame t
    lengths = [len(joints_to_features(c)) // 4 * 4 for c in clips]
    expected = sum(10.0 * t for n in lengths for t in range(n)) / sum(lengths)
    for v in drift.values():
        assert abs(v["root_integrated_mm"] - expected) < 0.01 * expected and v["pose_mm"] < 1e-3


def test_code_usage_counts_the_base_layer_codes_the_clips_use(mini_dir):
    """A fake tokenizer whose base code is the frame-chunk index mod 3: 3 codes used of 8, equally often
    (perplexity 3); a clip shorter than one chunk adds nothing."""
    from kmm.data import load_dataset
    from kmm.eval.tokenizer_breadth import code_usage
    from kmm.motion.features import Normalizer, joints_to_features

    class Fake:
        downsample = 4

        class config:
            n_codes = 8

        def encode(self, x):                                          # (1, T, F) -> (1, T/4, Q = 2)
            n = x.shape[1] // 4
            return torch.stack([torch.arange(n) % 3, torch.full((n,), 7)], -1)[None]

    clip = next(iter(load_dataset([mini_dir]).clips("test"))).joints
    f = joints_to_features(clip[:48])                                # 48 frames -> 12 chunks: 4 of each code
    identity = Normalizer(np.zeros(f.shape[1], np.float32), np.ones(f.shape[1], np.float32))
    usage = code_usage(Fake(), identity, [clip[:48], clip[:2]])
    assert usage["codes"] == 8 and usage["used"] == 3 and abs(usage["perplexity"] - 3.0) < 1e-6
