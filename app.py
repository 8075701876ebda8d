"""KMM text-to-motion demo (Gradio Space). UI wiring only; the logic lives in kmm/app_logic.py, the motion
player (a self-contained canvas page in an iframe, no CDN) in kmm/viz/player.py.

Run: `python app.py` (0.0.0.0, port $PORT or 7860). Weights: pinned Hub repo from KMM_MODEL_REPO +
KMM_MODEL_REVISION, else the bundled folder KMM_WEIGHTS (default assets/kmm); loaded on first request. The
weights folder's vocabulary.json/.safetensors (kmm.vocabulary) gives each segment's closest training captions.
API: `gradio_client.Client(url).predict(prompt, "3,2,auto", 0, 3.0, 10, "kmm", api_name="/generate")`.
View "mesh": animated mannequin .glb after the skeleton (the viewer gets a copy whose body stays in the middle
while the floor slides under it; the download is the motion as it is), plus an mp4 for motions up to
$KMM_MP4_MAX_SECONDS (default 10; 0 = never; ~0.2 s per frame on CPU). SMPL params go into the .npz when
$KMM_SMPL_DIR has the model.
"""
from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import gradio as gr
import numpy as np

from kmm import app_logic as logic
from kmm.config import DEFAULT_GUIDANCE
from kmm.errors import WeightsError   # not kmm.model.weights: that imports torch (the warm-up thread does)
from kmm.motion.smpl import smpl_status
from kmm.segment import MAX_CHARS, MAX_PROMPT_CHARS, MAX_SECONDS, MAX_SEGMENTS, MIN_SECONDS, TimelineError

try:  # ZeroGPU Spaces: request a GPU per call; elsewhere a no-op
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        return fn

TITLE = "KMM: Key Frame Mask Mamba — extended text-to-motion"
INTRO = ("Describe a sequence of actions and press **Generate** (or Enter). The prompt is split into segments "
         "at *then*, *after that*, sentence ends, …; each segment gets a length (or **auto**: the model picks). "
         "Edit the segments below to fine-tune them. The motion plays by itself: pause, scrub, drag to turn.")
# the landing prompt is examples/01_walk_back_sit.json (auto lengths): tests/test_examples.py generates it with the
# shipped weights and checks each segment does what it says
EXAMPLE_PROMPT = "a person walks forward, then walks backwards, then sits down on a chair"
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
ROWS = MAX_SEGMENTS          # fixed pool of editable rows, shown/hidden as needed
EXPECTED = (TimelineError, WeightsError, ValueError)   # errors whose message is meant for the user
APP_CSS = """
#kmm-rows .kmm-note {font-size: 12px; opacity: 0.85; min-width: 140px}
#kmm-rows .kmm-note p {margin: 0}
"""


def _warn(error: BaseException) -> str:
    msg = logic.user_message(error)
    gr.Warning(msg)
    return f"⚠️ {msg}"


def _player(take, title: str = "") -> str:
    from kmm.viz.player import player_html

    r = take.result
    return player_html([(title, r.joints)], r.texts, r.boundaries, elem_id="motion-player-frame")


def _settings_inputs():
    """Accordion 'Advanced' with seed, guidance, steps, model and foot lock. Numbers are checked in the handler
    (a message naming the field), not by the component, so a bad value never wipes the motion on screen."""
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            seed = gr.Number(label="Seed", value=0, precision=0, elem_id="seed")
            guidance = gr.Slider(logic.MIN_GUIDANCE, logic.MAX_GUIDANCE, value=DEFAULT_GUIDANCE, step=0.5,
                                 label="Guidance (classifier-free)")
            steps = gr.Slider(logic.MIN_STEPS, logic.MAX_STEPS, value=10, step=1, label="Decoding steps",
                              info="mask-predict steps; DDIM steps for Motion Mamba; BAMM decodes token by token")
            model = gr.Dropdown([(label, name) for name, label in logic.shown_models().items()],
                                value=logic.DEFAULT_MODEL, label="Model")
            foot_lock = gr.Checkbox(value=True, label="Lock feet", elem_id="foot-lock",
                                    info="keep planted feet from sliding (when the model supports it)")
    return seed, guidance, steps, model, foot_lock


# --- Generate tab ------------------------------------------------------------------------------------

def _segment_rows(initial: list[str]):
    """The fixed pool of rows: (row, text, seconds, auto, note) × ROWS; the first len(initial) are visible."""
    rows, texts, secs, autos, notes = [], [], [], [], []
    with gr.Column(elem_id="kmm-rows"):
        for i in range(ROWS):
            with gr.Row(visible=i < len(initial), equal_height=True, elem_classes="kmm-row") as row:
                texts.append(gr.Textbox(value=initial[i] if i < len(initial) else "", label=f"Segment {i + 1}",
                                        scale=5, max_length=MAX_CHARS, elem_id=f"seg-text-{i}",
                                        placeholder="an action, e.g. 'a person jumps'"))
                secs.append(gr.Slider(MIN_SECONDS, MAX_SECONDS, value=3.0, step=0.2, label="seconds", scale=3,
                                      elem_id=f"seg-sec-{i}"))
                autos.append(gr.Checkbox(value=True, label="auto", scale=1, min_width=80, elem_id=f"seg-auto-{i}"))
                notes.append(gr.Markdown(logic.length_note(3.0, True), elem_id=f"seg-note-{i}",
                                         elem_classes="kmm-note"))
            rows.append(row)
    return rows, texts, secs, autos, notes


def _about(service: logic.MotionService):
    """Accordion 'About / set-up': where the weights come from, Hub and SMPL set-up, in plain words."""
    with gr.Accordion("About / set-up", open=False, elem_id="about"):
        weights = gr.Markdown("Weights: loaded with the first generation.", elem_id="about-weights")
        gr.Markdown(
            "**Own weights from the Hugging Face Hub:** start the app with the environment variables "
            "`KMM_MODEL_REPO` (the repository) and `KMM_MODEL_REVISION` (a commit or tag, so the weights cannot "
            "change under you). Without them, or when the Hub cannot be reached, the weights bundled with the "
            "app are used.\n\n"
            "**Body mesh:** the *mesh* view poses a licence-free mannequin. An SMPL body is optional and needs "
            "files you download yourself:", elem_id="about-hub")
        gr.Markdown(smpl_status(), elem_id="smpl-status")
    return weights


def build_generate_tab(service: logic.MotionService, examples: list[logic.Example]):
    gr.Markdown(INTRO)
    abilities = gr.Markdown(elem_id="abilities")
    initial = logic.prompt_to_texts(EXAMPLE_PROMPT, ROWS)
    with gr.Row(equal_height=True):
        prompt = gr.Textbox(label="Prompt (Enter generates)", value=EXAMPLE_PROMPT, lines=1, max_lines=4, scale=5,
                            elem_id="prompt", max_length=MAX_PROMPT_CHARS)
        split = gr.Button("Split", scale=1, elem_id="split")
    example_key = gr.Textbox(visible=False, elem_id="example-key")
    if examples:
        ex = gr.Examples([[e.key] for e in examples], [example_key], example_labels=[e.title for e in examples],
                         label="Examples: actions this model does well (click to generate)", elem_id="examples",
                         examples_per_page=20)
    n_rows = gr.State(len(initial))
    split_from = gr.State(EXAMPLE_PROMPT)      # the prompt the rows were split from
    rows, texts, secs, autos, notes = _segment_rows(initial)
    with gr.Row():
        add = gr.Button("+ Add segment", size="sm")
        remove = gr.Button("− Remove last", size="sm")
    seed, guidance, steps, model, foot_lock = _settings_inputs()
    with gr.Row(equal_height=True):
        view = gr.Radio(list(logic.VIEW_CHOICES), value=logic.VIEW_FAST, label="View", scale=1,
                        elem_id="view")
        generate = gr.Button("Generate", variant="primary", elem_id="generate", scale=3)
    status = gr.Markdown(elem_id="status")
    player = gr.HTML(elem_id="motion-player")
    timeline = gr.HTML(elem_id="timeline")
    understood = gr.HTML(elem_id="understood")
    with gr.Row():
        npz_file = gr.File(label="Motion (.npz)", elem_id="npz-file")
        bvh_file = gr.File(label="Motion (.bvh)", elem_id="bvh-file")
    with gr.Column(visible=False, elem_id="mesh-panel") as mesh_panel:
        mesh_status = gr.Markdown(elem_id="mesh-status")
        with gr.Row():
            # the viewer's .glb keeps the body near the origin (kmm.viz.mesh follow mode), so a fixed camera
            # distance frames it as large for a 2-s clip as for a 60-s walk: 3/4 view, 3.6 m away
            mesh_view = gr.Model3D(label="Body mesh (animated mannequin)", elem_id="mesh-viewer", height=480,
                                   clear_color=(0.93, 0.94, 0.96, 1.0), scale=3, camera_position=(55, 72, 3.6))
            mesh_video = gr.Video(label="Rendered mesh (.mp4, short motions only)", elem_id="mesh-video",
                                  height=480, interactive=False, scale=2)
        glb_file = gr.File(label="Mesh (.glb)", elem_id="glb-file")
    with gr.Accordion("Regenerate one segment", open=False, elem_id="regen-box"):
        with gr.Row():
            seg_k = gr.Number(label="Segment #", value=1, precision=0, elem_id="regen-k")
            seg_seed = gr.Number(label="New seed", value=1, precision=0, elem_id="regen-seed")
            seg_text = gr.Textbox(label="New text (optional)", scale=3, elem_id="regen-text")
            regen = gr.Button("Regenerate segment", elem_id="regenerate")
    about_weights = _about(service)
    last = gr.State(None)        # the Take on screen
    out_dir = gr.State(None)     # the request folder of `last`'s files; None after a failed request

    def row_updates(texts_: list[str], n: int, notes_: list[str] | None = None):
        """[n_rows, *rows, *texts, *autos, *notes] for rows rebuilt from a prompt (auto lengths)."""
        return ([n] + [gr.update(visible=i < n) for i in range(ROWS)]
                + [gr.update(value=texts_[i]) if i < n else gr.update() for i in range(ROWS)]
                + [gr.update(value=True) if i < n else gr.update() for i in range(ROWS)]
                + [gr.update(value=(notes_ or [])[i] if notes_ else logic.length_note(3.0, True)) if i < n
                   else gr.update() for i in range(ROWS)])

    row_outputs = [n_rows, *rows, *texts, *autos, *notes]

    def on_split(text):
        try:
            pieces = logic.prompt_to_texts(text, ROWS)
        except EXPECTED as e:
            return [gr.update()] * (len(row_outputs) + 1) + [_warn(e)]
        return row_updates(pieces, len(pieces)) + [text, ""]

    def resize(n, delta):
        n = max(1, min(ROWS, int(n) + delta))
        return [n] + [gr.update(visible=i < n) for i in range(ROWS)]

    split.click(on_split, prompt, row_outputs + [split_from, status], api_visibility="private")
    add.click(lambda n: resize(n, +1), n_rows, [n_rows, *rows], api_visibility="private")
    remove.click(lambda n: resize(n, -1), n_rows, [n_rows, *rows], api_visibility="private")
    for sec, auto, note in zip(secs, autos, notes):
        # touching the seconds means "this length": untick auto, and say what the value becomes
        sec.input(lambda v: (False, logic.length_note(v, False)), sec, [auto, note], api_visibility="private",
                  queue=False, show_progress="hidden")
        auto.input(lambda a, v: logic.length_note(v, a), [auto, sec], note, api_visibility="private",
                   queue=False, show_progress="hidden")

    outputs = [player, timeline, understood, npz_file, bvh_file, status, last, out_dir, about_weights]
    keep = [gr.update()] * len(outputs)

    def respond(take, t0: float, status_index=5):
        r = take.result
        folder = logic.request_dir()
        npz, bvh = logic.write_outputs(take, folder)
        items = service.understand(r.texts)
        line = logic.status_line(take, service.source, time.perf_counter() - t0)
        note = logic.language_note(r.texts)
        if items and any(i["warning"] for i in items):
            line += ("  \n⚠️ Some segments ask for something the model has not seen — see "
                     "*What the model understood*.")
        return [_player(take), logic.timeline_html(r.texts, r.boundaries),
                logic.understanding_html(items or []), str(npz), str(bvh),
                line + (f"  \n{note}" if note else ""), take, str(folder),
                f"Weights: {logic.weights_plain(service.source)}."]

    def failed(e: BaseException):
        out = list(keep)
        out[5] = _warn(e)
        return out

    @gpu
    def on_generate(data, progress=gr.Progress()):
        t0 = time.perf_counter()
        no_rows = [gr.update()] * (len(row_outputs) + 1)
        try:
            plan = logic.plan_rows(data[prompt], data[split_from], [data[c] for c in texts],
                                   [data[c] for c in secs], [data[c] for c in autos], data[n_rows], ROWS)
            segments = logic.rows_to_segments(plan.texts, plan.seconds, plan.auto, plan.n)
            settings = logic.check_settings(data[seed], data[guidance], data[steps], data[model], data[foot_lock])
            progress(0.1, desc=f"loading {settings.model}")
            service.pipeline(settings.model)
            progress(0.4, desc=f"generating {len(segments)} segments")
            take = logic.Take(service.generate(segments, settings), settings.seed)
        except EXPECTED as e:
            return failed(e) + no_rows
        r = take.result
        picked = [logic.length_note(s.seconds, s.seconds is None, picked=r.seconds[i])
                  for i, s in enumerate(segments)]
        if plan.resplit:
            rows_out = row_updates(plan.texts, plan.n, picked) + [data[prompt]]
        else:
            rows_out = ([gr.update()] * (1 + 3 * ROWS)
                        + [gr.update(value=picked[i]) if i < plan.n else gr.update() for i in range(ROWS)]
                        + [gr.update()])
        return respond(take, t0) + rows_out

    @gpu
    def on_regenerate(take, k, new_seed, new_text, lock, progress=gr.Progress()):
        t0 = time.perf_counter()
        try:
            try:
                index0 = int(float(k)) - 1
            except (TypeError, ValueError):
                raise TimelineError(f"Segment # must be a whole number, got {k!r}.") from None
            progress(0.3, desc=f"regenerating segment {index0 + 1}")
            new = service.regenerate(take, index0, new_seed, new_text, foot_lock=bool(lock))
        except EXPECTED as e:
            return failed(e) + [gr.update()] * ROWS
        # the row shows the text the segment now has
        return respond(new, t0) + [gr.update(value=new.result.texts[i]) if i == index0 else gr.update()
                                   for i in range(ROWS)]

    mesh_outputs = [mesh_view, mesh_video, glb_file, mesh_status]
    mp4_limit = logic.mp4_max_seconds()

    def on_mesh(choice, take, folder, progress=gr.Progress()):
        """Chained after Generate/Regenerate: in 'mesh' view, the .glb (+ short mp4) of the new motion."""
        if choice != logic.VIEW_MESH or take is None or folder is None:
            return [gr.update()] * len(mesh_outputs)
        mesh = logic.build_mesh(take, folder, progress=lambda f, desc: progress(f, desc=desc),
                                max_mp4_seconds=mp4_limit)
        return [str(mesh.view) if mesh.view else None, str(mesh.mp4) if mesh.mp4 else None,
                str(mesh.glb) if mesh.glb else None, mesh.message]

    def on_view(choice, take, folder, progress=gr.Progress()):
        """Switching to 'mesh' builds the mesh of the motion already shown (in its folder, or a new one)."""
        if choice == logic.VIEW_MESH and take is not None and folder is None:
            folder = str(logic.request_dir())
        return on_mesh(choice, take, folder, progress)

    mesh_inputs = [view, last, out_dir]
    view.change(lambda choice: gr.update(visible=choice == logic.VIEW_MESH), view, mesh_panel,
                api_visibility="private", queue=False
                ).then(on_view, mesh_inputs, mesh_outputs, api_visibility="private")

    def busy():
        return gr.update(interactive=False, value="Generating…"), gr.update(interactive=False)

    def ready():
        return gr.update(interactive=True, value="Generate"), gr.update(interactive=True)

    gen_inputs = {prompt, split_from, n_rows, *texts, *secs, *autos, seed, guidance, steps, model, foot_lock}
    gen_outputs = outputs + row_outputs + [split_from]

    def chain(event):
        """busy → generate → mesh (in mesh view) → ready: Generate stays disabled while a run is going."""
        return (event(busy, None, [generate, regen], queue=False, api_visibility="private")
                .then(on_generate, gen_inputs, gen_outputs, api_visibility="private")
                .then(on_mesh, mesh_inputs, mesh_outputs, api_visibility="private")
                .then(ready, None, [generate, regen], queue=False, api_visibility="private"))

    chain(generate.click)
    chain(prompt.submit)
    (regen.click(busy, None, [generate, regen], queue=False, api_visibility="private")
     .then(on_regenerate, [last, seg_k, seg_seed, seg_text, foot_lock], outputs + texts, api_visibility="private")
     .then(on_mesh, mesh_inputs, mesh_outputs, api_visibility="private")
     .then(ready, None, [generate, regen], queue=False, api_visibility="private"))

    # --- control (issue #19): pins and a path; the panel is built by _control_panel below -----------------
    _control_panel(service, last, [seed, guidance, steps, model, foot_lock], outputs, respond, failed,
                   lambda event: event.then(on_mesh, mesh_inputs, mesh_outputs, api_visibility="private"))
    # --- end control --------------------------------------------------------------------------------------

    if examples:
        by_key = {e.key: e for e in examples}

        def on_example(key):
            """An example fills the prompt, the rows (with their lengths) and the seed; Generate follows."""
            e = by_key.get(key)
            if e is None:
                return [gr.update()] * (len(row_outputs) + 3)
            n = len(e.segments)
            out = row_updates([s.text for s in e.segments], n)
            for i, s in enumerate(e.segments):   # lengths: value + auto off where the example gives one
                out[1 + ROWS + ROWS + i] = gr.update(value=s.seconds is None)
                out[1 + 3 * ROWS + i] = gr.update(value=logic.length_note(s.seconds, s.seconds is None))
            sec_updates = [gr.update(value=e.segments[i].seconds) if i < n and e.segments[i].seconds else gr.update()
                           for i in range(ROWS)]
            return out + sec_updates + [e.prompt, e.prompt, e.seed]

        (ex.load_input_event
         .then(on_example, example_key, row_outputs + secs + [prompt, split_from, seed], api_visibility="private",
               queue=False)
         .then(busy, None, [generate, regen], queue=False, api_visibility="private")
         .then(on_generate, gen_inputs, gen_outputs, api_visibility="private")
         .then(on_mesh, mesh_inputs, mesh_outputs, api_visibility="private")
         .then(ready, None, [generate, regen], queue=False, api_visibility="private"))
    return abilities


# --- Control panel (issue #19; logic in kmm/app_control.py) -----------------------------------------

def _control_panel(service, last, settings_inputs, outputs, respond, failed, then_mesh):
    """Accordion on the Generate tab: pin frames of the motion on screen, a waypoint table drawn on a top view of
    the floor, and "Generate with control" (the same segments, through the pins and along the path)."""
    from kmm import app_control as ctl
    from kmm.control import ControlError

    with gr.Accordion("Control: pin poses, walk a path", open=False, elem_id="control-box"):
        gr.Markdown("Pin a frame of the motion on screen (its time in seconds, as the player shows it) and/or "
                    "add floor waypoints (metres; the start is x = z = 0 facing +Z, +X is the body's left), then "
                    "**Generate with control**: the same segments pass through the pinned poses and walk the path.")
        with gr.Row(equal_height=True):
            pin_t = gr.Number(label="Frame at (s)", value=1.0, elem_id="pin-time")
            pin = gr.Button("Pin this frame", elem_id="pin-frame")
            unpin = gr.Button("Clear pins", elem_id="clear-pins")
        pins_md = gr.Markdown(ctl.pins_markdown([]), elem_id="pins")
        with gr.Row(equal_height=True):
            wp_t = gr.Number(label="t (s)", value=2.0, elem_id="wp-t")
            wp_x = gr.Number(label="x (m)", value=0.0, elem_id="wp-x")
            wp_z = gr.Number(label="z (m)", value=2.0, elem_id="wp-z")
            add = gr.Button("Add waypoint", elem_id="add-waypoint")
            clear = gr.Button("Clear path", elem_id="clear-path")
        with gr.Row():
            table = gr.Dataframe(headers=ctl.WAYPOINT_HEADERS, datatype=["number"] * 3, column_count=3,
                                 interactive=True, label="Waypoints", elem_id="waypoints", scale=1)
            floor = gr.HTML(ctl.floor_svg(), elem_id="floor-view")
        go = gr.Button("Generate with control", variant="primary", elem_id="generate-control")
        report = gr.Markdown(elem_id="control-report")
    pins = gr.State([])
    expected = EXPECTED + (ControlError,)

    def view(take, pins_, table_):
        try:
            rows = ctl.waypoint_rows(table_)
        except expected:
            rows = []
        return ctl.floor_svg(take.result.joints if take is not None else None, rows, pins_)

    def on_pin(take, t, pins_, table_):
        try:
            pins_ = ctl.pin_frame(take, t, pins_)
        except expected as e:
            return pins_, gr.update(), gr.update(), _warn(e)
        return pins_, ctl.pins_markdown(pins_), view(take, pins_, table_), ""

    def on_add(take, t, x, z, table_, pins_):
        try:
            rows = ctl.add_waypoint(table_, t, x, z)
        except expected as e:
            return gr.update(), gr.update(), _warn(e)
        return rows, ctl.floor_svg(take.result.joints if take is not None else None, rows, pins_), ""

    @gpu
    def on_go(take, pins_, table_, *settings):
        t0 = time.perf_counter()
        try:
            new = ctl.generate_controlled(service, take, pins_, table_, logic.check_settings(*settings))
        except expected as e:
            return failed(e) + [gr.update(), _warn(e)]
        return respond(new, t0) + [view(new, pins_, table_), ctl.control_report(new.result)]

    private = dict(api_visibility="private")
    pin.click(on_pin, [last, pin_t, pins, table], [pins, pins_md, floor, report], **private)
    unpin.click(lambda take, table_: ([], ctl.pins_markdown([]), view(take, [], table_)), [last, table],
                [pins, pins_md, floor], **private)
    add.click(on_add, [last, wp_t, wp_x, wp_z, table, pins], [table, floor, report], **private)
    clear.click(lambda take, pins_: ([], view(take, pins_, [])), [last, pins], [table, floor], **private)
    table.input(view, [last, pins, table], floor, **private)
    then_mesh(go.click(on_go, [last, pins, table, *settings_inputs], outputs + [floor, report], **private))


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
        seed = gr.Number(label="Seed", value=0, precision=0, scale=1, elem_id="compare-seed")
    models = gr.CheckboxGroup([(label, name) for name, label in logic.shown_models().items()],
                              value=list(logic.shown_models()), label="Generators", elem_id="compare-models")
    run = gr.Button("Compare", variant="primary", elem_id="compare")
    status = gr.Markdown()
    player = gr.HTML(elem_id="compare-player")
    table = gr.Dataframe(label="Per motion (foot skating: share of frame steps with a sliding planted foot; "
                               "jerk: m/s³, lower is smoother)", interactive=False)

    def on_caption(text):
        clip = _held_out().get(text)
        return gr.update(value=logic.clip_seconds(clip.n_frames)) if clip is not None else gr.update()

    @gpu
    def on_compare(text, secs, seed_value, chosen, progress=gr.Progress()):
        from kmm.viz.player import player_html

        try:
            segments = logic.check_words(logic.validate_timeline([(text or "", float(secs))]))
            names = logic.check_models(chosen)
            settings = [logic.check_settings(seed_value, 3.0, 10, name) for name in names]
            motions = []
            clip = _held_out().get(" ".join((text or "").split()))
            if clip is not None:
                motions.append(("ground truth", clip.joints))
            for i, (name, s) in enumerate(zip(names, settings)):
                progress(0.1 + 0.8 * i / len(names), desc=f"{name}")
                result = service.generate(segments, s)
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
        n = max(len(j) for _, j in motions)
        html = player_html([(logic.MODEL_LABELS.get(name, name), np.asarray(j, np.float32)) for name, j in motions],
                           [segments[0].text], [0, n], elem_id="compare-player-frame")
        note = "" if evaluator is not None else " · text–motion evaluator not available, distance column skipped"
        lang = logic.language_note([segments[0].text])
        items = service.understand([segments[0].text])
        seen = f"  \n{items[0]['line']}" if items else ""
        return html, rows_to_frame(rows), f"All motions play in sync.{note}" + (f"  \n{lang}" if lang else "") + seen

    caption.change(on_caption, caption, seconds, api_visibility="private")
    run.click(on_compare, [caption, seconds, seed, models], [player, table, status], api_visibility="private")
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
        f"Models: {', '.join(logic.MODEL_LABELS)}. `info` lists each segment's closest training captions "
        "(`closest_captions`, cosine similarity) and a `warning` when nothing similar was in the training data.")
    with gr.Row():
        prompt = gr.Textbox(label="prompt", value="a person walks forward, then sits down", scale=4)
        lengths = gr.Textbox(label="lengths", value="3,2", scale=1)
    with gr.Row():
        seed = gr.Number(label="seed", value=0, precision=0)
        guidance = gr.Number(label="guidance", value=DEFAULT_GUIDANCE)
        steps = gr.Number(label="steps", value=10, precision=0)
        model = gr.Dropdown(list(logic.shown_models()), value=logic.DEFAULT_MODEL, label="model")
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
        data = logic.result_info(result, service.source, service.understand(result.texts))
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
    examples = logic.load_examples(EXAMPLES_DIR)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}")
        with gr.Tab("Generate", id="generate"):
            abilities = build_generate_tab(service, examples)
        with gr.Tab("Compare", id="compare"):
            caption = build_compare_tab(service)
        with gr.Tab("API", id="api"):
            build_api_tab(service)

        def on_load_known():        # fast (the bundle's vocabulary): shown at once
            vocab = service.vocabulary()
            return (f"**What the model knows** (actions in its training captions): "
                    f"{logic.abilities_line(vocab.groups)}." if vocab is not None and vocab.groups else "")

        def on_load_captions():     # slow (reads the data folders): must not hold the line above back
            return gr.update(choices=list(_held_out()))

        demo.load(on_load_known, None, [abilities], api_visibility="private")
        demo.load(on_load_captions, None, [caption], api_visibility="private")
    return demo


def main() -> None:
    """Serve the app; once the page answers, the default model loads in the background (`MotionService.warm`:
    torch, weights, text encoder, scan kernel), so neither the page nor the first Generate waits for it."""
    service = logic.MotionService()
    demo = build_demo(service).queue(default_concurrency_limit=2, max_size=32)
    demo.launch(server_name="0.0.0.0", server_port=int(os.environ.get("PORT", "7860")), css=APP_CSS,
                prevent_thread_lock=True)
    service.warm(logic.DEFAULT_MODEL)
    demo.block_thread()


if __name__ == "__main__":
    main()
