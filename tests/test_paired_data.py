"""Paired image-to-image data: `photos`, `SPEC?task=...` degradations, crops, `paired:ROOT`, seeding and errors."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganzoo.data import PairedDataset, resolve_data
from ganzoo.data.paired import PHOTOS, PHOTOS_TEST, PHOTOS_TRAIN, photo
from ganzoo.engine.data import BatchStream
from ganzoo.errors import UsageError

TASKS = ("sr2x", "sr4x", "inpaint", "denoise", "colorize")


def _batch(spec: str, indices, resolution: int = 32, **options) -> dict[str, torch.Tensor]:
    return resolve_data(spec).load(resolution=resolution, **options).__getitems__(list(indices))


# --------------------------------------------------------------------------------------------- photos


def test_photos_ship_with_the_package_and_the_notice_names_each():
    notice = resources.files("ganzoo.data").joinpath("assets/NOTICE.md").read_text(encoding="utf-8")
    for name in PHOTOS:
        data = resources.files("ganzoo.data").joinpath(f"assets/photos/{name}").read_bytes()
        assert f"{name} `{hashlib.sha256(data).hexdigest()}`" in notice
    assert "scikit-image 0.26.0" in notice and "CC0Textures" in notice
    assert tuple(photo("chelsea.png").shape) == (3, 300, 451)  # (C, H, W) at its own size
    assert tuple(photo("camera.png", 1).shape) == (1, 512, 512)
    assert torch.equal(photo("camera.png")[0], photo("camera.png")[2])  # grey replicated into RGB


def test_photos_are_split_by_image():
    assert set(PHOTOS_TEST) == {"chelsea.png", "gravel.png"} and len(PHOTOS_TRAIN) == 7
    assert resolve_data("photos").info().extras["images"] == list(PHOTOS_TRAIN)  # held out by default
    assert resolve_data("photos?split=train").info().extras["images"] == list(PHOTOS_TRAIN)
    assert resolve_data("photos?split=test").info().extras["images"] == list(PHOTOS_TEST)
    assert resolve_data("photos?split=all").info().extras["images"] == list(PHOTOS)


def _window_codes(image: torch.Tensor, size: int, kernel: torch.Tensor) -> np.ndarray:
    """An exact integer code of every size x size window of an image (a dot product with integer weights)."""
    return F.conv2d(image[None].double(), kernel[None]).flatten().numpy()


def test_no_test_image_pixels_appear_in_train_crops():
    size = 8  # integer weights up to 2**30: every code is exact in float64, and chance collisions negligible
    kernel = torch.randint(1, 2**30, (3, size, size), generator=torch.Generator().manual_seed(0)).double()
    test_codes = np.concatenate([_window_codes(photo(name), size, kernel) for name in PHOTOS_TEST])

    def found(crops: torch.Tensor) -> np.ndarray:
        pixels = ((crops + 1) * 127.5).round().double()
        codes = (pixels * kernel).sum(dim=(1, 2, 3)).numpy()
        return np.isin(codes, test_codes)

    train = resolve_data("photos").load(resolution=size)
    assert found(train.__getitems__(list(range(0, len(train), 3)))["image"]).sum() == 0
    test = resolve_data("photos?split=test").load(resolution=size)
    assert found(test.__getitems__(list(range(0, len(test), 7)))["image"]).all()  # the check does find them


def test_photos_epochs_and_test_grid():
    train = resolve_data("photos?task=sr4x").load(resolution=64)
    assert train.crops_per_image == 147 and len(train) == 7 * 147  # at least 1024 crops an epoch
    test = resolve_data("photos?split=test&task=sr4x").load(resolution=64)
    assert len(test) == 5 * 8 + 8 * 8  # chelsea 451x300 and gravel 512x512 in a grid of 64x64 crops
    first = test.__getitems__([0])["target"][0]
    assert torch.equal(first, photo("chelsea.png")[:, :64, :64].float() / 127.5 - 1)  # the grid's first crop


def test_photos_without_a_task_are_image_crops_rgb_or_grey():
    source = resolve_data("photos")
    assert source.info().modality == "image" and "paired" not in source.info().extras
    batch = _batch("photos", range(8), resolution=24)
    assert set(batch) == {"image"} and batch["image"].shape == (8, 3, 24, 24)
    grey = _batch("photos", range(8), resolution=24, channels=1)["image"]
    assert grey.shape == (8, 1, 24, 24)
    zoomed = _batch("photos?crop=96", range(4), resolution=24)["image"]  # 96x96 patches, resized to 24
    assert zoomed.shape == (4, 3, 24, 24)


# --------------------------------------------------------------------------------------------- info


@pytest.mark.parametrize(("task", "scale", "source_channels"), [("sr2x", 2, 3), ("sr4x", 4, 3), ("colorize", 1, 1)])
def test_info_reports_the_pairing(task, scale, source_channels):
    info = resolve_data(f"photos?task={task}").info()
    assert (info.modality, info.channels) == ("image-to-image", 3)
    assert info.extras["paired"] is True and info.extras["task"] == task
    assert (info.extras["scale"], info.extras["source_channels"]) == (scale, source_channels)


def test_info_of_inpaint_denoise_and_unpaired():
    inpaint = resolve_data("photos?task=inpaint").info().extras
    assert (inpaint["task"], inpaint["scale"], inpaint["source_channels"], inpaint["mask"]) == ("inpaint", 1, 3, True)
    denoise = resolve_data("mnist-4k?task=denoise&sigma=10").info()
    assert (denoise.channels, denoise.resolution, denoise.num_classes, denoise.num_samples) == (1, 28, 10, 4000)
    assert denoise.extras["sigma"] == 10.0 and denoise.extras["source_channels"] == 1
    assert "paired" not in resolve_data("digits-8x8-to-mnist").info().extras
    assert "paired" not in resolve_data("mnist-4k").info().extras


# --------------------------------------------------------------------------------------------- tasks


@pytest.mark.parametrize("task", TASKS)
def test_each_task_gives_sources_and_targets_of_the_right_shape(task):
    batch = _batch(f"photos?task={task}", range(6), resolution=32)
    side = {"sr2x": 16, "sr4x": 8}.get(task, 32)
    assert batch["target"].shape == (6, 3, 32, 32)
    assert batch["source"].shape == (6, 1 if task == "colorize" else 3, side, side)
    assert set(batch) == ({"source", "target", "mask"} if task == "inpaint" else {"source", "target"})
    for value in batch.values():
        assert value.dtype == torch.float32 and value.min() >= -1 and value.max() <= 1


def test_labelled_data_keeps_its_labels():
    dataset = resolve_data("mnist-4k?task=sr4x").load(resolution=28)
    batch = dataset.__getitems__([0, 1, 3999])
    assert batch["source"].shape == (3, 1, 7, 7) and batch["target"].shape == (3, 1, 28, 28)
    assert batch["label"].dtype == torch.long
    assert batch["label"].tolist() == resolve_data("mnist-4k").load().labels[[0, 1, 3999]].tolist()
    cropped = resolve_data("mnist-4k?split=test&task=denoise&crop=16").load(resolution=16)
    assert len(cropped) == 1000 * 4  # a 2x2 grid of 16x16 crops of each 28x28 test digit
    assert cropped.__getitems__([0, 1, 2, 3])["label"].unique().numel() == 1  # four crops of one digit


def test_sr_source_is_bicubic_antialiased_downsampling_of_the_target():
    for task, scale in (("sr2x", 2), ("sr4x", 4)):
        batch = _batch(f"photos?task={task}", range(4), resolution=32)
        expected = F.interpolate(batch["target"], scale_factor=1 / scale, mode="bicubic", antialias=True)
        assert torch.allclose(batch["source"], expected.clamp(-1, 1), atol=1e-6)


def test_colorize_source_is_the_luma_of_the_target():
    batch = _batch("photos?task=colorize", range(8), resolution=32)
    r, g, b = batch["target"].unbind(1)
    assert torch.allclose(batch["source"][:, 0], 0.299 * r + 0.587 * g + 0.114 * b, atol=1e-6)
    with pytest.raises(UsageError, match=r"^task=colorize needs colour images, but 'mnist-4k' is grey"):
        resolve_data("mnist-4k?task=colorize")
    with pytest.raises(UsageError, match=r"colorize needs 3-channel \(RGB\) targets, got channels=1"):
        resolve_data("photos?task=colorize").load(resolution=16, channels=1)


def test_inpaint_masks_cut_holes_and_leave_the_target_untouched():
    batch = _batch("photos?task=inpaint", range(32), resolution=32)
    mask, source, target = batch["mask"], batch["source"], batch["target"]
    assert mask.shape == (32, 1, 32, 32) and set(mask.unique().tolist()) == {0.0, 1.0}
    holes = mask.mean(dim=(1, 2, 3))
    assert (holes > 0).all() and (holes < 0.75).all()  # every image has holes, none is all hole
    missing = mask.bool().expand_as(source)
    assert (source[missing] == 0).all()  # exactly mid-grey in the holes
    assert torch.equal(source[~missing], target[~missing])
    plain = _batch("photos", range(32), resolution=32)["image"]  # the same crops without a task
    assert torch.equal(target, plain)


def _grey_folder(tmp_path, value=128, count=4, size=(40, 30)):
    for i in range(count):
        Image.new("L", size, value).save(tmp_path / f"{i}.png")
    return tmp_path


@pytest.mark.parametrize("sigma", [25, 10])
def test_denoise_adds_gaussian_noise_of_sigma(tmp_path, sigma):
    folder = _grey_folder(tmp_path)
    spec = f"folder:{folder}?task=denoise" + ("" if sigma == 25 else f"&sigma={sigma}")
    batch = _batch(spec, range(4), resolution=32)
    noise = (batch["source"] - batch["target"]) * 127.5  # mid-grey: no clipping to speak of
    assert abs(float(noise.std()) - sigma) < 0.03 * sigma and abs(float(noise.mean())) < 0.05 * sigma
    assert float(batch["target"].std()) == 0  # the target is the clean image


def test_crops_of_a_folder_keep_its_labels(tmp_path):
    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("RGB", (60, 40), (10, 200, 30)).save(tmp_path / name / f"{i}.jpg")
    dataset = resolve_data(f"folder:{tmp_path}?task=sr2x&crop=24").load(resolution=16)
    assert len(dataset) == 4 * 256  # 1024 crops an epoch
    batch = dataset.__getitems__(list(range(8)))
    assert batch["target"].shape == (8, 3, 16, 16) and batch["source"].shape == (8, 3, 8, 8)
    assert sorted(batch["label"].tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(UsageError, match=r"^crop 48x48 is larger than cats/0.jpg \(60x40\)"):
        resolve_data(f"folder:{tmp_path}?task=sr2x&crop=48").load(resolution=16)


# --------------------------------------------------------------------------------------------- seeding


@pytest.mark.parametrize("task", ["inpaint", "denoise"])
def test_same_batch_same_pairs_other_batch_other_degradations(task):
    dataset = resolve_data(f"photos?task={task}").load(resolution=16)
    first, again = dataset.__getitems__([0, 7, 14]), dataset.__getitems__([0, 7, 14])
    for key in first:
        assert torch.equal(first[key], again[key])
    fresh = resolve_data(f"photos?task={task}").load(resolution=16).__getitems__([0, 7, 14])  # another load
    assert torch.equal(first["source"], fresh["source"])
    other = dataset.__getitems__([0, 7, 15])  # sample 0 in another batch: another crop and degradation
    assert not torch.equal(first["source"][0], other["source"][0])
    reseeded = resolve_data(f"photos?task={task}&seed=1").load(resolution=16).__getitems__([0, 7, 14])
    assert not torch.equal(first["source"], reseeded["source"])


def test_test_pairs_depend_on_the_index_alone():
    dataset = resolve_data("photos?split=test&task=inpaint").load(resolution=16)
    alone = dataset.__getitems__([5])
    among = dataset.__getitems__([9, 5, 3])
    for key in alone:
        assert torch.equal(alone[key][0], among[key][1])
    assert not torch.equal(among["mask"][0], among["mask"][1])


def test_global_rng_untouched():
    state = torch.get_rng_state()
    for spec in ("photos?task=inpaint", "photos?task=denoise", "photos?split=test&task=denoise", "photos"):
        _batch(spec, range(4), resolution=16, flip=True)
    assert torch.equal(state, torch.get_rng_state())


def test_resumed_stream_sees_the_same_batches():
    dataset = resolve_data("mnist-4k?n=64&task=inpaint").load(resolution=16)
    stream = BatchStream(dataset, global_batch=16, seed=3)
    batches = [stream.next() for _ in range(7)]  # crosses into the second epoch (4 batches each)
    resumed = BatchStream(resolve_data("mnist-4k?n=64&task=inpaint").load(resolution=16), global_batch=16, seed=3)
    resumed.seek(1, 1)
    for expected in batches[5:]:
        got = resumed.next()
        for key in expected:
            assert torch.equal(expected[key], got[key])
    assert not torch.equal(batches[0]["mask"], batches[4]["mask"])


# --------------------------------------------------------------------------------------------- paired:ROOT


def _pattern(width: int, height: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def side_by_side(tmp_path):
    """pix2pix layout: each file is A | B with B = 255 - A, so the target is minus the source in [-1, 1]."""
    for split, count in (("train", 3), ("test", 2)):
        (tmp_path / split).mkdir()
        for i in range(count):
            a = _pattern(16, 16, i + (10 if split == "test" else 0))
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(tmp_path / split / f"{i}.png")
    return tmp_path


def test_side_by_side_pairs(side_by_side):
    source = resolve_data(f"paired:{side_by_side}")
    info = source.info()
    assert (info.modality, info.channels, info.num_samples) == ("image-to-image", 3, 3)
    assert info.extras["paired"] and info.extras["task"] == "paired" and info.extras["layout"] == "side-by-side"
    assert (info.extras["scale"], info.extras["source_channels"], info.extras["direction"]) == (1, 3, "a2b")
    batch = source.load(resolution=16).__getitems__([0, 1, 2])
    assert set(batch) == {"source", "target"} and batch["source"].shape == batch["target"].shape == (3, 3, 16, 16)
    left = torch.from_numpy(_pattern(16, 16, 0)).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(batch["source"][0], left) and torch.allclose(batch["target"], -batch["source"], atol=1e-6)
    flipped = resolve_data(f"paired:{side_by_side}?direction=b2a").load(resolution=16).__getitems__([0])
    assert torch.allclose(flipped["source"][0], -left, atol=1e-6) and torch.equal(flipped["target"][0], left)
    test = resolve_data(f"paired:{side_by_side}?split=test").load(resolution=16)
    assert len(test) == 2 and test.evaluation


def test_side_by_side_crops_and_flips_keep_pairs_aligned(tmp_path):
    (tmp_path / "train").mkdir()
    a = _pattern(40, 30, 1)
    Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(tmp_path / "train" / "0.png")
    dataset = resolve_data(f"paired:{tmp_path}?crop=16").load(resolution=16, flip=True)
    assert len(dataset) == 1024
    batch = dataset.__getitems__(list(range(64)))
    assert torch.allclose(batch["target"], -batch["source"], atol=1e-6)  # the same window and flip on both sides
    assert len({tuple(x.flatten()[:8].tolist()) for x in batch["source"]}) > 50  # random windows


def _two_folders(root, names_a, names_b, split="train"):
    for folder, names, offset in ((f"{split}A", names_a, 0), (f"{split}B", names_b, 100)):
        (root / folder).mkdir()
        for i, name in enumerate(names):
            Image.fromarray(_pattern(12, 12, offset + i)).save(root / folder / name)


def test_two_folders_matched_by_name(tmp_path):
    _two_folders(tmp_path, ["x.png", "y.png"], ["y.jpg", "x.png"])  # names match, suffixes need not
    source = resolve_data(f"paired:{tmp_path}")
    assert source.info().extras["layout"] == "folders" and source.info().num_samples == 2
    batch = source.load(resolution=12).__getitems__([0, 1])
    x_a = torch.from_numpy(_pattern(12, 12, 0)).permute(2, 0, 1).float() / 127.5 - 1
    x_b = torch.from_numpy(_pattern(12, 12, 101)).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(batch["source"][0], x_a) and torch.equal(batch["target"][0], x_b)  # x.png with x.png
    b2a = resolve_data(f"paired:{tmp_path}?direction=b2a").load(resolution=12).__getitems__([0])
    assert torch.equal(b2a["source"][0], x_b) and torch.equal(b2a["target"][0], x_a)


def test_a_missing_partner_names_the_file(tmp_path):
    _two_folders(tmp_path, ["x.png", "lonely.png"], ["x.png"])
    with pytest.raises(UsageError, match=r"^\S*trainA/lonely.png has no partner in \S*trainB "):
        resolve_data(f"paired:{tmp_path}")
    other = tmp_path / "other"
    other.mkdir()
    _two_folders(other, ["x.png"], ["x.png", "stray.jpg"], split="test")
    _two_folders(other, ["x.png"], ["x.png"])
    resolve_data(f"paired:{other}")
    with pytest.raises(UsageError, match=r"testB/stray.jpg has no partner in \S*testA"):
        resolve_data(f"paired:{other}?split=test")


def test_paired_root_layout_errors(tmp_path):
    with pytest.raises(UsageError, match=r"^data folder not found: .*nowhere"):
        resolve_data(f"paired:{tmp_path / 'nowhere'}")
    with pytest.raises(UsageError, match=r"lacks the pix2pix layout: train/ with source\|target"):
        resolve_data(f"paired:{tmp_path}")
    (tmp_path / "trainA").mkdir()
    with pytest.raises(UsageError, match=r"data folder not found: .*trainB \(paired:ROOT needs both"):
        resolve_data(f"paired:{tmp_path}")


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("surnames?task=sr4x", "task=sr4x needs image data, but 'surnames' is text data"),
        ("digits-8x8-to-mnist?task=denoise", "is two-domain (unpaired) data"),
        ("photos?task=blur", "unknown task='blur' in 'photos?task=blur'; accepted: sr2x, sr4x, inpaint, denoise"),
        ("photos?task=sr4x&sigma=5", "sigma= in 'photos?task=sr4x&sigma=5' is the noise of task=denoise"),
        ("photos?task=denoise&sigma=300", "sigma='300' in 'photos?task=denoise&sigma=300' must be a number in 0..255"),
        ("photos?task=sr2x&crop=0", "crop='0' in 'photos?task=sr2x&crop=0' must be an integer >= 1"),
        ("photos?task=sr2x&direction=b2a", "direction= in 'photos?task=sr2x&direction=b2a' is for paired:ROOT"),
        ("photos?n=3&task=sr2x", "'classes=' and 'n=' are not supported for 'photos'"),
        ("mnist-4k?task=inpaint&crop=many", "crop='many'"),
        ("mnist-4k?colour=red", "task=sr2x|sr4x|inpaint|denoise|colorize, crop=N, sigma=S, direction=a2b|b2a"),
    ],
)
def test_bad_specs_are_one_line_usage_errors(spec, message):
    with pytest.raises(UsageError) as info:
        resolve_data(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("spec", "resolution", "message"),
    [
        ("photos?task=sr4x", 30, "task=sr4x needs a resolution divisible by 4, got 30"),
        ("photos?crop=600", 64, "crop 600x600 is larger than astronaut.png (512x512) in 'photos?crop=600'"),
        ("photos?split=test&task=sr2x", 320, "crop (the model's resolution) 320x320 is larger than chelsea.png"),
        ("mnist-4k?task=sr2x&crop=32", 32, "crop 32x32 is larger than its 28x28 images in 'mnist-4k?task=sr2x"),
    ],
)
def test_bad_loads_are_one_line_usage_errors(spec, resolution, message):
    with pytest.raises(UsageError) as info:
        resolve_data(spec).load(resolution=resolution)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_task_on_paired_data_and_direction_values(side_by_side):
    with pytest.raises(UsageError, match=r"^task=sr4x makes pairs from plain images, but .* is already paired"):
        resolve_data(f"paired:{side_by_side}?task=sr4x")
    with pytest.raises(UsageError, match=r"bad direction='sideways' .*; accepted: a2b, b2a"):
        resolve_data(f"paired:{side_by_side}?direction=sideways")


def test_the_dataset_checks_its_inputs():
    with pytest.raises(ValueError, match="sources are given exactly"):
        PairedDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), resolution=4, task="paired")
    with pytest.raises(ValueError, match="uncropped targets must be 8x8"):
        PairedDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), resolution=8, task="denoise")
    dataset = PairedDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), resolution=4, task="denoise")
    assert dataset[1]["source"].shape == (1, 4, 4)
    with pytest.raises(IndexError):
        dataset.__getitems__([2])


def test_flips_mirror_about_half_the_pairs_but_never_at_test_time():
    images = torch.zeros(200, 1, 4, 4, dtype=torch.uint8)
    images[..., 0] = 255  # a white left column
    pairs = PairedDataset(images, sources=images.clone(), task="paired", resolution=4, flip=True)
    batch = pairs.__getitems__(list(range(200)))
    mirrored = (batch["target"][:, 0, :, -1] == 1).all(dim=1)
    assert 60 < int(mirrored.sum()) < 140 and torch.equal(batch["source"], batch["target"])
    test = PairedDataset(images, sources=images, task="paired", resolution=4, flip=True, evaluation=True)
    assert (test.__getitems__(list(range(200)))["target"][..., 0] == 1).all()


def test_rotations_turn_pairs_by_every_multiple_of_90_degrees_but_never_at_test_time():
    images = torch.zeros(400, 1, 4, 4, dtype=torch.uint8)
    images[:, :, 0, 0] = 255  # one white corner pixel: where it lands tells the turn
    pairs = PairedDataset(images, sources=images.clone(), task="paired", resolution=4, rotate=True)
    batch = pairs.__getitems__(list(range(400)))
    assert torch.equal(batch["source"], batch["target"])  # source and target turn together
    corners = [(0, 0), (0, 3), (3, 0), (3, 3)]
    counts = [int((batch["target"][:, 0, r, c] == 1).sum()) for r, c in corners]
    assert sum(counts) == 400 and all(60 < n < 140 for n in counts)  # each quarter turn about a quarter of the time
    # sr pairs: the source is made from the turned target, so it is the turned source
    sr = resolve_data("mnist-4k?task=sr2x&n=32")
    plain, turned = sr.load(resolution=28), sr.load(resolution=28, rotate=True)
    a, b = plain.__getitems__(list(range(32))), turned.__getitems__(list(range(32)))
    pairs = zip(a["source"], a["target"], b["source"], b["target"], strict=True)
    for source, target, source_turned, target_turned in pairs:
        k = next(k for k in range(4) if torch.equal(target.rot90(k, (-2, -1)), target_turned))
        torch.testing.assert_close(source.rot90(k, (-2, -1)), source_turned, atol=1e-5, rtol=0)
    test = PairedDataset(images, sources=images, task="paired", resolution=4, rotate=True, evaluation=True)
    assert (test.__getitems__(list(range(400)))["target"][:, 0, 0, 0] == 1).all()
