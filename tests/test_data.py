"""Data specs: the embedded digits, image folders, torchvision sets from a local cache, and their errors."""

from __future__ import annotations

import os
import pickle
import struct
import warnings

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from ganzoo.data import DataSource, TensorImageDataset, accepted_specs, register_data, resolve_data, sources
from ganzoo.errors import GanzooError, UsageError


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty dataset cache and downloads allowed unless it says otherwise."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("GANZOO_DATA_DIR", str(cache))
    monkeypatch.delenv("GANZOO_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return cache


def _all(dataset: TensorImageDataset) -> dict[str, torch.Tensor]:
    return dataset.__getitems__(list(range(len(dataset))))


# --------------------------------------------------------------------------------------------- mnist-4k


def test_mnist_4k_is_the_default_and_has_4000_digits():
    source = resolve_data()
    assert source.spec == "mnist-4k"
    info = source.info()
    assert (info.modality, info.channels, info.resolution, info.num_classes, info.num_samples) == (
        "image",
        1,
        28,
        10,
        4000,
    )
    dataset = source.load()
    assert len(dataset) == 4000
    batch = _all(dataset)
    assert batch["image"].shape == (4000, 1, 28, 28)
    assert batch["image"].dtype == torch.float32
    assert batch["image"].min() == -1.0 and batch["image"].max() == 1.0
    assert sorted(batch["label"].unique().tolist()) == list(range(10))
    assert batch["label"].dtype == torch.long


def test_dataset_item_is_one_image():
    """ds[i] is one sample, (C, H, W), like any torch Dataset; a batch comes from __getitems__."""
    dataset = resolve_data("mnist-4k").load()
    item = dataset[0]
    assert item["image"].shape == (1, 28, 28)
    assert item["label"].shape == ()
    assert item["image"].min() >= -1.0 and item["image"].max() <= 1.0


def test_mnist_4k_at_another_resolution_and_channel_count():
    dataset = resolve_data("mnist-4k").load(resolution=32, channels=3)
    assert len(dataset) == 4000
    batch = dataset.__getitems__([0, 1, 2])
    assert batch["image"].shape == (3, 3, 32, 32)
    assert torch.equal(batch["image"][:, 0], batch["image"][:, 1])  # grey replicated into RGB
    assert torch.equal(batch["image"][:, 0], batch["image"][:, 2])
    assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0


# --------------------------------------------------------------------------------------------- folders


def _tricolor(width: int, height: int) -> Image.Image:
    """Red left third, green middle third, blue right third."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    third = width // 3
    array[:, :third, 0] = 255
    array[:, third : 2 * third, 1] = 255
    array[:, 2 * third :, 2] = 255
    return Image.fromarray(array, "RGB")


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "images"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    _tricolor(60, 20).save(root / "cats" / "a.png")
    Image.new("RGB", (32, 32), (10, 200, 30)).save(root / "cats" / "b.png")
    Image.new("L", (20, 50), 100).save(root / "dogs" / "c.png")
    Image.new("RGB", (40, 40), (250, 250, 250)).save(root / "dogs" / "d.jpg", quality=95)
    (root / "dogs" / "notes.txt").write_text("not an image")
    return root


def test_folder_with_class_subfolders(image_folder):
    source = resolve_data(f"folder:{image_folder}")
    info = source.info()
    assert info.num_classes == 2
    assert info.num_samples == 4
    assert info.extras["class_names"] == ["cats", "dogs"]
    assert info.channels == 3
    assert info.resolution is None

    dataset = source.load(resolution=16, channels=3)
    assert len(dataset) == 4
    batch = _all(dataset)
    assert batch["image"].shape == (4, 3, 16, 16)
    assert batch["label"].tolist() == [0, 0, 1, 1]
    assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0
    grey = dataset.images[2]  # dogs/c.png, a constant grey 100 converted to RGB
    assert (grey.int() - 100).abs().max() <= 1


def test_folder_center_crops(image_folder):
    dataset = resolve_data(f"folder:{image_folder}").load(resolution=16, channels=3)
    wide = dataset.images[0].int()  # 60x20 red|green|blue: the center crop keeps the green third
    inner = wide[:, 2:-2, 2:-2]
    assert inner[1].min() > 200
    assert inner[0].max() < 60 and inner[2].max() < 60


def test_folder_grey_output_and_default_resolution(image_folder):
    source = resolve_data(f"folder:{image_folder}")
    grey = source.load(resolution=8, channels=1)
    assert grey.images.shape == (4, 1, 8, 8)
    default = source.load()
    assert default.images.shape == (4, 3, 64, 64)


def test_greyscale_folder_defaults_to_one_channel(tmp_path):
    root = tmp_path / "grey"
    root.mkdir()
    for i, size in enumerate([(30, 30), (12, 40)]):
        Image.new("L", size, 50 * i).save(root / f"{i}.png")
    source = resolve_data(f"folder:{root}")
    assert source.info().channels == 1
    assert source.info().num_classes is None
    dataset = source.load(resolution=28)
    assert dataset.images.shape == (2, 1, 28, 28)
    assert dataset.labels is None
    assert "label" not in dataset.__getitems__([0, 1])


def test_folder_with_images_outside_subfolders_is_unlabelled(image_folder):
    Image.new("RGB", (20, 20)).save(image_folder / "loose.png")
    source = resolve_data(f"folder:{image_folder}")
    assert source.info().num_classes is None
    dataset = source.load(resolution=8)
    assert len(dataset) == 5 and dataset.labels is None


def test_folder_16_bit_greyscale_keeps_its_range(tmp_path):
    """A 16-bit PNG (mode I;16) is scaled to 8 bits, not clipped at 255 (which turns it almost all white)."""
    root = tmp_path / "deep"
    root.mkdir()
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (32, 1))
    Image.fromarray(ramp).save(root / "ramp.png")
    with Image.open(root / "ramp.png") as check:
        assert check.mode == "I;16"
    dataset = resolve_data(f"folder:{root}").load(resolution=32, channels=1)
    got = dataset.images[0, 0].float()
    expected = torch.from_numpy(ramp.astype(np.float32) / 257.0)
    assert (got - expected).abs().max() <= 2.0


@pytest.mark.parametrize("n_bad", [1, 2])
def test_folder_skips_unreadable_files_with_one_warning(image_folder, n_bad):
    rng = np.random.default_rng(0)
    (image_folder / "cats" / "bad.png").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    if n_bad == 2:
        (image_folder / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    source = resolve_data(f"folder:{image_folder}")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dataset = source.load(resolution=16, channels=3)
    assert len(record) == 1, [str(w.message) for w in record]
    message = str(record[0].message)
    assert f"skipped {n_bad} unreadable" in message
    assert "bad.png" in message
    assert len(dataset) == 4
    assert dataset.labels.tolist() == [0, 0, 1, 1]


def test_folder_of_only_unreadable_files(tmp_path):
    root = tmp_path / "junk"
    root.mkdir()
    (root / "bad.png").write_bytes(os.urandom(300))
    source = resolve_data(f"folder:{root}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UsageError, match="could be read"):
            source.load(resolution=8)


def test_empty_folder(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    (root / "readme.txt").write_text("no images here")
    with pytest.raises(UsageError) as info:
        resolve_data(f"folder:{root}")
    assert "no images found" in str(info.value) and str(root) in str(info.value)
    assert ".png" in str(info.value)


def test_missing_folder(tmp_path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(UsageError) as info:
        resolve_data(f"folder:{missing}")
    assert "data folder not found" in str(info.value) and str(missing) in str(info.value)


def test_folder_spec_without_path():
    with pytest.raises(UsageError, match="needs a path"):
        resolve_data("folder:")


@pytest.mark.parametrize("spec", ["imagenet", "mnist4k", "folders:/tmp", "MNIST-4K"])
def test_unknown_spec_lists_the_accepted_ones(spec):
    with pytest.raises(UsageError) as info:
        resolve_data(spec)
    message = str(info.value)
    assert f"unknown data spec {spec!r}" in message
    for accepted in ("mnist-4k", "folder:PATH", "mnist", "fashion-mnist", "cifar10"):
        assert accepted in message
    assert accepted_specs() in message


def test_register_data(monkeypatch):
    monkeypatch.setattr(sources, "_NAMED", dict(sources._NAMED))
    monkeypatch.setattr(sources, "_PREFIXED", dict(sources._PREFIXED))

    class Ones(DataSource):
        def __init__(self, spec: str, size: int = 3) -> None:
            self.spec, self.size = spec, size

        def load(self, **_):
            return TensorImageDataset(torch.full((self.size, 1, 4, 4), 255, dtype=torch.uint8))

    register_data("ones", Ones)
    register_data("ones-n", lambda spec, rest: Ones(spec, int(rest)), prefix=True)
    assert resolve_data("ones").spec == "ones"
    assert len(resolve_data("ones-n:5").load()) == 5
    assert "ones" in accepted_specs() and "ones-n:PATH" in accepted_specs()


# ---------------------------------------------------------------------------- torchvision from a cache


def _write_idx(path, array: np.ndarray) -> None:
    """The IDX format of the MNIST files: 0, 0, type 0x08 (uint8), ndim, big-endian dims, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.tobytes())


def _mnist_fixture(root, folder: str, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    _write_idx(raw / "train-images-idx3-ubyte", images)
    _write_idx(raw / "train-labels-idx1-ubyte", labels)
    _write_idx(raw / "t10k-images-idx3-ubyte", images[:3])
    _write_idx(raw / "t10k-labels-idx1-ubyte", labels[:3])
    return images, labels


@pytest.mark.parametrize(("spec", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_mnist_from_the_cache(_isolated_cache, monkeypatch, spec, folder):
    monkeypatch.setenv("GANZOO_OFFLINE", "1")  # a cached dataset needs no network
    images, labels = _mnist_fixture(_isolated_cache, folder)
    source = resolve_data(spec)
    info = source.info()
    assert (info.channels, info.resolution, info.num_classes) == (1, 28, 10)
    dataset = source.load()
    assert len(dataset) == 12
    assert torch.equal(dataset.images, torch.from_numpy(images)[:, None])
    assert dataset.labels.tolist() == labels.tolist()
    resized = source.load(resolution=32, channels=3)
    assert resized.images.shape == (12, 3, 32, 32)


def test_torchvision_cifar10_from_the_cache(_isolated_cache, monkeypatch):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (10, 3, 32, 32), dtype=np.uint8)
    labels = [(3 * i) % 10 for i in range(10)]
    folder = _isolated_cache / "cifar-10-batches-py"
    folder.mkdir()
    for b in range(5):
        rows = images[2 * b : 2 * b + 2].reshape(2, 3 * 32 * 32)
        entry = {"batch_label": f"training batch {b + 1} of 5", "data": rows, "labels": labels[2 * b : 2 * b + 2]}
        (folder / f"data_batch_{b + 1}").write_bytes(pickle.dumps(entry))
    test_entry = {"batch_label": "testing batch 1 of 1", "data": images[:2].reshape(2, -1), "labels": labels[:2]}
    (folder / "test_batch").write_bytes(pickle.dumps(test_entry))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    # torchvision checks the md5 of the real files; ours only have to exist
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))

    source = resolve_data("cifar10")
    info = source.info()
    assert (info.channels, info.resolution, info.num_classes) == (3, 32, 10)
    dataset = source.load()
    assert dataset.images.shape == (10, 3, 32, 32)
    assert torch.equal(dataset.images, torch.from_numpy(images))
    assert dataset.labels.tolist() == labels
    assert source.load(resolution=28, channels=1).images.shape == (10, 1, 28, 28)


_CLASSES = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


@pytest.mark.parametrize("variable", ["GANZOO_OFFLINE", "HF_HUB_OFFLINE"])
@pytest.mark.parametrize("spec", sorted(_CLASSES))
def test_offline_without_cache_is_a_clear_error(_isolated_cache, monkeypatch, spec, variable):
    monkeypatch.setenv(variable, "1")
    calls = []
    monkeypatch.setattr(getattr(torchvision.datasets, _CLASSES[spec]), "download", lambda self: calls.append(self))
    with pytest.raises(GanzooError) as info:
        resolve_data(spec).load()
    message = str(info.value)
    assert repr(spec) in message
    assert "not in the cache" in message and str(_isolated_cache) in message
    assert "\n" not in message
    assert calls == []  # offline means no download attempt


def _fail_download(self):
    raise OSError("Network is unreachable")


@pytest.mark.parametrize("spec", sorted(_CLASSES))
def test_failed_download_names_the_dataset(_isolated_cache, monkeypatch, spec):
    monkeypatch.setattr(getattr(torchvision.datasets, _CLASSES[spec]), "download", _fail_download)
    with pytest.raises(GanzooError) as info:
        resolve_data(spec).load()
    message = str(info.value)
    assert f"could not download dataset {spec!r}" in message
    assert "OSError" in message and "Network is unreachable" in message
    assert str(_isolated_cache) in message


def test_failed_download_error_is_one_line(monkeypatch):
    """torchvision's MNIST reports a failed download over several lines (one per mirror); the user gets one."""

    def fail(self):
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\n"
            "Tried https://ossci-datasets.s3.amazonaws.com/mnist/, got:\n"
            "<urlopen error [Errno -2] Name or service not known>\n"
        )

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", fail)
    with pytest.raises(GanzooError) as info:
        resolve_data("mnist").load()
    message = str(info.value)
    assert "could not download dataset 'mnist'" in message
    assert "Name or service not known" in message
    assert "\n" not in message


# ------------------------------------------------------------------------------ selections after '?'


def _image_set(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


def test_embedded_digits_split_into_3000_train_and_1000_test_disjoint_and_fixed():
    train = resolve_data("mnist-4k?split=train").load()
    test = resolve_data("mnist-4k?split=test").load()
    assert (len(train), len(test)) == (3000, 1000)
    assert train.labels.bincount().tolist() == [300] * 10
    assert test.labels.bincount().tolist() == [100] * 10
    assert not _image_set(train.images) & _image_set(test.images)
    assert _image_set(train.images) | _image_set(test.images) == _image_set(resolve_data("mnist-4k").load().images)
    assert torch.equal(resolve_data("mnist-4k?split=test").load().images, test.images)  # the same every time


def test_class_selection_renumbers_labels_and_keeps_the_names():
    source = resolve_data("mnist-4k?classes=5-9")
    info = source.info()
    assert info.num_classes == 5
    assert info.extras["class_names"] == ["5", "6", "7", "8", "9"]
    dataset = source.load()
    assert len(dataset) == 2000
    assert dataset.labels.bincount().tolist() == [400] * 5
    everything = resolve_data("mnist-4k").load()
    sevens = everything.images[everything.labels == 7]
    assert torch.equal(dataset.images[dataset.labels == 2], sevens)  # class 2 of the selection is digit 7
    odd = resolve_data("mnist-4k?classes=3,1").load()
    assert torch.equal(odd.images[odd.labels == 0], everything.images[everything.labels == 3])  # order given


def test_sample_count_is_a_seeded_subset():
    first = resolve_data("mnist-4k?classes=5-9&n=100").load()
    again = resolve_data("mnist-4k?classes=5-9&n=100").load()
    other = resolve_data("mnist-4k?classes=5-9&n=100&seed=1").load()
    assert len(first) == 100 and set(first.labels.tolist()) <= set(range(5))
    assert torch.equal(first.images, again.images)
    assert not torch.equal(first.images, other.images)
    assert _image_set(first.images) <= _image_set(resolve_data("mnist-4k?classes=5-9").load().images)
    combined = resolve_data("mnist-4k?split=train&classes=0-4&n=50").load()
    assert _image_set(combined.images) <= _image_set(resolve_data("mnist-4k?split=train").load().images)


def test_selection_works_on_folders(image_folder):
    source = resolve_data(f"folder:{image_folder}?classes=1")
    assert source.info().extras["class_names"] == ["dogs"]
    dataset = source.load(resolution=16, channels=3)
    assert len(dataset) == 2 and dataset.labels.tolist() == [0, 0]
    assert len(resolve_data(f"folder:{image_folder}?n=3").load(resolution=8)) == 3


def test_torchvision_test_split(_isolated_cache, monkeypatch):
    monkeypatch.setenv("GANZOO_OFFLINE", "1")
    images, _ = _mnist_fixture(_isolated_cache, "MNIST")
    test = resolve_data("mnist?split=test").load()
    assert torch.equal(test.images, torch.from_numpy(images[:3])[:, None])
    assert len(resolve_data("mnist?split=train").load()) == 12


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ("mnist-4k?colour=red", ["colour=red", "split=NAME", "classes=", "n=COUNT"]),
        ("mnist-4k?n=", ["bad selection"]),
        ("mnist-4k?n=0", ["n='0'", ">= 1"]),
        ("mnist-4k?n=many", ["n='many'"]),
        ("mnist-4k?n=5000", ["n=5000", "only 4000"]),
        ("mnist-4k?split=validation", ["no split 'validation'", "train, test"]),
        ("mnist-4k?classes=7-12", ["[10, 11, 12]", "0-9"]),
        ("mnist-4k?classes=a-b", ["classes='a-b'", "5-9"]),
        ("mnist-4k?seed=-1", ["seed", ">= 0"]),
    ],
)
def test_bad_selections_are_usage_errors(spec, needles):
    with pytest.raises(UsageError) as info:
        resolve_data(spec).load()
    for needle in needles:
        assert needle in str(info.value)


def test_class_selection_of_unlabelled_data_says_which_specs_have_labels(tmp_path):
    Image.new("L", (8, 8), 3).save(tmp_path / "x.png")
    with pytest.raises(UsageError, match=r"has no labels.*labelled specs: mnist-4k"):
        resolve_data(f"folder:{tmp_path}?classes=0")
    with pytest.raises(UsageError, match="has no splits"):
        resolve_data(f"folder:{tmp_path}?split=test")
