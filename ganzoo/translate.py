"""Translate image files with an image-to-image model (CycleGAN): `ganzoo translate` and `ganzoo.translate`.

Each input image is converted to the model's channels (grey or RGB), resized (without cropping, so the aspect
ratio is not kept) to the model's square resolution with bicubic filtering, translated, and resized back to
the input's own width and height, then written under the same file name (a directory's sub-folders are kept)
in the output directory, in the format its suffix names.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ganzoo.data.images import IMAGE_SUFFIXES, list_images
from ganzoo.engine.checkpoint import atomic_path
from ganzoo.errors import UsageError

DIRECTIONS = ("a2b", "b2a")
_MODES = {1: "L", 3: "RGB"}


def _inputs(path: Path) -> tuple[Path, list[Path]]:
    """(the directory names are taken relative to, the image files) of a file or a directory."""
    if not path.exists():
        raise UsageError(f"input not found: {path}")
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise UsageError(f"{path} is not an image file; accepted suffixes: {', '.join(IMAGE_SUFFIXES)}")
        return path.parent, [path]
    files = list_images(path)
    if not files:
        raise UsageError(f"no images found under {path} (accepted suffixes: {', '.join(IMAGE_SUFFIXES)})")
    return path, files


def input_files(inputs: Path, out_dir: Path, doing: str) -> tuple[Path, list[Path]]:
    """The image files of `inputs` (a file or a directory) and the directory their names are relative to; an
    `out_dir` that would overwrite one of them (or is the input directory) is a `UsageError`."""
    root, files = _inputs(inputs)
    if inputs.is_dir() and out_dir.resolve() == inputs.resolve():
        raise UsageError(f"the output directory {out_dir} is the input directory; choose another --out")
    sources = {path.resolve() for path in files}
    clash = next((path for path in files if (out_dir / path.relative_to(root)).resolve() in sources), None)
    if clash is not None:
        raise UsageError(f"{doing} {clash} into {out_dir} would overwrite it; choose another --out")
    return root, files


def _read(path: Path, mode: str) -> Image.Image | None:
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def _to_tensor(image: Image.Image, resolution: int) -> torch.Tensor:
    resized = image.resize((resolution, resolution), Image.Resampling.BICUBIC)
    array = np.asarray(resized, dtype=np.float32)
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array).permute(2, 0, 1).div(127.5).sub(1.0)


def _to_image(tensor: torch.Tensor, mode: str, size: tuple[int, int]) -> Image.Image:
    array = tensor.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image = Image.fromarray(array[:, :, 0] if mode == "L" else array, mode)
    return image.resize(size, Image.Resampling.BICUBIC)


def _write(tensor: torch.Tensor, mode: str, size: tuple[int, int], target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if target.suffix.lower() in (".jpg", ".jpeg") else {}
    with atomic_path(target) as tmp:
        _to_image(tensor, mode, size).save(tmp, **options)
    return target


def translate(
    model: Any,
    inputs: str | Path,
    direction: str = "a2b",
    out_dir: str | Path = "translated",
    *,
    batch_size: int = 16,
    use_ema: bool = True,
    device: str | torch.device | None = None,
) -> list[Path]:
    """Translate the image file `inputs` (or every image under the directory `inputs`) and write the results.

    Args:
        model: a `GANModel` of an image-to-image plugin, or anything `ganzoo.load_pretrained` takes (a run or
            checkpoint directory, a Hub repo).
        inputs: an image file or a directory of images (searched recursively; other files are ignored).
        direction: `a2b` (domain A to B) or `b2a`.
        out_dir: where the translations go, under the inputs' file names (and sub-folders); created if needed.
            It may not be the input directory itself (that would overwrite the inputs).
        batch_size: images translated at once.
        use_ema: use the generators' EMA copies when the model has them.
        device: where to run (default: where the model is).

    Each image is resized to the model's square resolution (the whole image, aspect ratio not kept), translated,
    and resized back to its own size. Unreadable files in a directory are skipped with one warning; an
    unreadable single file, a missing path, a directory without images, a model that does not translate or an
    unknown direction are `UsageError`s. Returns the written paths, in input order.
    """
    from ganzoo import load_pretrained

    if direction not in DIRECTIONS:
        raise UsageError(f"unknown direction {direction!r}; accepted: {', '.join(DIRECTIONS)}")
    if not hasattr(model, "plugin"):
        model = load_pretrained(model)
    if model.plugin.modality != "image-to-image":
        raise UsageError(
            f"{model.plugin.name} is not an image-to-image model ({model.plugin.modality}); translate needs one "
            "(e.g. cyclegan)"
        )
    channels, resolution = model.config.channels, model.config.resolution
    if channels not in _MODES:
        raise UsageError(f"translate reads grey or RGB images; this model has {channels} channels")
    mode = _MODES[channels]
    inputs, out_dir = Path(inputs), Path(out_dir)
    root, files = input_files(inputs, out_dir, "translating")
    images = [(path, _read(path, mode)) for path in files]
    unreadable = [path for path, image in images if image is None]
    if inputs.is_file() and unreadable:
        raise UsageError(f"cannot read the image {inputs}")
    if unreadable:
        examples = ", ".join(str(p.relative_to(root)) for p in unreadable[:3])
        message = f"skipped {len(unreadable)} unreadable image file(s) under {root} (e.g. {examples})"
        warnings.warn(message, stacklevel=2)
    readable = [(path, image) for path, image in images if image is not None]
    if not readable:
        raise UsageError(f"none of the {len(files)} image files under {root} could be read")
    if device is not None:
        model.to(device)
    nets = model.sampling_nets(use_ema)
    modes = {role: net.training for role, net in nets.items()}
    for net in nets.values():
        net.eval()
    written = []
    try:
        for start in range(0, len(readable), batch_size):
            chunk = readable[start : start + batch_size]
            batch = torch.stack([_to_tensor(image, resolution) for _, image in chunk]).to(model.device)
            with torch.no_grad():
                translated = model.plugin.translate(nets, batch, direction).cpu()
            for (path, image), result in zip(chunk, translated, strict=True):
                written.append(_write(result, mode, image.size, out_dir / path.relative_to(root)))
    finally:
        for role, net in nets.items():
            net.train(modes[role])
    return written


__all__ = ["DIRECTIONS", "input_files", "translate"]
