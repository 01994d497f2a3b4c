"""Data specs: the strings users pass to `--data`, resolved to sources that build datasets for a model.

Accepted specs: `mnist-4k` (embedded, the default), `folder:PATH`, and the torchvision sets `mnist`,
`fashion-mnist`, `cifar10` (downloaded to the ganzoo cache on first use). `register_data` adds more.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganzoo.data.images import (
    TensorImageDataset,
    convert_channels,
    folder_class_names,
    folder_native_channels,
    from_numpy_images,
    list_images,
    load_folder,
    resize_square,
)
from ganzoo.errors import GanzooError, UsageError
from ganzoo.plugin import DataInfo

DEFAULT_DATA = "mnist-4k"


class DataSource:
    """A resolved data spec: what the data is (`info`) and how to build a dataset for a model (`load`)."""

    spec: str

    def info(self) -> DataInfo:
        raise NotImplementedError

    def load(self, **options: Any) -> torch.utils.data.Dataset:
        """A dataset prepared as the model asks (`resolution`, `channels` for images)."""
        raise NotImplementedError


class TensorImageSource(DataSource):
    """Images that fit in memory as one uint8 tensor, resized and converted on load."""

    def __init__(self, spec: str, read: Callable[[], tuple[torch.Tensor, torch.Tensor | None]], info: DataInfo):
        self.spec = spec
        self._read = read
        self._info = info

    def info(self) -> DataInfo:
        return self._info

    def load(self, resolution: int | None = None, channels: int | None = None, **_: Any) -> TensorImageDataset:
        images, labels = self._read()
        if channels is not None:
            images = convert_channels(images, channels)
        if resolution is not None:
            images = resize_square(images, resolution)
        return TensorImageDataset(images, labels)


class FolderSource(DataSource):
    """`folder:PATH`: every image under PATH; first-level subfolders become class labels."""

    default_resolution = 64

    def __init__(self, spec: str, root: Path) -> None:
        if not root.is_dir():
            raise UsageError(f"data folder not found: {root} (from --data {spec})")
        self.spec = spec
        self.root = root
        files = list_images(root)
        if not files:
            raise UsageError(f"no images found under {root} (accepted: .png, .jpg, .jpeg, .webp, .bmp)")
        classes = folder_class_names(root, files)
        self._info = DataInfo(
            modality="image",
            channels=folder_native_channels(root),
            resolution=None,
            num_classes=len(classes) if classes else None,
            num_samples=len(files),
            extras={"class_names": classes} if classes else {},
        )

    def info(self) -> DataInfo:
        return self._info

    def load(self, resolution: int | None = None, channels: int | None = None, **_: Any) -> TensorImageDataset:
        return load_folder(self.root, resolution or self.default_resolution, channels or self._info.channels)


def _embedded_digits() -> tuple[torch.Tensor, torch.Tensor]:
    with resources.files("ganzoo.data").joinpath("assets/mnist-4k.npz").open("rb") as handle:
        arrays = np.load(handle)
        return from_numpy_images(arrays["images"]), torch.from_numpy(arrays["labels"].astype(np.int64))


def cache_dir() -> Path:
    """Where downloaded datasets live: $GANZOO_DATA_DIR, else $XDG_CACHE_HOME/ganzoo/datasets."""
    if os.environ.get("GANZOO_DATA_DIR"):
        return Path(os.environ["GANZOO_DATA_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ganzoo" / "datasets"


def offline() -> bool:
    """True when downloads are forbidden ($GANZOO_OFFLINE or $HF_HUB_OFFLINE set to 1/true)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("GANZOO_OFFLINE", "HF_HUB_OFFLINE"))


_TORCHVISION = {
    # spec: (torchvision class name, channels, resolution, classes)
    "mnist": ("MNIST", 1, 28, 10),
    "fashion-mnist": ("FashionMNIST", 1, 28, 10),
    "cifar10": ("CIFAR10", 3, 32, 10),
}


def _torchvision_reader(spec: str) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    def read() -> tuple[torch.Tensor, torch.Tensor]:
        import torchvision

        cls = getattr(torchvision.datasets, _TORCHVISION[spec][0])
        root = cache_dir()
        try:
            dataset = cls(str(root), train=True, download=False)
        except RuntimeError:
            if offline():
                raise GanzooError(
                    f"dataset {spec!r} is not in the cache {root} and downloads are off (GANZOO_OFFLINE or "
                    "HF_HUB_OFFLINE); run once online or copy the torchvision files there"
                ) from None
            try:
                dataset = cls(str(root), train=True, download=True)
            except Exception as exc:  # urllib, http and archive errors all mean the same to the user
                detail = " ".join(str(exc).split())  # torchvision reports one line per mirror
                raise GanzooError(
                    f"could not download dataset {spec!r} into {root}: {type(exc).__name__}: {detail}; "
                    "check the connection or copy the torchvision files there (set GANZOO_DATA_DIR to move it)"
                ) from None
        data = dataset.data
        images = from_numpy_images(data.numpy() if isinstance(data, torch.Tensor) else data)
        return images, torch.as_tensor(np.asarray(dataset.targets), dtype=torch.long)

    return read


_PREFIXED: dict[str, Callable[[str, str], DataSource]] = {
    "folder": lambda spec, rest: FolderSource(spec, Path(rest).expanduser()),
}
_NAMED: dict[str, Callable[[str], DataSource]] = {
    "mnist-4k": lambda spec: TensorImageSource(
        spec, _embedded_digits, DataInfo("image", channels=1, resolution=28, num_classes=10, num_samples=4000)
    ),
    **{
        name: (
            lambda spec, _c=c, _r=r, _k=k: TensorImageSource(
                spec, _torchvision_reader(spec), DataInfo("image", channels=_c, resolution=_r, num_classes=_k)
            )
        )
        for name, (_, c, r, k) in _TORCHVISION.items()
    },
}


def register_data(name: str, factory: Callable[..., DataSource], *, prefix: bool = False) -> None:
    """Add a data spec: a plain name (`factory(spec)`) or a prefix `name:REST` (`factory(spec, rest)`)."""
    (_PREFIXED if prefix else _NAMED)[name] = factory


def accepted_specs() -> str:
    return ", ".join([*sorted(_NAMED), *(f"{p}:PATH" for p in sorted(_PREFIXED))])


def resolve_data(spec: str | None = None) -> DataSource:
    """The data source for a spec string; an unknown spec is a UsageError listing the accepted ones."""
    spec = (spec or DEFAULT_DATA).strip()
    kind, sep, rest = spec.partition(":")
    if sep and kind in _PREFIXED:
        if not rest:
            raise UsageError(f"data spec {spec!r} needs a path after '{kind}:'")
        return _PREFIXED[kind](spec, rest)
    if spec in _NAMED:
        return _NAMED[spec](spec)
    raise UsageError(f"unknown data spec {spec!r}; accepted: {accepted_specs()}")
