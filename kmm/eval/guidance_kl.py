"""How close is a guidance-distilled generator's one pass to its teacher's two? (issue #16)

    python -m kmm.eval.guidance_kl --students runs/distill_guidance/kmm --json results/guidance_distill/kl.json

On held-out windows (the `val` split: first 96 text items, random masking at ratios 0.5 and 0.9, fixed seed):
    1. the teacher's guided logits at the default scale, (1 + w)·cond − w·uncond, are the reference;
    2. for scale: KL(reference ‖ the teacher's own guided logits at w = 0, 2, 2.5) — how far a change of scale
       moves the distribution (w = 0 is a student that learnt nothing: its first state);
    3. for each student (a generator folder): KL(reference ‖ its guided logits at the default scale — one pass
       with `guidance_head`, else its own two), how often both put the most probability on the same token, and
       the mean entropy of both.
KL is in nats per masked token (mean over masked tokens).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from kmm.config import DEFAULT_GUIDANCE


def measure(teacher_dir: Path, students: list[Path], bundle: Path, data=None, ratios=(0.5, 0.9), n: int = 96,
            log=print) -> dict:
    import numpy as np
    import torch

    from kmm.corpus import build_corpus
    from kmm.data import load_dataset, resolve_data_dirs
    from kmm.generators.kmm.masking import MASKERS
    from kmm.generators.kmm.model import MaskedGenerator
    from kmm.pipeline import Pipeline
    from kmm.text_backbone import TextBackbone
    from kmm.generators.kmm.sampling import cfg_logits
    from kmm.train import generator_batch, masked_kl, tokenize_corpus

    pipe = Pipeline.from_pretrained(bundle, "kmm")
    dataset = load_dataset(resolve_data_dirs(None if data is None else str(data)))
    tc = tokenize_corpus(pipe.tokenizer, pipe.normalizer, build_corpus(dataset, "val", mirror=False).text_items())
    teacher = MaskedGenerator.from_pretrained(teacher_dir).eval()
    backbone = TextBackbone(max_tokens=teacher.config.text.max_tokens)
    idx = np.arange(min(len(tc.codes), n))
    codes, lengths, _ = generator_batch(tc, idx, teacher.config.max_tokens, np.random.default_rng(123))
    hidden, tmask = backbone([tc.captions[i][0] for i in idx])
    base = codes[..., 0]
    seg = torch.zeros_like(base)
    g = torch.Generator().manual_seed(123)
    out = {"teacher": str(teacher_dir), "val_items": len(idx), "default_guidance": DEFAULT_GUIDANCE, "ratios": {}}
    with torch.no_grad():
        for ratio in ratios:
            mask = MASKERS["random"](base[..., None].float(), lengths, torch.full((len(idx),), ratio), g)
            inp = torch.where(mask, torch.full_like(base, teacher.mask_id), base)

            def kl(q, p):  # KL(p ‖ q) over masked tokens
                return round(float(masked_kl(q, p, mask)), 4)

            def entropy(logits):  # mean entropy (nats) of the distributions at masked tokens
                return round(float(torch.distributions.Categorical(logits=logits[mask]).entropy().mean()), 3)

            text = teacher.encode_text(hidden, tmask)[:, None, :]
            w = torch.full((len(idx),), DEFAULT_GUIDANCE)
            ref = cfg_logits(teacher, inp, lengths, text, seg, w)
            at = {str(s): kl(cfg_logits(teacher, inp, lengths, text, seg, torch.full_like(w, s)), ref)
                  for s in (0.0, 2.0, 2.5)}
            row = {"teacher_at_scale": at, "teacher_entropy": entropy(ref), "students": {}}
            for d in students:
                student = MaskedGenerator.from_pretrained(d).eval()
                s_text = student.encode_text(hidden, tmask)[:, None, :]
                one = (student(inp, lengths, s_text, seg, guidance=w) if student.config.guidance_head
                       else cfg_logits(student, inp, lengths, s_text, seg, w))
                agree = float((one[mask].argmax(-1) == ref[mask].argmax(-1)).float().mean())
                row["students"][str(d)] = {"kl": kl(one, ref), "top1_agree": round(agree, 3),
                                           "entropy": entropy(one)}
            out["ratios"][str(ratio)] = row
            log(f"ratio {ratio}: {json.dumps(row)}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", type=Path, default=Path("assets/kmm/kmm"))
    p.add_argument("--students", default="", help="comma list of generator folders (one- or two-pass)")
    p.add_argument("--weights", type=Path, default=Path("assets/kmm"),
                   help="bundle whose tokenizer and normalizer to use")
    p.add_argument("--data", default=None)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    students = [Path(s) for s in args.students.split(",") if s.strip()]
    out = measure(args.teacher, students, args.weights, args.data)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
