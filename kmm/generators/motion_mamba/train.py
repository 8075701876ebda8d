"""Training of the Motion Mamba baseline (Zhang et al., ECCV 2024): motion VAE, then the latent denoiser.

Called by `kmm.train.train_all` (stage "motion-mamba"), with the same budgets as our models: the VAE gets
the tokenizer's (steps, window, learning rate), the denoiser the generators' (learning rate, warm-up).
    out/motion-vae/     MotionVAE            (config.json, model.safetensors, optimizer + trainer state)
    out/motion-mamba/   MotionMambaDenoiser  (same; latent statistics are buffers in its safetensors)
Text (paper: frozen CLIP; ours: frozen MiniLM): the frozen backbone's hidden states through a frozen copy of
MiniLM's last layer (`TextTop` loaded from `backbone.last_layer_state()`), mean-pooled — exactly the
embedding the pipeline passes at inference.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from kmm import distributed as ddp
from kmm.corpus import Corpus
from kmm.generators.motion_mamba.diffusion import prediction_target, q_sample, scaled_linear_alphas_cumprod
from kmm.generators.kmm.masking import valid_mask
from kmm.generators.motion_mamba.model import MotionMambaDenoiser
from kmm.generators.motion_mamba.vae import MotionVAE, kl_divergence
from kmm.motion.features import Normalizer
from kmm.training.common import (TextBatcher, frozen_text_top, load_checkpoint, optimizer_step, reconstruction_loss,
                                 sample_by_length,
                                 save_checkpoint, scheduler, tokenizer_mpjpe_mm, window_batch, window_corpus)
from kmm.training.recipe import Recipe


# --- stage 1: motion VAE ----------------------------------------------------------------------------

def vae_loss(model: MotionVAE, x, generator: torch.Generator | None = None):  # x (B, T, F) normalised
    """Reconstruction as the tokenizer's (smooth-L1 on features + 0.5 positions + 0.5 velocity) + kl_weight·KL."""
    recon, mu, logvar = model(x, generator)
    l_rec, parts = reconstruction_loss(recon, x)
    l_kl = kl_divergence(mu, logvar)
    loss = l_rec + model.config.kl_weight * l_kl
    return loss, {k: v.item() for k, v in (*parts.items(), ("kl", l_kl))}


def train_motion_vae(train: Corpus, val: Corpus, normalizer: Normalizer, recipe: Recipe, out: Path, log) -> MotionVAE:
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    # the reparameterisation noise is drawn inside the model for the rows it sees: under torchrun each rank
    # gets its own stream (rank 0 = the single-process stream), so the ranks' noise is not shared
    g = torch.Generator().manual_seed(recipe.seed + ddp.rank())
    model = MotionVAE(recipe.motion_vae)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.tokenizer_lr, weight_decay=0.0)
    stage = Path(out) / "motion-vae"
    start = load_checkpoint(stage, model, opt)
    sched = scheduler(opt, recipe.warmup, recipe.vae_steps, start)
    W = recipe.tokenizer_window
    usable = window_corpus(train, normalizer, W)
    ddp.check_batch("vae_batch", recipe.vae_batch)
    step_fn = ddp.wrap(model, vae_loss)
    model.train()
    bar = tqdm(range(start, recipe.vae_steps), desc="motion-vae", mininterval=10, initial=start,
               total=recipe.vae_steps, disable=not ddp.is_main())
    for step in bar:
        # 1. a batch of random windows (torchrun: this rank's rows of the global batch)
        x = ddp.shard(window_batch(usable, recipe.vae_batch, W, rng))
        # 2. reconstruction + KL
        loss, parts = step_fn(x, g)
        optimizer_step(opt, sched, loss, model.parameters())
        # 3. validation and checkpoint
        if (step + 1) % recipe.steps_per_check == 0 or step + 1 == recipe.vae_steps:
            loss_v, parts = ddp.mean_for_log(loss, parts)
            if not ddp.is_main():
                continue
            mpjpe = tokenizer_mpjpe_mm(model, normalizer, val, max_clips=64)
            log(stage="motion-vae", step=step + 1, loss=loss_v, val_mpjpe_mm=round(mpjpe, 2), **parts)
            bar.set_postfix(loss=f"{loss_v:.4f}", val_mpjpe_mm=f"{mpjpe:.1f}")
            save_checkpoint(stage, model, opt, step + 1, {"val_mpjpe_mm": mpjpe})
    return model.eval()


# --- stage 2: latent denoiser -------------------------------------------------------------------------

@torch.no_grad()
def encode_corpus(vae: MotionVAE, normalizer: Normalizer, corpus: Corpus) -> list[torch.Tensor]:
    """Posterior means of every clip, (n_i, C) each; clips cropped to a multiple of 4 frames (at least 4)."""
    was_training = vae.training
    vae.eval()
    ds = vae.downsample
    out = []
    for f in corpus.features:
        T = max(ds, len(f) // ds * ds)
        x = torch.from_numpy(normalizer.normalize(f[:T]))[None]
        if x.shape[1] < T:   # a clip shorter than 4 frames: repeat its last frame
            x = torch.cat([x, x[:, -1:].expand(1, T - x.shape[1], -1)], 1)
        out.append(vae.encode(x)[0][0])
    vae.train(was_training)
    return out


def latent_batch(latents: list[torch.Tensor], idx, max_tokens: int, rng: np.random.Generator, random_crop=True):
    """-> latents (B, N, C) zero-padded, lengths (B,) after cropping to max_tokens, full lengths (B,)."""
    crops, full = [], []
    for i in idx:
        z = latents[i]
        full.append(len(z))
        if len(z) > max_tokens:
            s = int(rng.integers(0, len(z) - max_tokens + 1)) if random_crop else 0
            z = z[s:s + max_tokens]
        crops.append(z)
    lengths = torch.tensor([len(z) for z in crops])
    out = torch.zeros(len(crops), int(lengths.max()), crops[0].shape[-1])
    for b, z in enumerate(crops):
        out[b, :len(z)] = z
    return out, lengths, torch.tensor(full)


def denoiser_loss(model: MotionMambaDenoiser, z0, lengths, full_lengths, pooled, alphas_cumprod,
                  g: torch.Generator, shard=None):
    """One training loss. z0 (B, N, C) normalised latents, pooled (B, 384) frozen text embeddings.

    1. t ~ U{0..T−1}, ε ~ N(0, I), z_t = q_sample(z0, t, ε); text dropped with probability cond_drop
    2. MSE between the prediction and its target (ε, x₀ or v), on valid latents only
    3. + 0.1 × cross-entropy of the length head on the whole clip's latent count (ours)
    shard (torchrun): t, ε and the text dropout are drawn for the global batch z0, then this rank's rows are
    kept (pooled is already this rank's rows).
    """
    c = model.config
    B, N, _ = z0.shape
    # 1.
    t = torch.randint(0, c.diffusion_steps, (B,), generator=g)
    noise = torch.randn(z0.shape, generator=g)
    z_t = q_sample(z0, t, noise, alphas_cumprod)
    drop = torch.rand(B, generator=g) < c.cond_drop
    if shard is not None:
        z0, z_t, t, noise, lengths, full_lengths, drop = (
            shard(v) for v in (z0, z_t, t, noise, lengths, full_lengths, drop))
        B = len(z0)
    seg_ids = torch.zeros(B, N, dtype=torch.long)
    pred = model(z_t, t, lengths, pooled[:, None, :], seg_ids, drop)
    # 2.
    valid = valid_mask(lengths, N)
    target = prediction_target(z0, noise, t, alphas_cumprod, c.prediction)
    l_diff = F.mse_loss(pred[valid], target[valid])
    # 3.
    l_len = F.cross_entropy(model.length_logits(pooled.detach()), full_lengths.clamp(1, c.max_length_tokens) - 1)
    loss = l_diff + 0.1 * l_len
    return loss, {"diff": l_diff.item(), "len": l_len.item()}


@torch.no_grad()
def denoiser_val(model: MotionMambaDenoiser, val_latents, val_pooled, alphas_cumprod,
                 fractions=(0.1, 0.5, 0.9)) -> dict:
    """Held-out denoising MSE (the training target, normalised latents) at fixed t = fraction·T, fixed noise
    (seed 123), averaged over `fractions`; and the length head's mean absolute error in latent steps."""
    was_training = model.training
    model.eval()
    c = model.config
    g = torch.Generator().manual_seed(123)
    rng = np.random.default_rng(123)
    z0, lengths, full = latent_batch(val_latents, np.arange(len(val_latents)), c.max_tokens, rng, random_crop=False)
    B, N, _ = z0.shape
    valid = valid_mask(lengths, N)
    seg_ids = torch.zeros(B, N, dtype=torch.long)
    mses = []
    for frac in fractions:
        t = torch.full((B,), int(frac * (c.diffusion_steps - 1)), dtype=torch.long)
        noise = torch.randn(z0.shape, generator=g)
        pred = model(q_sample(z0, t, noise, alphas_cumprod), t, lengths, val_pooled[:, None, :], seg_ids)
        target = prediction_target(z0, noise, t, alphas_cumprod, c.prediction)
        mses.append(float(F.mse_loss(pred[valid], target[valid])))
    pred_len = model.length_logits(val_pooled).argmax(-1) + 1
    len_err = float((pred_len - full.clamp(1, c.max_length_tokens)).abs().float().mean())
    model.train(was_training)
    return {"val_mse": round(float(np.mean(mses)), 5), "val_len_err_tokens": round(len_err, 2)}


def frozen_text_encoder(backbone, recipe: Recipe):
    """texts -> pooled (B, 384): the frozen backbone + a frozen copy of MiniLM's last layer (paper: frozen CLIP)."""
    text_top = frozen_text_top(backbone, recipe.generator.text)

    @torch.no_grad()
    def encode(texts: list[str]):
        hidden, mask = backbone(texts)
        return text_top(hidden, mask)[1]
    return encode


def train_motion_mamba(train: Corpus, val: Corpus, vae: MotionVAE, normalizer: Normalizer, backbone,
                       recipe: Recipe, out: Path, log) -> MotionMambaDenoiser:
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    cfg = dataclasses.replace(recipe.motion_mamba, latent_dim=vae.config.latent_dim)
    model = MotionMambaDenoiser(cfg)
    # 1. every clip encoded once (posterior means); per-channel statistics normalise the latent space
    latents = encode_corpus(vae, normalizer, train)
    allz = torch.cat(latents)                                                     # (Σn, C)
    model.latent_mean.copy_(allz.mean(0))
    model.latent_std.copy_(allz.std(0).clamp(min=1e-4))
    latents = [(z - model.latent_mean) / model.latent_std for z in latents]
    encode_text = frozen_text_encoder(backbone, recipe)
    val_idx = np.arange(min(len(val), 64))
    val_latents = [(z - model.latent_mean) / model.latent_std
                   for z in encode_corpus(vae, normalizer, Corpus([val.ids[i] for i in val_idx],
                                                                    [val.features[i] for i in val_idx], []))]
    val_pooled = encode_text([val.captions[i][0] for i in val_idx]) if len(val_idx) else None
    ac = scaled_linear_alphas_cumprod(cfg.diffusion_steps)
    # 2. optimiser, resumed from the stage folder when a checkpoint is there
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.generator_lr, weight_decay=0.01)
    stage = Path(out) / "motion-mamba"
    start = load_checkpoint(stage, model, opt)
    sched = scheduler(opt, recipe.warmup, recipe.motion_mamba_steps, start)
    picker = TextBatcher(backbone, rng)
    ddp.check_batch("motion_mamba_batch", recipe.motion_mamba_batch)
    step_fn = ddp.wrap(model, functools.partial(denoiser_loss, shard=ddp.shard))
    model.train()
    bar = tqdm(range(start, recipe.motion_mamba_steps), desc="motion-mamba", mininterval=10, initial=start,
               total=recipe.motion_mamba_steps, disable=not ddp.is_main())
    for step in bar:
        # 3. a batch of latent windows with paraphrased captions (torchrun: text of this rank's rows only)
        idx = sample_by_length([len(z) for z in latents], recipe.motion_mamba_batch, rng)
        z0, lengths, full = latent_batch(latents, idx, cfg.max_tokens, rng)
        pooled = encode_text(ddp.shard([picker.pick(train.captions[i]) for i in idx]))
        # 4. diffusion loss + length head
        loss, parts = step_fn(z0, lengths, full, pooled, ac, g)
        optimizer_step(opt, sched, loss, model.parameters())
        # 5. validation and checkpoint
        if (step + 1) % recipe.steps_per_check == 0 or step + 1 == recipe.motion_mamba_steps:
            loss_v, parts = ddp.mean_for_log(loss, parts)
            if not ddp.is_main():
                continue
            val_row = denoiser_val(model, val_latents, val_pooled, ac) if val_pooled is not None else {}
            log(stage="motion-mamba", step=step + 1, loss=loss_v, **parts, **val_row)
            bar.set_postfix(loss=f"{loss_v:.4f}", **{k: f"{v}" for k, v in val_row.items()})
            save_checkpoint(stage, model, opt, step + 1, val_row)
    return model.eval()
