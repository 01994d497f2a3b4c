"""Fidelity of paired image-to-image outputs to their targets: PSNR and SSIM, per image.

Both take images in [-1, 1] (the models' range) and score them on [0, 1], the range the restoration literature
reports in (data range 1). They are torchmetrics' maintained implementations (`peak_signal_noise_ratio`,
`structural_similarity_index_measure`: Wang et al. 2004, an 11x11 Gaussian window of sigma 1.5, K1 0.01, K2 0.03,
centred on every pixel of the image reflect-padded at its borders),
computed in float32 per image so that a mean over a test set weighs every image alike. Colour images are scored
on their RGB channels as they are (no conversion to luma), as most GAN papers report; say so beside a figure.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ganzoo.errors import UsageError

PAIRED_METRICS = ("psnr", "ssim")


def _unit(images: torch.Tensor) -> torch.Tensor:
    return ((images.detach().float() + 1) / 2).clamp(0, 1)


def _check(output: torch.Tensor, target: torch.Tensor) -> None:
    if output.shape != target.shape or output.ndim != 4:
        raise UsageError(
            f"paired metrics compare (N, C, H, W) outputs with targets of the same shape, got "
            f"{tuple(output.shape)} and {tuple(target.shape)}"
        )


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB, 10 log10(1 / MSE) on [0, 1]; identical images give inf."""
    _check(output, target)
    return peak_signal_noise_ratio(
        _unit(output), _unit(target), data_range=1.0, reduction="none", dim=(1, 2, 3)
    ).reshape(-1)


def ssim(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (mean over the valid windows and channels) on [0, 1]; 1 for identical images."""
    _check(output, target)
    return structural_similarity_index_measure(_unit(output), _unit(target), data_range=1.0, reduction="none")


__all__ = ["PAIRED_METRICS", "psnr", "ssim"]
