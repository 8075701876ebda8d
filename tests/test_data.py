"""Dataset loading and validation, batching helpers."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from kmm.data import DataError, load_dataset, pad_batch, random_crop, resolve_data_dirs

SHARED_DATA = Path(os.environ.get("KMM_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
MINI = SHARED_DATA / "cmu-desc-s01-07-mini"
needs_mini = pytest.mark.skipif(not (MINI / "motions.npz").exists(), reason=f"no test data at {MINI}")


def make_folder(root: Path, name="toy", lengths=(5, 7, 9), splits=None) -> Path:
    """A small valid dataset folder: clips c0, c1, ... with the given lengths."""
    folder = root / name
    (folder / "splits").mkdir(parents=True)
    ids = [f"{name}_c{i}" for i in range(len(lengths))]
    rng = np.random.default_rng(0)
    np.savez(folder / "motions.npz",
             **{i: rng.normal(size=(t, 22, 3)).astype(np.float16) for i, t in zip(ids, lengths)})
    splits = splits or {"train": ids[:-1], "test": ids[-1:]}
    split_of = {i: s for s, members in splits.items() for i in members}
    with open(folder / "captions.jsonl", "w") as f:
        for i in ids:
            f.write(json.dumps({"id": i, "captions": [f"caption of {i}"], "split": split_of[i]}) + "\n")
    for split, members in splits.items():
        (folder / "splits" / f"{split}.txt").write_text("\n".join(members) + "\n")
    return folder


@needs_mini
def test_loads_mini():
    dataset = load_dataset(resolve_data_dirs(str(MINI)))
    assert len(dataset) == 16
    assert dataset.splits == ["test", "train", "val"]
    assert [len(dataset.clips(s)) for s in ("train", "val", "test")] == [12, 1, 3]
    clip = dataset.clips("train")[0]
    assert clip.joints.dtype == np.float32 and clip.joints.shape[1:] == (22, 3)
    assert clip.source == "cmu-desc-s01-07-mini" and clip.captions and clip.split == "train"
    summary = dataset.summary()
    assert "cmu-desc-s01-07-mini" in summary and "hours" in summary


@needs_mini
def test_parent_folder_skips_mini(tmp_path):
    names = [d.name for d in resolve_data_dirs(str(SHARED_DATA))]
    assert names and not any(n.endswith("-mini") for n in names)


def test_several_folders_and_separators(tmp_path):
    a, b = make_folder(tmp_path, "a"), make_folder(tmp_path, "b", lengths=(4, 6))
    dataset = load_dataset(resolve_data_dirs(f"{a},{b}"))
    assert len(dataset) == 5
    assert {c.source for c in dataset.clips()} == {"a", "b"}
    assert resolve_data_dirs(f"{a}{os.pathsep}{b}") == resolve_data_dirs(str(tmp_path))


def test_env_spec(tmp_path, monkeypatch):
    folder = make_folder(tmp_path)
    monkeypatch.setenv("KMM_DATA", str(folder))
    assert resolve_data_dirs(None) == [folder.resolve()]


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        resolve_data_dirs(str(tmp_path / "nowhere"))


def test_missing_file(tmp_path):
    folder = make_folder(tmp_path)
    (folder / "captions.jsonl").unlink()
    with pytest.raises(DataError, match=r"captions\.jsonl"):
        load_dataset([folder])


def test_bad_json_line(tmp_path):
    folder = make_folder(tmp_path)
    with open(folder / "captions.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(DataError, match=r"captions\.jsonl:4: bad JSON"):
        load_dataset([folder])


def test_record_without_captions(tmp_path):
    folder = make_folder(tmp_path)
    lines = (folder / "captions.jsonl").read_text().splitlines()
    lines[1] = json.dumps({"id": "toy_c1", "split": "train"})
    (folder / "captions.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"captions\.jsonl:2: .*captions"):
        load_dataset([folder])


def test_wrong_array_shape(tmp_path):
    folder = make_folder(tmp_path)
    with np.load(folder / "motions.npz") as npz:
        arrays = dict(npz)
    arrays["toy_c1"] = np.zeros((5, 21, 3), np.float16)
    np.savez(folder / "motions.npz", **arrays)
    with pytest.raises(DataError, match=r"motions\.npz: clip 'toy_c1' has shape \(5, 21, 3\)"):
        load_dataset([folder])


def test_non_finite_values(tmp_path):
    folder = make_folder(tmp_path)
    with np.load(folder / "motions.npz") as npz:
        arrays = dict(npz)
    arrays["toy_c0"][2, 3, 1] = np.nan
    np.savez(folder / "motions.npz", **arrays)
    with pytest.raises(DataError, match=r"motions\.npz: clip 'toy_c0' has non-finite"):
        load_dataset([folder])


def test_unknown_id_in_split(tmp_path):
    folder = make_folder(tmp_path)
    with open(folder / "splits" / "test.txt", "a") as f:
        f.write("ghost\n")
    with pytest.raises(DataError, match=r"test\.txt:2: unknown clip id 'ghost'"):
        load_dataset([folder])


def test_duplicate_ids_across_folders(tmp_path):
    a = make_folder(tmp_path / "one")
    b = make_folder(tmp_path / "two")  # same ids: toy_c0, ...
    with pytest.raises(DataError, match="also in"):
        load_dataset([a, b])


def test_pad_batch_mask_example():
    batch, mask = pad_batch([np.ones((2, 4)), np.ones((3, 4))])
    assert batch.shape == (2, 3, 4)
    assert mask.astype(int).tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch[0, 2].sum() == 0
    tbatch, tmask = pad_batch([torch.ones(2, 4), torch.ones(3, 4)])
    assert tmask.tolist() == [[True, True, False], [True, True, True]]
    assert tbatch.shape == (2, 3, 4)


def test_random_crop_deterministic():
    x = np.arange(100)
    a = [random_crop(x, 10, np.random.default_rng(7)) for _ in range(2)]
    assert np.array_equal(a[0], a[1]) and len(a[0]) == 10
    assert np.array_equal(a[0], np.arange(a[0][0], a[0][0] + 10))
    t = [random_crop(torch.arange(100), 10, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(t[0], t[1])
    assert random_crop(x[:5], 10, np.random.default_rng(0)).shape == (5,)
