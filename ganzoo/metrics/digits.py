"""The `digits` feature extractor: a small CNN trained on `mnist-4k?split=train` for 28x28 single-channel digits.

It is the reference network for scoring generated digits: its pooled penultimate features (`features`) feed
FID/KID, and its logits (`forward`) give the conditional accuracy of class-conditional generators. Inputs are
float images in [-1, 1] of shape (N, 1, 28, 28), as generators emit them (`uint8 / 127.5 - 1` for real data).

The shipped weights live in `assets/digits.safetensors` inside this package; `tools/train_digits_classifier.py`
reproduces them, and the file's metadata records the seed, data, held-out accuracy and torch version.
"""

from __future__ import annotations

import functools
from importlib import resources

import safetensors
import safetensors.torch
import torch
from torch import nn

WEIGHTS_FILE = "assets/digits.safetensors"
FEATURE_DIM = 128
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)


def _conv_block(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DigitsClassifier(nn.Module):
    """CNN for (N, 1, 28, 28) digits in [-1, 1]: 28->14->7 conv stages, global average pool, linear head.

    `features` returns the pooled FEATURE_DIM-dimensional penultimate activations, `forward` the class logits.
    There is no dropout, and batch norm uses its running statistics in eval mode, so eval features are
    deterministic and independent of the batch they are computed in.
    """

    def __init__(self, feature_dim: int = FEATURE_DIM, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_block(1, 32),
            nn.MaxPool2d(2),  # 14x14
            _conv_block(32, 48),
            _conv_block(48, 64),
            nn.MaxPool2d(2),  # 7x7
            _conv_block(64, 64),
            _conv_block(64, feature_dim, kernel_size=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim
        self.num_classes = num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features, shape (N, feature_dim)."""
        if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"expected images of shape (N, 1, 28, 28), got {tuple(x.shape)}")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (N, num_classes)."""
        return self.head(self.features(x))


@functools.lru_cache(maxsize=1)
def _weights() -> dict[str, torch.Tensor]:
    data = resources.files("ganzoo.metrics").joinpath(WEIGHTS_FILE).read_bytes()
    return safetensors.torch.load(data)


def load_digits_classifier(device: torch.device | str | None = None) -> DigitsClassifier:
    """The shipped `digits` classifier in eval mode with frozen parameters.

    The weights file is read once and cached; each call returns a fresh module, so moving or modifying one
    (`.to(device)`, `.train()`) never affects other callers.
    """
    model = DigitsClassifier()
    model.load_state_dict(_weights(), strict=True)
    model.eval().requires_grad_(False)
    if device is not None:
        model.to(device)
    return model


@functools.lru_cache(maxsize=1)
def _metadata() -> tuple[tuple[str, str], ...]:
    weights = resources.files("ganzoo.metrics").joinpath(WEIGHTS_FILE)
    with resources.as_file(weights) as path, safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return tuple(sorted(metadata.items()))


def digits_classifier_info() -> dict[str, str]:
    """The metadata stored with the shipped weights (seed, train/test data, test_accuracy, script, ...)."""
    return dict(_metadata())
