"""How different key-frame masking (paper §3.2) is from random masking on real token sequences.

    python -m kmm.eval.keyframe_stats [--data FOLDER] [--weights assets/kmm] [--clips 200] [--json out.json]

Steps:
  1. encode each clip (first 256 frames) with the bundle's tokenizer; token embeddings = the summed RVQ layers
     (what `kmm.train.generator_step` scores density peaks on);
  2. key tokens = the top quarter of Γ = ρ·δ (kmm.generators.kmm.masking.density_peak_scores);
  3. draw the training masks (cosine ratio schedule, 50 draws per clip) with key-frame and with random masking;
  4. report P(a key token is masked) under each, where key tokens sit in the clip (5 bins), and the correlation
     of Γ with how much the embedding changes from the previous token.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def keyframe_stats(dataset, weights: Path, n_clips: int = 200, draws: int = 50, seed: int = 0) -> dict:
    import torch
    from safetensors.torch import load_file

    from kmm.corpus import build_corpus
    from kmm.generators.kmm.masking import cosine_ratio, density_peak_scores, key_frame_mask, random_mask
    from kmm.model.tokenizer import MotionTokenizer
    from kmm.motion.features import Normalizer

    train = build_corpus(dataset, "train", mirror=False)
    norm = Normalizer.from_dict({k: v.numpy() for k, v in load_file(str(weights / "normalizer.safetensors")).items()})
    tok = MotionTokenizer.from_pretrained(weights / "tokenizer").eval()
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train.features))[:n_clips]
    pos, p_key, p_rand, corr = [], [], [], []
    for i in order:
        x = torch.from_numpy(norm.normalize(train.features[i])).float()[None, :256]
        with torch.no_grad():
            emb = tok.rvq.decode(tok.encode(x))                              # (1, T, C)
        T = emb.shape[1]
        if T < 8:
            continue
        lengths = torch.tensor([T])
        gamma = density_peak_scores(emb, lengths)[0]                         # (T,)
        top = gamma.argsort(descending=True)[: T // 4]
        pos += (top.float() / (T - 1)).tolist()
        change = (emb[0, 1:] - emb[0, :-1]).norm(dim=-1)
        change = torch.cat([change[:1], change])
        corr.append(float(np.corrcoef(gamma.numpy(), change.numpy())[0, 1]))
        is_key = torch.zeros(T, dtype=torch.bool)
        is_key[top] = True
        for _ in range(draws):
            r = cosine_ratio(torch.rand(1, generator=g))
            p_key.append(float(key_frame_mask(emb, lengths, r, g)[0][is_key].float().mean()))
            p_rand.append(float(random_mask(emb, lengths, r, g)[0][is_key].float().mean()))
    hist = np.histogram(np.asarray(pos), bins=5, range=(0, 1))[0] / max(len(pos), 1)
    return {"clips": len(corr), "p_key_masked_keyframe": float(np.mean(p_key)),
            "p_key_masked_random": float(np.mean(p_rand)), "key_position_fifths": [float(h) for h in hist],
            "corr_gamma_vs_change": float(np.nanmean(corr))}


def main(argv=None) -> int:
    from kmm.data import load_dataset, resolve_data_dirs

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None)
    p.add_argument("--weights", type=Path, default=Path("assets/kmm"))
    p.add_argument("--clips", type=int, default=200)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    out = keyframe_stats(load_dataset(resolve_data_dirs(a.data)), a.weights, a.clips)
    text = json.dumps(out, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
