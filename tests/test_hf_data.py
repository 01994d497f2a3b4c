"""`hf:` data on datasets the test writes to disk: a save_to_disk DatasetDict and a folder of parquet files, their
splits, image and label columns, the on-disk cache for large ones, training on one, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import ganzoo
from ganzoo.data import resolve_data
from ganzoo.data.images import square
from ganzoo.errors import UsageError

datasets = pytest.importorskip("datasets", reason="the datasets extra: pip install 'ganzoo[datasets]'")


def pictures(count: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (20, 24 + i % 3, 3), dtype=np.uint8)) for i in range(count)]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    features = datasets.Features({"photo": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog"])})
    splits = {}
    for name, count, seed in (("train", 16, 0), ("test", 6, 1)):
        images = pictures(count, seed)
        splits[name] = datasets.Dataset.from_dict(
            {"photo": images, "label": [i % 2 for i in range(count)]}, features=features
        )
    datasets.DatasetDict(splits).save_to_disk(str(root / "saved"))
    (root / "parquet").mkdir()
    for name, table in splits.items():
        table.to_parquet(str(root / "parquet" / f"{name}-00000.parquet"))
    return root


def expected(count: int, seed: int, resolution: int) -> torch.Tensor:
    rows = [np.asarray(square(p.convert("RGB"), resolution)).transpose(2, 0, 1) for p in pictures(count, seed)]
    return torch.from_numpy(np.stack(rows))


@pytest.mark.parametrize("layout", ["saved", "parquet"])
def test_a_local_dataset_loads_its_splits_images_and_labels(local, layout):
    source = resolve_data(f"hf:{local / layout}?split=test")
    info = source.info()
    assert info.num_classes == 2 and info.extras["class_names"] == ["cat", "dog"] and info.num_samples == 6
    dataset = source.load(resolution=16, channels=3)
    assert torch.equal(dataset.images, expected(6, 1, 16)) and dataset.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert len(resolve_data(f"hf:{local / layout}?column=photo").load(resolution=8)) == 16  # train by default


def test_large_data_goes_through_the_cache_with_the_same_images(local, tmp_path, monkeypatch):
    monkeypatch.setenv("GANZOO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GANZOO_IN_MEMORY_MB", "0")
    cached = resolve_data(f"hf:{local / 'saved'}").load(resolution=16, channels=1)
    assert len(list((tmp_path / "hf").iterdir())) == 1
    monkeypatch.setenv("GANZOO_IN_MEMORY_MB", "1024")
    assert torch.equal(cached.images, resolve_data(f"hf:{local / 'saved'}").load(resolution=16, channels=1).images)


def test_training_on_hf_data(local, tmp_path):
    train = {"steps": 2, "batch_size": 8, "progress": False, "tensorboard": False, "sample_grid": 4}
    config = {"g_width": 4, "d_width": 4, "latent_dim": 8, "resolution": 32}
    result = ganzoo.Trainer("cgan", config, train, data=f"hf:{local / 'saved'}", out=tmp_path / "run").fit()
    assert result.step == 2 and result.model.conditional


def test_errors_are_one_line(local, monkeypatch):
    with pytest.raises(UsageError, match=r"no split 'valid'; the dataset has train, test"):
        resolve_data(f"hf:{local / 'saved'}?split=valid").load(resolution=8)
    with pytest.raises(UsageError, match=r"'label' is not an image column \(image columns: photo\)"):
        resolve_data(f"hf:{local / 'saved'}?column=label").info()
    with pytest.raises(UsageError, match="column= picks the image column of hf: data"):
        resolve_data("mnist-4k?column=image")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(UsageError, match="cannot open hf:nobody/no-such-dataset"):
        resolve_data("hf:nobody/no-such-dataset").info()
