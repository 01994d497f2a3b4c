"""The on-disk cache of large image folders: built once, reused while the folder is unchanged, rebuilt when it
changes, unreadable files skipped and counted, and batches equal to the in-memory dataset's."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

import ganzoo
from ganzoo.data import cache as folder_cache
from ganzoo.data import resolve_data


def write_folder(root, count: int = 24) -> None:
    """`count` small RGB images in two class folders, each image different."""
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / ("cats" if i % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (20 + i % 3, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    root = tmp_path / "images"
    write_folder(root)
    monkeypatch.setenv("GANZOO_DATA_DIR", str(tmp_path / "cache"))
    return root


def load(root, limit_mb: str, monkeypatch, resolution: int = 16) -> ganzoo.data.images.TensorImageDataset:
    monkeypatch.setenv("GANZOO_IN_MEMORY_MB", limit_mb)
    return resolve_data(f"folder:{root}").load(resolution=resolution, channels=3)


def test_a_large_folder_goes_through_the_cache_and_gives_the_same_batches(folder, tmp_path, monkeypatch):
    in_memory = load(folder, "1024", monkeypatch)
    cached = load(folder, "0", monkeypatch)  # every folder counts as large
    entries = list((tmp_path / "cache" / "folders").iterdir())
    assert len(entries) == 1 and sorted(p.name for p in entries[0].iterdir()) == [
        "images.u8",
        "labels.npy",
        "meta.json",
    ]
    assert torch.equal(in_memory.images, cached.images) and torch.equal(in_memory.labels, cached.labels)
    rows = [3, 0, 17, 9]
    for key, value in in_memory.__getitems__(rows).items():
        assert torch.equal(value, cached.__getitems__(rows)[key]), key


def test_an_unchanged_folder_reuses_its_cache_and_a_changed_one_rebuilds(folder, tmp_path, monkeypatch):
    load(folder, "0", monkeypatch)
    built = []
    original = folder_cache._build
    monkeypatch.setattr(folder_cache, "_build", lambda *a, **k: built.append(1) or original(*a, **k))
    load(folder, "0", monkeypatch)
    assert built == []  # reused
    image = folder / "dogs" / "000.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # the file changed
    again = load(folder, "0", monkeypatch)
    assert built == [1] and len(again) == 24
    assert len(list((tmp_path / "cache" / "folders").iterdir())) == 2
    other = load(folder, "0", monkeypatch, resolution=8)  # the resolution is part of the key too
    assert built == [1, 1] and other.images.shape == (24, 3, 8, 8)


def test_unreadable_files_are_skipped_and_counted(folder, monkeypatch):
    (folder / "cats" / "broken.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image file\(s\) under .*cats/broken.png"):
        dataset = load(folder, "0", monkeypatch)
    assert len(dataset) == 24 and dataset.labels.tolist().count(0) == 12  # cats: class 0, 12 readable


def test_training_reads_the_cached_folder(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("GANZOO_IN_MEMORY_MB", "0")
    train = {"steps": 2, "batch_size": 8, "progress": False, "tensorboard": False, "sample_grid": 4}
    config = {"g_width": 4, "d_width": 4, "latent_dim": 8, "resolution": 32}
    result = ganzoo.Trainer("dcgan", config, train, data=f"folder:{folder}", out=tmp_path / "run").fit()
    assert result.step == 2 and (tmp_path / "cache" / "folders").is_dir()
