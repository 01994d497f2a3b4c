"""Apply a paired image-to-image model (super-resolution, denoising, colorization, inpainting, pix2pix) to image
files of any size: `ganzoo enhance` and `ganzoo.enhance`.

An image is cut into overlapping tiles of the model's input size (its resolution over its scale), each tile is
enhanced, and the outputs are blended: each output pixel is the average of the tiles that cover it, weighted by a
window that falls linearly to the tile's edges over the overlap, so no seam shows. Images smaller than a tile are
reflect-padded to one and cropped back. The output is the input's size times the scale; the tiles are processed
one row of tiles at a time (`output_bands`), so the working memory is a band of the output, not the whole output
in float32: `enhance` pastes each finished uint8 band into the output image, so a file's output is held once
(enhancing a 4000 x 3000 photo x4 holds the 16000 x 12000 output image, 768 MB as PIL keeps RGB in 4 bytes a
pixel, the 4000 x 3000 input in float32, 144 MB, and one band: a peak of 1.6 GB with torch's own 0.7 GB, in
benchmarks/RESULTS.md, "enhance: peak memory"). For inpainting, the holes come from `mask` (a mask image of the
same size, or a directory of them under the inputs' names; nonzero pixels are holes), or else from the image's
transparent pixels; known pixels are kept exactly. Outputs are written under the inputs' file names (sub-folders
kept) in the format their suffix names; an input is never overwritten.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ganzoo.engine.checkpoint import atomic_path
from ganzoo.errors import UsageError
from ganzoo.translate import input_files

_MODES = {1: "L", 3: "RGB"}


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile offsets covering [0, length) with tiles of `tile` overlapping by at least `overlap` (length >= tile)."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def blend_window(size: int, ramp: int) -> torch.Tensor:
    """A (size, size) weight: 1 inside, falling linearly towards each edge over `ramp` pixels, never 0."""
    position = torch.arange(size, dtype=torch.float32)
    edge = torch.minimum(position + 0.5, size - position - 0.5)
    line = (edge / max(ramp, 1)).clamp(max=1.0)
    return line[:, None] * line[None, :]


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def output_bands(
    model: Any,
    image: torch.Tensor,
    mask: torch.Tensor | None = None,
    overlap: int | None = None,
    batch_size: int = 16,
    use_ema: bool = True,
) -> Iterator[tuple[int, np.ndarray]]:
    """One image (C, H, W) in [-1, 1] (and its mask (1, H, W), 1 = missing) through `model` by overlapping tiles,
    one row of tiles at a time: (first output row, uint8 band (rows, W * scale, C_out)) pairs that cover the
    output, H * scale rows, from the top down."""
    extras = model.data_info.extras
    scale = int(extras.get("scale") or 1)
    tile = model.config.resolution // scale
    overlap = tile // 4 if overlap is None else overlap
    if not 0 <= overlap < tile:
        raise UsageError(f"the tiles' overlap must be in 0..{tile - 1} pixels (the model's input is {tile} px)")
    height, width = image.shape[1:]
    pad_h, pad_w = max(0, tile - height), max(0, tile - width)
    if pad_h or pad_w:  # smaller than a tile: reflected (replicated where reflection cannot reach) to one
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        image = torch.nn.functional.pad(image[None], (0, pad_w, 0, pad_h), mode=mode)[0]
        if mask is not None:
            mask = torch.nn.functional.pad(mask[None], (0, pad_w, 0, pad_h), mode=mode)[0]
    full_h, full_w = image.shape[1:]
    ys, xs = tile_starts(full_h, tile, overlap), tile_starts(full_w, tile, overlap)
    size = tile * scale
    window = blend_window(size, overlap * scale)
    out_channels = model.config.channels
    carry: tuple[torch.Tensor, torch.Tensor] | None = None
    for row, y in enumerate(ys):
        numerator = torch.zeros(out_channels, size, full_w * scale)
        denominator = torch.zeros(1, size, full_w * scale)
        if carry is not None:  # the previous band's rows this band shares
            shared = ys[row - 1] * scale + size - y * scale
            numerator[:, :shared], denominator[:, :shared] = carry[0][:, -shared:], carry[1][:, -shared:]
        for chunk in _batches(xs, batch_size):
            sources = torch.stack([image[:, y : y + tile, x : x + tile] for x in chunk])
            masks = None if mask is None else torch.stack([mask[:, y : y + tile, x : x + tile] for x in chunk])
            outputs = model.enhance(sources, masks, use_ema=use_ema)
            for x, output in zip(chunk, outputs, strict=True):
                numerator[:, :, x * scale : x * scale + size] += output * window
                denominator[:, :, x * scale : x * scale + size] += window
        done = (ys[row + 1] - y) * scale if row + 1 < len(ys) else size
        rows = min(done, (height - y) * scale)  # without the padding of an image smaller than a tile
        final = (numerator[:, :rows, : width * scale] / denominator[:, :rows, : width * scale]).clamp(-1, 1)
        yield y * scale, final.add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        carry = (numerator[:, done:], denominator[:, done:])


def enhance_image(
    model: Any,
    image: torch.Tensor,
    mask: torch.Tensor | None = None,
    overlap: int | None = None,
    batch_size: int = 16,
    use_ema: bool = True,
) -> np.ndarray:
    """One image (C, H, W) in [-1, 1] (and its mask (1, H, W), 1 = missing) through `model` by overlapping tiles:
    the output as a uint8 (H * scale, W * scale, C_out) array (the bands of `output_bands`, assembled)."""
    scale = int(model.data_info.extras.get("scale") or 1)
    height, width = image.shape[1:]
    result = np.empty((height * scale, width * scale, model.config.channels), dtype=np.uint8)
    for top, band in output_bands(model, image, mask, overlap, batch_size, use_ema):
        result[top : top + len(band)] = band
    return result


def _read(path: Path, mode: str, keep_alpha: bool) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The image in [-1, 1] (C, H, W) and, with `keep_alpha`, its transparent pixels as a mask (1, H, W)."""
    try:
        with Image.open(path) as opened:
            opened.load()
            alpha = None
            if keep_alpha and ("A" in opened.getbands() or "transparency" in opened.info):
                alpha = np.asarray(opened.convert("RGBA"))[:, :, 3]
            array = np.asarray(opened.convert(mode))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    array = array[:, :, None] if array.ndim == 2 else array
    tensor = torch.from_numpy(array).permute(2, 0, 1).float().div_(127.5).sub_(1.0)  # one float32 copy
    holes = None if alpha is None else torch.from_numpy((alpha < 128).astype(np.float32))[None]
    return tensor, holes


def _read_mask(path: Path, size: tuple[int, int], image_path: Path) -> torch.Tensor:
    try:
        with Image.open(path) as opened:
            array = np.asarray(opened.convert("L"))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        raise UsageError(f"cannot read the mask {path}") from None
    if array.shape != size:
        raise UsageError(
            f"the mask {path} is {array.shape[1]}x{array.shape[0]} but {image_path} is {size[1]}x{size[0]}; "
            "a mask must have its image's size"
        )
    return torch.from_numpy((array > 127).astype(np.float32))[None]


def enhance(
    model: Any,
    inputs: str | Path,
    out_dir: str | Path = "enhanced",
    *,
    mask: str | Path | None = None,
    overlap: int | None = None,
    batch_size: int = 16,
    use_ema: bool = True,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> list[Path]:
    """Enhance the image file `inputs` (or every image under the directory `inputs`) and write the results.

    Args:
        model: a `GANModel` of a paired image-to-image plugin, or anything `ganzoo.load_pretrained` takes.
        inputs: an image file or a directory of images (searched recursively; other files are ignored).
        out_dir: where the outputs go, under the inputs' names (and sub-folders); it may not overwrite an input.
        mask: inpainting: a mask image (for a single input) or a directory of masks under the inputs' relative
            names; nonzero pixels are holes. Without it, holes are the images' transparent pixels.
        overlap: tile overlap in input pixels (default: a quarter of the model's input size).
        batch_size: tiles enhanced at once.
        use_ema: use the generator's EMA copy when the model has one.
        device: where to run (default: where the model is).
        progress: a progress bar over the files.

    Unreadable files in a directory are skipped with one warning; an unreadable single file, a missing path, a
    model that is not a paired image-to-image model, an inpainting image without holes or a mask of another size
    are `UsageError`s. Returns the written paths, in input order.
    """
    from tqdm.auto import tqdm

    from ganzoo import load_pretrained
    from ganzoo.metrics.evaluation import is_paired

    if not hasattr(model, "plugin"):
        model = load_pretrained(model)
    if not is_paired(model):
        raise UsageError(
            f"{model.plugin.name} is not a paired image-to-image model ({model.plugin.modality}); enhance needs one "
            "trained on pairs (e.g. srgan, pix2pix)"
        )
    if device is not None:
        model.to(device)
    extras = model.data_info.extras
    source_channels = int(extras.get("source_channels") or model.config.channels)
    if source_channels not in _MODES or model.config.channels not in _MODES:
        raise UsageError(f"enhance reads and writes grey or RGB images; this model has {source_channels} channels")
    inpainting = bool(extras.get("mask"))
    if mask is not None and not inpainting:
        raise UsageError(f"--mask is for inpainting models; this {model.plugin.name} was trained on {extras['task']}")
    inputs, out_dir = Path(inputs), Path(out_dir)
    root, files = input_files(inputs, out_dir, "enhancing")
    mask_path = Path(mask) if mask is not None else None
    if mask_path is not None and not mask_path.exists():
        raise UsageError(f"mask not found: {mask_path}")
    if mask_path is not None and mask_path.is_file() and len(files) > 1:
        raise UsageError("one --mask file is for one --input image; give a directory of masks for a directory")
    written, skipped = [], []
    for path in tqdm(files, desc="enhancing", unit="image", disable=not progress):
        read = _read(path, _MODES[source_channels], keep_alpha=inpainting and mask_path is None)
        if read is None:
            if inputs.is_file():
                raise UsageError(f"cannot read the image {inputs}")
            skipped.append(path)
            continue
        image, holes = read
        if inpainting:
            if mask_path is not None:
                mask_file = mask_path if mask_path.is_file() else mask_path / path.relative_to(root)
                if not mask_file.is_file():
                    raise UsageError(f"no mask for {path}: expected {mask_file}")
                holes = _read_mask(mask_file, tuple(image.shape[1:]), path)
            if holes is None or not holes.any():
                raise UsageError(f"{path} has no holes to fill: give --mask, or transparent pixels in the image")
            image.masked_fill_(holes.bool(), 0.0)  # holes mid-grey, as in training
        scale = int(extras.get("scale") or 1)
        output = Image.new(_MODES[model.config.channels], (image.shape[2] * scale, image.shape[1] * scale))
        for top, band in output_bands(model, image, holes if inpainting else None, overlap, batch_size, use_ema):
            output.paste(Image.fromarray(band[:, :, 0] if band.shape[2] == 1 else band), (0, top))
        target = out_dir / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        options = {"quality": 95} if target.suffix.lower() in (".jpg", ".jpeg") else {}
        with atomic_path(target) as tmp:
            output.save(tmp, **options)
        written.append(target)
    if skipped:
        examples = ", ".join(str(p.relative_to(root)) for p in skipped[:3])
        warnings.warn(f"skipped {len(skipped)} unreadable image file(s) under {root} (e.g. {examples})", stacklevel=2)
    if not written:
        raise UsageError(f"none of the {len(files)} image files under {root} could be read")
    return written


__all__ = ["blend_window", "enhance", "enhance_image", "output_bands", "tile_starts"]
