"""Paired image-to-image data: every source gives batches {"source": ..., "target": ...} at the model's resolution.

Specs:
- `paired:ROOT`: aligned pairs on disk, in the pix2pix layout `ROOT/train/*.jpg` (each file holds source | target
  side by side: the left half is A, the right half B; an odd width loses its last column), or `ROOT/trainA` and
  `ROOT/trainB` holding A and B images matched by file name (the suffix aside: `x.png` pairs with `x.jpg`). A file
  without its partner is an error naming it. `?split=test` (or `val`) reads `ROOT/test` or `ROOT/testA`+`testB`;
  `?direction=b2a` makes B the source and A the target (default a2b). Both images are resized to the model's
  resolution (shorter side, centre crop), or cropped at the same place with `crop=N`.
- `SPEC?task=TASK` on any image spec (`mnist-4k?task=denoise`, `folder:PATH?task=sr4x`, `photos?task=inpaint`):
  the target is the image, the source is made from it on the fly (`ganzoo.data.degrade`): `sr2x`/`sr4x` (bicubic,
  anti-aliased down-sampling: the source is R/2 or R/4 pixels wide), `inpaint` (a random rectangle and free-form
  strokes: the batch has a "mask", 1 where pixels are missing, and the source is the target with its holes set to 0,
  mid-grey), `denoise` (Gaussian noise; `sigma=` in 0..255 pixel units, default 25) and `colorize` (the source is
  the target's luma, one channel). Labelled data keeps its labels ("label").
- `crop=N` (any image spec, with or without a task): random N x N patches of the images at their own size, resized
  to the model's resolution R when N differs from it; `photos` is always read as crops, of R x R by default.
- `photos`: 9 real photographs and textures shipped with ganzoo (`assets/photos/`, see `assets/NOTICE.md`), RGB
  (grey ones replicated) unless the model asks for 1 channel. `photos` and `photos?split=train` are 7 of them;
  `photos?split=test` holds out two whole images, chelsea.png (a photograph: a cat, fur and a textured background)
  and gravel.png (a texture), so every kind of content the train part has is tested on unseen pixels;
  `photos?split=all` is all 9.

Crops and epochs: in training an epoch takes the same number of random crops from every image, at least
`MIN_CROPS_PER_EPOCH` crops in all (`crops_per_image = ceil(1024 / images)`, e.g. 147 from each of the 7 train
photos); at test time (`split=test` or `val`) the crops are a fixed grid of ceil(H/N) x ceil(W/N) evenly spaced
N x N crops per image (one centred crop along a side that fits only one).

Seeding: the random numbers of a batch (crop positions, flips, rotations, holes, noise) come from one private
generator per sample, never from torch's global one. In training the per-sample seeds are drawn from a generator
seeded by (`seed=`, the batch's indices), so pairs differ from epoch to epoch yet depend only on the data order: a
resumed run sees the same batches. At test time each sample's generator is seeded by (`seed=`, its index) alone, so
every evaluation sees the same pairs whatever the batching. Flips (`flip`) and turns by multiples of 90 degrees
(`rotate`), when a model asks for them in its data options, happen in training only.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ganzoo.data.degrade import DEFAULT_SIGMA, SR_SCALES, TASKS, degrade
from ganzoo.data.images import (
    PIL_MODES,
    TensorImageDataset,
    folder_class_names,
    folder_native_channels,
    list_images,
    square,
)
from ganzoo.data.sources import DataSource, FolderSource, SelectedSource, register_data, seeded_subset
from ganzoo.errors import UsageError
from ganzoo.plugin import DataInfo

MIN_CROPS_PER_EPOCH = 1024
DIRECTIONS = ("a2b", "b2a")
EVALUATION_SPLITS = ("test", "val")
PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
)
PHOTOS_TEST = ("chelsea.png", "gravel.png")
PHOTOS_TRAIN = tuple(name for name in PHOTOS if name not in PHOTOS_TEST)
_MODALITY_WORDS = {"text": "text data", "image-to-image": "two-domain (unpaired) data"}
_ImageStore = torch.Tensor | Sequence[torch.Tensor]  # (N, C, H, W) uint8, or (C, H, W) uint8 images of any size


def _seed(*values: int) -> int:
    """A 63-bit seed mixed from integers (stable across processes and platforms)."""
    digest = hashlib.blake2b(np.asarray(values, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _grid(length: int, crop: int) -> list[int]:
    """Evenly spaced offsets of ceil(length / crop) crops covering a side; one centred crop when one fits."""
    count = math.ceil(length / crop)
    if count == 1:
        return [(length - crop) // 2]
    return [round(i * (length - crop) / (count - 1)) for i in range(count)]


def _resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 (N, C, n, n) square crops to (N, C, R, R), bilinear with anti-aliasing (as `resize_square`)."""
    if images.shape[-1] == resolution:
        return images
    resized = F.interpolate(
        images.float(), size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def _stack_crops(images: _ImageStore, windows: Sequence[tuple[int, int, int]], crop: int) -> torch.Tensor:
    """The crops (image, top, left) of side `crop`, stacked: (N, C, crop, crop) uint8. numpy copies them, one
    thread: many small torch copies each open a parallel region, slow on a machine whose cores are busy."""
    return torch.from_numpy(np.stack([images[i][:, t : t + crop, x : x + crop].numpy() for i, t, x in windows]))


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(127.5).sub_(1.0)


class PairedDataset(torch.utils.data.Dataset):
    """Image-to-image pairs (or plain crops) made on the fly; `__getitems__` returns a batch dict.

    `targets`: uint8 images, (N, C, R, R) when `crop` is None, else images of any size at least `crop` on each
    side (a list of (C, H, W), or one tensor). `task`: None (plain images: the batch is {"image"}), "paired"
    (`sources` are the aligned inputs, same layout as `targets`), or a degradation of `ganzoo.data.degrade`.
    `evaluation`: test-time behaviour (grid crops, no flips, per-index seeds). `extras` holds what loading
    decided (the source's channels, crops per image), which the engine adds to the DataInfo's extras.
    """

    def __init__(
        self,
        targets: _ImageStore,
        *,
        resolution: int,
        task: str | None = None,
        sources: _ImageStore | None = None,
        labels: torch.Tensor | None = None,
        crop: int | None = None,
        evaluation: bool = False,
        seed: int = 0,
        sigma: float = DEFAULT_SIGMA,
        flip: bool = False,
        rotate: bool = False,
    ) -> None:
        if (task == "paired") != (sources is not None):
            raise ValueError("sources are given exactly for task='paired'")
        if len(targets) == 0:
            raise ValueError("no images to make pairs of")
        self.targets, self.sources, self.task = targets, sources, task
        self.labels = labels.long() if labels is not None else None
        self.resolution, self.crop, self.evaluation = resolution, crop, evaluation
        self.seed, self.sigma, self.flip, self.rotate = seed, sigma, flip, rotate
        channels = int(targets[0].shape[-3])
        self.extras: dict[str, Any] = {"crop": crop}
        if task is not None:
            source_channels = {"colorize": 1, "paired": int(sources[0].shape[-3]) if sources is not None else 0}
            self.extras["source_channels"] = source_channels.get(task, channels)
        self._windows: torch.Tensor | None = None  # evaluation crops: (image, top, left) per sample
        self.crops_per_image = 1
        if crop is None:
            if tuple(targets.shape[-2:]) != (resolution, resolution):
                raise ValueError(f"uncropped targets must be {resolution}x{resolution}, got {tuple(targets.shape)}")
            self._length = len(targets)
        elif evaluation:
            windows = [
                (i, top, left)
                for i, image in enumerate(targets)
                for top in _grid(image.shape[-2], crop)
                for left in _grid(image.shape[-1], crop)
            ]
            self._windows = torch.tensor(windows, dtype=torch.long)
            self._length = len(windows)
        else:
            self.crops_per_image = max(1, math.ceil(MIN_CROPS_PER_EPOCH / len(targets)))
            self._length = len(targets) * self.crops_per_image
        if crop is not None:
            self.extras["crops_per_image"] = self.crops_per_image if not evaluation else None

    def __len__(self) -> int:
        return self._length

    def generators(self, index: torch.Tensor) -> list[torch.Generator]:
        """One private generator per sample: seeded by (seed, batch indices) in training, (seed, index) at test."""
        if self.evaluation:
            seeds = [_seed(self.seed, i) for i in index.tolist()]
        else:
            batch = torch.Generator().manual_seed(_seed(self.seed, -1, *index.tolist()))
            seeds = torch.randint(0, 2**62, (len(index),), generator=batch).tolist()
        return [torch.Generator().manual_seed(s) for s in seeds]

    def _crops(
        self, index: torch.Tensor, generators: Sequence[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The uint8 targets (and sources) of a batch at the model's resolution, and their images' indices."""
        if self.crop is None:
            sources = self.sources[index] if self.sources is not None else None
            return self.targets[index], sources, index
        n = self.crop
        if self._windows is not None:
            windows = self._windows[index].tolist()
        else:
            windows = []
            for sample, g in zip(index.tolist(), generators, strict=True):
                image = sample % len(self.targets)
                h, w = self.targets[image].shape[-2:]
                top = int(torch.randint(h - n + 1, (), generator=g))
                left = int(torch.randint(w - n + 1, (), generator=g))
                windows.append((image, top, left))
        targets = _stack_crops(self.targets, windows, n)
        sources = None
        if self.sources is not None:
            sources = _resize(_stack_crops(self.sources, windows, n), self.resolution)
        images = torch.tensor([i for i, _, _ in windows], dtype=torch.long)
        return _resize(targets, self.resolution), sources, images

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= len(self)):
            raise IndexError(f"index out of range for {len(self)} samples")
        generators = self.generators(index)
        targets, sources, images = self._crops(index, generators)
        if self.flip and not self.evaluation:
            mirror = torch.tensor([bool(torch.rand((), generator=g) < 0.5) for g in generators], dtype=torch.bool)
            targets[mirror] = targets[mirror].flip(-1)
            if sources is not None:
                sources[mirror] = sources[mirror].flip(-1)
        if self.rotate and not self.evaluation:  # a random multiple of 90 degrees (the images are square)
            turns = torch.tensor([int(4 * torch.rand((), generator=g)) for g in generators])
            for k in (1, 2, 3):
                chosen = turns == k
                targets[chosen] = targets[chosen].rot90(k, (-2, -1))
                if sources is not None:
                    sources[chosen] = sources[chosen].rot90(k, (-2, -1))
        target = _to_unit(targets)
        if self.task is None:
            batch = {"image": target}
        elif self.task == "paired":
            assert sources is not None
            batch = {"source": _to_unit(sources), "target": target}
        else:
            batch = {**degrade(self.task, target, generators, self.sigma), "target": target}
        if self.labels is not None:
            batch["label"] = self.labels[images]
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[0] for key, value in self.__getitems__([index]).items()}


# --------------------------------------------------------------------------------------------- decoding


def _open(path: Path) -> Image.Image:
    """A decoded image (16/32-bit grey scaled to 8 bits); an unreadable file is a UsageError naming it."""
    try:
        with Image.open(path) as image:
            if image.mode.startswith("I;16") or image.mode == "I":
                deep = np.asarray(image).astype(np.float32)
                depth_scale = 257.0 if deep.max() > 255 else 1.0
                return Image.fromarray(np.clip(deep / depth_scale + 0.5, 0, 255).astype(np.uint8), "L")
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise UsageError(f"cannot read image {path}: {exc}") from None


def _array(image: Image.Image, channels: int, resolution: int | None) -> torch.Tensor:
    """A PIL image as uint8 (C, H, W) with `channels`; resized (shorter side, centre crop) when `resolution`."""
    image = image.convert(PIL_MODES[channels])
    if resolution is not None:
        image = square(image, resolution)
    array = np.asarray(image, dtype=np.uint8)
    array = array if array.ndim == 3 else array[:, :, None]
    return torch.from_numpy(array.transpose(2, 0, 1).copy())  # a writable copy in (C, H, W) order


def _check_channels(channels: int, what: str) -> None:
    if channels not in PIL_MODES:
        raise UsageError(f"{what}={channels} is not supported for image files; accepted: 1, 3 or 4")


def _parallel(function, items: Sequence) -> list:
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(function, items))


@functools.cache
def photo(name: str, channels: int = 3) -> torch.Tensor:
    """One embedded photo as uint8 (C, H, W) at its own size (decoded once per process and channel count)."""
    with resources.files("ganzoo.data").joinpath(f"assets/photos/{name}").open("rb") as handle:
        image = Image.open(handle)
        image.load()
    return _array(image, channels, None)


def _folder_native(root: Path, channels: int) -> tuple[list[torch.Tensor], torch.Tensor | None, list[str]]:
    """Every image under `root` at its own size (unreadable ones skipped with a warning), labels by subfolder."""
    _check_channels(channels, "channels")
    files = list_images(root)

    def read(path: Path) -> torch.Tensor | None:
        try:
            return _array(_open(path), channels, None)
        except UsageError:
            return None

    decoded = _parallel(read, files)
    kept = [(f, a) for f, a in zip(files, decoded, strict=True) if a is not None]
    skipped = [f for f, a in zip(files, decoded, strict=True) if a is None]
    if skipped:
        examples = ", ".join(str(p.relative_to(root)) for p in skipped[:3])
        warnings.warn(f"skipped {len(skipped)} unreadable image file(s) under {root} (e.g. {examples})", stacklevel=3)
    if not kept:
        raise UsageError(f"none of the {len(files)} image files under {root} could be read")
    classes = folder_class_names(root, [f for f, _ in kept])
    labels = None
    if classes is not None:
        number = {name: i for i, name in enumerate(classes)}
        labels = torch.tensor([number[f.relative_to(root).parts[0]] for f, _ in kept])
    return [a for _, a in kept], labels, [str(f.relative_to(root)) for f, _ in kept]


def native_images(source: DataSource, channels: int) -> tuple[_ImageStore, torch.Tensor | None, list[str] | None]:
    """The images of an image source at their own size (for crops), with their labels and, where they have them,
    names: embedded photos and folders decode their files; in-memory sets (`mnist-4k`, torchvision) are loaded
    without a resolution, which keeps theirs."""
    if isinstance(source, PhotosSource):
        return [photo(name, channels) for name in source.names], None, list(source.names)
    if isinstance(source, FolderSource):
        return _folder_native(source.root, channels)
    if isinstance(source, SelectedSource) and isinstance(source.base, (FolderSource, PhotosSource)):
        images, labels, names = native_images(source.base, channels)
        keep = torch.arange(len(images))
        if source.classes is not None:
            assert labels is not None  # SelectedSource checked it
            remap = torch.full((int(labels.max()) + 1,), -1, dtype=torch.long)
            remap[torch.tensor(source.classes)] = torch.arange(len(source.classes))
            labels = remap[labels]
            keep = torch.nonzero(labels >= 0).flatten()
        if source.n is not None:
            keep = keep[seeded_subset(len(keep), source.n, source.seed, source.spec)]
        names = [names[i] for i in keep.tolist()] if names is not None else None
        return [images[i] for i in keep.tolist()], labels[keep] if labels is not None else None, names
    dataset = source.load(channels=channels)
    if not isinstance(dataset, TensorImageDataset):
        raise UsageError(f"crops are not supported for {source.spec!r}")
    return dataset.images, dataset.labels, None


def _check_crop(images: _ImageStore, names: list[str] | None, crop: int, what: str, spec: str) -> None:
    """A crop larger than an image is a UsageError naming the image (or the size of a set's images)."""
    for i, image in enumerate(images[:1] if isinstance(images, torch.Tensor) else images):
        h, w = image.shape[-2:]
        if crop > min(h, w):
            name = names[i] if names is not None else f"its {w}x{h} images"
            size = f" ({w}x{h})" if names is not None else ""
            raise UsageError(
                f"{what} {crop}x{crop} is larger than {name}{size} in {spec!r}; give a smaller crop= or resolution"
            )


# --------------------------------------------------------------------------------------------- sources


class DegradedSource(DataSource):
    """Pairs made on the fly from any image source by a degradation (`task`), or with `task` None plain crops.

    Crops (`crop`, or always for a base with `crops_by_default`, like `photos`) read the base's images at their own
    size; otherwise the base is loaded at the model's resolution. `evaluation`: test-time crops and seeds.
    """

    def __init__(
        self,
        spec: str,
        base: DataSource,
        task: str | None,
        crop: int | None = None,
        sigma: float = DEFAULT_SIGMA,
        seed: int = 0,
        evaluation: bool = False,
    ) -> None:
        self.spec, self.base, self.task, self.crop = spec, base, task, crop
        self.sigma, self.seed, self.evaluation = sigma, seed, evaluation
        self.crops = crop is not None or getattr(base, "crops_by_default", False)
        native = base.info()
        if task == "colorize" and native.channels == 1:
            raise UsageError(f"task=colorize needs colour images, but {base.spec!r} is grey (1 channel)")
        extras = dict(native.extras)
        if task is not None:
            extras.update(
                paired=True,
                task=task,
                scale=SR_SCALES.get(task, 1),
                source_channels=1 if task == "colorize" else native.channels,
                crop=crop,
            )
            if task == "denoise":
                extras["sigma"] = sigma
            if task == "inpaint":
                extras["mask"] = True
        self._info = DataInfo(
            modality="image" if task is None else "image-to-image",
            channels=native.channels,
            resolution=crop or (None if self.crops else native.resolution),
            num_classes=native.num_classes,
            num_samples=None if self.crops else native.num_samples,
            extras=extras,
        )

    def info(self) -> DataInfo:
        return self._info

    def load(
        self,
        resolution: int | None = None,
        channels: int | None = None,
        flip: bool = False,
        rotate: bool = False,
        **_: Any,
    ) -> PairedDataset:
        """Pairs with targets of `resolution` (default: the crop, else the data's, else 64) and `channels`."""
        native = self._info
        resolution = resolution or native.resolution or FolderSource.default_resolution
        channels = channels or native.channels or 3
        scale = SR_SCALES.get(self.task or "", 1)
        if resolution % scale:
            raise UsageError(
                f"task={self.task} needs a resolution divisible by {scale}, got {resolution} (from {self.spec!r})"
            )
        if self.task == "colorize" and channels != 3:
            raise UsageError(f"task=colorize needs 3-channel (RGB) targets, got channels={channels}")
        options = {"task": self.task, "evaluation": self.evaluation, "seed": self.seed, "sigma": self.sigma}
        options |= {"flip": flip, "rotate": rotate}
        if self.crops:
            crop = self.crop or resolution
            images, labels, names = native_images(self.base, channels)
            what = "crop" if self.crop else "crop (the model's resolution)"
            _check_crop(images, names, crop, what, self.spec)
            return PairedDataset(images, resolution=resolution, labels=labels, crop=crop, **options)
        dataset = self.base.load(resolution=resolution, channels=channels)
        if not isinstance(dataset, TensorImageDataset):
            raise UsageError(f"'task=' and 'crop=' are not supported for {self.base.spec!r}")
        return PairedDataset(dataset.images, resolution=resolution, labels=dataset.labels, **options)


class PhotosSource(DataSource):
    """`photos`: the 9 embedded photographs and textures, read as random crops (grid crops for split=test)."""

    crops_by_default = True

    def __init__(self, spec: str = "photos", split: str = "train") -> None:
        self.spec, self.split_name = spec, split
        self.names = {"train": PHOTOS_TRAIN, "test": PHOTOS_TEST, "all": PHOTOS}[split]
        self.evaluation = split in EVALUATION_SPLITS

    def info(self) -> DataInfo:
        return DataInfo("image", channels=3, resolution=None, extras={"images": list(self.names)})

    def splits(self) -> tuple[str, ...]:
        return ("train", "test", "all")

    def split(self, name: str) -> DataSource:
        if name not in self.splits():
            raise UsageError(f"data spec {self.spec!r} has no split {name!r}; accepted: {', '.join(self.splits())}")
        return PhotosSource(f"{self.spec}?split={name}", name)

    def select(self, spec: str, classes: list[int] | None, n: int | None, seed: int) -> DataSource:
        raise UsageError(f"'classes=' and 'n=' are not supported for {self.spec!r} (9 unlabelled photos)")

    def load(
        self,
        resolution: int | None = None,
        channels: int | None = None,
        flip: bool = False,
        rotate: bool = False,
        **_: Any,
    ) -> PairedDataset:
        """Crops of `resolution` (default 64) with `channels` (default 3)."""
        crops = DegradedSource(self.spec, self, None, evaluation=self.evaluation)
        return crops.load(resolution=resolution, channels=channels, flip=flip, rotate=rotate)


def _match_by_name(spec: str, folder_a: Path, folder_b: Path) -> list[tuple[Path, Path]]:
    """Files of two folders paired by their path without the suffix; one without a partner is an error."""
    keyed = []
    for folder in (folder_a, folder_b):
        files: dict[str, Path] = {}
        for path in list_images(folder):
            key = path.relative_to(folder).with_suffix("").as_posix()
            if key in files:
                raise UsageError(f"{files[key]} and {path} have the same name; paired:ROOT matches files by name")
            files[key] = path
        keyed.append(files)
    files_a, files_b = keyed
    for files, other in ((files_a, files_b), (files_b, files_a)):
        for key, path in files.items():
            if key not in other:
                folder = folder_b if other is files_b else folder_a
                raise UsageError(f"{path} has no partner in {folder} (paired:ROOT matches files by name)")
    return [(files_a[key], files_b[key]) for key in sorted(files_a)]


class PairedFolderSource(DataSource):
    """`paired:ROOT`: aligned pairs in the pix2pix layout (side by side in ROOT/train, or ROOT/trainA + trainB)."""

    def __init__(
        self,
        spec: str,
        root: Path,
        split: str = "train",
        direction: str = "a2b",
        crop: int | None = None,
        seed: int = 0,
    ) -> None:
        if not root.is_dir():
            raise UsageError(f"data folder not found: {root} (from --data {spec})")
        self.spec, self.root, self.split_name = spec, root, split
        self.direction, self.crop, self.seed = direction, crop, seed
        self.evaluation = split in EVALUATION_SPLITS
        joined, folder_a, folder_b = root / split, root / f"{split}A", root / f"{split}B"
        if folder_a.is_dir() or folder_b.is_dir():
            for folder in (folder_a, folder_b):
                if not folder.is_dir():
                    raise UsageError(f"data folder not found: {folder} (paired:ROOT needs both {split}A and {split}B)")
            self.layout = "folders"
            self.pairs: list[tuple[Path, Path | None]] = list(_match_by_name(spec, folder_a, folder_b))
            channels_a, channels_b = folder_native_channels(folder_a), folder_native_channels(folder_b)
            where = folder_a
        elif joined.is_dir():
            self.layout = "side-by-side"
            self.pairs = [(path, None) for path in list_images(joined)]
            channels_a = channels_b = folder_native_channels(joined)
            where = joined
        elif split == "train":
            raise UsageError(
                f"{root} lacks the pix2pix layout: train/ with source|target images side by side, or trainA/ and "
                "trainB/ matched by file name"
            )
        else:
            raise UsageError(f"data folder not found: {joined} (nor {folder_a.name}/ and {folder_b.name}/)")
        if not self.pairs:
            raise UsageError(f"no images found under {where} (accepted: .png, .jpg, .jpeg, .webp, .bmp)")
        reverse = direction == "b2a"
        self.source_channels, self.target_channels = (channels_b, channels_a) if reverse else (channels_a, channels_b)

    def info(self) -> DataInfo:
        return DataInfo(
            modality="image-to-image",
            channels=self.target_channels,
            resolution=self.crop,
            num_samples=len(self.pairs),
            extras={
                "paired": True,
                "task": "paired",
                "scale": 1,
                "source_channels": self.source_channels,
                "direction": self.direction,
                "layout": self.layout,
                "crop": self.crop,
            },
        )

    def splits(self) -> tuple[str, ...]:
        names = ("train", "test", "val")
        return tuple(n for n in names if n != "val" or any((self.root / f"val{s}").is_dir() for s in ("", "A", "B")))

    def split(self, name: str) -> DataSource:
        if name not in self.splits():
            raise UsageError(f"data spec {self.spec!r} has no split {name!r}; accepted: {', '.join(self.splits())}")
        return PairedFolderSource(f"{self.spec}?split={name}", self.root, name, self.direction, self.crop, self.seed)

    def configured(self, spec: str, direction: str | None, crop: int | None, seed: int) -> PairedFolderSource:
        """This source with a direction, crop and seed from the spec's selection (`spec`: the whole spec)."""
        other = copy.copy(self)
        other.spec, other.crop, other.seed = spec, crop, seed
        if direction is not None and direction != self.direction:
            other.direction = direction
            other.source_channels, other.target_channels = self.target_channels, self.source_channels
        return other

    def _read_pair(self, pair: tuple[Path, Path | None], channels: tuple[int, int], resolution: int | None):
        first, second = pair
        if second is None:
            image = _open(first)
            w, h = image.size
            half = w // 2
            if half == 0:
                raise UsageError(f"{first} is too narrow to hold two images side by side")
            a, b = image.crop((0, 0, half, h)), image.crop((half, 0, 2 * half, h))
        else:
            a, b = _open(first), _open(second)
        source, target = (b, a) if self.direction == "b2a" else (a, b)
        return _array(source, channels[0], resolution), _array(target, channels[1], resolution)

    def _names(self, pair: tuple[Path, Path | None]) -> str:
        first, second = pair
        return str(first) if second is None else f"{first} and {second}"

    def load(
        self,
        resolution: int | None = None,
        channels: int | None = None,
        flip: bool = False,
        rotate: bool = False,
        source_channels: int | None = None,
        **_: Any,
    ) -> PairedDataset:
        """Pairs with targets of `resolution` (default: the crop, else 64) and `channels` (default: the data's);
        sources keep their own channels unless `source_channels` is given."""
        resolution = resolution or self.crop or FolderSource.default_resolution
        modes = (source_channels or self.source_channels, channels or self.target_channels)
        _check_channels(modes[0], "source_channels")
        _check_channels(modes[1], "channels")
        size = None if self.crop else resolution
        decoded = _parallel(lambda pair: self._read_pair(pair, modes, size), self.pairs)
        sources, targets = [s for s, _ in decoded], [t for _, t in decoded]
        options = {"evaluation": self.evaluation, "seed": self.seed, "flip": flip, "rotate": rotate}
        if self.crop is None:
            return PairedDataset(
                torch.stack(targets), sources=torch.stack(sources), task="paired", resolution=resolution, **options
            )
        for pair, source, target in zip(self.pairs, sources, targets, strict=True):
            if source.shape[-2:] != target.shape[-2:]:
                (hs, ws), (ht, wt) = source.shape[-2:], target.shape[-2:]
                raise UsageError(
                    f"crop= needs pairs of one size, but {self._names(pair)} are {ws}x{hs} and {wt}x{ht} pixels"
                )
        _check_crop(targets, [self._names(p) for p in self.pairs], self.crop, "crop", self.spec)
        return PairedDataset(targets, sources=sources, task="paired", resolution=resolution, crop=self.crop, **options)


# --------------------------------------------------------------------------------------------- the `?` keys


def _crop_option(options: dict[str, str], spec: str) -> int | None:
    if "crop" not in options:
        return None
    try:
        crop = int(options["crop"])
    except ValueError:
        crop = 0
    if crop < 1:
        raise UsageError(f"crop={options['crop']!r} in {spec!r} must be an integer >= 1 (the crop's side in pixels)")
    return crop


def _sigma_option(options: dict[str, str], spec: str, task: str | None) -> float:
    if "sigma" not in options:
        return DEFAULT_SIGMA
    if task != "denoise":
        raise UsageError(f"sigma= in {spec!r} is the noise of task=denoise; add task=denoise or drop sigma=")
    try:
        sigma = float(options["sigma"])
    except ValueError:
        sigma = -1.0
    if not 0 <= sigma <= 255:
        raise UsageError(f"sigma={options['sigma']!r} in {spec!r} must be a number in 0..255 (pixel units)")
    return sigma


def pair_source(
    source: DataSource, spec: str, options: dict[str, str], split: str | None = None, seed: int = 0
) -> DataSource:
    """`source` (already split and selected) under the spec's `task=`, `crop=`, `sigma=` and `direction=`."""
    task = options.get("task")
    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task={task!r} in {spec!r}; accepted: {', '.join(TASKS)}")
    crop = _crop_option(options, spec)
    sigma = _sigma_option(options, spec, task)
    direction = options.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        raise UsageError(f"bad direction={direction!r} in {spec!r}; accepted: {', '.join(DIRECTIONS)}")
    if isinstance(source, PairedFolderSource):
        if task is not None:
            raise UsageError(
                f"task={task} makes pairs from plain images, but {source.spec!r} is already paired; "
                f"drop task= or read one side as images (folder:PATH?task={task})"
            )
        return source.configured(spec, direction, crop, seed)
    if direction is not None:
        raise UsageError(f"direction= in {spec!r} is for paired:ROOT data; accepted there: a2b, b2a")
    modality = source.info().modality
    if modality != "image":
        key = f"task={task}" if task is not None else "crop="
        raise UsageError(
            f"{key} needs image data, but {source.spec!r} is {_MODALITY_WORDS.get(modality, modality + ' data')}; "
            "e.g. photos?task=sr4x, mnist-4k?task=denoise, folder:PATH?task=inpaint"
        )
    evaluation = getattr(source, "evaluation", False) or split in EVALUATION_SPLITS
    return DegradedSource(spec, source, task, crop, sigma, seed, evaluation)


register_data("paired", lambda spec, rest: PairedFolderSource(spec, Path(rest).expanduser()), prefix=True)
register_data("photos", lambda spec: PhotosSource(spec))
