"""kmm.vocabulary: training captions grouped by action, their embeddings, closest captions and warnings."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kmm import vocabulary as V

ROOT = Path(__file__).resolve().parents[1]


def _fake_embed(texts):
    """Bag of words hashed into 64 dims, normalised: similar wording → high cosine, no encoder needed."""
    out = np.zeros((len(texts), 64), np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().replace(",", " ").split():
            out[i, hash(w) % 64] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_action_groups_match_word_starts():
    groups = V.action_groups(["a person jumps forward", "someone sits down", "a person walks backward",
                              "a person bows", "a person kicks, then sits"])
    assert groups["jump"] == ["a person jumps forward"]
    assert groups["sit down"] == ["someone sits down", "a person kicks, then sits"]
    assert groups["kick"] == ["a person kicks, then sits"] and "walk backwards" in groups
    assert "crawl" not in groups                         # no caption, no group


def test_train_captions_use_the_train_split_only(mini_dir):
    from kmm.captions import describe

    captions = V.train_captions([mini_dir])
    ids = set((mini_dir / "splits" / "train.txt").read_text().split())
    expected = set()
    for line in open(mini_dir / "captions.jsonl"):
        r = json.loads(line)
        if r["id"] in ids:
            expected.update(" ".join(d.rstrip(".").split()) for d in map(describe, r["captions"]) if d)
    assert captions and len(captions) == len(set(captions)) and set(captions) == expected


def test_save_load_and_closest(tmp_path):
    vocab = V.Vocabulary(["a person walks forward", "a person jumps", "a person waves the right hand"],
                         {"walk": ["a person walks forward"]},
                         _fake_embed(["a person walks forward", "a person jumps", "a person waves the right hand"]),
                         ["x"])
    vocab.save(tmp_path)
    back = V.Vocabulary.load(tmp_path)
    assert back.captions == vocab.captions and back.groups == vocab.groups
    assert np.allclose(back.embeddings, vocab.embeddings, atol=1e-3)
    best = back.closest(["a person jumps", "walks forward"], k=2, embed=_fake_embed)
    assert best[0][0][0] == "a person jumps" and best[0][0][1] == pytest.approx(1.0, abs=1e-3)
    assert best[1][0][0] == "a person walks forward" and len(best[1]) == 2 and best[1][0][1] >= best[1][1][1]


def test_understood_warns_below_the_threshold():
    assert V.understood("cartwheel", [("a person jumps", 0.2)]).startswith("⚠️ nothing like 'cartwheel'")
    assert V.understood("jump", [("a person jumps", 0.9)]).startswith("closest training captions")


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="vocabulary.json is missing"):
        V.Vocabulary.load(tmp_path)
    V.Vocabulary(["a", "b"], {}, _fake_embed(["a", "b"]), []).save(tmp_path)
    meta = json.loads((tmp_path / "vocabulary.json").read_text())
    meta["captions"].append("c")
    (tmp_path / "vocabulary.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="2 embeddings for 3 captions"):
        V.Vocabulary.load(tmp_path)


def test_cli_builds_a_bundle_with_the_real_encoder(mini_dir, tmp_path):
    out = subprocess.run([sys.executable, "-m", "kmm", "vocabulary", "--data", str(mini_dir), "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    vocab = V.Vocabulary.load(tmp_path)
    assert vocab.embeddings.shape == (len(vocab.captions), 384)
    assert np.allclose(np.linalg.norm(vocab.embeddings, axis=1), 1.0, atol=1e-2)
    walk = next(c for c in vocab.captions if "walk" in c)
    best, sim = vocab.closest([walk], k=1)[0][0]
    assert best == walk and sim > 0.99
    far = vocab.closest(["zxqv 🙂"], k=1)[0][0][1]
    assert far < V.WARN_BELOW


def test_shipped_vocabulary_matches_its_embeddings():
    folder = ROOT / "assets" / "kmm"
    if not (folder / V.VOCAB_JSON).is_file():
        pytest.skip("no vocabulary in assets/kmm")
    vocab = V.Vocabulary.load(folder)
    assert len(vocab.captions) == len(vocab.embeddings) > 0 and vocab.groups
    assert all(c in vocab.captions for caps in vocab.groups.values() for c in caps)
