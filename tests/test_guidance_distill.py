"""Guidance distillation (issue #16): a generator whose one pass at scale w learns its teacher's guided logits."""
import dataclasses
import types

import pytest
import torch

from kmm.config import GeneratorConfig
from kmm.generators.kmm.model import MaskedGenerator
from kmm.generators.kmm.sampling import cfg_logits, guided, mask_predict
from kmm.train import generator_step
from kmm.training.common import warm_start

torch.set_num_threads(1)
GEN = GeneratorConfig(n_codes=32, d_model=32, n_layers=1, align_dim=16, max_tokens=16, max_length_tokens=20,
                      masking="random", dropout=0.0)
STUDENT = dataclasses.replace(GEN, guidance_head=True)


def _inputs(B=3, T=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, GEN.n_codes + 1, (B, T), generator=g)              # some are [MASK] (= n_codes)
    lengths = torch.tensor([T, T - 3, 5])[:B]
    text = torch.randn(B, 1, GEN.text.dim, generator=g)
    return tokens, lengths, text, torch.zeros(B, T, dtype=torch.long)


def _pair(tmp_path):  # a random teacher and a student started from it by warm_start
    torch.manual_seed(0)
    teacher = MaskedGenerator(GEN).eval()
    teacher.save_pretrained(tmp_path / "bundle" / "kmm")
    student = MaskedGenerator(STUDENT)
    assert warm_start(student, str(tmp_path / "bundle"), "kmm")
    return teacher, student


def test_a_fresh_student_is_its_teachers_conditional_pass_and_plain_models_refuse_a_scale(tmp_path):
    teacher, student = _pair(tmp_path)
    student.eval()
    tokens, lengths, text, seg = _inputs()
    cond = teacher(tokens, lengths, text, seg)
    for w in (0.0, 3.0, 10.0):
        out = student(tokens, lengths, text, seg, guidance=torch.full((3,), w))
        assert torch.allclose(out, cond, atol=1e-6)
    with pytest.raises(ValueError, match="guidance"):
        teacher(tokens, lengths, text, seg, guidance=torch.full((3,), 3.0))
    # cfg_logits at w = 0 is the conditional pass; at w > 0 it moves away from it
    assert torch.allclose(cfg_logits(teacher, tokens, lengths, text, seg, torch.zeros(3)), cond, atol=1e-5)
    assert not torch.allclose(cfg_logits(teacher, tokens, lengths, text, seg, torch.full((3,), 3.0)), cond,
                              atol=1e-3)


def test_warm_start_allows_only_the_missing_guidance_headding(tmp_path):
    teacher, student = _pair(tmp_path)
    student.save_pretrained(tmp_path / "student" / "kmm")
    other = MaskedGenerator(GEN)
    with pytest.raises(RuntimeError, match="unexpected"):   # a student's weights do not fit a plain model
        warm_start(other, str(tmp_path / "student"), "kmm")
    back = MaskedGenerator.from_pretrained(tmp_path / "student" / "kmm")
    assert back.config.guidance_head and back.guide_head is not None


def test_a_distilled_generator_samples_with_one_pass_per_step(tmp_path):
    teacher, student = _pair(tmp_path)
    student.eval()
    tokens, lengths, text, seg = _inputs()
    calls = []
    for model in (teacher, student):
        model.register_forward_hook(lambda m, args, kw, out: calls.append((m.config.guidance_head, out.shape[0])),
                                    with_kwargs=True)
    guided(teacher, lengths, text, seg, 3.0)(tokens)
    guided(student, lengths, text, seg, 3.0)(tokens)
    assert calls == [(False, 6), (True, 3)]                  # teacher: cond + uncond batch; student: one batch
    calls.clear()
    ids = mask_predict(guided(student, lengths, text, seg, 3.0), lengths, 12, student.mask_id, 4,
                       torch.Generator().manual_seed(0))
    assert len(calls) == 4 and all(b == 3 for _, b in calls)
    valid = torch.arange(12)[None] < lengths[:, None]
    assert ((ids < GEN.n_codes) | ~valid).all()


def _step_batch(B=8, T=12):
    """A stub tokenizer (codes -> their base id as a 1-d embedding) and one batch of generator_step's inputs."""
    tokenizer = types.SimpleNamespace(rvq=types.SimpleNamespace(decode=lambda codes: codes[..., :1].float()))
    g0 = torch.Generator().manual_seed(1)
    codes = torch.randint(0, GEN.n_codes, (B, T, 1), generator=g0)
    hidden = torch.randn(B, 4, GEN.text.dim, generator=g0)
    return (tokenizer, codes, torch.full((B,), T), hidden, torch.ones(B, 4, dtype=torch.bool),
            [f"text {i}" for i in range(B)], g0)


def test_the_distillation_step_moves_the_students_one_pass_toward_the_teachers_guided_logits(tmp_path):
    teacher, student = _pair(tmp_path)
    teacher.requires_grad_(False)
    student.train()
    tokenizer, codes, lengths, hidden, tmask, texts, g0 = _step_batch()
    opt = torch.optim.Adam([p for n, p in student.named_parameters() if not n.startswith("text_top")], lr=3e-3)

    def step():  # the same masks and scales every time (same generator seed)
        loss, parts = generator_step(student, tokenizer, codes, lengths, lengths, hidden, tmask, texts,
                                     torch.Generator().manual_seed(5), teacher=teacher, distill_weight=1.0)
        return loss, parts

    _, first = step()
    assert first["kd"] > 1e-3                                # guided logits differ from the conditional pass
    for _ in range(40):
        loss, _ = step()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, last = step()
    assert last["kd"] < 0.5 * first["kd"]
    assert student.guide_head.weight.abs().sum() > 0      # the guidance head took part in it


def test_guided_kd_compares_a_two_pass_students_guided_logits_and_is_zero_for_the_teacher_itself():
    torch.manual_seed(0)
    teacher = MaskedGenerator(GEN).eval().requires_grad_(False)
    tokenizer, codes, lengths, hidden, tmask, texts, g0 = _step_batch()

    def kd(student, guided_kd):
        return generator_step(student, tokenizer, codes, lengths, lengths, hidden, tmask, texts,
                              torch.Generator().manual_seed(5), teacher=teacher, distill_guided=guided_kd)

    twin = MaskedGenerator(GEN).eval()
    twin.load_state_dict(teacher.state_dict())
    assert kd(twin, True)[1]["kd"] == pytest.approx(0.0, abs=1e-5)     # same weights: same guided logits
    # a perturbed student: a guided KL above zero, and gradients through both passes
    with torch.no_grad():
        twin.head.weight.add_(0.05 * torch.randn(twin.head.weight.shape, generator=g0))
    loss, parts = kd(twin, True)
    assert parts["kd"] > 1e-4
    twin.zero_grad()
    loss.backward()
    assert twin.head.weight.grad.abs().sum() > 0
    calls = []
    twin.register_forward_hook(lambda m, args, out: calls.append(out.shape[0]))
    kd(twin, True)
    kd(twin, False)
    assert calls == [2 * len(texts), len(texts)]                               # guided: cond and uncond in one doubled batch


def test_guidance_scales_are_the_default_or_spread_over_the_accepted_range():
    from kmm.config import DEFAULT_GUIDANCE, MAX_GUIDANCE, MIN_GUIDANCE
    from kmm.train import guidance_draw

    assert (guidance_draw(64, torch.Generator().manual_seed(0), 0.0) == DEFAULT_GUIDANCE).all()
    w = guidance_draw(4000, torch.Generator().manual_seed(0), 0.2)
    assert ((w >= MIN_GUIDANCE) & (w <= MAX_GUIDANCE)).all()
    assert 0.75 < float((w == DEFAULT_GUIDANCE).float().mean()) < 0.85
    assert torch.equal(w, guidance_draw(4000, torch.Generator().manual_seed(0), 0.2))


def test_guidance_kl_is_zero_scale_free_for_the_teacher_and_measures_a_student(tiny_bundle, mini_dir, tmp_path):
    from kmm.eval.guidance_kl import measure

    teacher = MaskedGenerator.from_pretrained(tiny_bundle / "kmm")
    student = MaskedGenerator(dataclasses.replace(teacher.config, guidance_head=True))
    assert warm_start(student, str(tiny_bundle), "kmm")
    student.save_pretrained(tmp_path / "student")
    out = measure(tiny_bundle / "kmm", [tmp_path / "student"], tiny_bundle, data=mini_dir, ratios=(0.5,), n=8,
                  log=lambda m: None)
    row = out["ratios"]["0.5"]
    # a fresh student is the teacher's conditional pass: exactly the teacher at scale 0
    assert row["students"][str(tmp_path / "student")]["kl"] == pytest.approx(row["teacher_at_scale"]["0.0"], abs=1e-4)
    assert row["teacher_at_scale"]["0.0"] > row["teacher_at_scale"]["2.0"] > row["teacher_at_scale"]["2.5"] >= 0
