"""Data specs: the strings users pass to `--data`, resolved to sources that build datasets for a model.

Accepted specs: `mnist-4k` (embedded, the default), `folder:PATH`, and the torchvision sets `mnist`,
`fashion-mnist`, `cifar10` (downloaded to the ganzoo cache on first use); `ganzoo.data.unpaired` registers the
two-domain specs `unpaired:DIR_A,DIR_B`, `unpaired:ROOT` and `digits-8x8-to-mnist`; `ganzoo.data.paired` the paired
specs `paired:ROOT` and `photos`. `register_data` adds more.
Any spec takes a selection after `?`: `mnist-4k?split=test`, `mnist-4k?classes=5-9&n=100&seed=1`; image specs also
take `task=sr2x|sr4x|inpaint|denoise|colorize` (training pairs made from the images), `crop=N` and `sigma=S`
(`ganzoo.data.paired`), and `paired:ROOT` takes `direction=a2b|b2a`.
"""

from __future__ import annotations

import dataclasses
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


SELECTION_KEYS = ("split", "column", "classes", "n", "seed", "task", "crop", "sigma", "direction")
PAIRING_KEYS = ("task", "crop", "sigma", "direction")  # handled by ganzoo.data.paired.pair_source
_Reader = Callable[[], tuple[torch.Tensor, torch.Tensor | None]]


class DataSource:
    """A resolved data spec: what the data is (`info`) and how to build a dataset for a model (`load`)."""

    spec: str

    def info(self) -> DataInfo:
        raise NotImplementedError

    def load(self, **options: Any) -> torch.utils.data.Dataset:
        """A dataset prepared as the model asks (`resolution`, `channels` for images)."""
        raise NotImplementedError

    def splits(self) -> tuple[str, ...]:
        """The named splits this source offers for `?split=` (none by default)."""
        return ()

    def split(self, name: str) -> DataSource:
        """The source restricted to one named split."""
        raise UsageError(f"data spec {self.spec!r} has no splits")

    def select(self, spec: str, classes: list[int] | None, n: int | None, seed: int) -> DataSource:
        """The source narrowed by `?classes=` and/or `?n=` (`spec`: the whole spec); images by default."""
        return SelectedSource(self, spec, classes, n, seed)


class TensorImageSource(DataSource):
    """Images that fit in memory as one uint8 tensor, resized and converted on load.

    `splits` maps split names (e.g. train, test) to readers of that part; the plain spec reads `read`.
    """

    def __init__(self, spec: str, read: _Reader, info: DataInfo, splits: dict[str, _Reader] | None = None):
        self.spec = spec
        self._read = read
        self._info = info
        self._splits = splits or {}

    def info(self) -> DataInfo:
        return self._info

    def splits(self) -> tuple[str, ...]:
        return tuple(self._splits)

    def split(self, name: str) -> DataSource:
        if name not in self._splits:
            accepted = ", ".join(self._splits) or "none"
            raise UsageError(f"data spec {self.spec!r} has no split {name!r}; accepted: {accepted}")
        info = dataclasses.replace(self._info, num_samples=None)
        return TensorImageSource(f"{self.spec}?split={name}", self._splits[name], info)

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


EMBEDDED_TEST_PER_CLASS = 100  # mnist-4k?split=test: 1,000 held-out digits; split=train: the other 3,000


def _embedded_digits() -> tuple[torch.Tensor, torch.Tensor]:
    with resources.files("ganzoo.data").joinpath("assets/mnist-4k.npz").open("rb") as handle:
        arrays = np.load(handle)
        return from_numpy_images(arrays["images"]), torch.from_numpy(arrays["labels"].astype(np.int64))


def balanced_split(read_all: _Reader, name: str, test_per_class: int) -> _Reader:
    """A fixed, class-balanced split of labelled data: the same `test_per_class` test images of every class
    everywhere (seeded); `name` is train or test."""

    def read() -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = read_all()
        generator = torch.Generator().manual_seed(20261122)
        test = torch.zeros(len(labels), dtype=torch.bool)
        for digit in range(int(labels.max()) + 1):
            members = torch.nonzero(labels == digit).flatten()
            test[members[torch.randperm(len(members), generator=generator)[:test_per_class]]] = True
        keep = test if name == "test" else ~test
        return images[keep], labels[keep]

    return read


def _embedded_digits_split(name: str) -> _Reader:
    """A fixed, class-balanced split of the embedded digits: the same 100 test digits per class everywhere."""
    return balanced_split(_embedded_digits, name, EMBEDDED_TEST_PER_CLASS)


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


def _torchvision_reader(spec: str, train: bool = True) -> _Reader:
    def read() -> tuple[torch.Tensor, torch.Tensor]:
        import torchvision

        cls = getattr(torchvision.datasets, _TORCHVISION[spec][0])
        root = cache_dir()
        try:
            dataset = cls(str(root), train=train, download=False)
        except RuntimeError:
            if offline():
                raise GanzooError(
                    f"dataset {spec!r} is not in the cache {root} and downloads are off (GANZOO_OFFLINE or "
                    "HF_HUB_OFFLINE); run once online or copy the torchvision files there"
                ) from None
            try:
                dataset = cls(str(root), train=train, download=True)
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
        spec,
        _embedded_digits,
        DataInfo("image", channels=1, resolution=28, num_classes=10, num_samples=4000),
        splits={name: _embedded_digits_split(name) for name in ("train", "test")},
    ),
    **{
        name: (
            lambda spec, _c=c, _r=r, _k=k: TensorImageSource(
                spec,
                _torchvision_reader(spec),
                DataInfo("image", channels=_c, resolution=_r, num_classes=_k),
                splits={"train": _torchvision_reader(spec), "test": _torchvision_reader(spec, train=False)},
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


class SelectedSource(DataSource):
    """A labelled or unlabelled source narrowed to some classes and/or a seeded random subset of `n` samples.

    Selected classes are renumbered 0..k-1 in the order given; their original names go to `class_names`.
    """

    def __init__(self, base: DataSource, spec: str, classes: list[int] | None, n: int | None, seed: int) -> None:
        self.base = base
        self.spec = spec
        self.classes = classes
        self.n = n
        self.seed = seed
        native = base.info()
        if classes is not None:
            if native.num_classes is None:
                raise UsageError(f"'classes=' needs labelled data but {base.spec!r} has no labels {_LABELLED_HINT}")
            bad = [c for c in classes if not 0 <= c < native.num_classes]
            if bad:
                raise UsageError(
                    f"classes {bad} are not in {base.spec!r}, which has classes 0-{native.num_classes - 1}"
                )
        names = native.extras.get("class_names") or [str(c) for c in range(native.num_classes or 0)]
        extras = dict(native.extras)
        if classes is not None:
            extras["class_names"] = [names[c] for c in classes]
        self._info = dataclasses.replace(
            native,
            num_classes=len(classes) if classes is not None else native.num_classes,
            num_samples=n,
            extras=extras,
        )

    def info(self) -> DataInfo:
        return self._info

    def load(self, **options: Any) -> TensorImageDataset:
        dataset = self.base.load(**options)
        if not isinstance(dataset, TensorImageDataset):
            raise UsageError(f"'classes=' and 'n=' are not supported for {self.base.spec!r}")
        images, labels = dataset.images, dataset.labels
        if self.classes is not None:
            assert labels is not None  # checked against info() in __init__
            remap = torch.full((int(labels.max()) + 1,), -1, dtype=torch.long)
            remap[torch.tensor(self.classes)] = torch.arange(len(self.classes))
            labels = remap[labels]
            keep = labels >= 0
            images, labels = images[keep], labels[keep]
        if self.n is not None:
            order = seeded_subset(len(images), self.n, self.seed, self.spec)
            images = images[order]
            labels = labels[order] if labels is not None else None
        return TensorImageDataset(images, labels)


_LABELLED_HINT = "(labelled specs: mnist-4k, mnist, fashion-mnist, cifar10, folder:PATH with one subfolder per class)"


def seeded_subset(total: int, n: int, seed: int, spec: str) -> torch.Tensor:
    """The indices, in increasing order, of a random subset of `n` of `total` samples drawn with `seed` (what
    `?n=COUNT&seed=` selects); more than there are is a UsageError naming `spec`."""
    if n > total:
        raise UsageError(f"n={n} but {spec!r} has only {total} samples")
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def _parse_classes(text: str, spec: str) -> list[int]:
    classes: list[int] = []
    try:
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            span = range(int(low), int(high) + 1) if dash else [int(low)]
            classes.extend(c for c in span if c not in classes)
    except ValueError:
        raise UsageError(
            f"bad classes={text!r} in {spec!r}; accepted: class numbers and ranges, e.g. 5-9 or 0,2,4"
        ) from None
    if not classes:
        raise UsageError(f"classes={text!r} in {spec!r} selects no class; e.g. 5-9 or 0,2,4")
    return classes


def _parse_selection(query: str, spec: str) -> dict[str, str]:
    selection: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if key not in SELECTION_KEYS or not eq or not value:
            raise UsageError(
                f"bad selection {item!r} in data spec {spec!r}; accepted: "
                "split=NAME, column=NAME (hf:), classes=5-9 (or 0,2,4), n=COUNT, seed=INT, "
                "task=sr2x|sr4x|inpaint|denoise|colorize, "
                "crop=N, sigma=S, direction=a2b|b2a joined by '&'"
            )
        selection[key] = value
    return selection


def _positive_int(selection: dict[str, str], key: str, spec: str, minimum: int) -> int | None:
    if key not in selection:
        return None
    try:
        value = int(selection[key])
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UsageError(f"{key}={selection[key]!r} in {spec!r} must be an integer >= {minimum}")
    return value


def resolve_data(spec: str | None = None) -> DataSource:
    """The data source for a spec string; an unknown spec is a UsageError listing the accepted ones."""
    spec = (spec or DEFAULT_DATA).strip()
    base_spec, _, query = spec.partition("?")
    source = _resolve_base(base_spec)
    if not query:
        return source
    selection = _parse_selection(query, spec)
    if "split" in selection:
        if not source.splits():
            raise UsageError(f"data spec {base_spec!r} has no splits; 'split=' is accepted by {_split_specs()}")
        source = source.split(selection["split"])
    if "column" in selection:
        if not hasattr(source, "with_column"):
            raise UsageError(f"column= picks the image column of hf: data; {base_spec!r} has no columns")
        source = source.with_column(selection["column"])
    classes = _parse_classes(selection["classes"], spec) if "classes" in selection else None
    n = _positive_int(selection, "n", spec, 1)
    seed = _positive_int(selection, "seed", spec, 0) or 0
    if classes is not None or n is not None:
        source = source.select(spec, classes, n, seed)
    pairing = {key: selection[key] for key in PAIRING_KEYS if key in selection}
    if pairing:
        from ganzoo.data.paired import pair_source  # imports this module

        source = pair_source(source, spec, pairing, split=selection.get("split"), seed=seed)
    return source


def _split_specs() -> str:
    """The named specs that offer `?split=` (sources are lazy: building one reads no data)."""
    return ", ".join(name for name, factory in sorted(_NAMED.items()) if factory(name).splits())


def _resolve_base(spec: str) -> DataSource:
    kind, sep, rest = spec.partition(":")
    if sep and kind in _PREFIXED:
        if not rest:
            raise UsageError(f"data spec {spec!r} needs a path after '{kind}:'")
        return _PREFIXED[kind](spec, rest)
    if spec in _NAMED:
        return _NAMED[spec](spec)
    raise UsageError(f"unknown data spec {spec!r}; accepted: {accepted_specs()}")
