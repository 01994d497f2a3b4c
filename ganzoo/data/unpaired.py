"""Unpaired two-domain image data for image-to-image translation (CycleGAN and kin).

Specs:
- `unpaired:DIR_A,DIR_B`: every image under DIR_A is domain A, every image under DIR_B domain B;
- `unpaired:ROOT`: the layout of the CycleGAN datasets, ROOT/trainA and ROOT/trainB (`?split=test`: ROOT/testA
  and ROOT/testB);
- `digits-8x8-to-mnist` (embedded, no download): domain A is the 1,797 real 8x8 UCI handwritten digits (values
  0..16 scaled to 0..255, upscaled to the model's resolution), domain B the 4,000 embedded MNIST digits
  (`mnist-4k`). Both carry their digit labels, which training never uses and benchmarks do; `?split=train|test`
  picks fixed class-balanced parts of both (UCI: 50 test digits per class; MNIST: those of `mnist-4k`);
- `uci-digits-8x8` (embedded): domain A alone as labelled image data, with the same `?split=train|test`.

A batch holds `image_a` and `image_b` (plus `label_a` / `label_b` for labelled domains) drawn independently: an
epoch walks through the larger domain, and the other domain's images are drawn at random with a generator seeded
by the batch's indices, so the pairing differs every epoch yet depends on the data order alone (a resumed run
sees the same batches). Optional random horizontal flips (the `flip` load option) are drawn the same way.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganzoo.data.images import TensorImageDataset, from_numpy_images
from ganzoo.data.sources import (
    DataSource,
    FolderSource,
    TensorImageSource,
    balanced_split,
    register_data,
    resolve_data,
)
from ganzoo.errors import UsageError
from ganzoo.plugin import DataInfo

UCI_TEST_PER_CLASS = 50  # digits-8x8-to-mnist?split=test: 500 held-out UCI digits; split=train: the other 1,297
UCI_MAX_VALUE = 16  # the 8x8 UCI digits count set pixels of a 4x4 block: 0..16
DIGITS_PAIR = "digits-8x8-to-mnist"
UCI_DIGITS = "uci-digits-8x8"
DIGITS_PAIR_RESOLUTION = 28
_Domains = Callable[[], tuple[DataSource, DataSource]]


class UnpairedDataset(torch.utils.data.Dataset):
    """Two image domains sampled independently; items are dicts `image_a`, `image_b` in [-1, 1] (and labels).

    The length is the larger domain's: index i is image i of that domain, and the other domain's image is drawn
    at random by a generator seeded from the batch's indices. With `flip`, each image is mirrored
    left-right with probability 1/2, drawn from the same generator.
    """

    def __init__(self, a: TensorImageDataset, b: TensorImageDataset, flip: bool = False) -> None:
        if len(a) == 0 or len(b) == 0:
            raise ValueError(f"both domains need images, got {len(a)} and {len(b)}")
        self.a, self.b, self.flip = a, b, flip
        self._a_leads = len(a) >= len(b)

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def _generator(self, index: torch.Tensor) -> torch.Generator:
        return torch.Generator().manual_seed(zlib.crc32(index.numpy().astype(np.int64).tobytes()))

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        generator = self._generator(index)
        drawn = torch.randint(len(self.b if self._a_leads else self.a), (len(index),), generator=generator)
        picks = {"a": index, "b": drawn} if self._a_leads else {"a": drawn, "b": index}
        batch: dict[str, torch.Tensor] = {}
        for name, domain in (("a", self.a), ("b", self.b)):
            images = domain.images[picks[name]].float().div_(127.5).sub_(1.0)
            if self.flip:
                mirror = torch.rand(len(index), generator=generator) < 0.5
                images[mirror] = images[mirror].flip(-1)
            batch[f"image_{name}"] = images
            if domain.labels is not None:
                batch[f"label_{name}"] = domain.labels[picks[name]]
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[0] for key, value in self.__getitems__([index]).items()}


class UnpairedSource(DataSource):
    """Two sources, domain A and domain B, loaded at the same resolution and channels into an UnpairedDataset.

    `splits` maps split names to factories of the two domains' sources (for `?split=`); the factories run only
    when a split is asked for, so a missing test folder is an error only then.
    """

    def __init__(
        self,
        spec: str,
        domain_a: DataSource,
        domain_b: DataSource,
        splits: dict[str, _Domains] | None = None,
        resolution: int | None = None,
    ) -> None:
        self.spec = spec
        self.domain_a, self.domain_b = domain_a, domain_b
        self._splits = splits or {}
        self._resolution = resolution
        info_a, info_b = domain_a.info(), domain_b.info()
        same_classes = info_a.num_classes is not None and info_a.num_classes == info_b.num_classes
        channels = [c for c in (info_a.channels, info_b.channels) if c is not None]
        sizes = [n for n in (info_a.num_samples, info_b.num_samples) if n is not None]
        self._info = DataInfo(
            modality="image-to-image",
            channels=max(channels) if channels else None,
            resolution=resolution or (info_a.resolution if info_a.resolution == info_b.resolution else None),
            num_classes=info_a.num_classes if same_classes else None,
            num_samples=max(sizes) if len(sizes) == 2 else None,
            extras={"domains": [domain_a.spec, domain_b.spec], "domain_sizes": sizes if len(sizes) == 2 else None},
        )

    def info(self) -> DataInfo:
        return self._info

    def splits(self) -> tuple[str, ...]:
        return tuple(self._splits)

    def split(self, name: str) -> DataSource:
        if name not in self._splits:
            accepted = ", ".join(self._splits) or "none"
            raise UsageError(f"data spec {self.spec!r} has no split {name!r}; accepted: {accepted}")
        domain_a, domain_b = self._splits[name]()
        return UnpairedSource(f"{self.spec}?split={name}", domain_a, domain_b, resolution=self._resolution)

    def load(
        self,
        resolution: int | None = None,
        channels: int | None = None,
        flip: bool = False,
        **_: Any,
    ) -> UnpairedDataset:
        """Both domains at `resolution` (default: the data's, else 64) and `channels` (default: the data's)."""
        resolution = resolution or self._info.resolution or FolderSource.default_resolution
        channels = channels or self._info.channels
        domains = []
        for source in (self.domain_a, self.domain_b):
            dataset = source.load(resolution=resolution, channels=channels)
            if not isinstance(dataset, TensorImageDataset):
                raise UsageError(f"{source.spec!r} cannot be a domain of unpaired data")
            domains.append(dataset)
        return UnpairedDataset(domains[0], domains[1], flip=flip)


def _folder(spec: str, path: str) -> FolderSource:
    return FolderSource(spec, Path(path.strip()).expanduser())


def _layout_domains(spec: str, root: Path, split: str) -> tuple[DataSource, DataSource]:
    return FolderSource(spec, root / f"{split}A"), FolderSource(spec, root / f"{split}B")


def unpaired_source(spec: str, rest: str) -> UnpairedSource:
    """`unpaired:DIR_A,DIR_B` or `unpaired:ROOT` (ROOT/trainA, trainB; `?split=test`: testA, testB)."""
    if "," in rest:
        parts = rest.split(",")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise UsageError(f"data spec {spec!r} must name two folders, unpaired:DIR_A,DIR_B, or one root folder")
        return UnpairedSource(spec, _folder(spec, parts[0]), _folder(spec, parts[1]))
    root = Path(rest).expanduser()
    if not root.is_dir():
        raise UsageError(f"data folder not found: {root} (from --data {spec})")
    if not (root / "trainA").is_dir() or not (root / "trainB").is_dir():
        raise UsageError(
            f"{root} lacks the CycleGAN layout (trainA and trainB subfolders; testA and testB for ?split=test); "
            "or give two folders: unpaired:DIR_A,DIR_B"
        )
    splits = {name: (lambda name=name: _layout_domains(spec, root, name)) for name in ("train", "test")}
    domain_a, domain_b = _layout_domains(spec, root, "train")
    return UnpairedSource(spec, domain_a, domain_b, splits)


def _uci_digits() -> tuple[torch.Tensor, torch.Tensor]:
    with resources.files("ganzoo.data").joinpath("assets/optdigits-8x8.npz").open("rb") as handle:
        arrays = np.load(handle)
        scaled = np.rint(arrays["images"].astype(np.float32) * (255.0 / UCI_MAX_VALUE)).astype(np.uint8)
        return from_numpy_images(scaled), torch.from_numpy(arrays["labels"].astype(np.int64))


def _uci_digits_split(name: str) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    """A fixed class-balanced split of the UCI digits: the same 50 test digits per class everywhere."""
    return balanced_split(_uci_digits, name, UCI_TEST_PER_CLASS)


def uci_digits_source(spec: str = UCI_DIGITS) -> TensorImageSource:
    """The embedded 8x8 UCI digits as an image source (labels 0-9, splits train and test)."""
    info = DataInfo("image", channels=1, resolution=8, num_classes=10, num_samples=1797)
    splits = {name: _uci_digits_split(name) for name in ("train", "test")}
    return TensorImageSource(spec, _uci_digits, info, splits=splits)


def digits_pair_source(spec: str = DIGITS_PAIR) -> UnpairedSource:
    """`digits-8x8-to-mnist`: UCI 8x8 digits (domain A) and the embedded MNIST digits (domain B), both labelled."""
    uci, mnist = uci_digits_source(), resolve_data("mnist-4k")
    splits = {name: (lambda name=name: (uci.split(name), mnist.split(name))) for name in ("train", "test")}
    return UnpairedSource(spec, uci, mnist, splits, resolution=DIGITS_PAIR_RESOLUTION)


register_data("unpaired", unpaired_source, prefix=True)
register_data(DIGITS_PAIR, digits_pair_source)
register_data(UCI_DIGITS, uci_digits_source)
