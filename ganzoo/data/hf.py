"""`hf:` data: Hugging Face datasets of images, through the `datasets` library (`pip install 'ganzoo[datasets]'`).

- `hf:NAME[:CONFIG]`: a Hub dataset, downloaded once into the `datasets` cache (with `HF_HUB_OFFLINE=1` only what
  is cached loads; anything else is a one-line error);
- `hf:PATH`: a local dataset: a `save_to_disk` directory (a Dataset, or a DatasetDict with splits) or a directory
  of parquet files (`PATH/<split>-*.parquet`, `PATH/<split>/*.parquet`, or `PATH/*.parquet` as `train`).

`?split=NAME` picks the split (default `train`; an unknown one is an error listing the dataset's), `?column=NAME`
the image column (default: the first `Image` feature); a `ClassLabel` column (`label`, else the first one) gives
the labels and class names. On `load` the images are decoded to the model's resolution (shorter side, centre
crop) and channels: into memory, or, past `ganzoo.data.cache.in_memory_limit()`, into the on-disk cache (keyed by
the dataset's fingerprint, the column, the resolution and the channels) and memory-mapped from there.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ganzoo.data.images import PIL_MODES, TensorImageDataset, square
from ganzoo.data.sources import DataSource, cache_dir, register_data
from ganzoo.errors import GanzooError, UsageError
from ganzoo.plugin import DataInfo

DEFAULT_SPLIT = "train"
LIKELY_SPLITS = ("train", "validation", "test")
"""What `splits()` offers before the dataset is opened (`load` checks the real names)."""


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise UsageError("hf: data needs the datasets library: pip install 'ganzoo[datasets]'") from None
    return datasets


class HFSource(DataSource):
    """A Hugging Face dataset's split of images (see the module docstring)."""

    def __init__(self, spec: str, name: str, split: str = DEFAULT_SPLIT, column: str | None = None) -> None:
        self.spec, self.name, self.split_name, self.column = spec, name, split, column
        self._table: Any = None

    # ---------------------------------------------------------------------------------------------- opening

    def _open(self) -> Any:
        """The split as a `datasets.Dataset` (opened once)."""
        if self._table is not None:
            return self._table
        datasets = _datasets()
        path = Path(self.name).expanduser()
        try:
            if path.is_dir():
                table = self._open_local(datasets, path)
            else:
                repo, _, config = self.name.partition(":")
                table = datasets.load_dataset(repo, config or None, split=self.split_name)
        except GanzooError:
            raise
        except (OSError, ValueError) as exc:  # not found, offline and not cached, unreachable
            raise UsageError(f"cannot open {self.spec}: {' '.join(str(exc).split())[:300]}") from None
        self._table = table
        return table

    def _open_local(self, datasets: Any, path: Path) -> Any:
        if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                return self._pick(loaded, list(loaded))
            if self.split_name != DEFAULT_SPLIT:
                raise UsageError(f"{self.spec}: {path} holds one split (no DatasetDict), so split= does not apply")
            return loaded
        by_split: dict[str, list[str]] = {}
        for parquet in sorted(path.rglob("*.parquet")):
            inner = parquet.relative_to(path).parts
            split = inner[0] if len(inner) > 1 else (parquet.stem.split("-")[0] if "-" in parquet.stem else "train")
            by_split.setdefault(split, []).append(str(parquet))
        if not by_split:
            raise UsageError(f"{path} is neither a save_to_disk dataset nor a folder of parquet files")
        if self.split_name not in by_split:
            self._pick({}, sorted(by_split))
        return datasets.load_dataset("parquet", data_files={self.split_name: by_split[self.split_name]})[
            self.split_name
        ]

    def _pick(self, splits: Any, names: list[str]) -> Any:
        if self.split_name not in names:
            raise UsageError(f"{self.spec}: no split {self.split_name!r}; the dataset has {', '.join(names)}")
        return splits[self.split_name]

    def _columns(self) -> tuple[str, str | None, list[str] | None]:
        """The image column, the label column (None: unlabelled) and the class names."""
        datasets = _datasets()
        features = self._open().features
        images = [k for k, f in features.items() if isinstance(f, datasets.Image)]
        column = self.column or (images[0] if images else None)
        if column is None or not isinstance(features.get(column), datasets.Image):
            found = ", ".join(images) or "none"
            raise UsageError(f"{self.spec}: {column or 'it'!r} is not an image column (image columns: {found})")
        labels = [k for k, f in features.items() if isinstance(f, datasets.ClassLabel)]
        label = "label" if "label" in labels else (labels[0] if labels else None)
        return column, label, list(features[label].names) if label else None

    # ------------------------------------------------------------------------------------------- DataSource

    def info(self) -> DataInfo:
        classes = self._columns()[2]
        table = self._open()
        return DataInfo(
            modality="image",
            channels=3,
            resolution=None,
            num_classes=len(classes) if classes else None,
            num_samples=len(table),
            extras={"class_names": classes} if classes else {},
        )

    def splits(self) -> tuple[str, ...]:
        return LIKELY_SPLITS

    def split(self, name: str) -> DataSource:
        return HFSource(f"{self.spec}?split={name}", self.name, name, self.column)

    def with_column(self, column: str) -> HFSource:
        """The same data with images from `column`."""
        return HFSource(self.spec, self.name, self.split_name, column)

    def load(self, resolution: int | None = None, channels: int | None = None, **_: Any) -> TensorImageDataset:
        from ganzoo.data.cache import cached, in_memory_limit, open_entry, write_meta

        resolution, channels = resolution or 64, channels or 3
        if channels not in PIL_MODES:
            raise UsageError(f"channels={channels} is not supported for hf: data; accepted: 1, 3 or 4")
        table = self._open()
        column, label, classes = self._columns()
        shape = (len(table), channels, resolution, resolution)
        labels = torch.tensor(table[label], dtype=torch.long) if label else None
        if int(np.prod(shape)) <= in_memory_limit():
            images = torch.empty(shape, dtype=torch.uint8)
            self._decode(table, column, images.numpy(), resolution, PIL_MODES[channels])
            return TensorImageDataset(images, labels)

        def build(directory: Path) -> None:
            from ganzoo.data.cache import IMAGES, LABELS

            rows = np.memmap(directory / IMAGES, dtype=np.uint8, mode="w+", shape=shape)
            self._decode(table, column, rows, resolution, PIL_MODES[channels])
            rows.flush()
            if labels is not None:
                np.save(directory / LABELS, labels.numpy())
            write_meta(directory, shape, [], classes)

        fingerprint = getattr(table, "_fingerprint", self.spec)
        key = hashlib.sha256(f"hf {fingerprint} {column} {resolution} {channels}".encode()).hexdigest()[:32]
        dataset, _ = open_entry(cached(cache_dir() / "hf", key, build))
        return dataset

    def _decode(self, table: Any, column: str, into: np.ndarray, resolution: int, mode: str) -> None:
        """Every image of `column` into the rows of `into` (N, C, R, R), with a progress bar."""
        from tqdm.auto import tqdm

        for index, value in enumerate(tqdm(table[column], desc=f"decoding {self.spec}", unit="img", leave=False)):
            image = value if isinstance(value, Image.Image) else Image.open(io.BytesIO(value["bytes"]))
            array = np.asarray(square(image.convert(mode), resolution), dtype=np.uint8)
            into[index] = array.reshape(resolution, resolution, -1).transpose(2, 0, 1)


def _hf_source(spec: str, rest: str) -> HFSource:
    return HFSource(spec, rest)


register_data("hf", _hf_source, prefix=True)

__all__ = ["HFSource"]
