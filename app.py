"""KMM text-to-motion demo (Gradio Space). UI wiring only; the logic lives in kmm/app_logic.py.

Run: `python app.py` (0.0.0.0, port $PORT or 7860). Weights: pinned Hub repo from KMM_MODEL_REPO +
KMM_MODEL_REVISION, else the bundled folder KMM_WEIGHTS (default assets/kmm); loaded on first request.
API: `gradio_client.Client(url).predict(prompt, "3,2,auto", 0, 3.0, 10, "kmm", api_name="/generate")`.
View "mesh": animated mannequin .glb after the skeleton, plus an mp4 for motions up to $KMM_MP4_MAX_SECONDS
(default 10; 0 = never; ~0.2 s per frame on CPU). SMPL params go into the .npz when $KMM_SMPL_DIR has the model.
"""
from __future__ import annotations

import functools
import os
import time

import gradio as gr

from kmm import app_logic as logic
from kmm.model.weights import WeightsError
from kmm.motion.smpl import smpl_status
from kmm.segment import MAX_CHARS, MAX_PROMPT_CHARS, MAX_SECONDS, MAX_SEGMENTS, MIN_SECONDS, TimelineError

try:  # ZeroGPU Spaces: request a GPU per call; elsewhere a no-op
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        return fn

TITLE = "KMM: Key Frame Mask Mamba — extended text-to-motion"
INTRO = ("Describe a sequence of actions. **Split** turns the prompt into segments (at *then*, *after that*, "
         "sentence ends, …); give each a length or let the model pick (**auto**), then **Generate**. "
         "Output: 22-joint skeleton at 20 fps, downloadable as .npz (joints + features) and .bvh. "
         "View **mesh** adds an animated body mesh (.glb, and an .mp4 for short motions) after the skeleton.")
EXAMPLE_PROMPT = "a person walks forward, then turns around and sits down. After that they wave with the right hand"
ROWS = MAX_SEGMENTS          # fixed pool of editable rows, shown/hidden as needed
EXPECTED = (TimelineError, WeightsError, ValueError)   # errors whose message is meant for the user
PLOT_HEIGHT = 620
CAMERA = dict(up=dict(x=0, y=0, z=1), eye=dict(x=1.1, y=-1.5, z=0.7))   # three-quarter view


def _warn(error: BaseException) -> str:
    msg = logic.user_message(error)
    gr.Warning(msg)
    return f"⚠️ {msg}"


def _figure(result, title: str = ""):
    from kmm.viz.skeleton_plot import skeleton_figure

    fig = skeleton_figure(result.joints, title=title, segment_texts=result.texts, boundaries=result.boundaries)
    fig.update_layout(height=PLOT_HEIGHT, scene_camera=CAMERA)
    return fig


def _settings_inputs():
    """Accordion 'Advanced' with seed, guidance, steps and model; returns the four components."""
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=logic.MAX_SEED)
            guidance = gr.Slider(logic.MIN_GUIDANCE, logic.MAX_GUIDANCE, value=3.0, step=0.5,
                                 label="Guidance (classifier-free)")
            steps = gr.Slider(logic.MIN_STEPS, logic.MAX_STEPS, value=10, step=1, label="Decoding steps",
                              info="mask-predict steps; DDIM steps for Motion Mamba; BAMM decodes token by token")
            model = gr.Dropdown([(label, name) for name, label in logic.MODEL_LABELS.items()],
                                value=logic.DEFAULT_MODEL, label="Model")
    return seed, guidance, steps, model


# --- Generate tab ------------------------------------------------------------------------------------

def _segment_rows():
    """The fixed pool of rows: (row, text, seconds, auto) × ROWS; the first one is visible."""
    rows, texts, secs, autos = [], [], [], []
    for i in range(ROWS):
        with gr.Row(visible=i == 0, equal_height=True, elem_classes="kmm-row") as row:
            texts.append(gr.Textbox(label=f"Segment {i + 1}", scale=5, max_length=MAX_CHARS,
                                    elem_id=f"seg-text-{i}", placeholder="an action, e.g. 'a person jumps'"))
            secs.append(gr.Slider(MIN_SECONDS, MAX_SECONDS, value=3.0, step=0.2, label="seconds", scale=3,
                                  elem_id=f"seg-sec-{i}"))
            autos.append(gr.Checkbox(value=True, label="auto", scale=1, min_width=80, elem_id=f"seg-auto-{i}"))
        rows.append(row)
    return rows, texts, secs, autos


def build_generate_tab(service: logic.MotionService):
    gr.Markdown(INTRO)
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", value=EXAMPLE_PROMPT, lines=2, max_lines=8, scale=5, elem_id="prompt")
        split = gr.Button("Split", scale=1, elem_id="split")
    n_rows = gr.State(1)
    rows, texts, secs, autos = _segment_rows()
    with gr.Row():
        add = gr.Button("+ Add segment", size="sm")
        remove = gr.Button("− Remove last", size="sm")
    seed, guidance, steps, model = _settings_inputs()
    with gr.Row(equal_height=True):
        view = gr.Radio(list(logic.VIEW_CHOICES), value=logic.VIEW_FAST, label="View", scale=1,
                        elem_id="view")
        generate = gr.Button("Generate", variant="primary", elem_id="generate", scale=3)
    status = gr.Markdown(elem_id="status")
    timeline = gr.HTML(elem_id="timeline")
    plot = gr.Plot(label="Motion", elem_id="motion-plot")
    with gr.Row():
        npz_file = gr.File(label="Motion (.npz)", elem_id="npz-file")
        bvh_file = gr.File(label="Motion (.bvh)", elem_id="bvh-file")
    with gr.Column(visible=False, elem_id="mesh-panel") as mesh_panel:
        mesh_status = gr.Markdown(elem_id="mesh-status")
        with gr.Row():
            mesh_view = gr.Model3D(label="Body mesh (animated mannequin)", elem_id="mesh-viewer", height=480,
                                   clear_color=(0.93, 0.94, 0.96, 1.0), scale=3)
            mesh_video = gr.Video(label="Rendered mesh (.mp4, short motions only)", elem_id="mesh-video",
                                  height=480, interactive=False, scale=2)
        glb_file = gr.File(label="Mesh (.glb)", elem_id="glb-file")
        gr.Markdown(smpl_status(), elem_id="smpl-status")
    with gr.Accordion("Regenerate one segment", open=False):
        with gr.Row():
            seg_k = gr.Number(label="Segment #", value=1, precision=0, minimum=1, maximum=ROWS, elem_id="regen-k")
            seg_seed = gr.Number(label="New seed", value=1, precision=0, minimum=0, maximum=logic.MAX_SEED,
                                 elem_id="regen-seed")
            seg_text = gr.Textbox(label="New text (optional)", scale=3)
            regen = gr.Button("Regenerate segment", elem_id="regenerate")
    last = gr.State(None)
    out_dir = gr.State(None)     # the request folder of `last`'s files; None after a failed request

    def show_rows(pieces: list[str]):
        n = len(pieces)
        return ([n] + [gr.update(visible=i < n) for i in range(ROWS)]
                + [gr.update(value=pieces[i]) if i < n else gr.update() for i in range(ROWS)]
                + [gr.update(value=True) if i < n else gr.update() for i in range(ROWS)] + [""])

    def on_split(text):
        try:
            pieces = logic.prompt_to_texts(text, ROWS)
        except EXPECTED as e:
            return [gr.update()] * (1 + 3 * ROWS) + [_warn(e)]
        return show_rows(pieces)

    def resize(n, delta):
        n = max(1, min(ROWS, int(n) + delta))
        return [n] + [gr.update(visible=i < n) for i in range(ROWS)]

    split_outputs = [n_rows, *rows, *texts, *autos, status]
    split.click(on_split, prompt, split_outputs, api_visibility="private")
    add.click(lambda n: resize(n, +1), n_rows, [n_rows, *rows], api_visibility="private")
    remove.click(lambda n: resize(n, -1), n_rows, [n_rows, *rows], api_visibility="private")

    outputs = [plot, timeline, npz_file, bvh_file, status, last, out_dir]
    no_change = [gr.update()] * (len(outputs) - 3)

    def respond(result, t0: float, title: str = ""):
        folder = logic.request_dir()
        npz, bvh = logic.write_outputs(result, folder)
        line = logic.status_line(result, service.source, time.perf_counter() - t0)
        note = logic.language_note(result.texts)
        return [_figure(result, title), logic.timeline_html(result.texts, result.boundaries), str(npz), str(bvh),
                line + (f"  \n{note}" if note else ""), result, str(folder)]

    @gpu
    def on_generate(data, progress=gr.Progress()):
        t0 = time.perf_counter()
        try:
            n = data[n_rows]
            segments = logic.rows_to_segments([data[c] for c in texts], [data[c] for c in secs],
                                              [data[c] for c in autos], n)
            settings = logic.check_settings(data[seed], data[guidance], data[steps], data[model])
            progress(0.1, desc=f"loading {settings.model}")
            service.pipeline(settings.model)
            progress(0.4, desc=f"generating {len(segments)} segments")
            result = service.generate(segments, settings)
        except EXPECTED as e:
            return no_change + [_warn(e), gr.update(), None]
        return respond(result, t0)

    @gpu
    def on_regenerate(result, k, new_seed, new_text, progress=gr.Progress()):
        t0 = time.perf_counter()
        try:
            progress(0.3, desc=f"regenerating segment {k}")
            new = service.regenerate(result, int(k or 0) - 1, new_seed, new_text)
        except EXPECTED as e:
            return no_change + [_warn(e), gr.update(), None]
        return respond(new, t0)

    mesh_outputs = [mesh_view, mesh_video, glb_file, mesh_status]
    mp4_limit = logic.mp4_max_seconds()

    def on_mesh(choice, result, folder, progress=gr.Progress()):
        """Chained after Generate/Regenerate: in 'mesh' view, the .glb (+ short mp4) of the new motion."""
        if choice != logic.VIEW_MESH or result is None or folder is None:
            return [gr.update()] * len(mesh_outputs)
        mesh = logic.build_mesh(result, folder, progress=lambda f, desc: progress(f, desc=desc),
                                max_mp4_seconds=mp4_limit)
        return [str(mesh.glb) if mesh.glb else None, str(mesh.mp4) if mesh.mp4 else None,
                str(mesh.glb) if mesh.glb else None, mesh.message]

    def on_view(choice, result, folder, progress=gr.Progress()):
        """Switching to 'mesh' builds the mesh of the motion already shown (in its folder, or a new one)."""
        if choice == logic.VIEW_MESH and result is not None and folder is None:
            folder = str(logic.request_dir())
        return on_mesh(choice, result, folder, progress)

    mesh_inputs = [view, last, out_dir]
    view.change(lambda choice: gr.update(visible=choice == logic.VIEW_MESH), view, mesh_panel,
                api_visibility="private", queue=False
                ).then(on_view, mesh_inputs, mesh_outputs, api_visibility="private")

    generate.click(on_generate, {n_rows, *texts, *secs, *autos, seed, guidance, steps, model}, outputs,
                   api_visibility="private").then(on_mesh, mesh_inputs, mesh_outputs, api_visibility="private")
    regen.click(on_regenerate, [last, seg_k, seg_seed, seg_text], outputs, api_visibility="private"
                ).then(on_mesh, mesh_inputs, mesh_outputs, api_visibility="private")


# --- Compare tab -------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _held_out() -> dict:
    """Caption -> held-out test clip, from KMM_DATA (or the default data folder); {} when there is none."""
    from kmm.data import DataError, load_dataset

    try:
        dataset = load_dataset(None)
    except (DataError, OSError) as e:
        print(f"[app] no held-out captions: {e}")
        return {}
    split = "test" if "test" in dataset.splits else None
    return logic.caption_index(dataset.clips(split)) if split else {}


@functools.lru_cache(maxsize=1)
def _evaluator():
    """The optional text–motion evaluator (kmm/eval/evaluator.py + weights in assets/evaluator), or None."""
    try:
        from kmm.eval.evaluator import FrozenEvaluator
    except ImportError:
        return None
    path = os.environ.get("KMM_EVALUATOR", "assets/evaluator")
    if not os.path.isfile(os.path.join(path, "model.safetensors")):
        return None
    try:
        return FrozenEvaluator.load(path)
    except EXPECTED + (OSError, RuntimeError) as e:
        print(f"[app] evaluator unavailable: {e}")
        return None


def build_compare_tab(service: logic.MotionService):
    gr.Markdown("Same caption, same length, same seed: ground truth (for a held-out caption) and the chosen "
                "generators side by side, played with one slider. BAMM and Motion Mamba are our implementations "
                "of those papers, trained on the same data and budget (see the model card).")
    with gr.Row():
        caption = gr.Dropdown([], label="Held-out test caption, or type your own", allow_custom_value=True,
                              value="a person walks forward", scale=4, elem_id="compare-caption")
        seconds = gr.Slider(MIN_SECONDS, MAX_SECONDS, value=4.0, step=0.2, label="seconds", scale=2)
        seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=logic.MAX_SEED, scale=1)
    models = gr.CheckboxGroup([(label, name) for name, label in logic.MODEL_LABELS.items()],
                              value=list(logic.MODEL_LABELS), label="Generators", elem_id="compare-models")
    run = gr.Button("Compare", variant="primary", elem_id="compare")
    status = gr.Markdown()
    plot = gr.Plot(label="Side by side", elem_id="compare-plot")
    table = gr.Dataframe(label="Per motion (foot skating: share of frame steps with a sliding planted foot; "
                               "jerk: m/s³, lower is smoother)", interactive=False)

    def on_caption(text):
        clip = _held_out().get(text)
        return gr.update(value=logic.clip_seconds(clip.n_frames)) if clip is not None else gr.update()

    @gpu
    def on_compare(text, secs, seed_value, chosen, progress=gr.Progress()):
        from kmm.viz.skeleton_plot import side_by_side_figure

        try:
            segments = logic.validate_timeline([(text or "", float(secs))])
            names = logic.check_models(chosen)
            motions = []
            clip = _held_out().get(" ".join((text or "").split()))
            if clip is not None:
                motions.append(("ground truth", clip.joints))
            for i, name in enumerate(names):
                progress(0.1 + 0.8 * i / len(names), desc=f"{name}")
                result = service.generate(segments, logic.check_settings(seed_value, 3.0, 10, name))
                motions.append((name, result.joints))
        except EXPECTED as e:
            return gr.update(), gr.update(), _warn(e)
        evaluator = _evaluator()
        rows = []
        for name, joints in motions:
            row = {"motion": name, **logic.motion_stats(joints)}
            if evaluator is not None:
                try:
                    row["evaluator_distance"] = logic.evaluator_distance(evaluator, segments[0].text, joints)
                except EXPECTED + (RuntimeError,) as e:
                    print(f"[app] evaluator failed on {name}: {e}")
            rows.append(row)
        fig = side_by_side_figure(motions, title=segments[0].text, segment_texts=[segments[0].text])
        fig.update_layout(height=PLOT_HEIGHT)
        note = "" if evaluator is not None else " · text–motion evaluator not available, distance column skipped"
        lang = logic.language_note([segments[0].text])
        return fig, rows_to_frame(rows), f"weights: {service.source}{note}" + (f"  \n{lang}" if lang else "")

    caption.change(on_caption, caption, seconds, api_visibility="private")
    run.click(on_compare, [caption, seconds, seed, models], [plot, table, status], api_visibility="private")
    return caption


def rows_to_frame(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame(rows)


# --- API tab -----------------------------------------------------------------------------------------

def build_api_tab(service: logic.MotionService):
    gr.Markdown(
        "The same generator as a plain function, for scripts (`api_name=\"/generate\"`):\n\n"
        "```python\nfrom gradio_client import Client\n"
        "npz, bvh, info = Client(URL).predict(\"walk forward, then sit down\", \"3,2\", 0, 3.0, 10, \"kmm\",\n"
        "                                     api_name=\"/generate\")\n```\n"
        f"`lengths`: comma-separated seconds ({MIN_SECONDS:g}–{MAX_SECONDS:g}) or `auto`, one per segment "
        f"or one for all. Limits: {MAX_SEGMENTS} segments, {MAX_PROMPT_CHARS} characters. "
        f"Models: {', '.join(logic.MODEL_LABELS)}.")
    with gr.Row():
        prompt = gr.Textbox(label="prompt", value="a person walks forward, then sits down", scale=4)
        lengths = gr.Textbox(label="lengths", value="3,2", scale=1)
    with gr.Row():
        seed = gr.Number(label="seed", value=0, precision=0)
        guidance = gr.Number(label="guidance", value=3.0)
        steps = gr.Number(label="steps", value=10, precision=0)
        model = gr.Dropdown(list(logic.MODEL_LABELS), value=logic.DEFAULT_MODEL, label="model")
    run = gr.Button("Run /generate")
    with gr.Row():
        npz_file, bvh_file = gr.File(label="npz"), gr.File(label="bvh")
    info = gr.JSON(label="info")

    @gpu
    def generate(prompt: str, lengths: str, seed: int, guidance: float, steps: int, model: str):
        """Text → motion files. Returns (.npz, .bvh, info dict); bad input raises a readable error."""
        try:
            segments = logic.api_segments(prompt, lengths)
            settings = logic.check_settings(seed, guidance, steps, model)
            result = service.generate(segments, settings)
        except EXPECTED as e:
            raise gr.Error(logic.user_message(e)) from None
        npz, bvh = logic.write_outputs(result, logic.request_dir())
        data = logic.result_info(result, service.source)
        note = logic.language_note(result.texts)
        if note:
            data["note"] = note
        return str(npz), str(bvh), data

    run.click(generate, [prompt, lengths, seed, guidance, steps, model], [npz_file, bvh_file, info],
              api_name="generate")


# --- assembly --------------------------------------------------------------------------------------------

def build_demo(pipelines=None) -> gr.Blocks:
    """pipelines: a MotionService, a {name: Pipeline} mapping, a factory(name, weights_dir), or None (lazy
    loading from kmm.hub.resolve_weights on first request)."""
    if isinstance(pipelines, logic.MotionService):
        service = pipelines
    elif callable(pipelines):
        service = logic.MotionService(factory=pipelines)
    else:
        service = logic.MotionService(pipelines=pipelines)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}")
        with gr.Tab("Generate", id="generate"):
            build_generate_tab(service)
        with gr.Tab("Compare", id="compare"):
            caption = build_compare_tab(service)
        with gr.Tab("API", id="api"):
            build_api_tab(service)
        demo.load(lambda: gr.update(choices=list(_held_out())), None, caption, api_visibility="private")
    return demo


if __name__ == "__main__":
    build_demo().queue(default_concurrency_limit=2, max_size=32).launch(
        server_name="0.0.0.0", server_port=int(os.environ.get("PORT", "7860")))
