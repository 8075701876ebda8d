"""Publishable bundle + model card from a training run (`python -m kmm export-weights`).

Copies only what inference needs (config.json + model.safetensors per model, normalizer.safetensors),
measures the held-out numbers the card reports, and writes the card (README.md, Hub model-card format).
Every number in the card comes from this code on the split named in it.
"""
from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch

MODELS = ("tokenizer", "residual", "kmm", "kmm-random", "transformer", "bamm", "motion-vae", "motion-mamba")
CREDIT_BANDAI = ("Bandai-Namco-Research-Motiondataset-1 and -2 © 2022 Bandai Namco Research Inc., CC BY-NC 4.0; "
                 "M. Kobayashi et al., \"Motion Capture Dataset for Practical Use of AI-based Motion Editing and "
                 "Stylization\", arXiv:2306.08861, 2023.")
CREDIT_CMU = ("The data used in this project was obtained from mocap.cs.cmu.edu. The database was created with "
              "funding from NSF EIA-0196217.")


def copy_bundle(run: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run / "normalizer.safetensors", out / "normalizer.safetensors")
    for name in MODELS:
        if not (run / name / "model.safetensors").is_file():
            continue
        (out / name).mkdir(exist_ok=True)
        for f in ("config.json", "model.safetensors"):
            shutil.copy2(run / name / f, out / name / f)
    for f in ("recipe.json", "train_log.jsonl", "pipeline.json"):
        if (run / f).is_file():
            shutil.copy2(run / f, out / f)


@torch.no_grad()
def held_out_numbers(bundle: Path, dataset, split: str = "test") -> dict:
    """Tokenizer MPJPE, masked-token accuracy and length-head error of each generator on `split`."""
    from kmm.corpus import build_corpus
    from kmm.generators.kmm.model import MaskedGenerator
    from kmm.model.tokenizer import MotionTokenizer
    from kmm.pipeline import Pipeline
    from kmm.text_backbone import shared_backbone
    from kmm.train import Recipe, generator_val, tokenize_corpus, tokenizer_mpjpe_mm

    corpus = build_corpus(dataset, split, mirror=False)
    text_corpus = corpus.text_items()                   # captioned parts (HumanML3D segments where known)
    pipe = Pipeline.from_pretrained(bundle, "kmm")
    tok: MotionTokenizer = pipe.tokenizer
    out = {"split": split, "clips": len(corpus), "text_items": len(text_corpus),
           "tokenizer_mpjpe_mm": round(tokenizer_mpjpe_mm(tok, pipe.normalizer, corpus), 2),
           "tokenizer_local_mpjpe_mm": round(tokenizer_mpjpe_mm(tok, pipe.normalizer, corpus, root_relative=True), 2)}
    tc = tokenize_corpus(tok, pipe.normalizer, text_corpus)
    backbone = shared_backbone(None, pipe.generator.config.text.max_tokens)
    for name in ("kmm", "kmm-random", "transformer"):
        if not (bundle / name).is_dir():
            continue
        gen = MaskedGenerator.from_pretrained(bundle / name)
        val = generator_val(gen, tok, tc, backbone, Recipe())
        out[name] = {"masked_token_acc": val["val_acc"], "masked_token_nll": val["val_nll"],
                     "length_mae_s": round(val["val_len_err_tokens"] * 4 / 20, 2),
                     "params_m": round(sum(p.numel() for p in gen.parameters()) / 1e6, 2)}
        gen.train(False)
    out.update(baseline_numbers(bundle, text_corpus, tc, backbone))
    settings_path = bundle / "pipeline.json"
    settings = json.loads(settings_path.read_text()) if settings_path.is_file() else {}
    kept = "chosen_by" in settings    # a choice made on other measurements (its "chosen_by" says which) stays
    if pipe.residual is not None:
        val_split = "val" if "val" in dataset.splits else split
        val_sweep = residual_layer_sweep(pipe, build_corpus(dataset, val_split, mirror=False).text_items())
        best = min((k for k in val_sweep if k != "true"), key=lambda k: val_sweep[k])
        if not kept:
            settings_path.write_text(json.dumps({"residual_layers": int(best), "chosen_on": val_split,
                                                 "val_pose_mpjpe_mm": val_sweep}, indent=2) + "\n")
        out["residual_sweep"] = {"chosen_layers": int(settings["residual_layers"]) if kept else int(best),
                                 "chosen_on": settings["chosen_by"] if kept else val_split,
                                 "best_by_val_pose_mpjpe": int(best), "val": val_sweep,
                                 split: residual_layer_sweep(pipe, text_corpus)}
        out["residual_params_m"] = round(sum(p.numel() for p in pipe.residual.parameters()) / 1e6, 2)
    elif not kept:
        settings_path.write_text(json.dumps({"residual_layers": 0}, indent=2) + "\n")
    out["tokenizer_params_m"] = round(sum(p.numel() for p in tok.parameters()) / 1e6, 2)
    return out


def data_table(dataset) -> tuple[str, dict]:
    """Markdown table of the training data (train split per folder: clips, hours, distinct captions, clips left
    out of text-conditioned training) and its numbers."""
    from kmm.motion.skeleton import FPS

    rows, nums = [], {}
    for source in dict.fromkeys(c.source for c in dataset.clips()):
        clips = [c for c in dataset.clips("train") if c.source == source]
        held = [c for c in dataset.clips() if c.source == source and c.split != "train"]
        hours = sum(c.n_frames for c in clips) / FPS / 3600
        labels = {x for c in clips for x in (c.labels or c.captions)}
        sentences = {x for c in clips for x in c.captions}
        no_text = sum(1 for c in clips if not c.captions)
        segs = sum(len(c.segments) for c in clips)
        nums[source] = {"train_clips": len(clips), "train_hours": round(hours, 2), "labels": len(labels),
                        "sentences": len(sentences), "no_text_clips": no_text, "segments": segs,
                        "held_out_clips": len(held)}
        rows.append(f"| `{source}` | {len(clips):,} | {hours:.2f} | {len(labels):,} | {len(sentences):,} | "
                    f"{no_text} | {segs:,} | {len(held):,} |")
    table = ("| folder | train clips | hours | distinct captions (as given) | distinct sentences (after "
             "`kmm.captions`) | clips without usable text | HumanML3D segments | held-out clips (val + test) |\n"
             "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    return table, nums


def _length_mae_s(pipe, texts: list[str], seconds: list[float]) -> float:
    """Mean absolute error (s) of the model's own length for each text against the clip's true length."""
    pred = [pipe.predict_seconds([t], seed=i)[0] for i, t in enumerate(texts)]
    return round(float(np.mean(np.abs(np.asarray(pred) - np.asarray(seconds)))), 2)


@torch.no_grad()
def baseline_numbers(bundle: Path, corpus, tc, backbone, max_clips: int = 64) -> dict:
    """BAMM: held-out token accuracies and the error of the length its [END] token predicts.
    Motion Mamba: VAE reconstruction error and length-head error."""
    from kmm.config import TextConfig
    from kmm.generators.bamm.model import Bamm
    from kmm.pipeline import Pipeline
    from kmm.train import bamm_val, frozen_text_top, tokenizer_mpjpe_mm

    out = {}
    n = min(max_clips, len(corpus))
    texts = [c[0] for c in corpus.captions[:n]]
    if (bundle / "bamm" / "model.safetensors").is_file():
        model = Bamm.from_pretrained(bundle / "bamm")
        val = bamm_val(model, tc, frozen_text_top(backbone, TextConfig()), backbone)
        cap = model.config.max_tokens
        true_s = [min(len(c), cap) * 4 / 20 for c in tc.codes[:n]]
        out["bamm"] = {"next_token_acc": val["val_acc_causal"], "masked_token_acc": val["val_acc_bidir"],
                       "length_mae_s": _length_mae_s(Pipeline.from_pretrained(bundle, "bamm", text_backbone=backbone),
                                                     texts, true_s),
                       "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    if (bundle / "motion-mamba" / "model.safetensors").is_file():
        pipe = Pipeline.from_pretrained(bundle, "motion-mamba", text_backbone=backbone)
        vae, den = pipe.backend.vae, pipe.backend.denoiser
        cap = den.config.max_length_tokens
        true_s = [min(len(f) // 4, cap) * 4 / 20 for f in corpus.features[:n]]
        out["motion-mamba"] = {
            "vae_mpjpe_mm": round(tokenizer_mpjpe_mm(vae, pipe.normalizer, corpus), 2),
            "vae_local_mpjpe_mm": round(tokenizer_mpjpe_mm(vae, pipe.normalizer, corpus, root_relative=True), 2),
            "length_mae_s": _length_mae_s(pipe, texts, true_s),
            "vae_params_m": round(sum(p.numel() for p in vae.parameters()) / 1e6, 2),
            "params_m": round(sum(p.numel() for p in den.parameters()) / 1e6, 2)}
    return out


def stage_wall_seconds(times: list[float]) -> float:
    """Wall time of a stage from the timestamps of its periodic log rows, robust to interruptions.

    Gaps longer than 5× the median gap are a stop and resume: they count as one median gap.
    [0, 10, 20, 1000, 1010] -> 50.
    """
    gaps = np.diff(np.asarray(times, dtype=float))
    if len(gaps) == 0:
        return 0.0
    med = float(np.median(gaps))
    return float(med + np.where(gaps > 5 * med, med, gaps).sum())


@torch.no_grad()
def residual_layer_sweep(pipe, corpus, max_clips: int = 80) -> dict:
    """Pose error (root-relative MPJPE, mm) when the true base layer is decoded with k predicted residual layers.

    k = 0 means the base layer alone. Also reports the tokenizer's own error with all true layers ("true").
    """
    from kmm.motion.features import features_to_joints
    from kmm.generators.kmm.sampling import residual_layers

    tok, Q = pipe.tokenizer, pipe.tokenizer.config.n_quantizers
    errs: dict = {"true": []}
    for f, caps in list(zip(corpus.features, corpus.captions))[:max_clips]:
        T = len(f) // tok.downsample * tok.downsample
        if T == 0:
            continue
        codes = tok.encode(torch.from_numpy(pipe.normalizer.normalize(f[:T]))[None])
        N = codes.shape[1]
        _, text_res = pipe._text([caps[0]])
        gt = features_to_joints(torch.from_numpy(f[:T]).double())
        gt = gt - gt[:, :1]

        def err(c):
            j = features_to_joints(pipe.normalizer.denormalize(tok.decode(c))[0].double())
            return 1000.0 * float(((j - j[:, :1]) - gt).norm(dim=-1).mean())

        errs["true"].append(err(codes))
        for k in range(Q):
            pred = residual_layers(pipe.residual, tok.code_vectors, codes[..., 0], torch.tensor([N]), text_res[None],
                                   torch.zeros(1, N, dtype=torch.long), k + 1)
            pred = torch.cat([pred, pred.new_full((1, N, Q - k - 1), -1)], dim=-1)
            errs.setdefault(k, []).append(err(pred))
    return {str(k): round(float(np.mean(v)), 2) for k, v in errs.items()}


def _wall_times(run: Path) -> dict:
    rows = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines() if x.strip()]
    times: dict[str, list[float]] = {}
    last = {}
    for r in rows:
        if "step" in r:
            last[r["stage"]] = r
            times.setdefault(r["stage"], []).append(r["time"])
    return {"wall_s": {k: round(stage_wall_seconds(v), 1) for k, v in times.items()}, "last": last}


def baseline_section(numbers: dict, recipe: dict, w: dict) -> str:
    """Model-card section for the two sibling methods (#8): what was trained, numbers, departures."""
    parts = ["## Baselines implemented from their papers (no official code used)"]
    b = numbers.get("bamm")
    if b:
        c = recipe.get("bamm", {})
        parts.append(f"""### BAMM (Pinyoanuntapong et al., ECCV 2024) — `bamm/`
Masked self-attention transformer over our tokenizer's base-layer tokens with the paper's two attention masks
(unidirectional causal; bidirectional causal: a masked position sees its left and every unmasked token),
each used for half of the training clips, 50–100% masking in the bidirectional case, an [END] token, text
dropout for guidance. Cascaded decoding: autoregressive round until [END] (the length), then every other
token re-predicted with the bidirectional mask; guidance 4 then 3. Residual layers: the shared predictor.

| parameters | steps × batch | wall time | held-out next-token acc. | masked-token acc. (ratio 0.5) | length from [END], MAE |
|---|---|---|---|---|---|
| {b['params_m']} M | {recipe['generator_steps']} × {recipe['generator_batch']} | {w.get('bamm', float('nan')) / 60:.1f} min | {b['next_token_acc']:.3f} | {b['masked_token_acc']:.3f} | {b['length_mae_s']:.2f} s |

Departures from the paper: {c.get('n_layers')} layers × {c.get('d_model')} wide (the size of our other generators, far
smaller than the paper's); frozen MiniLM sentence embedding instead of frozen CLIP; each slot also gets its
segment's text added so a timeline can be generated in one sequence; a query slot carries the previous token
(our reading of how the masks stay leak-free); round 2 is one pass over the odd positions.""")
    m = numbers.get("motion-mamba")
    if m:
        c = recipe.get("motion_mamba", {})
        v = recipe.get("motion_vae", {})
        parts.append(f"""### Motion Mamba (Zhang et al., ECCV 2024) — `motion-vae/`, `motion-mamba/`
Latent diffusion: a motion VAE, then a denoiser built as a U-Net of Hierarchical Temporal Mamba blocks
(scans per level {c.get('level_scans')}, outer to inner) and Bidirectional Spatial Mamba blocks (a scan over
the channel groups in both directions), attention at the bottleneck, classifier-free guidance, DDIM sampling.

| part | parameters | steps × batch | wall time | held-out numbers |
|---|---|---|---|---|
| VAE | {m['vae_params_m']} M | {recipe['vae_steps']} × {recipe['vae_batch']} | {w.get('motion-vae', float('nan')) / 60:.1f} min | MPJPE {m['vae_mpjpe_mm']} mm (root path integrated), {m['vae_local_mpjpe_mm']} mm pose |
| denoiser | {m['params_m']} M | {recipe['motion_mamba_steps']} × {recipe['motion_mamba_batch']} | {w.get('motion-mamba', float('nan')) / 60:.1f} min | length head MAE {m['length_mae_s']:.2f} s |

Departures from the paper: one {v.get('latent_dim')}-d latent per 4 frames (MLD/Motion Mamba: a single
clip-level latent) so that timelines, long windows and editing share our grid; a length head (the paper takes
the length as given); frozen MiniLM instead of frozen CLIP; CPU scale ({c.get('d_model')} wide,
{c.get('diffusion_steps')} training noise levels, 10 DDIM steps by default); a level's HTM scans are stacked
bidirectional Mamba blocks (the paper runs them side by side in one block); the U-Net's way up is lighter than
its way down (one bidirectional scan per level, no BSM), which halves the CPU step time; MLD's scaled-linear
noise schedule; the timestep and text conditioning is added at the input and again in every HTM block. The VAE
gets the tokenizer's step budget and the denoiser the generators'.""")
    return "\n\n".join(parts) + "\n" if len(parts) > 1 else ""


def write_card(bundle: Path, run: Path, dataset, numbers: dict, command: str, note: str = "") -> Path:
    recipe = json.loads((run / "recipe.json").read_text())
    logs = _wall_times(run)
    table, data_nums = data_table(dataset)
    w = logs["wall_s"]
    gen_rows = "\n".join(
        f"| `{n}` | {d} | {numbers[n]['params_m']} M | {recipe['generator_steps']} × {recipe['generator_batch']} | "
        f"{w.get(n, float('nan')) / 60:.1f} min | {numbers[n]['masked_token_acc']:.3f} | {numbers[n]['length_mae_s']:.2f} s |"
        for n, d in (("kmm", "bidirectional Mamba, key-frame masking"),
                     ("kmm-random", "bidirectional Mamba, random masking (ablation)"),
                     ("transformer", "masked transformer (MoMask-style baseline)")) if n in numbers)
    total_min = sum(v for k, v in w.items() if k in MODELS) / 60
    residual = ""
    if "residual_sweep" in numbers:
        residual = (f"Residual layers at inference: {numbers['residual_sweep']['chosen_layers']} (chosen on "
                    f"{numbers['residual_sweep']['chosen_on']}, `pipeline.json`).\n")
    else:
        residual = ("No residual-layer predictor in this bundle: in round 1 it made decoding worse on the val split "
                    "(base layer only: best), so the pipeline decodes the base layer (`pipeline.json`).\n")
    card = f"""---
license: cc-by-nc-4.0
library_name: kmm
pipeline_tag: text-to-3d
tags: [motion-generation, text-to-motion, mamba, masked-modeling]
---
# KMM (Key Frame Mask Mamba) — CPU-trained weights

Open weights for *KMM: Key Frame Mask Mamba for Extended Motion Generation* (Zhang et al.,
arXiv 2411.06481), trained from scratch by this project on a 2-core CPU. The paper released no code or
weights; every choice it leaves open is listed below and in each `config.json`.

**Licence: CC BY-NC 4.0 — non-commercial use only**, because part of the training data (Bandai Namco
Research motion datasets) is CC BY-NC 4.0.
Credits: {CREDIT_BANDAI} {CREDIT_CMU}

## What is in this folder
| folder | what |
|---|---|
| `tokenizer/` | residual VQ-VAE, {numbers['tokenizer_params_m']} M parameters, ×4 time downsampling, {recipe['tokenizer']['n_quantizers']} codebooks × {recipe['tokenizer']['n_codes']} codes |
| `kmm/` | KMM generator (key-frame masking + contrastive text alignment; includes the fine-tuned top layer of the text encoder) |
| `kmm-random/` | the same model trained with random masking (ablation, same budget and seed) |
| `transformer/` | masked-transformer baseline on the same tokenizer, same budget |
| `bamm/` | BAMM baseline (bidirectional autoregressive masked transformer) on the same tokenizer, same budget |
| `motion-vae/`, `motion-mamba/` | Motion Mamba baseline: motion VAE + latent diffusion denoiser (HTM + BSM blocks) |
| `normalizer.safetensors` | feature mean/std of the training split |
| `vocabulary.json`, `vocabulary.safetensors` | the training sentences grouped by action, with their text embeddings (the app's "what the model understood") |

## Training data
The **train** split of `bandai-namco-motion` and `cmu-desc` (`cmu-desc-s01-07` holds 60 trials of `cmu-desc` and is
not used, so every trial counts once), mirrored left↔right with mirrored captions.

{table}

- **One skeleton** (`kmm/motion/retarget.py`): every clip is brought onto one rest skeleton (the Bandai Namco actors'
  median bones) by IK with the clip's own bones, then FK with the fixed bones; the root path is scaled by the
  ratio of pelvis heights above the feet. Generated motion comes out on the same skeleton.
- **Captions people would type** (`kmm/captions.py`): CMU's labels become sentences ("JumpForward" → "a person
  jumps forward"); labels with no motion information ("Alaskan vacation", "clean", "12.5lb", two-person role
  descriptions) are dropped from text-conditioned training (the clips still train the tokenizer); training
  adds light paraphrases (`kmm/text_aug.py`).
- **Long trials**: a CMU trial with HumanML3D segments gives one text item per segment (the ≤ 10-s part HumanML3D's
  annotators described) with the trial's caption; other clips are cropped at random to the 64-token window.
- Numbers below are on the held-out **{numbers['split']}** split ({numbers['clips']} clips), which no model saw in training.

## Training (this run)
Command: `{command}` (then `python -m kmm export-weights --run RUN --out assets/kmm`).
Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, CPU only; stages ran as
parallel one-thread processes.

| stage | steps × batch | wall time |
|---|---|---|
| tokenizer | {recipe['tokenizer_steps']} × {recipe['tokenizer_batch']} windows of {recipe['tokenizer_window']} frames, root-path loss weight {recipe.get('root_weight', 0)} | {w.get('tokenizer', float('nan')) / 60:.1f} min |

| generator | architecture | parameters | steps × batch | wall time | held-out masked-token acc. (ratio 0.5) | length head MAE |
|---|---|---|---|---|---|---|
{gen_rows}

Summed stage time {total_min:.0f} min (wall times from the timestamps in `train_log.jsonl`, which is shipped here).
{note}
Tokenizer reconstruction on the held-out split: **MPJPE {numbers['tokenizer_mpjpe_mm']} mm** with the root
trajectory integrated over whole clips (drift included), **{numbers['tokenizer_local_mpjpe_mm']} mm** for the body pose
relative to the pelvis.
{residual}
{baseline_section(numbers, recipe, w)}
## Ablation: does key-frame masking help here? (issue #15)
- Run with `python -m kmm ablate --plan recipes/ablation.json` (3 variants × 3 training seeds, 400 steps each,
  same tokenizer, data and initialisation); the table is README's (from `results/ablation.json`), the logs are in
  `results/ablation_runs/`, and what was tried and why is in `docs/ablation.md`.
- At this CPU budget key-frame masking, random masking and no alignment are not distinguishable: the differences
  are smaller than the spread between training seeds, and at 800 steps (one seed, `recipes/ablation_long.json`)
  too. The paper's gain (FID −29%) is not reproduced here.

## Choices the paper leaves open (ours)
- Text encoder: all-MiniLM-L6-v2 (CLIP is not obtainable offline here); only its last layer is fine-tuned.
- Mamba blocks: d_model {recipe['generator']['d_model']}, {recipe['generator']['n_layers']} bidirectional layers,
  d_state {recipe['generator']['d_state']}, expand {recipe['generator']['expand']} (sized for CPU training);
  backward scan over the reversed valid part of each sequence; outputs summed.
- Key-frame masking: density-peak score Γ = ρ·δ over the tokenizer's quantised token vectors, σ = median pairwise
  distance; key frames take {recipe['generator']['key_frame_share']:.0%} of each masking budget, the rest random.
- Text fusion: each segment's text embedding is added to its tokens (several texts per sequence).
- Contrastive alignment: λ = {recipe['generator']['contrastive_weight']}, motion side = MLP + mean over ground-truth
  token embeddings; identical captions are not used as negatives.
- Training window {recipe['generator']['max_tokens']} tokens ({recipe['generator']['max_tokens'] * 4 / 20:.1f} s);
  longer timelines are generated in overlapping windows. The length head learns only from items that fit its range.

## Known limits
- CMU's captions are short labels, one per trial; a trial often holds more than its label says.
- No multi-action training sequences with annotated transitions exist in the data: transitions between segments
  are written by the bidirectional model from single-action clips.
- CPU-sized models trained for tens of minutes, not days: expect visibly lower quality than published GPU models.
  See README's breadth table for which common actions the model does and does not do.
"""
    path = bundle / "README.md"
    path.write_text(card)
    (bundle / "metrics.json").write_text(json.dumps({"held_out": numbers, "data": data_nums,
                                                      "train_log_last": logs["last"], "wall_s": w,
                                                      "written": time.strftime("%Y-%m-%d")}, indent=2) + "\n")
    return path


def refresh_metrics(bundle: Path, dataset, split: str = "test") -> dict:
    """Recompute `held_out_numbers` for the weights now in `bundle` (after one generator or the tokenizer was
    replaced) and rewrite metrics.json's "held_out" part; the data table, training log and wall times of the run
    that wrote the card stay as they were. -> the new numbers."""
    path = bundle / "metrics.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    numbers = held_out_numbers(bundle, dataset, split)
    path.write_text(json.dumps({**old, "held_out": numbers, "held_out_refreshed": time.strftime("%Y-%m-%d")},
                               indent=2) + "\n")
    return numbers
