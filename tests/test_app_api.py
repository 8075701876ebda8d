"""The Gradio app end to end over HTTP: `/generate` through gradio_client, errors, and a small load test.

Serves build_demo() on 127.0.0.1 (free port, background thread) with the session's tiny weights bundle.
"""
import os
import resource
import time

import numpy as np
import pytest

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def vocab_bundle(tiny_bundle, mini_dir):
    """The tiny bundle gets a vocabulary of its training captions (as `python -m kmm vocabulary` writes it)."""
    from kmm.vocabulary import build_vocabulary

    build_vocabulary([mini_dir]).save(tiny_bundle)
    return tiny_bundle


@pytest.fixture(scope="module")
def server(vocab_bundle, app_server):
    return app_server


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server, verbose=False)


def _load(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def test_generate_two_segments(client):
    npz, bvh, info = client.predict("a person walks forward, then sits down", "3,2", 0, 3.0, 10, "kmm",
                                    api_name="/generate")
    data = _load(npz)
    assert data["joints"].shape == (100, 22, 3)
    assert list(data["boundaries"]) == [0, 60, 100]
    assert list(data["segment_texts"]) == ["a person walks forward", "sits down"]
    assert os.path.basename(npz) == "kmm_seed0_2seg_100frames.npz" and bvh.endswith("kmm_seed0_2seg_100frames.bvh")
    assert "Frames: 100" in open(bvh).read()
    assert info["frames"] == 100 and "bundled weights" in info["weights"]


def test_info_lists_closest_training_captions(client):
    from kmm.vocabulary import WARN_BELOW

    _, _, info = client.predict("a person walks. a person solders a circuit board", "2", 0, 3.0, 4,
                                "kmm", api_name="/generate")
    walk, odd = info["segments"]
    assert walk["closest_captions"] and "walk" in walk["closest_captions"][0]["caption"]
    sims = [c["similarity"] for c in walk["closest_captions"]]
    assert sims == sorted(sims, reverse=True) and "warning" not in walk
    assert odd["closest_captions"][0]["similarity"] < WARN_BELOW
    assert odd["warning"].startswith("⚠️ nothing like 'a person solders a circuit board'")


def test_generate_auto_length_and_other_model(client):
    npz, _, info = client.predict("a person jumps", "auto", 3, 2.0, 4, "bamm", api_name="/generate")
    assert _load(npz)["joints"].shape[0] == info["frames"] > 0
    assert info["model_id"].endswith("bamm") and info["seed"] == 3


def test_non_latin_text_is_allowed_with_a_note(client):
    _, _, info = client.predict("人が前に歩く", "2", 0, 3.0, 4, "kmm", api_name="/generate")
    assert info["frames"] == 40 and "English" in info["note"]


@pytest.mark.parametrize("prompt, lengths, seed, model, message", [
    ("", "3", 0, "kmm", "The prompt is empty"),
    ("x" * 4001, "3", 0, "kmm", "the limit is 4000"),
    ("walk", "0", 0, "kmm", "length must be positive"),
    ("walk", "-3", 0, "kmm", "length must be positive"),
    ("walk", "1000", 0, "kmm", "longer than the maximum"),
    ("walk, then sit", "3,2,2", 0, "kmm", "Lengths has 3 entries"),
    (". ".join(["walk"] * 65), "auto", 0, "kmm", "the limit is 64"),
    ("walk", "3", -1, "kmm", "Seed must be"),
    ("🙂🙂, then !!", "3", 0, "kmm", "Segment 1 ('🙂🙂') has no words"),
    ("walk", "3", 0, "gpt-5", "gpt-5 is not in the list of choices"),  # gradio checks the dropdown
])
def test_bad_input_gives_clear_message(client, prompt, lengths, seed, model, message):
    with pytest.raises(gradio_client.exceptions.AppError) as e:
        client.predict(prompt, lengths, seed, 3.0, 10, model, api_name="/generate")
    assert message in str(e.value)
    assert "Traceback" not in str(e.value)


def test_twenty_concurrent_requests(client):
    t0 = time.perf_counter()
    jobs = [client.submit(f"a person walks forward, then waves #{i}", "2,1.6", i, 3.0, 4, "kmm",
                          api_name="/generate") for i in range(20)]
    results = [job.result(timeout=120) for job in jobs]
    wall = time.perf_counter() - t0
    frames = [_load(npz)["joints"].shape[0] for npz, _, _ in results]
    assert frames == [72] * 20
    assert len({npz for npz, _, _ in results}) == 20          # every request got its own files
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n20 concurrent /generate: {wall:.1f} s wall, peak RSS {peak_mb:.0f} MB (server + client process)")


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_memory_stays_flat_over_many_requests(client):
    """Three more rounds of 10 requests after a warm-up round: resident memory must not keep growing."""
    def round_(k):
        jobs = [client.submit(f"a person walks forward #{k}-{i}", "2", i, 3.0, 4, "kmm", api_name="/generate")
                for i in range(10)]
        [job.result(timeout=120) for job in jobs]
        return _rss_mb()

    round_(0)
    rss = [round_(k) for k in range(1, 4)]
    print(f"\nRSS after rounds of 10 requests: {[round(r) for r in rss]} MB")
    assert rss[-1] - rss[0] < 100, rss
