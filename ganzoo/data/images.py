"""Image datasets held in memory as uint8 tensors, and the conversions that bring any source to a model's shape.

Every image source (the embedded digits, a folder, a torchvision dataset) is decoded once into an
(N, C, H, W) uint8 tensor at the model's resolution and channel count; batches are then plain tensor indexing,
normalised to [-1, 1], which keeps a small model busy without loader workers.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ganzoo.errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


class TensorImageDataset(torch.utils.data.Dataset):
    """uint8 images (N, C, H, W) and optional integer labels; items are dicts with `image` in [-1, 1]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected uint8 images of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.long() if labels is not None else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {"image": self.images[index].float().div_(127.5).sub_(1.0)}
        if self.labels is not None:
            item["label"] = self.labels[index]
        return item

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        batch = {"image": self.images[index].float().div_(127.5).sub_(1.0)}
        if self.labels is not None:
            batch["label"] = self.labels[index]
        return batch


def pass_through(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Collate function for datasets whose `__getitems__` already returns a batch."""
    return batch


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert uint8 (N, C, H, W) images between 1 (grey), 3 (RGB) and 4 (RGBA) channels."""
    have = images.shape[1]
    if have == channels:
        return images
    if channels not in PIL_MODES:
        raise UsageError(f"cannot convert images to {channels} channels; accepted: 1, 3 or 4")
    rgb = images[:, :3] if have >= 3 else images[:, :1].expand(-1, 3, -1, -1)
    if channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (rgb.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if channels == 3:
        return rgb.contiguous()
    alpha = images[:, 3:4] if have == 4 else torch.full_like(images[:, :1], 255)
    return torch.cat([rgb, alpha], dim=1)


def resize_square(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize uint8 (N, C, H, W) images so the shorter side is `resolution`, then center-crop to a square."""
    h, w = images.shape[-2:]
    if h == w == resolution:
        return images
    scale = resolution / min(h, w)
    new_h, new_w = max(resolution, round(h * scale)), max(resolution, round(w * scale))
    out = torch.empty(len(images), images.shape[1], resolution, resolution, dtype=torch.uint8)
    for start in range(0, len(images), 1024):  # bounded memory for large sets
        chunk = images[start : start + 1024].float()
        chunk = F.interpolate(chunk, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        top, left = (new_h - resolution) // 2, (new_w - resolution) // 2
        chunk = chunk[..., top : top + resolution, left : left + resolution]
        out[start : start + 1024] = chunk.round().clamp(0, 255).to(torch.uint8)
    return out


def from_numpy_images(images: np.ndarray) -> torch.Tensor:
    """(N, H, W) or (N, H, W, C) uint8 arrays to an (N, C, H, W) tensor."""
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        array = array.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"expected (N, H, W) or (N, H, W, C) images, got shape {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.uint8))


def list_images(root: Path) -> list[Path]:
    """Every image file under `root` with an accepted suffix, sorted for a reproducible order."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def square(image: Image.Image, resolution: int) -> Image.Image:
    """The image resized (bicubic) so its shorter side is `resolution`, then centre-cropped to a square."""
    w, h = image.size
    scale = resolution / min(w, h)
    size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def decode_square(path: Path, resolution: int, mode: str) -> np.ndarray | None:
    """One image file as an (R, R, C) uint8 array (`square`d, converted to the PIL `mode`), or None if unreadable."""
    try:
        with Image.open(path) as image:
            if image.mode.startswith("I;16") or image.mode == "I":  # 16/32-bit grey: scale, do not clip
                deep = np.asarray(image).astype(np.float32)
                depth_scale = 257.0 if deep.max() > 255 else 1.0
                image = Image.fromarray(np.clip(deep / depth_scale + 0.5, 0, 255).astype(np.uint8), "L")
            array = np.asarray(square(image.convert(mode), resolution), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    return array if array.ndim == 3 else array[:, :, None]


def folder_class_names(root: Path, files: Sequence[Path]) -> list[str] | None:
    """Class names when every image sits in a first-level subfolder of `root`, else None (unlabelled)."""
    parents = [f.relative_to(root).parts for f in files]
    if not parents or any(len(parts) < 2 for parts in parents):
        return None
    return sorted({parts[0] for parts in parents})


def load_folder(root: Path, resolution: int, channels: int) -> TensorImageDataset:
    """Decode every image under `root` (resized, center-cropped, converted); unreadable files are skipped. A folder
    whose decoded images exceed `ganzoo.data.cache.in_memory_limit()` is read through the on-disk cache."""
    if channels not in PIL_MODES:
        raise UsageError(f"channels={channels} is not supported for folder data; accepted: 1, 3 or 4")
    files = list_images(root)
    if not files:
        raise UsageError(f"no images found under {root} (accepted suffixes: {', '.join(IMAGE_SUFFIXES)})")
    from ganzoo.data.cache import cached_folder, in_memory_limit

    if len(files) * channels * resolution * resolution > in_memory_limit():
        from ganzoo.data.sources import cache_dir

        return cached_folder(root, files, resolution, channels, cache_dir() / "folders")
    mode = PIL_MODES[channels]
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = list(pool.map(lambda p: decode_square(p, resolution, mode), files))
    kept = [(f, a) for f, a in zip(files, decoded, strict=True) if a is not None]
    skipped = [f for f, a in zip(files, decoded, strict=True) if a is None]
    if skipped:
        examples = ", ".join(str(p.relative_to(root)) for p in skipped[:3])
        warnings.warn(f"skipped {len(skipped)} unreadable image file(s) under {root} (e.g. {examples})", stacklevel=2)
    if not kept:
        raise UsageError(f"none of the {len(files)} image files under {root} could be read")
    images = from_numpy_images(np.stack([a for _, a in kept]))
    classes = folder_class_names(root, [f for f, _ in kept])
    labels = None
    if classes is not None:
        index = {name: i for i, name in enumerate(classes)}
        labels = torch.tensor([index[f.relative_to(root).parts[0]] for f, _ in kept])
    return TensorImageDataset(images, labels)


def folder_native_channels(root: Path) -> int:
    """3 unless the first readable image is greyscale (then 1): the default channel count for a folder."""
    for path in list_images(root)[:16]:
        try:
            with Image.open(path) as image:
                return 1 if image.mode in ("L", "1", "I;16", "I", "F", "LA") else 3
        except (OSError, UnidentifiedImageError):
            continue
    return 3
