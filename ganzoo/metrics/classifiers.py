"""Frozen image classifiers chosen by name or file, for losses that ask what an image shows: CycleGAN's semantic
consistency loss (CyCADA, Hoffman et al. 2018) reads the class a classifier sees in an image and in its translation.

A classifier spec is one of
- a shipped name: `digits` (ganzoo's digit CNN trained on MNIST, `mnist-4k?split=train`; the `digits` metrics'
  network), `uci-digits` (the same CNN trained on the UCI 8x8 digits upscaled to 28 px,
  `uci-digits-8x8?split=train`: the classifier of domain A of `digits-8x8-to-mnist`) or `mnist-resnet` (timm's
  `test_resnet`, untrained weights trained here on `mnist-4k?split=train` with another seed: a classifier of
  domain B that is not the `digits` network the benchmarks judge with);
- a safetensors file of a state dict whose metadata says what it holds: `architecture` `DigitsClassifier` (what
  `tools/train_digits_classifier.py` writes) or `timm:NAME` (a timm model, e.g. one fine-tuned on the user's
  domain, saved with `safetensors.torch.save_file(model.state_dict(), path, metadata=...)`), with `num_classes`,
  and for timm optionally `in_chans` (default 3), `input_size` (`H,W`; default: the image's own) and
  `mean` / `std` (`r,g,b`; default: the timm model's pretrained configuration).
Images go in as (N, C, H, W) in [-1, 1]; the classifier maps the channels, resizes to its input size and returns
logits. It stays in eval mode and its parameters never train.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import safetensors
import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.errors import UsageError
from ganzoo.metrics.features import _to_channels

SHIPPED = {
    "digits": "assets/digits.safetensors",
    "uci-digits": "assets/uci-digits.safetensors",
    "mnist-resnet": "assets/mnist-resnet.safetensors",
}
ARCHITECTURES = "DigitsClassifier or timm:NAME"

__all__ = ["FrozenClassifier", "accepted_classifiers", "classifier_metadata", "load_classifier"]


def accepted_classifiers() -> str:
    return f"{', '.join(SHIPPED)} or a safetensors file (metadata architecture: {ARCHITECTURES})"


class FrozenClassifier(nn.Module):
    """`net` behind the input mapping it needs (channels, size, normalisation), frozen and always in eval mode."""

    def __init__(
        self,
        net: nn.Module,
        channels: int,
        input_size: tuple[int, int] | None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.channels = channels
        self.input_size = input_size
        self.register_buffer("mean", None if mean is None else torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", None if std is None else torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenClassifier:
        """Stays in eval mode: batch norm keeps its running statistics whatever the caller does."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _to_channels(images, self.channels).clamp(-1, 1)
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", antialias=True, align_corners=False)
        if self.mean is not None:
            x = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self.net(x).float()


def _path(spec: str) -> Path:
    if spec in SHIPPED:
        with resources.as_file(resources.files("ganzoo.metrics").joinpath(SHIPPED[spec])) as path:
            return Path(path)
    path = Path(spec).expanduser().resolve()
    if not path.is_file():
        raise UsageError(f"classifier {spec!r} is neither a shipped one nor a file; accepted: {accepted_classifiers()}")
    return path


def classifier_metadata(spec: str) -> dict[str, str]:
    """The metadata stored in the classifier's safetensors file (how it was trained, its accuracy, ...)."""
    path = _path(spec)
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # not a safetensors file, or a damaged one
        raise UsageError(f"classifier {spec!r}: {path} is not a readable safetensors file ({exc})") from None


def _floats(text: str, key: str, spec: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"classifier {spec!r}: metadata {key}={text!r} must be comma-separated numbers") from None


def _build(spec: str) -> FrozenClassifier:
    metadata = classifier_metadata(spec)
    architecture = metadata.get("architecture", "")
    if architecture != "DigitsClassifier" and not architecture.startswith("timm:"):
        raise UsageError(
            f"classifier {spec!r}: metadata architecture={architecture!r} is not known; accepted: {ARCHITECTURES}"
        )
    try:
        num_classes = int(metadata.get("num_classes", "10" if architecture == "DigitsClassifier" else ""))
    except ValueError:
        raise UsageError(f"classifier {spec!r}: its metadata needs num_classes (an integer)") from None
    if architecture == "DigitsClassifier":
        from ganzoo.metrics.digits import DigitsClassifier

        net: nn.Module = DigitsClassifier(num_classes=num_classes)
        channels, size, mean, std = 1, (28, 28), None, None
    else:
        import timm
        import timm.data

        name = architecture[len("timm:") :]
        if not timm.is_model(name):
            raise UsageError(f"classifier {spec!r}: unknown timm model {name!r}")
        channels = int(metadata.get("in_chans", "3"))
        net = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=channels)
        config = timm.data.resolve_data_config({}, model=net)
        size = (
            tuple(int(v) for v in _floats(metadata["input_size"], "input_size", spec))
            if "input_size" in metadata
            else None
        )
        mean = _floats(metadata["mean"], "mean", spec) if "mean" in metadata else tuple(config["mean"])[:channels]
        std = _floats(metadata["std"], "std", spec) if "std" in metadata else tuple(config["std"])[:channels]
    from safetensors.torch import load_file

    try:
        net.load_state_dict(load_file(str(_path(spec))), strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:200]
        raise UsageError(f"classifier {spec!r}: its weights do not fit {architecture} ({first})") from None
    return FrozenClassifier(net, channels, size, mean, std)


@functools.lru_cache(maxsize=8)
def _cached(spec: str, version: tuple, device: str) -> FrozenClassifier:
    return _build(spec).to(device)


def load_classifier(spec: str, device: torch.device | str = "cpu") -> FrozenClassifier:
    """The frozen classifier of `spec` on `device`, read once per file version (path, size, modification time) and
    device; every caller gets the same module, which never changes."""
    path = _path(spec)
    stat = path.stat()
    return _cached(spec, (str(path), stat.st_size, stat.st_mtime_ns), str(torch.device(device)))
