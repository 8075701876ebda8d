"""What every training stage shares (tokenizer, generators, BAMM, residual, Motion Mamba's VAE and denoiser):
the JSONL log, the warm-up + cosine schedule, one optimiser step, safetensors checkpoints that resume,
random windows and length-weighted clip draws, caption picking with paraphrase augmentation, the frozen text
top of the baselines, and the reconstruction error of an autoencoder.

Each stage (kmm/train.py, kmm/generators/motion_mamba/train.py) is then: build the model and optimiser,
`load_checkpoint`, `scheduler`, loop {draw a batch, loss, `optimizer_step`, every `steps_per_check`: log +
validate + `save_checkpoint`}.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from kmm import distributed as ddp
from kmm.corpus import Corpus
from kmm.motion.features import Normalizer, features_to_joints
from kmm.motion.skeleton import FEATURE_SLICES
from kmm.text_aug import paraphrase


# --- log, schedule, optimiser step, checkpoints ----------------------------------------------------

class Logger:
    def __init__(self, path: Path):
        self.path = path

    def __call__(self, **row):
        if not ddp.is_main():   # torchrun: rank 0 writes the log
            return
        if ddp.is_distributed():
            row["world_size"] = ddp.world_size()
        row["time"] = round(time.time(), 1)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def lr_lambda(warmup: int, total: int):
    def f(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return f


def scheduler(opt, warmup: int, total: int, start: int = 0):
    """Warm-up + cosine schedule, positioned at `start` (a resumed run continues where it stopped)."""
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(warmup, total))
    sched.last_epoch = start
    for group, f in zip(opt.param_groups, sched.lr_lambdas):
        group["lr"] = group["initial_lr"] * f(start)
    return sched


def optimizer_step(opt, sched, loss, params, clip: float = 1.0) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    sched.step()


def save_checkpoint(stage_dir: Path, model, optimizer, step: int, extra: dict | None = None):
    stage_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(stage_dir)
    flat = {}
    for pid, st in optimizer.state_dict()["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                flat[f"{pid}.{k}"] = v.detach().contiguous().cpu()
    save_file(flat, str(stage_dir / "optimizer.safetensors"))
    (stage_dir / "trainer_state.json").write_text(json.dumps({"step": step, **(extra or {})}))


def load_checkpoint(stage_dir: Path, model, optimizer) -> int:
    """Restores model + optimizer from stage_dir if a checkpoint is there; returns the step reached."""
    state_path = stage_dir / "trainer_state.json"
    if not state_path.is_file():
        return 0
    model.load_state_dict(load_file(str(stage_dir / "model.safetensors")))
    flat = load_file(str(stage_dir / "optimizer.safetensors"))
    sd = optimizer.state_dict()
    state: dict = {}
    for key, v in flat.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    sd["state"] = state
    optimizer.load_state_dict(sd)
    return int(json.loads(state_path.read_text())["step"])


def warm_start(model, init_from: str, name: str) -> bool:
    """Loads `init_from/name/model.safetensors` into model (strict: same config) when init_from is set; a
    continued run starts from the shipped weights instead of from scratch. -> whether weights were loaded.
    The one exception to strict: a guidance-distilled student (`guidance_head`) may start from a model without
    the guidance head, which then keeps its zero initialisation."""
    if not init_from:
        return False
    path = Path(init_from) / name / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"init_from: no weights for {name!r} at {path}")
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    missing = [k for k in missing if not k.startswith("guide_head.")]
    if missing or unexpected:
        raise RuntimeError(f"init_from {path}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
    return True


def window_corpus(train: Corpus, normalizer: Normalizer, window: int) -> Corpus:
    """The normalised training clips that hold at least one window of `window` frames (captions kept)."""
    normed = [normalizer.normalize(f) for f in train.features]
    keep = [i for i, f in enumerate(normed) if len(f) >= window]
    if not keep:
        raise ValueError(f"no training clip has the {window} frames of a training window")
    captions = [train.captions[i] for i in keep] if train.captions else []
    return Corpus([train.ids[i] for i in keep], [normed[i] for i in keep], captions)


def window_batch(usable: Corpus, n: int, window: int, rng: np.random.Generator,
                 weights=None):  # -> (n, window, F)
    """n random windows, clips drawn ∝ √length (× `weights`, (N,) per clip, e.g. `action_balance_weights`)."""
    batch = []
    for i in _sample_clips(usable, n, rng, weights):
        f = usable.features[i]
        s = int(rng.integers(0, len(f) - window + 1))
        batch.append(f[s:s + window])
    return torch.from_numpy(np.stack(batch))


def _sample_clips(corpus: Corpus, n: int, rng: np.random.Generator, weights=None):
    lengths = np.array([len(f) for f in corpus.features], dtype=np.float64)
    p = np.sqrt(lengths) * (1.0 if weights is None else np.asarray(weights, dtype=np.float64))
    p = p / p.sum()  # longer clips a little more often
    return rng.choice(len(corpus), size=n, p=p)


def sample_by_length(lengths, n: int, rng: np.random.Generator, weights=None):
    """n clip indices (∝ √length × weights); drawn as 3n candidates sorted by length, one third kept, so batches
    pad less (scan cost ∝ T). `weights` (N,): extra per-item factors (`action_balance_weights`)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    p = np.sqrt(lengths) * (1.0 if weights is None else np.asarray(weights, dtype=np.float64))
    p = p / p.sum()
    cand = rng.choice(len(lengths), size=3 * n, p=p)
    cand = cand[np.argsort(lengths[cand], kind="stable")]
    k = int(rng.integers(3))
    return cand[k * n:(k + 1) * n]


def action_balance_weights(captions: list[list[str]], lengths, alpha: float,
                           boost: dict[str, float] | None = None) -> np.ndarray | None:
    """Per-item sampling factors that lift rare actions (#13): an item's factor is (share of training time of its
    rarest action)^-alpha, normalised so the mean factor is 1. alpha = 0 -> None (plain √length sampling).

    1. Each item's actions: the `kmm.vocabulary.ACTIONS` whose keywords its captions mention ("other" if none).
    2. An action's share: the summed √length of its items over the total.
    3. Factor = max over the item's actions of share^-alpha (an item with a rare action counts as rare),
       times the largest `boost[action]` of its actions (`Recipe.action_boost`; 1 where none is named).
    """
    if alpha <= 0:
        return None
    from kmm.vocabulary import ACTIONS, action_groups

    unknown = sorted(set(boost or {}) - set(ACTIONS))
    if unknown:
        raise ValueError(f"action_boost: unknown actions {unknown}; known: {sorted(ACTIONS)}")

    root = np.sqrt(np.asarray(lengths, dtype=np.float64))
    acts: list[list[str]] = []
    for caps in captions:                                   # 1.
        groups = action_groups(caps)
        acts.append(sorted(groups) or ["other"])
    share: dict[str, float] = {}
    for a, r in zip(acts, root):                            # 2.
        for name in a:
            share[name] = share.get(name, 0.0) + r
    total = float(root.sum())
    w = np.array([max((share[n] / total) ** -alpha for n in a) for a in acts])   # 3.
    if boost:
        w = w * np.array([max([boost.get(n, 1.0) for n in a]) for a in acts])
    return w / w.mean()


# --- losses ----------------------------------------------------------------------------------------

LIMB_ENDS = (7, 8, 10, 11, 15, 20, 21)   # left/right ankle, left/right foot, head, left/right wrist


def limb_channels() -> list[int]:
    """Feature channels of the limb ends (ankles, feet, wrists, head): their positions (`ric`) and velocities."""
    ric, vel = FEATURE_SLICES["ric"].start, FEATURE_SLICES["velocity"].start
    return [ric + 3 * (j - 1) + k for j in LIMB_ENDS for k in range(3)] + [vel + 3 * j + k for j in LIMB_ENDS
                                                                            for k in range(3)]


def reconstruction_loss(recon, x, root_weight: float = 0.0, limb_weight: float = 0.0):  # (B, T, F) -> loss, parts
    """What every motion autoencoder here is trained to reconstruct (tokenizer, its base-layer decoder, the
    Motion Mamba VAE): smooth-L1 on all channels + 0.5 on joint positions + 0.5 on frame-to-frame velocity.

    root_weight > 0 adds the root path (ours, against root drift): the root's yaw and planar velocities and its
    height (channels 0..3) are what the whole trajectory is integrated from, so a small per-frame bias becomes
    metres after a few seconds. l_root = smooth-L1 on those channels + on their running sums over the window
    (the integrated path error, divided by √T so long windows do not dominate).

    limb_weight > 0 adds the limb ends (ours, issue #13: kicks, punches and throws come back lower and slower
    than captured): plain L1 — the median, not the mean, of what a code can stand for, so a strike is not
    averaged into a half-strike — on the positions and velocities of the ankles, feet, head and wrists.
    """
    import torch.nn.functional as F

    pos = FEATURE_SLICES["ric"]
    l_rec = F.smooth_l1_loss(recon, x)
    l_pos = F.smooth_l1_loss(recon[..., pos], x[..., pos])
    l_vel = F.smooth_l1_loss(recon[:, 1:] - recon[:, :-1], x[:, 1:] - x[:, :-1])
    loss = l_rec + 0.5 * l_pos + 0.5 * l_vel
    parts = {"rec": l_rec, "pos": l_pos, "vel": l_vel}
    if root_weight > 0:
        err = recon[..., :4] - x[..., :4]                                             # (B, T, 4)
        path = err[..., :3].cumsum(1) / math.sqrt(x.shape[1])                         # (B, T, 3)
        parts["root"] = F.smooth_l1_loss(err, torch.zeros_like(err)) + F.smooth_l1_loss(path, torch.zeros_like(path))
        loss = loss + root_weight * parts["root"]
    if limb_weight > 0:
        limbs = limb_channels()
        parts["limb"] = F.l1_loss(recon[..., limbs], x[..., limbs])
        loss = loss + limb_weight * parts["limb"]
    return loss, parts


# --- text ----------------------------------------------------------------------------------------

class TextBatcher:
    """Captions -> (hidden (B, S, 384), mask (B, S)) of the frozen backbone, with paraphrase augmentation."""

    def __init__(self, backbone, rng: np.random.Generator, augment: bool = True):
        self.backbone, self.rng, self.augment = backbone, rng, augment

    def pick(self, captions: list[str]) -> str:
        text = captions[int(self.rng.integers(len(captions)))]
        return paraphrase(text, self.rng) if self.augment else text


def frozen_text_top(backbone, text_config):
    """The frozen sentence encoder's last layer + pooling (the baselines' text, like the paper's frozen CLIP)."""
    from kmm.model.text import TextTop

    top = TextTop(text_config).eval()
    top.load_bert_layer(backbone.last_layer_state(), "")
    for p in top.parameters():
        p.requires_grad_(False)
    return top


# --- validation ----------------------------------------------------------------------------------

@torch.no_grad()
def tokenizer_mpjpe_mm(model, normalizer: Normalizer, corpus: Corpus, max_clips: int | None = None,
                       root_relative: bool = False) -> float:
    """Mean per-joint position error (mm) of encode→decode (`model.reconstruct`, tokenizer or motion VAE) on
    whole clips, joints recovered from features.

    root_relative=True measures the body pose alone (joints minus the pelvis, per frame: no root drift).
    """
    was_training = model.training
    model.eval()
    errs, n = 0.0, 0
    ds = model.downsample
    for f in corpus.features[:max_clips]:
        T = len(f) // ds * ds
        if T == 0:
            continue
        x = torch.from_numpy(normalizer.normalize(f[:T]))[None]
        rec = normalizer.denormalize(model.reconstruct(x))[0]
        j_rec = features_to_joints(rec.double())
        j_gt = features_to_joints(torch.from_numpy(f[:T]).double())
        if root_relative:
            j_rec, j_gt = j_rec - j_rec[:, :1], j_gt - j_gt[:, :1]
        errs += float((j_rec - j_gt).norm(dim=-1).mean()) * T
        n += T
    model.train(was_training)
    return 1000.0 * errs / max(n, 1)
