"""BAMM baseline: the two attention masks, no leak of a query's answer, cascaded decoding and [END]."""
import itertools

import pytest
import torch

from kmm.generators.bamm.decoding import cascaded_decode
from kmm.config import BammConfig
from kmm.generators.bamm.model import Bamm, bamm_attention_mask
from kmm.train import bamm_step


def tiny(**kw):
    torch.manual_seed(0)
    return Bamm(BammConfig(n_codes=16, d_model=32, n_layers=2, n_heads=2, text_dim=8, max_tokens=12,
                           dropout=0.0, **kw)).eval()


@pytest.mark.parametrize("U", [set(), {1, 3}, {0, 2, 4}, {4}])
def test_attention_mask_matches_the_rule(U):
    T = 5
    unmasked = torch.tensor([[i in U for i in range(T)] + [False]])
    m = bamm_attention_mask(unmasked, torch.tensor([T]))[0]
    assert m[:, 0].all(), "every position sees the text"
    for i, j in itertools.product(range(T + 1), repeat=2):
        rule = (j <= i and i not in U) or j in U
        assert bool(m[1 + i, 1 + j]) == rule, (i, j)
    if not U:  # unidirectional: plain causality
        assert torch.equal(m[1:, 1:], torch.tril(torch.ones(T + 1, T + 1, dtype=torch.bool)))


def test_attention_mask_hides_padding():
    m = bamm_attention_mask(torch.zeros(1, 6, dtype=torch.bool), torch.tensor([3]))[0]
    assert not m[1:, 1 + 4:].any()          # slots after [END] (slot 3) are never seen
    assert m[1 + 3, 1:1 + 4].all()          # [END] sees slots 0..3


@pytest.mark.parametrize("known", [set(), {0, 2, 5}])
def test_query_never_sees_its_own_token(known):
    model = tiny()
    T = 7
    tokens = torch.randint(0, 16, (1, T), generator=torch.Generator().manual_seed(1))
    unmasked = torch.tensor([[i in known for i in range(T)] + [False]])
    text = torch.randn(1, 1, 8)
    seg = torch.zeros(1, T + 1, dtype=torch.long)
    base = model(tokens, unmasked, torch.tensor([T]), text, seg)
    for i in range(T):
        if i in known:
            continue
        other = tokens.clone()
        other[0, i] = (other[0, i] + 1) % 16
        out = model(other, unmasked, torch.tensor([T]), text, seg)
        assert torch.allclose(out[0, i], base[0, i], atol=1e-5), f"slot {i} saw its own answer"
        if i + 1 not in known:   # ...but it does reach the next query slot, which carries it as "previous"
            assert not torch.allclose(out[0, i + 1], base[0, i + 1], atol=1e-5)


def test_decoding_without_length_ends_with_end_and_stays_in_range():
    model = tiny()
    with torch.no_grad():   # make [END] likely from the 3rd slot on, so the test sees a real stop
        model.head.bias[model.end_id] = -20.0
    text = torch.randn(1, 1, 8)
    lengths = []
    for seed in range(4):
        ids = cascaded_decode(model, text, torch.Generator().manual_seed(seed), top_k=1.0)
        assert 1 <= ids.shape[1] <= model.config.max_tokens
        assert int(ids.max()) < model.end_id
        lengths.append(ids.shape[1])
    with torch.no_grad():
        model.head.bias[model.end_id] = 30.0
    ids = cascaded_decode(model, text, torch.Generator().manual_seed(0), top_k=1.0)
    assert ids.shape[1] == 1, "END is forbidden only at the first slot, so a strong END stops after one token"


def test_decoding_with_length_forces_end_and_keeps_fixed_tokens():
    model = tiny()
    with torch.no_grad():
        model.head.bias[model.end_id] = 30.0   # [END] wanted everywhere: the given length must still win
    text = torch.randn(1, 2, 8)
    seg = torch.tensor([[0] * 5 + [1] * 4])
    fixed = torch.full((1, 8), 3)
    fm = torch.zeros(1, 8, dtype=torch.bool)
    fm[0, :3] = True
    a = cascaded_decode(model, text, torch.Generator().manual_seed(5), length=8, seg_ids=seg, fixed=fixed, fixed_mask=fm)
    b = cascaded_decode(model, text, torch.Generator().manual_seed(5), length=8, seg_ids=seg, fixed=fixed, fixed_mask=fm)
    assert a.shape == (1, 8) and torch.equal(a, b)
    assert (a[0, :3] == 3).all() and int(a.max()) < model.end_id
    with pytest.raises(ValueError):
        cascaded_decode(model, text, torch.Generator(), length=13)


def test_training_step_learns_a_fixed_sequence():
    model = tiny()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 0, 0]])
    lengths, ends = torch.tensor([6, 4]), torch.tensor([True, True])
    pooled = torch.randn(2, 8)
    first = None
    for _ in range(60):
        loss, _ = bamm_step(model, tokens, lengths, ends, pooled, g)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    model.eval()
    model.config.cond_drop = 0.0
    ids = cascaded_decode(model, pooled[:1, None], torch.Generator().manual_seed(0), guidance=(0.0, 0.0), top_k=0.01)
    assert ids.tolist() == [[1, 2, 3, 4, 5, 6]], "greedy decoding recovers the memorised clip and its [END]"
