"""Key-frame and random masking: padding never masked, budget and key-frame share hold, determinism."""
import torch

from kmm.generators.kmm.masking import MASKERS, cosine_ratio, density_peak_scores, key_frame_mask, random_mask, valid_mask


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(4, 20, 8, generator=g)
    lengths = torch.tensor([20, 13, 7, 1])
    ratio = torch.tensor([0.5, 0.9, 0.3, 1.0])
    return emb, lengths, ratio


def test_valid_mask_example():
    assert valid_mask(torch.tensor([2, 3]), 4).int().tolist() == [[1, 1, 0, 0], [1, 1, 1, 0]]


def test_padding_never_masked_and_budget_exact():
    emb, lengths, ratio = _batch()
    for name, fn in MASKERS.items():
        m = fn(emb, lengths, ratio, torch.Generator().manual_seed(1))
        assert not (m & ~valid_mask(lengths, 20)).any(), name
        expected = torch.clamp(torch.ceil(ratio * lengths), min=1).long().minimum(lengths)
        assert torch.equal(m.sum(1), expected), name


def test_key_frames_fill_their_share_of_the_budget():
    emb, lengths, ratio = _batch()
    share = 0.5
    m = key_frame_mask(emb, lengths, ratio, torch.Generator().manual_seed(3), key_share=share)
    score = density_peak_scores(emb, lengths)
    n = torch.clamp(torch.ceil(ratio * lengths), min=1).long().minimum(lengths)
    for b in range(4):
        n_key = int(round(share * int(n[b])))
        top = score[b].argsort(descending=True)[:n_key]
        assert m[b, top].all()           # every key frame is masked


def test_key_frames_are_density_peaks():
    # two tight clusters and one outlier: the densest token of each cluster and the outlier score highest
    emb = torch.tensor([[[0.0], [0.01], [0.02], [5.0], [5.01], [5.02], [20.0]]])
    score = density_peak_scores(emb, torch.tensor([7]), sigma=1.0)
    top2 = set(score[0].argsort(descending=True)[:2].tolist())
    assert top2 <= {0, 1, 2, 3, 4, 5} and len({i // 3 for i in top2}) == 2  # one peak per cluster


def test_same_generator_same_mask():
    emb, lengths, ratio = _batch()
    for fn in (key_frame_mask, random_mask):
        a = fn(emb, lengths, ratio, torch.Generator().manual_seed(7))
        b = fn(emb, lengths, ratio, torch.Generator().manual_seed(7))
        c = fn(emb, lengths, ratio, torch.Generator().manual_seed(8))
        assert torch.equal(a, b)
    assert not torch.equal(random_mask(emb, lengths, ratio, torch.Generator().manual_seed(7)), c)


def test_cosine_ratio_range():
    r = cosine_ratio(torch.linspace(0, 0.999, 50))
    assert r.max() <= 1 and r.min() > 0 and (r[1:] <= r[:-1]).all()
