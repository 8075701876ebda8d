"""Speed work (issue #16) that must not change results: the CPU fast path decodes the same tokens as the
reference on the shipped weights, guidance is one doubled batch per step, text is encoded once per call,
and the generate command imports no UI / rendering packages."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kmm.ops import cpu_kernel
from kmm.ops.scan import reference_scan

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "assets" / "kmm"


@pytest.fixture(scope="module")
def shipped():
    if not (SHIPPED / "kmm" / "model.safetensors").is_file():
        pytest.skip(f"no shipped weights in {SHIPPED}")
    from kmm.pipeline import Pipeline

    return Pipeline.from_pretrained(SHIPPED, "kmm")


@pytest.mark.skipif(cpu_kernel.load() is None, reason="no C compiler: only the reference path exists")
def test_fast_path_decodes_the_same_tokens_on_the_shipped_weights(shipped):
    # 75 tokens: two overlapping windows, two segments
    segments = [("a person walks forward", 8.0), ("a person waves the right hand", 7.0)]
    for seed in (0, 1):
        fast = shipped.generate(segments, seed=seed, steps=4)
        with reference_scan():
            ref = shipped.generate(segments, seed=seed, steps=4)
        assert torch.equal(fast.codes, ref.codes), seed
        assert abs(fast.joints - ref.joints).max() < 1e-4


def test_one_doubled_batch_per_step_and_text_encoded_once(shipped, monkeypatch):
    batches, texts = [], []
    hook = shipped.generator.register_forward_hook(lambda m, args, out: batches.append(args[0].shape[0]))
    real_backbone = shipped.backbone.__call__
    monkeypatch.setattr(type(shipped.backbone), "__call__", lambda self, t: texts.append(list(t)) or real_backbone(t))
    try:
        shipped.generate([("a person walks forward", 10.0)], seed=0, steps=6, guidance=3.0)
    finally:
        hook.remove()
    assert batches == [2] * 6                     # conditional + unconditional together, one pass per step
    assert texts == [["a person walks forward"]]


def test_generate_command_imports_no_ui_or_rendering_packages():
    code = ("import sys; import kmm.cli, kmm.pipeline, kmm.hub, kmm.text_backbone, kmm.motion.npz, kmm.motion.bvh; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'gradio', 'plotly', 'trimesh', 'pyrender', "
            "'matplotlib', 'pygltflib', 'smplx', 'imageio'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
