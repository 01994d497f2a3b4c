"""Data: spec strings (`mnist-4k`, `folder:PATH`, torchvision sets, `hf:NAME`, `unpaired:...`, `paired:...`,
`photos`, `SPEC?task=...`) resolved to datasets (in memory, or memory-mapped from the on-disk cache)."""

import ganzoo.data.hf
import ganzoo.text.corpus  # noqa: F401  (registers text:PATH, tokens:PATH and surnames)
from ganzoo.data.images import TensorImageDataset, pass_through
from ganzoo.data.paired import DegradedSource, PairedDataset, PairedFolderSource, PhotosSource
from ganzoo.data.sources import (
    DEFAULT_DATA,
    DataSource,
    accepted_specs,
    cache_dir,
    register_data,
    resolve_data,
)
from ganzoo.data.unpaired import UnpairedDataset, UnpairedSource

__all__ = [
    "DEFAULT_DATA",
    "DataSource",
    "DegradedSource",
    "PairedDataset",
    "PairedFolderSource",
    "PhotosSource",
    "TensorImageDataset",
    "UnpairedDataset",
    "UnpairedSource",
    "accepted_specs",
    "cache_dir",
    "pass_through",
    "register_data",
    "resolve_data",
]
