"""`ganzoo enhance` (ganzoo/enhance.py): tiles cover the image with the overlap asked for, the blend of overlapping
tiles is seamless (a per-pixel model gives exactly its whole-image result), the bands of tiles cover the output
once, top to bottom, and a written file is exactly the assembled bands, the output size is the input's times the
scale, inpainting keeps known pixels bit-exact (mask files or transparent pixels), names are kept and inputs never
overwritten, and bad input is a one-line error with exit code 2."""

from __future__ import annotations

import itertools
import types

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from test_paired_kit import QUIET, ToyPaired

import ganzoo
from ganzoo.cli import cli
from ganzoo.enhance import blend_window, enhance, enhance_image, output_bands, tile_starts


@pytest.mark.parametrize(("length", "tile", "overlap"), [(100, 16, 4), (16, 16, 4), (17, 16, 0), (1000, 64, 16)])
def test_tiles_cover_the_length_with_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile == max(length, tile)
    assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))


def test_the_blend_window_is_positive_and_flat_inside():
    window = blend_window(16, 4)
    assert window.min() > 0 and window[4:12, 4:12].eq(1).all() and torch.equal(window, window.T)


class _PointwiseModel:
    """A stand-in model whose enhancement is per pixel (x2 nearest up-sampling of tanh(2x)): tiling must not show."""

    def __init__(self, scale: int, resolution: int) -> None:
        self.data_info = types.SimpleNamespace(extras={"scale": scale})
        self.config = types.SimpleNamespace(resolution=resolution, channels=3)
        self.scale = scale

    def enhance(self, source, mask=None, use_ema=True):
        return torch.nn.functional.interpolate(torch.tanh(2 * source), scale_factor=self.scale, mode="nearest")


@pytest.mark.parametrize(("scale", "size"), [(1, (37, 53)), (2, (50, 41)), (4, (9, 70))])
def test_overlapping_tiles_blend_without_seams(scale, size):
    image = torch.rand(3, *size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    model = _PointwiseModel(scale, 16 * scale)
    tiled = enhance_image(model, image, batch_size=5)
    whole = model.enhance(image[None])[0].add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert tiled.shape == (size[0] * scale, size[1] * scale, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1


@pytest.mark.parametrize(("scale", "size"), [(1, (45, 20)), (2, (70, 33)), (4, (9, 40))])
def test_the_bands_cover_the_output_once_from_the_top_down(scale, size):
    model = _PointwiseModel(scale, 16 * scale)
    bands = list(output_bands(model, torch.zeros(3, *size)))
    tops = [top for top, _ in bands] + [size[0] * scale]
    assert tops[0] == 0 and all(top + len(band) == tops[i + 1] for i, (top, band) in enumerate(bands))
    assert all(band.shape[1:] == (size[1] * scale, 3) and band.dtype == np.uint8 for _, band in bands)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained toy models: x2 super-resolution and inpainting on the digits."""
    root = tmp_path_factory.mktemp("enhance-runs")
    ganzoo.register(ToyPaired(), replace=True)
    for task in ("sr2x", "inpaint"):
        ganzoo.Trainer("toy-paired", train=QUIET, data=f"mnist-4k?n=64&task={task}", out=root / task).fit()
    yield root
    ganzoo.unregister("toy-paired")


def _grey(path, size=(45, 30), seed=0):
    array = np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return array


def test_super_resolution_of_a_directory_keeps_names_and_enlarges(runs, tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    _grey(tmp_path / "in" / "a.png")
    _grey(tmp_path / "in" / "sub" / "b.png", size=(100, 7))
    result = CliRunner().invoke(
        cli, ["enhance", str(runs / "sr2x"), "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "a.png").size == (90, 60)
    assert Image.open(tmp_path / "out" / "sub" / "b.png").size == (200, 14)


@pytest.mark.parametrize("size", [(23, 150), (9, 100)])
def test_a_written_file_is_the_tiled_result_band_by_band(runs, tmp_path, size):
    """The file `enhance` writes band by band is exactly `enhance_image`'s array: every band in its place, none
    missing or shifted, the padding of an image narrower than a tile cut off."""
    model = ganzoo.load_pretrained(runs / "sr2x")
    array = _grey(tmp_path / "tall.png", size=size)
    (written,) = enhance(model, tmp_path / "tall.png", tmp_path / "out")
    expected = enhance_image(model, torch.from_numpy(array.astype(np.float32) / 127.5 - 1)[None])
    assert np.array_equal(np.asarray(Image.open(written)), expected[:, :, 0])


def test_inpainting_keeps_known_pixels_exactly_from_a_mask_or_transparency(runs, tmp_path):
    known = _grey(tmp_path / "photo.png")
    holes = np.zeros_like(known)
    holes[5:20, 10:30] = 255
    Image.fromarray(holes).save(tmp_path / "mask.png")
    (written,) = enhance(str(runs / "inpaint"), tmp_path / "photo.png", tmp_path / "out", mask=tmp_path / "mask.png")
    filled = np.asarray(Image.open(written))
    assert filled.shape == known.shape and np.array_equal(filled[holes == 0], known[holes == 0])
    rgba = np.stack([known, known, known, np.where(holes > 0, 0, 255).astype(np.uint8)], axis=-1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "transparent.png")
    (written,) = enhance(str(runs / "inpaint"), tmp_path / "transparent.png", tmp_path / "out2")
    assert np.array_equal(np.asarray(Image.open(written))[holes == 0], known[holes == 0])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--input", "missing.png"], "input not found: missing.png"),
        (["--input", "photo.png", "--mask", "small.png"], "the mask small.png is 10x10 but photo.png is 45x30"),
        (["--input", "photo.png"], "photo.png has no holes to fill"),
        (["--input", ".", "--out", "."], "is the input directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    _grey(tmp_path / "photo.png")
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(tmp_path / "small.png")
    command = ["enhance", str(runs / "inpaint"), *args] + ([] if "--out" in args else ["--out", "out"])
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.output


def test_models_that_are_not_paired_and_masks_without_inpainting_are_refused(runs, tmp_path):
    model = ganzoo.create_model("dcgan", g_width=4, d_width=4, latent_dim=4)
    _grey(tmp_path / "photo.png")
    with pytest.raises(ganzoo.UsageError, match=r"dcgan is not a paired image-to-image model \(image\)"):
        enhance(model, tmp_path / "photo.png", tmp_path / "out")
    with pytest.raises(ganzoo.UsageError, match="--mask is for inpainting models; this toy-paired was trained on sr2x"):
        enhance(str(runs / "sr2x"), tmp_path / "photo.png", tmp_path / "o", mask=tmp_path / "photo.png")
