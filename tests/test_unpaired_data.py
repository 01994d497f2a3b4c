"""Two-domain data for image-to-image translation: `digits-8x8-to-mnist`, `unpaired:DIR_A,DIR_B`,
`unpaired:ROOT` (the CycleGAN layout), independent draws of the two domains, flips, splits and bad inputs."""

from __future__ import annotations

import hashlib
import os
import warnings
from importlib import resources

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganzoo.data import TensorImageDataset, UnpairedDataset, resolve_data
from ganzoo.errors import UsageError


def _uci_npz() -> dict[str, np.ndarray]:
    with resources.files("ganzoo.data").joinpath("assets/optdigits-8x8.npz").open("rb") as handle:
        return dict(np.load(handle))


def test_uci_digits_ship_with_the_package_and_match_the_notice():
    data = resources.files("ganzoo.data").joinpath("assets/optdigits-8x8.npz").read_bytes()
    notice = resources.files("ganzoo.data").joinpath("assets/NOTICE.md").read_text(encoding="utf-8")
    assert hashlib.sha256(data).hexdigest() in notice
    arrays = _uci_npz()
    assert arrays["images"].shape == (1797, 8, 8) and arrays["images"].max() == 16


def test_digits_pair_info_and_batches():
    source = resolve_data("digits-8x8-to-mnist")
    info = source.info()
    assert (info.modality, info.channels, info.resolution, info.num_classes) == ("image-to-image", 1, 28, 10)
    assert info.extras["domain_sizes"] == [1797, 4000]
    dataset = source.load(resolution=32, channels=1)
    assert len(dataset) == 4000  # an epoch walks through the larger domain (MNIST)
    batch = dataset.__getitems__([0, 1, 2, 3999])
    assert set(batch) == {"image_a", "image_b", "label_a", "label_b"}
    assert batch["image_a"].shape == batch["image_b"].shape == (4, 1, 32, 32)
    for key in ("image_a", "image_b"):
        assert batch[key].min() >= -1 and batch[key].max() <= 1
    assert batch["label_a"].dtype == batch["label_b"].dtype == torch.long


def test_domain_a_is_the_uci_digits_scaled_and_upscaled():
    arrays = _uci_npz()
    dataset = resolve_data("digits-8x8-to-mnist").load(resolution=28)
    first = torch.from_numpy(arrays["images"][:1].astype(np.float32) * 255 / 16)[:, None]
    expected = F.interpolate(first, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    assert (dataset.a.images[:1].float() - expected.round()).abs().max() <= 1
    assert dataset.a.labels[:5].tolist() == arrays["labels"][:5].tolist()
    assert dataset.a.images.max() == 255  # 16 -> 255


@pytest.mark.parametrize(("split", "sizes"), [("train", (1297, 3000)), ("test", (500, 1000))])
def test_digits_pair_splits_are_class_balanced(split, sizes):
    dataset = resolve_data(f"digits-8x8-to-mnist?split={split}").load()
    assert (len(dataset.a), len(dataset.b)) == sizes
    if split == "test":
        assert torch.bincount(dataset.a.labels).tolist() == [50] * 10
        assert torch.bincount(dataset.b.labels).tolist() == [100] * 10


def _indexed(n: int, value: int = 0) -> TensorImageDataset:
    """n constant images whose labels are their indices, so a batch's labels tell which images were drawn."""
    images = torch.full((n, 1, 4, 4), value, dtype=torch.uint8)
    return TensorImageDataset(images, torch.arange(n))


def test_the_other_domain_is_drawn_independently_and_reproducibly():
    dataset = UnpairedDataset(_indexed(100), _indexed(30))
    assert len(dataset) == 100
    first = dataset.__getitems__([5, 6, 7, 8])
    assert first["label_a"].tolist() == [5, 6, 7, 8]  # the larger domain follows the sampler's indices
    again = dataset.__getitems__([5, 6, 7, 8])
    assert torch.equal(first["label_b"], again["label_b"])  # a function of the batch: resumable
    partners = {int(dataset.__getitems__([5, i])["label_b"][0]) for i in range(20, 60)}
    assert len(partners) > 10  # image 5 of A meets many images of B, not a fixed partner
    drawn = torch.cat([dataset.__getitems__(list(range(i, i + 10)))["label_b"] for i in range(0, 100, 10)])
    assert drawn.min() >= 0 and drawn.max() < 30 and len(drawn.unique()) > 20
    swapped = UnpairedDataset(_indexed(30), _indexed(100))  # B larger: B follows the indices, A is drawn
    batch = swapped.__getitems__([70, 71])
    assert batch["label_b"].tolist() == [70, 71] and batch["label_a"].max() < 30
    single = swapped[70]
    assert single["image_a"].shape == (1, 4, 4) and int(single["label_b"]) == 70


def test_flips_mirror_about_half_the_images():
    image = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    image[..., 0] = 255  # a white left column
    domain = TensorImageDataset(image.repeat(200, 1, 1, 1))
    plain = UnpairedDataset(domain, domain).__getitems__(list(range(200)))
    assert (plain["image_a"][..., 0] == 1).all()
    flipped = UnpairedDataset(domain, domain, flip=True).__getitems__(list(range(200)))
    for key in ("image_a", "image_b"):
        mirrored = (flipped[key][:, 0, :, -1] == 1).all(dim=1)
        kept = (flipped[key][:, 0, :, 0] == 1).all(dim=1)
        assert torch.equal(mirrored, ~kept)
        assert 60 < int(mirrored.sum()) < 140


def test_resolve_passes_the_flip_option():
    dataset = resolve_data("digits-8x8-to-mnist").load(resolution=28, flip=True)
    assert dataset.flip


def _save(path, size=(20, 30), mode="RGB", value=120):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 0)).save(path)


@pytest.fixture
def two_folders(tmp_path):
    for i in range(3):
        _save(tmp_path / "horses" / f"h{i}.png")
    for i in range(5):
        _save(tmp_path / "zebras" / f"z{i}.jpg", size=(50, 40), mode="L", value=200)
    return tmp_path


def test_two_folders(two_folders):
    source = resolve_data(f"unpaired:{two_folders / 'horses'},{two_folders / 'zebras'}")
    info = source.info()
    assert info.channels == 3 and info.resolution is None and info.num_classes is None
    assert info.extras["domain_sizes"] == [3, 5]
    dataset = source.load(resolution=16)
    assert (len(dataset), dataset.a.images.shape, dataset.b.images.shape) == (5, (3, 3, 16, 16), (5, 3, 16, 16))
    assert set(dataset.__getitems__([0, 1])) == {"image_a", "image_b"}  # unlabelled domains
    assert source.load().a.images.shape[-1] == 64  # no resolution from the data or the model: 64
    assert source.splits() == ()
    with pytest.raises(UsageError, match="has no splits"):
        resolve_data(f"unpaired:{two_folders / 'horses'},{two_folders / 'zebras'}?split=test")


def test_cyclegan_layout_and_its_test_split(tmp_path):
    for name, count in (("trainA", 4), ("trainB", 2), ("testA", 1), ("testB", 3)):
        for i in range(count):
            _save(tmp_path / name / f"{i}.png", mode="L")
    source = resolve_data(f"unpaired:{tmp_path}")
    assert source.splits() == ("train", "test")
    train = source.load(resolution=8)
    assert (len(train.a), len(train.b)) == (4, 2)
    test = resolve_data(f"unpaired:{tmp_path}?split=test")
    assert test.spec == f"unpaired:{tmp_path}?split=test"
    assert (len(test.load(resolution=8).a), len(test.load(resolution=8).b)) == (1, 3)


def test_test_split_of_a_layout_without_test_folders(tmp_path):
    for name in ("trainA", "trainB"):
        _save(tmp_path / name / "0.png")
    resolve_data(f"unpaired:{tmp_path}")  # fine without test folders
    with pytest.raises(UsageError, match=r"data folder not found: .*testA"):
        resolve_data(f"unpaired:{tmp_path}?split=test")


def test_missing_domain_is_one_clear_line(two_folders):
    with pytest.raises(UsageError, match=r"^data folder not found: .*nowhere \(from --data unpaired:"):
        resolve_data(f"unpaired:{two_folders / 'horses'},{two_folders / 'nowhere'}")
    with pytest.raises(UsageError, match=r"^data folder not found: .*nowhere"):
        resolve_data(f"unpaired:{two_folders / 'nowhere'}")
    with pytest.raises(UsageError, match=r"lacks the CycleGAN layout \(trainA and trainB"):
        resolve_data(f"unpaired:{two_folders}")


def test_empty_domain_is_one_clear_line(two_folders):
    (two_folders / "empty").mkdir()
    (two_folders / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(UsageError, match=r"^no images found under .*empty \(accepted: \.png"):
        resolve_data(f"unpaired:{two_folders / 'horses'},{two_folders / 'empty'}")


def test_unreadable_files_in_a_domain(two_folders):
    (two_folders / "zebras" / "bad.png").write_bytes(os.urandom(300))
    source = resolve_data(f"unpaired:{two_folders / 'horses'},{two_folders / 'zebras'}")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dataset = source.load(resolution=8)
    assert len(record) == 1 and "skipped 1 unreadable" in str(record[0].message)
    assert len(dataset.b) == 5
    junk = two_folders / "junk"
    junk.mkdir()
    (junk / "bad.png").write_bytes(os.urandom(300))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UsageError, match=r"none of the 1 image files under .*junk could be read"):
            resolve_data(f"unpaired:{two_folders / 'horses'},{junk}").load(resolution=8)


@pytest.mark.parametrize("spec", ["unpaired:a,b,c", "unpaired:a,", "unpaired:,b"])
def test_malformed_folder_lists(spec):
    with pytest.raises(UsageError, match=r"must name two folders, unpaired:DIR_A,DIR_B"):
        resolve_data(spec)


def test_unpaired_needs_a_path_and_rejects_subsets():
    with pytest.raises(UsageError, match="needs a path after 'unpaired:'"):
        resolve_data("unpaired:")
    with pytest.raises(UsageError, match="not supported for 'digits-8x8-to-mnist'"):
        resolve_data("digits-8x8-to-mnist?n=10").load()
