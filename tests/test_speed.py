"""Speed work (issue #16) that must not change results: the CPU fast path decodes the same tokens as the
reference on the shipped weights, guidance is one doubled batch per step, text is encoded once per call,
and the generate command imports no UI / rendering packages."""
import os
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
@pytest.mark.parametrize("window", [64, 256])
def test_fast_path_decodes_the_same_tokens_on_the_shipped_weights(shipped, window):
    # 75 tokens, two segments: two overlapping training-length windows, or one long window
    segments = [("a person walks forward", 8.0), ("a person waves the right hand", 7.0)]
    default = shipped.backend.window
    shipped.backend.window = window
    try:
        for seed in (0, 1):
            fast = shipped.generate(segments, seed=seed, steps=4)
            with reference_scan():
                ref = shipped.generate(segments, seed=seed, steps=4)
            assert torch.equal(fast.codes, ref.codes), seed
            assert abs(fast.joints - ref.joints).max() < 1e-4
    finally:
        shipped.backend.window = default


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


def test_the_app_module_serves_its_page_without_importing_torch():
    """torch (~1.2 s) loads in MotionService.warm's thread after the page is up, not before (app.main)."""
    code = "import sys; import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


# --- timeline windows in two batches (kmm.generators.kmm.sampling.sample_windows_batched) ------------------------------------

def test_window_phases_even_then_odd():
    from kmm.generators.kmm.sampling import window_phases, window_plan

    assert window_phases(window_plan(10, 4, 1)) == [[(0, 4), (6, 10)], [(3, 7)]]
    assert window_phases([(0, 5)]) == [[(0, 5)]]
    spans = window_plan(3000, 64, 16)                                  # the 10-minute timeline: 63 windows
    assert [len(p) for p in window_phases(spans)] == [32, 31]
    # overlap above half a window: even windows would touch, so one window at a time
    assert window_phases(window_plan(10, 4, 3)) == [[s] for s in window_plan(10, 4, 3)]


def test_batched_windows_fix_overlaps_from_both_neighbours_and_keep_caller_tokens():
    from kmm.generators.kmm.sampling import sample_windows_batched, window_plan

    n, window, overlap = 40, 8, 2
    fixed = torch.zeros(1, n, dtype=torch.long)
    fixed_mask = torch.zeros(1, n, dtype=torch.bool)
    fixed[0, 17], fixed_mask[0, 17] = 999, True                        # a caller's key token
    calls = []

    def batch_fn(spans, fixed_b, known_b, lengths):
        calls.append(list(spans))
        out = torch.zeros_like(fixed_b)
        for i, (a, b) in enumerate(spans):
            assert lengths[i] == b - a and not known_b[i, b - a:].any()
            out[i, :b - a] = torch.where(known_b[i, :b - a], fixed_b[i, :b - a], torch.arange(a, b) + 1000 * len(calls))
        return out

    ids = sample_windows_batched(batch_fn, n, window, overlap, fixed=fixed, fixed_mask=fixed_mask)
    spans = window_plan(n, window, overlap)
    assert calls == [spans[0::2], spans[1::2]]                         # two generator batches, not one per window
    assert ids[0, 17] == 999                                           # the caller's token survives both phases
    batch = ids[0] // 1000                                             # which call produced each token
    for a, b in spans[1::2]:                                           # odd windows: overlaps came from phase 1
        assert (batch[a:a + overlap] == 1).all()
        assert b == n or (batch[b - overlap:b] == 1).all()
        assert (batch[a + overlap:b - overlap] == 2).all()


@pytest.mark.parametrize("seconds", [10.0, 15.0])
def test_default_windows_sample_as_before(shipped, seconds):
    """By default windows run one after another exactly as the pre-batching code did (same seed, same tokens);
    a prompt within one window is the same call either way."""
    from kmm.generators.kmm.sampling import guided, mask_predict, sample_windows

    backend = shipped.backend
    n = int(seconds * 5)
    cond = shipped._text(["a person walks forward"])
    seg_ids = shipped._seg_ids([n])
    gen = backend.generator

    def window_fn(start, end, fixed_w, known_w):                       # the pre-batching MaskedBackend.sample
        lengths = torch.tensor([end - start])
        fn = guided(gen, lengths, cond[0][None], seg_ids[:, start:end], 3.0)
        return mask_predict(fn, lengths, end - start, gen.mask_id, 6, torch_gen, fixed=fixed_w, fixed_mask=known_w)

    default = backend.window
    backend.window = gen.config.max_tokens                             # the training-length windows
    try:
        torch_gen = torch.Generator().manual_seed(3)
        before = sample_windows(window_fn, n, backend.window, backend.window // 4)
        assert not backend.batch_windows
        now = backend.sample(cond, seg_ids, torch.Generator().manual_seed(3), 3.0, 6, 1.0)
        assert torch.equal(now[:, 0], before[0])
        if n <= backend.window:
            backend.batch_windows = True
            try:
                again = backend.sample(cond, seg_ids, torch.Generator().manual_seed(3), 3.0, 6, 1.0)
            finally:
                backend.batch_windows = False
            assert torch.equal(again, now)
    finally:
        backend.window = default


def test_batched_windows_take_two_passes_per_step(shipped):
    batches = []
    hook = shipped.generator.register_forward_hook(lambda m, args, out: batches.append(tuple(args[0].shape)))
    default = shipped.backend.window
    shipped.backend.batch_windows, shipped.backend.window = True, shipped.generator.config.max_tokens
    try:
        out = shipped.generate([("a person walks forward", 10.0)] * 4, seed=0, steps=3)   # 200 tokens, 4 windows
    finally:
        hook.remove()
        shipped.backend.batch_windows, shipped.backend.window = False, default
    assert batches == [(4, 64)] * 3 + [(4, 64)] * 3                   # 2 even windows, then 2 odd, cond + uncond
    assert out.codes.shape[0] == 200


# --- opt-in long windows (kmm.backends.decode_window) -------------------------------------------------------

def test_decode_window_is_the_training_length_unless_long_windows_are_asked_for(shipped):
    import dataclasses

    from kmm.backends import LONG_WINDOW, decode_window

    config = shipped.generator.config
    assert config.backbone == "mamba" and decode_window(config) == shipped.backend.window == config.max_tokens == 64
    assert decode_window(config, long=True) == LONG_WINDOW * 64 == 256
    transformer = dataclasses.replace(config, backbone="transformer")
    assert decode_window(transformer, long=True) == decode_window(transformer) == 64
    assert shipped.backend.overlap == 16


def test_windows_follow_the_generators_training_length(shipped):
    """A generator trained on 256-token windows decodes in 256-token windows with the same 16-token overlap; the
    bench's random-init transformer keeps the recipe's 64 whatever the KMM generator was trained on."""
    import dataclasses

    from kmm.eval.bench import load_pipeline
    from kmm.generators.kmm.model import MaskedGenerator

    backend, shipped_gen = shipped.backend, shipped.backend.generator
    longer = MaskedGenerator(dataclasses.replace(shipped_gen.config, max_tokens=256)).eval()
    try:
        backend.set_generator(longer)
        assert (backend.window, backend.overlap) == (256, 16)
    finally:
        backend.set_generator(shipped_gen)
    assert (backend.window, backend.overlap) == (64, 16)
    pipe, note = load_pipeline(SHIPPED, "transformer")
    assert pipe.generator.config.backbone == "transformer" and pipe.backend.generator is pipe.generator
    assert pipe.backend.window == pipe.generator.config.max_tokens == 64


def test_a_long_window_decodes_a_long_timeline_in_one_window(shipped):
    """200 tokens (four 10-s segments, over three training windows) in a 256-token window: `steps` doubled batches
    over the whole timeline instead of four windows one after another; deterministic."""
    from kmm.backends import decode_window

    batches = []
    hook = shipped.generator.register_forward_hook(lambda m, args, out: batches.append(tuple(args[0].shape)))
    segments = [("a person walks forward", 10.0), ("a person waves the right hand", 10.0)] * 2
    default, shipped.backend.window = shipped.backend.window, decode_window(shipped.generator.config, long=True)
    try:
        out = shipped.generate(segments, seed=0, steps=3)
        again = shipped.generate(segments, seed=0, steps=3)
    finally:
        hook.remove()
        shipped.backend.window = default
    assert batches[:3] == [(2, 200)] * 3
    assert torch.equal(out.codes, again.codes) and out.boundaries == [0, 200, 400, 600, 800]


def test_timelines_longer_than_the_window_still_window(shipped):
    lengths = []
    hook = shipped.generator.register_forward_hook(lambda m, args, out: lengths.append(args[0].shape[1]))
    default = shipped.backend.window
    shipped.backend.window = 120
    try:
        out = shipped.generate([("a person walks forward", 10.0)] * 4, seed=0, steps=2)
    finally:
        hook.remove()
        shipped.backend.window = default
    # window_plan(200, 120, 16): (0, 120), then (104, 200) with its first 16 tokens fixed
    assert lengths == [120, 120, 96, 96] and out.codes.shape[0] == 200


def test_tiled_timeline_puts_every_example_once_and_points_its_checks_at_its_own_segments():
    """long-window step 6: all examples back to back, order rotated by the seed, checks re-indexed."""
    from kmm.app_logic import load_examples
    from kmm.eval.long_window import tiled_timeline

    examples = load_examples(REPO / "examples")
    assert len(examples) >= 2
    for seed in (0, 1, len(examples) + 1):
        segments, checks = tiled_timeline(examples, seed)
        assert [key for key, _ in checks][0] == examples[seed % len(examples)].key
        assert sorted(key for key, _ in checks) == sorted(e.key for e in examples)
        assert len(segments) == sum(len(e.segments) for e in examples)
        by_key = {e.key: e for e in examples}
        for key, items in checks:
            e = by_key[key]
            start = items[0][0] - e.checks[0][0]
            assert [(k - start, name) for k, name in items] == e.checks
            assert segments[start:start + len(e.segments)] == [(s.text, s.seconds) for s in e.segments]


# --- the text encoder without transformers (kmm.bert_lite) -------------------------------------------------

def test_lite_bert_matches_transformers():
    pytest.importorskip("transformers")
    from kmm.text_backbone import TextBackbone

    backbone = TextBackbone()
    if backbone.lite is None:
        pytest.skip("the shipped sentence encoder has no tokenizer.json")
    texts = ["a person walks forward", "A man JUMPS, then sits down!", "x " * 80, "héllo wörld — café", ""]
    enc = backbone.tokenizer(texts, padding=True, truncation=True, max_length=48, return_tensors="pt")
    ids, mask, types = backbone.lite.tokenize(texts, 48)
    assert torch.equal(enc["input_ids"], ids) and torch.equal(enc["attention_mask"], mask)
    assert torch.equal(enc["token_type_ids"], types)
    with torch.no_grad():
        ref = backbone.model(**enc, output_hidden_states=True).hidden_states[-2]
    lite = backbone.lite.hidden_states(ids, mask, types, backbone.lite.n_layers - 1)
    assert (ref - lite)[mask.bool()].abs().max() < 1e-4                # float rounding (values up to ~10)
    n = backbone.model.config.num_hidden_layers - 1
    hf = {k[len(f"encoder.layer.{n}."):]: v for k, v in backbone.model.state_dict().items()
          if k.startswith(f"encoder.layer.{n}.")}
    mine = backbone.last_layer_state()
    assert mine.keys() == hf.keys() and all(torch.equal(mine[k], hf[k]) for k in hf)


def test_generate_does_not_import_transformers():
    code = ("import sys; from kmm.pipeline import Pipeline; p = Pipeline.from_pretrained('assets/kmm'); "
            "p.generate([('a person walks forward', 2.0)], steps=2); print('transformers' in sys.modules)")
    if not (SHIPPED / "kmm" / "model.safetensors").is_file():
        pytest.skip("no shipped weights")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_sentence_embeddings_without_transformers_match_it():
    """The app's "what the model understood" embeds prompts with LiteBert (all 6 layers, mean-pooled): the same
    unit vectors as transformers' last_hidden_state, without its ~5 s import on the first Generate."""
    pytest.importorskip("transformers")
    import numpy as np

    from kmm.text_backbone import TextBackbone
    from kmm.vocabulary import sentence_embeddings

    backbone = TextBackbone()
    if backbone.lite is None:
        pytest.skip("the shipped sentence encoder has no tokenizer.json")
    texts = ["a person walks forward", "sits down on a chair", "x " * 80, ""]
    lite = sentence_embeddings(texts, backbone)

    transformers_path = TextBackbone()        # the same backbone, forced onto the transformers path
    transformers_path.lite = None
    ref = sentence_embeddings(texts, transformers_path)
    assert lite.shape == ref.shape == (4, 384) and np.abs(lite - ref).max() < 1e-5


def test_understanding_a_prompt_does_not_import_transformers():
    code = ("import sys; from kmm.app_logic import MotionService; s = MotionService(); "
            "print(s.understand(['a person walks forward'])[0]['closest'][0]); print('transformers' in sys.modules)")
    if not (SHIPPED / "vocabulary.json").is_file():
        pytest.skip("no shipped vocabulary")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "KMM_WEIGHTS": str(SHIPPED)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_bench_times_a_marked_random_transformer_when_the_bundle_has_none():
    from kmm.eval.bench import RANDOM_INIT, load_pipeline
    from kmm.eval.report import render_bench
    from kmm.pipeline import available_generators

    if not (SHIPPED / "kmm" / "model.safetensors").is_file():
        pytest.skip("no shipped weights")
    if "transformer" in available_generators(SHIPPED):
        pytest.skip("the bundle has a trained transformer")
    pipe, note = load_pipeline(SHIPPED, "transformer")
    assert note == RANDOM_INIT and pipe.generator.config.backbone == "transformer"
    assert pipe.generator.config.d_model == 256 and pipe.generator.config.n_layers == 4
    assert pipe.generate([("a person walks forward", 2.0)], steps=2).n_frames == 40
    row = {"single_10s": {"mean": 0.1, "ci95": 0.0, "values": [0.1]}, "weights": RANDOM_INIT}
    md = render_bench({"hardware": {}, "repeats": 1, "models": {"transformer": row},
                       "kmm_vs_transformer": {"single_10s": 0.9, "timeline_600s": 0.8}})
    assert "Transformer (MoMask-style) ¹" in md and "random weights" in md
    assert "10 s prompt 0.90, 10 min timeline 0.80" in md


def test_app_cold_start_launches_the_app_and_times_its_first_result(tiny_bundle, tmp_path):
    pytest.importorskip("gradio_client")
    from kmm.eval.bench import measure_app_cold_start
    from kmm.eval.report import render_bench

    out = measure_app_cold_start(tiny_bundle, threads=1)
    assert out.get("error") is None, out
    assert 0 < out["server_up_s"] < out["first_result_s"] < 180
    md = render_bench({"hardware": {}, "repeats": 1, "models": {}, "app_cold_start": out})
    assert f"first result {out['first_result_s']:.2f} s" in md
    later = measure_app_cold_start(tiny_bundle, threads=1, click_after_s=1.0)
    assert later.get("error") is None, later
    assert later["first_result_s"] - later["server_up_s"] >= 1.0 and 0 < later["generate_s"] < later["first_result_s"]
    md = render_bench({"hardware": {}, "repeats": 1, "models": {}, "app_click_3s": later})
    assert "clicked 1 s after the page answered" in md and f"took {later['generate_s']:.2f} s" in md
    # weights that are not there: the app starts, the first Generate fails, and the measurement says so
    bad = measure_app_cold_start(tmp_path / "no-weights", threads=1)
    assert bad["first_result_s"] is None and bad["error"]
    assert "App cold start" not in render_bench({"hardware": {}, "repeats": 1, "models": {}, "app_cold_start": bad})


def test_bench_transformer_keeps_the_default_block_when_kmm_is_narrower(tmp_path):
    """A KMM generator trained with shared projections and a 256-unit feed-forward is timed against the same
    transformer as the default-shape one (feed-forward 2 · d_model), not one shrunk with it."""
    import dataclasses

    from kmm.config import GeneratorConfig
    from kmm.eval.bench import RANDOM_INIT, load_pipeline
    from kmm.generators.kmm.model import MaskedGenerator
    from kmm.pipeline import available_generators

    if not (SHIPPED / "kmm" / "model.safetensors").is_file() or "transformer" in available_generators(SHIPPED):
        pytest.skip("needs the shipped bundle without a trained transformer")
    for entry in SHIPPED.iterdir():
        if entry.name != "kmm":
            (tmp_path / entry.name).symlink_to(entry)
    shipped_config = MaskedGenerator.from_pretrained(SHIPPED / "kmm").config
    narrow = dataclasses.replace(shipped_config, shared_proj=True, ff_dim=256)
    torch.manual_seed(0)
    MaskedGenerator(narrow).save_pretrained(tmp_path / "kmm")
    pipe, note = load_pipeline(tmp_path, "transformer")
    config = pipe.generator.config
    default = GeneratorConfig()
    assert note == RANDOM_INIT and config.backbone == "transformer"
    assert (config.ff_dim, config.d_inner, config.shared_proj) == (default.ff_dim, default.d_inner, False)
    assert (config.d_model, config.n_layers) == (narrow.d_model, narrow.n_layers)
    assert pipe.generator.blocks[0].layer.linear1.out_features == 2 * narrow.d_model
    narrow_transformer = MaskedGenerator(dataclasses.replace(config, ff_dim=256))    # honoured when asked for
    assert narrow_transformer.blocks[0].layer.linear1.out_features == 256
    kmm_pipe, _ = load_pipeline(tmp_path, "kmm")
    assert kmm_pipe.generator.config.shared_proj and kmm_pipe.generator.config.ff_dim == 256
