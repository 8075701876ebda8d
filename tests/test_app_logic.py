"""kmm.app_logic: the app's pure logic (no gradio, no weights)."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from kmm import app_logic as logic
from kmm.segment import MAX_PROMPT_CHARS, MAX_SEGMENTS, Segment, TimelineError


def test_rows_to_segments_uses_visible_rows_and_auto():
    segs = logic.rows_to_segments(["walk  forward", "sit", "hidden"], [3, 2.4, 5], [False, True, False], 2)
    assert segs == [Segment("walk forward", 3.0), Segment("sit", None)]


@pytest.mark.parametrize("texts, secs, auto, n, message", [
    ([""], [3], [False], 1, "Segment 1 has no text"),
    (["walk"], [0], [False], 1, "length must be positive"),
    (["walk"], [-2], [False], 1, "length must be positive"),
    (["walk"], [500], [False], 1, "longer than the maximum"),
    (["walk"], [None], [False], 1, "give a length in seconds"),
    (["walk"], ["abc"], [False], 1, "not a number of seconds"),
    ([], [], [], 0, "timeline is empty"),
    (["walk", "🙂🙂 !!"], [3, 3], [True, True], 2, r"Segment 2 \('🙂🙂 !!'\) has no words"),
])
def test_rows_to_segments_errors(texts, secs, auto, n, message):
    with pytest.raises(TimelineError, match=message):
        logic.rows_to_segments(texts, secs, auto, n)


def test_api_segments():
    assert logic.api_segments("walk forward, then sit down", "3,2") == [Segment("walk forward", 3.0),
                                                                        Segment("sit down", 2.0)]
    assert logic.api_segments("jump", "") == [Segment("jump", None)]
    assert logic.api_segments("walk. run", "2.5") == [Segment("walk", 2.5), Segment("run", 2.5)]


@pytest.mark.parametrize("prompt, lengths, message", [
    ("", "3", "prompt is empty"),
    ("   ", "3", "prompt is empty"),
    ("x" * (MAX_PROMPT_CHARS + 1), "3", "the limit is 4000"),
    ("walk, then sit", "3,2,1", "2 segments"),
    ("walk", "0", "must be positive"),
    ("walk", "-1", "must be positive"),
    ("walk", "1e9", "longer than the maximum"),
    ("walk", "nan", "not a finite number"),
    ("walk", "three", "not a number of seconds"),
    (". ".join(["walk"] * (MAX_SEGMENTS + 1)), "auto", f"the limit is {MAX_SEGMENTS}"),
])
def test_api_segments_errors(prompt, lengths, message):
    with pytest.raises(TimelineError, match=message):
        logic.api_segments(prompt, lengths)


def test_user_message_names_lengths_plainly():
    with pytest.raises(TimelineError) as e:
        logic.api_segments("walk, then sit", "3,2,1")
    assert logic.user_message(e.value).startswith("Lengths has 3 entries")


def test_check_settings():
    s = logic.check_settings(7, 2.5, 12, "KMM, random masking (ablation)")
    assert s == logic.Settings(7, 2.5, 12, "kmm-random")
    assert logic.check_settings("3", "3", "10", None).model == "kmm"
    for bad, message in [((-1, 3, 10, "kmm"), "Seed"), ((1.5, 3, 10, "kmm"), "Seed"), ((0, 99, 10, "kmm"), "Guidance"),
                         ((0, 3, 0, "kmm"), "Steps"), ((0, 3, 10, "gpt"), "Unknown model"),
                         ((None, 3, 10, "kmm"), "Seed must be a number")]:
        with pytest.raises(TimelineError, match=message):
            logic.check_settings(*bad)


def test_language_note():
    assert logic.language_note(["a person walks", "café olé"]) == ""
    assert logic.language_note(["walk", "人が歩く"]) == logic.ENGLISH_NOTE
    assert logic.language_note(["ходить"]) == logic.ENGLISH_NOTE


def test_output_names_are_safe_and_per_request(tmp_path):
    assert logic.output_stem("kmm", 3, 2, 100) == "kmm_seed3_2seg_100frames"
    assert logic.output_stem("../x y", 3, 1, 20, edit=(1, 9)) == "x-y_seed3-edit1s9_1seg_20frames"
    a, b = logic.request_dir(tmp_path), logic.request_dir(tmp_path)
    assert a != b and a.parent == b.parent == tmp_path


def _fake_result(T=100):
    t = np.linspace(0, T / 20, T)[:, None, None]
    joints = np.zeros((T, 22, 3), np.float32) + np.array([0.0, 1.0, 0.0], np.float32)
    joints = joints + (t * np.array([1.0, 0, 0])).astype(np.float32)
    return SimpleNamespace(joints=joints, features=np.zeros((T, 263), np.float32), texts=["walk", "sit <b>"],
                           boundaries=[0, 60, T], seconds=[3.0, 2.0], seed=5, guidance=3.0, model_id="x/kmm",
                           timings={"total_s": 0.25}, n_frames=T)


def test_write_outputs(tmp_path):
    from kmm.motion.npz import load_motion_npz

    npz, bvh = logic.write_outputs(_fake_result(), tmp_path)
    assert npz.name == "kmm_seed5_2seg_100frames.npz" and bvh.name == "kmm_seed5_2seg_100frames.bvh"
    data = load_motion_npz(npz)
    assert data["joints"].shape == (100, 22, 3) and data["segment_texts"] == ["walk", "sit <b>"]
    assert "Frames: 100" in Path(bvh).read_text()


def test_motion_stats_and_info():
    r = _fake_result()
    stats = logic.motion_stats(r.joints)
    assert stats["frames"] == 100 and stats["seconds"] == 5.0
    assert 0.0 <= stats["foot_skating"] <= 1.0 and stats["mean_jerk"] >= 0
    info = logic.result_info(r, "bundled weights assets/kmm")
    assert info["segments"][1] == {"text": "sit <b>", "start_s": 3.0, "end_s": 5.0}
    assert info["frames"] == 100 and info["weights"].startswith("bundled")


def test_evaluator_distance_with_a_stub():
    stub = SimpleNamespace(encode_texts=lambda texts: np.array([[3.0, 0.0]]),
                           encode_joints=lambda joints: np.array([[0.0, 4.0]]))
    assert logic.evaluator_distance(stub, "walk", _fake_result().joints) == 5.0


def test_timeline_html_escapes_and_labels():
    r = _fake_result()
    html = logic.timeline_html(r.texts, r.boundaries)
    assert "#1</b> 0.0–3.0 s" in html and "#2</b> 3.0–5.0 s" in html
    assert "sit &lt;b&gt;" in html and "<b>sit" not in html


def test_caption_index_and_clip_seconds():
    clips = [SimpleNamespace(captions=["b  walk"], n_frames=40), SimpleNamespace(captions=["a run"], n_frames=97),
             SimpleNamespace(captions=["b walk"], n_frames=10), SimpleNamespace(captions=[], n_frames=5)]
    index = logic.caption_index(clips)
    assert list(index) == ["a run", "b walk"] and index["b walk"] is clips[0]
    assert logic.clip_seconds(97) == 4.8 and logic.clip_seconds(5) == 1.0 and logic.clip_seconds(10**5) == 20.0


def test_service_loads_lazily_once_per_model():
    calls = []

    def factory(name, path):
        calls.append((name, path))
        return SimpleNamespace(generate=lambda segs, **kw: (name, segs, kw))

    service = logic.MotionService(factory, weights=lambda: (Path("/w"), "test weights"))
    assert calls == []
    out = service.generate([Segment("walk", 3.0)], logic.check_settings(1, 2.0, 5, "kmm"))
    service.pipeline("kmm")
    service.pipeline("transformer")
    assert calls == [("kmm", Path("/w")), ("transformer", Path("/w"))]
    assert out == ("kmm", [("walk", 3.0)], {"seed": 1, "guidance": 2.0, "steps": 5, "foot_lock": True})
    assert service.source == "test weights"


def test_service_warm_loads_the_model_in_the_background_and_leaves_errors_to_the_click(capsys):
    from kmm.errors import WeightsError

    calls = []

    def factory(name, path):
        calls.append(name)
        return SimpleNamespace(generate=lambda segs, **kw: calls.append((segs, kw)))

    service = logic.MotionService(factory, weights=lambda: (Path("/w"), "test weights"))
    service.warm("kmm").join(timeout=10)
    assert calls == ["kmm", ([(logic.WARM_TEXT, logic.WARM_SECONDS)], {"seed": 0, "steps": 1})]
    service.pipeline("kmm")
    assert calls.count("kmm") == 1                                # the click reuses the warmed pipeline

    def broken(name, path):
        raise WeightsError("corrupt weights file")

    service = logic.MotionService(broken, weights=lambda: (Path("/w"), "test weights"))
    service.warm("kmm").join(timeout=10)                          # no exception escapes the thread
    assert "warm-up of 'kmm' skipped: WeightsError: corrupt weights file" in capsys.readouterr().out
    with pytest.raises(WeightsError, match="corrupt weights file"):   # the click still gets the clear error
        service.generate([Segment("walk", 3.0)], logic.check_settings(1, 2.0, 5, "kmm"))


def test_service_regenerate_checks_index():
    service = logic.MotionService(pipelines={"kmm": SimpleNamespace()})
    with pytest.raises(TimelineError, match="Generate a motion first"):
        service.regenerate(None, 0, 1)
    with pytest.raises(TimelineError, match="Segment # must be between 1 and 2"):
        service.regenerate(_fake_result(), 2, 1)
    with pytest.raises(TimelineError, match="New seed must be"):
        service.regenerate(_fake_result(), 0, -1)
    with pytest.raises(TimelineError, match="New text .* has no words"):
        service.regenerate(_fake_result(), 0, 1, "🙂")


def test_app_logic_does_not_import_gradio():
    import subprocess
    import sys
    code = "import sys, kmm.app_logic; assert 'gradio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- mesh view and SMPL --------------------------------------------------------------------------

def test_mesh_paths_and_want_mp4():
    glb, mp4 = logic.mesh_paths(_fake_result(), "/tmp/req")
    assert (glb.name, mp4.name) == ("kmm_seed5_2seg_100frames.glb", "kmm_seed5_2seg_100frames.mp4")
    assert glb.parent == Path("/tmp/req")
    assert logic.want_mp4(1) and logic.want_mp4(200) and not logic.want_mp4(201)   # ≤ 10 s at 20 fps
    assert logic.want_mp4(40, max_seconds=2) and not logic.want_mp4(41, max_seconds=2)
    assert not logic.want_mp4(0) and not logic.want_mp4(20, max_seconds=0)


@pytest.fixture
def fake_mesh(monkeypatch):
    """Stubbed mannequin_pose / motion_to_glb / render_mp4 that write small files and count their calls
    (a glb call is recorded as "glb" or, for the viewer's camera-following copy, "glb-follow")."""
    import kmm.viz.mesh
    import kmm.viz.render

    calls = []

    def glb(joints, path, fps=20, follow=False, pose=None):
        assert pose == "pose"                                  # one fit for both files
        calls.append("glb-follow" if follow else "glb")
        Path(path).write_bytes(b"glTF")
        return Path(path)

    def mp4(joints, path, fps=20, size=(480, 360)):
        calls.append("mp4")
        Path(path).write_bytes(b"mp4")
        return Path(path)

    monkeypatch.setattr(kmm.viz.mesh, "motion_to_glb", glb)
    monkeypatch.setattr(kmm.viz.mesh, "mannequin_pose", lambda joints: "pose")
    monkeypatch.setattr(kmm.viz.render, "render_mp4", mp4)
    return calls


def test_build_mesh_short_motion_gets_glb_and_mp4_once(tmp_path, fake_mesh):
    steps = []
    out = logic.build_mesh(_fake_result(100), tmp_path, progress=lambda f, desc: steps.append(desc))
    assert out.glb == tmp_path / "kmm_seed5_2seg_100frames.glb" and out.mp4 == tmp_path / "kmm_seed5_2seg_100frames.mp4"
    assert out.glb.is_file() and out.mp4.is_file() and "mp4 rendered" in out.message
    assert any("mp4" in s for s in steps) and any(".glb" in s for s in steps)
    again = logic.build_mesh(_fake_result(100), tmp_path)        # same request folder: files are reused
    assert again == out and fake_mesh == ["glb", "glb-follow", "mp4"]
    assert out.view == tmp_path / "kmm_seed5_2seg_100frames_viewer.glb" and out.view.is_file()


def test_build_mesh_long_motion_skips_mp4(tmp_path, fake_mesh):
    out = logic.build_mesh(_fake_result(201), tmp_path)
    assert out.glb.is_file() and out.view.is_file() and out.mp4 is None and fake_mesh == ["glb", "glb-follow"]
    assert "mp4 skipped" in out.message and "10 s" in out.message


def test_build_mesh_render_error_is_a_message(tmp_path, fake_mesh, monkeypatch):
    import kmm.viz.render

    def broken(*args, **kwargs):
        raise kmm.viz.render.RenderError("pyrender could not load with PYOPENGL_PLATFORM=egl: no EGL. Install libegl1")

    monkeypatch.setattr(kmm.viz.render, "render_mp4", broken)
    out = logic.build_mesh(_fake_result(40), tmp_path)
    assert out.glb.is_file() and out.mp4 is None
    assert "mp4 not rendered" in out.message and "Install libegl1" in out.message and "Traceback" not in out.message


def test_build_mesh_real_glb_has_one_animation(tmp_path, mini_dir):
    pygltflib = pytest.importorskip("pygltflib")
    from kmm.data import load_dataset

    joints = np.asarray(load_dataset(mini_dir)["02_01"].joints[:12], dtype=np.float32)
    result = SimpleNamespace(joints=joints, seed=0, n_frames=len(joints), model_id="a/kmm", texts=["walk"])
    out = logic.build_mesh(result, tmp_path, max_mp4_seconds=0)
    assert out.mp4 is None and out.glb.name == "kmm_seed0_1seg_12frames.glb"
    gltf = pygltflib.GLTF2().load(str(out.glb))
    assert len(gltf.animations) == 1 and len(gltf.skins) == 1 and len(gltf.meshes) == 1
    view = pygltflib.GLTF2().load(str(out.view))                  # + the floor patch that slides under the body
    assert len(view.animations) == 1 and len(view.skins) == 1
    assert [m.name for m in view.meshes] == ["mannequin", "floor"]


def test_smpl_extra_only_with_model_files(tmp_path, monkeypatch):
    from kmm.motion import smpl

    monkeypatch.delenv(smpl.ENV_VAR, raising=False)
    assert logic.smpl_extra(np.zeros((4, 22, 3))) == {}
    assert "KMM_SMPL_DIR" in smpl.smpl_status()

    monkeypatch.setattr(smpl, "find_smpl_model", lambda model_dir=None, gender="neutral": tmp_path / "SMPL_NEUTRAL.pkl")
    monkeypatch.setattr(smpl, "smpl_npz_extra",
                        lambda joints, model_dir=None: {"smpl_body_pose": np.zeros((len(joints), 69), np.float32)})
    npz, _ = logic.write_outputs(_fake_result(), tmp_path)
    with np.load(npz, allow_pickle=False) as data:
        assert data["smpl_body_pose"].shape == (100, 69) and data["joints"].shape == (100, 22, 3)

    def broken(joints, model_dir=None):
        raise smpl.SmplUnavailable("smplx is not installed")

    monkeypatch.setattr(smpl, "smpl_npz_extra", broken)
    assert logic.smpl_extra(np.zeros((4, 22, 3))) == {}          # a broken setup never breaks the download


def test_mp4_max_seconds_from_env():
    assert logic.mp4_max_seconds({}) == logic.MP4_MAX_SECONDS == 10.0
    assert logic.mp4_max_seconds({"KMM_MP4_MAX_SECONDS": "2.5"}) == 2.5
    assert logic.mp4_max_seconds({"KMM_MP4_MAX_SECONDS": "0"}) == 0.0
    assert logic.mp4_max_seconds({"KMM_MP4_MAX_SECONDS": "lots"}) == logic.mp4_max_seconds({"KMM_MP4_MAX_SECONDS": "nan"}) == 10.0


def test_compare_models_keep_ui_order_and_reject_bad_choices():
    assert logic.check_models(["motion-mamba", "kmm", "bamm"]) == ["kmm", "bamm", "motion-mamba"]
    with pytest.raises(logic.TimelineError, match="at least one"):
        logic.check_models([])
    with pytest.raises(logic.TimelineError, match="Unknown"):
        logic.check_models(["kmm", "gpt"])


# --- issue #12: first click, stale prompt, lengths, names, edits, understanding ------------------------

def test_plan_rows_follows_the_prompt():
    # empty rows (landing page before Split): the prompt is split
    plan = logic.plan_rows("walk forward, then sit down", None, [""] * 4, [3] * 4, [True] * 4, 1)
    assert plan.resplit and plan.n == 2 and plan.texts[:2] == ["walk forward", "sit down"]
    # rows split from an older prompt: the new prompt wins, lengths back to auto
    plan = logic.plan_rows("jump. wave", "walk, then sit", ["walk", "sit", ""], [2, 5, 3], [False, False, True], 2)
    assert plan.resplit and plan.texts[:2] == ["jump", "wave"] and plan.auto[:2] == [True, True]
    # rows edited by hand under the same prompt: the rows are used as they are
    plan = logic.plan_rows("walk,  then sit", "walk, then sit", ["march", "sit"], [2, 5], [False, True], 2)
    assert not plan.resplit and plan.texts == ["march", "sit"] and plan.seconds == [2, 5]
    # prompt cleared but rows filled: the rows
    assert not logic.plan_rows("", "walk", ["walk"], [3], [True], 1).resplit
    with pytest.raises(TimelineError, match="prompt is empty"):
        logic.plan_rows("  ", None, [""], [3], [True], 1)


def test_length_note_shows_the_token_grid():
    assert logic.length_note(3.0, False) == "3.0 s = 15 tokens (60 frames)"
    assert logic.length_note(2.5, False) == "2.5 s → 2.4 s (12 tokens of 4 frames)"
    assert logic.length_note(7.6, True, picked=4.8) == "auto: the model picks the length (last time 4.8 s)"
    assert "outside 1–20 s" in logic.length_note(0.5, False) and "outside" in logic.length_note(25, False)
    assert "not a number" in logic.length_note("x", False)


def test_check_settings_names_the_field():
    with pytest.raises(TimelineError, match=r"^Seed must be a whole number between 0 and"):
        logic.check_settings(-1, 3, 10, "kmm")
    with pytest.raises(TimelineError, match=r"^Guidance must be a number"):
        logic.check_settings(0, "lots", 10, "kmm")
    assert logic.check_settings(0, 3, 10, "kmm", foot_lock=False).foot_lock is False


class _StubPipe:
    """generate / regenerate_segment recording their keyword arguments; `foot_lock` only when asked."""

    def __init__(self, foot_lock: bool):
        self.calls = []
        if foot_lock:
            self.generate = self._generate_fl
            self.regenerate_segment = self._regen_fl

    def generate(self, segments, seed=0, guidance=3.0, steps=10):
        self.calls.append(dict(seed=seed))
        return _fake_result()

    def _generate_fl(self, segments, seed=0, guidance=3.0, steps=10, foot_lock=True):
        self.calls.append(dict(seed=seed, foot_lock=foot_lock))
        return _fake_result()

    def regenerate_segment(self, result, index, *, seed, text=None):
        self.calls.append(dict(seed=seed, text=text))
        new = _fake_result()
        new.seed, new.texts = seed, list(result.texts)
        if text:
            new.texts[index] = text
        return new

    def _regen_fl(self, result, index, *, seed, text=None, foot_lock=True):
        out = _StubPipe.regenerate_segment(self, result, index, seed=seed, text=text)
        self.calls[-1]["foot_lock"] = foot_lock
        return out


@pytest.mark.parametrize("has_foot_lock", [False, True])
def test_foot_lock_passed_only_when_the_pipeline_takes_it(has_foot_lock):
    pipe = _StubPipe(has_foot_lock)
    service = logic.MotionService(pipelines={"kmm": pipe})
    service.generate([Segment("walk", 3.0)], logic.check_settings(0, 3, 10, "kmm", foot_lock=False))
    service.regenerate(_fake_result(), 0, 2, foot_lock=False)
    assert ("foot_lock" in pipe.calls[0]) == ("foot_lock" in pipe.calls[1]) == has_foot_lock
    if has_foot_lock:
        assert pipe.calls[0]["foot_lock"] is False and pipe.calls[1]["foot_lock"] is False


def test_regenerate_keeps_base_seed_and_writes_text_and_both_seeds(tmp_path):
    service = logic.MotionService(pipelines={"kmm": _StubPipe(False)})
    take = logic.Take(_fake_result(), 5)
    new = service.regenerate(take, 1, 9, "  a person   jumps ")
    assert isinstance(new, logic.Take) and new.base_seed == 5 and new.edits == ((1, 9, "a person jumps"),)
    assert new.result.texts[1] == "a person jumps"
    assert new.stem == "kmm_seed5-edit2s9_2seg_100frames"
    npz, _ = logic.write_outputs(new, tmp_path)
    with np.load(npz, allow_pickle=False) as data:
        assert int(data["seed"]) == 5 and list(data["edit_seeds"]) == [9] and list(data["edit_segments"]) == [2]
    info = logic.result_info(new, "w")
    assert info["seed"] == 5 and info["edits"] == [{"segment": 2, "seed": 9, "text": "a person jumps"}]
    line = logic.status_line(new, "w", 0.1)
    assert "seed 5" in line and "segment 2 regenerated with seed 9" in line


def test_status_line_has_no_developer_words():
    line = logic.status_line(_fake_result(), "bundled weights assets/kmm (no KMM_MODEL_REPO set)", 0.5)
    assert "KMM (key-frame masking)" in line and "x/kmm" not in line and "KMM_MODEL_REPO" not in line
    assert logic.weights_plain("bundled weights assets/kmm (no KMM_MODEL_REPO set)") == \
        "the weights bundled with the app (assets/kmm)"
    assert "user/repo@abc" in logic.weights_plain("user/repo@abc (Hugging Face Hub)")


def test_timeline_readable_with_64_segments():
    texts = [f"a person walks {k}" for k in range(64)]
    html = logic.timeline_html(texts, list(range(0, 65 * 20, 20)))
    assert html.count('class="kmm-seg"') == 64 and "overflow-x:auto" in html and "min-width:118px" in html
    assert "#64</b> 63.0–64.0 s" in html and "color:#111827" in html     # own colours: same in dark mode


def test_understanding_and_info():
    items = logic.understanding(["a person jumps", "cartwheel"],
                                [[("a person jumps", 0.93)], [("a person dances", 0.31), ("a person bows", 0.2)]])
    assert [i["warning"] for i in items] == [False, True]
    assert items[1]["line"].startswith(
        "⚠️ nothing like 'cartwheel' in the training data — closest: 'a person dances'")
    html = logic.understanding_html(items)
    assert "What the model understood" in html and "#fef3c7" in html
    info = logic.result_info(_fake_result(), "w", items)
    assert info["segments"][0]["closest_captions"] == [{"caption": "a person jumps", "similarity": 0.93}]
    assert "warning" not in info["segments"][0] and "cartwheel" in info["segments"][1]["warning"]
    assert logic.abilities_line({"jump": ["a", "b"], "walk": ["a", "b", "c"]}) == "walk (3 captions), jump (2)"


def test_service_understand_uses_the_weights_vocabulary(tmp_path, monkeypatch):
    import kmm.vocabulary
    from kmm.vocabulary import Vocabulary

    emb = np.eye(3, 8, dtype=np.float32)
    captions = ["a person walks", "a person jumps", "a person bows"]
    monkeypatch.setattr(kmm.vocabulary, "sentence_embeddings",       # one-hot "encoder": no model needed
                        lambda texts: np.stack([emb[captions.index(t)] if t in captions else np.full(8, 0.1, np.float32)
                                                for t in texts]))
    Vocabulary(captions, {"walk": ["a person walks"]}, emb, []).save(tmp_path)
    service = logic.MotionService(weights=lambda: (tmp_path, "test weights"))
    vocab = service.vocabulary()
    assert vocab is not None and vocab.captions[1] == "a person jumps"
    # pipelines loaded lazily before the first look-up: the weights folder still has the vocabulary
    lazy = logic.MotionService(lambda name, path: SimpleNamespace(generate=lambda segs, **kw: _fake_result()),
                               weights=lambda: (tmp_path, "test weights"))
    lazy.generate([Segment("walk", 3.0)], logic.check_settings(0, 3, 10, "kmm"))
    assert lazy.understand(["a person jumps"])[0]["closest"][0]["caption"] == "a person jumps"
    no_vocab = logic.MotionService(weights=lambda: (tmp_path / "missing", "w"))
    assert no_vocab.vocabulary() is None and no_vocab.understand(["x"]) is None


def test_examples_folder_loads(tmp_path):
    examples = logic.load_examples(Path(__file__).resolve().parents[1] / "examples")
    assert examples and all(e.segments and e.title for e in examples)
    assert examples[0].prompt.count(", then ") == len(examples[0].segments) - 1
    (tmp_path / "bad.json").write_text('{"segments": [{"text": "", "seconds": 3}]}')
    with pytest.raises(ValueError, match="bad.json.*Segment 1 has no text"):
        logic.load_examples(tmp_path)
    assert logic.load_examples(tmp_path / "none") == []


def test_player_payload_round_trip():
    import base64
    import json

    from kmm.viz.player import player_data, player_html

    rng = np.random.default_rng(0)
    joints = rng.normal(size=(30, 22, 3)).astype(np.float32) + np.array([5.0, 1.0, -3.0], np.float32)
    data = player_data([("a", joints)], ["walk", "sit"], [0, 12, 30])
    m = data["motions"][0]
    root = np.frombuffer(base64.b64decode(m["root"]), "<f4").reshape(-1, 2)
    local = np.frombuffer(base64.b64decode(m["local"]), "<i2").reshape(-1, 22, 3) / 1000.0
    back = local.copy()
    back[..., 0] += root[:, None, 0]
    back[..., 2] += root[:, None, 1]
    assert np.abs(back - joints).max() < 1e-3 and data["bounds_s"] == [0.0, 0.6, 1.5]
    page = player_html([("a", joints)], ["walk", "sit"], [0, 12, 30])
    assert page.startswith("<iframe") and "srcdoc=" in page and "<script" not in page   # escaped inside srcdoc
    assert "https://" not in page and "cdn" not in page.lower()                         # offline: no CDN
    long = player_data([("a", np.zeros((20000, 22, 3), np.float32))])
    assert long["motions"][0]["n"] <= 8000 and long["fps"] < 20
    json.dumps(data)
