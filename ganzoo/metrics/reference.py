"""Reference features of real data, computed once per (data content, extractor, resolution) and cached.

The cache key hashes the images themselves as the model sees them (uint8, at its resolution and channel count),
so a changed folder or another selection gets new statistics, and the extractor's key, so another network or
other weights never reuse them. Files are safetensors written under a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors.torch import load_file

from ganzoo.data import resolve_data
from ganzoo.data.images import TensorImageDataset
from ganzoo.engine.checkpoint import save_safetensors
from ganzoo.errors import UsageError
from ganzoo.metrics.features import FeatureExtractor


def metrics_cache_dir() -> Path:
    """$GANZOO_METRICS_CACHE, else $XDG_CACHE_HOME/ganzoo/metrics (~/.cache/ganzoo/metrics)."""
    if os.environ.get("GANZOO_METRICS_CACHE"):
        return Path(os.environ["GANZOO_METRICS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ganzoo" / "metrics"


def load_real_images(data: str, resolution: int | None, channels: int | None) -> TensorImageDataset:
    """The real images of a data spec at the given resolution and channel count (uint8 in memory)."""
    dataset = resolve_data(data).load(resolution=resolution, channels=channels)
    if not isinstance(dataset, TensorImageDataset):
        raise UsageError(f"image metrics need image data; {data!r} is not an image data spec")
    return dataset


def reference_key(images: torch.Tensor, extractor: FeatureExtractor) -> str:
    content = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]
    n, c, h, w = images.shape
    return f"{extractor.key}-{content}-{n}x{c}x{h}x{w}"


def extract_all(
    extractor: FeatureExtractor, images: torch.Tensor, batch_size: int = 500, progress: bool = False, what: str = ""
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features (and logits) of uint8 or [-1, 1] float images, in batches."""
    from tqdm.auto import tqdm

    features, logits = [], []
    for start in tqdm(range(0, len(images), batch_size), desc=what, disable=not progress, leave=False):
        chunk = images[start : start + batch_size]
        if chunk.dtype == torch.uint8:
            chunk = chunk.float() / 127.5 - 1
        chunk_features, chunk_logits = extractor.extract(chunk)
        features.append(chunk_features)
        if chunk_logits is not None:
            logits.append(chunk_logits)
    return torch.cat(features), torch.cat(logits) if logits else None


def reference_features(
    data: str,
    extractor: FeatureExtractor,
    resolution: int | None,
    channels: int | None,
    cache: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """Features of every real image of `data` (as a model of that resolution/channels sees it), cached."""
    images = load_real_images(data, resolution, channels).images
    path = metrics_cache_dir() / f"{reference_key(images, extractor)}.safetensors"
    if cache and path.is_file():
        try:
            return load_file(str(path))["features"]
        except Exception:  # a damaged cache file is recomputed, never trusted
            path.unlink(missing_ok=True)
    features, _ = extract_all(extractor, images, progress=progress, what=f"features of {data}")
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        metadata = {"data": data, "extractor": extractor.key}
        save_safetensors({"features": features.contiguous()}, partial, metadata)
        os.replace(partial, path)
    return features
