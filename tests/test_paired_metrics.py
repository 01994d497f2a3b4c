"""PSNR and SSIM (ganzoo/metrics/paired.py): per image, on [0, 1], held to slow references written from their
definitions (SSIM: Wang et al. 2004, an 11x11 Gaussian window of sigma 1.5 at every pixel, borders reflected)."""

from __future__ import annotations

import math

import pytest
import torch

from ganzoo.errors import UsageError
from ganzoo.metrics.paired import psnr, ssim


def _pair(seed: int = 0, channels: int = 3, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(2, channels, size, size, generator=generator) * 2 - 1
    output = (target + 0.2 * torch.randn(target.shape, generator=generator)).clamp(-1, 1)
    return output, target


def _ssim_by_definition(x: torch.Tensor, y: torch.Tensor) -> float:
    """One image pair (C, H, W) on [0, 1]: SSIM of the Gaussian window centred on every pixel (the borders
    reflected), averaged."""
    x, y = (torch.nn.functional.pad(t.double()[None], (5, 5, 5, 5), mode="reflect")[0] for t in (x, y))
    offsets = torch.arange(11, dtype=torch.float64) - 5
    window = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window = window / window.sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for channel in range(x.shape[0]):
        for top in range(x.shape[1] - 10):
            for left in range(x.shape[2] - 10):
                a = x[channel, top : top + 11, left : left + 11]
                b = y[channel, top : top + 11, left : left + 11]
                mu_a, mu_b = (window * a).sum(), (window * b).sum()
                var_a = ((window * a * a).sum() - mu_a**2).clamp(min=0)
                var_b = ((window * b * b).sum() - mu_b**2).clamp(min=0)
                cov = (window * a * b).sum() - mu_a * mu_b
                values.append(
                    ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
                )
    return float(torch.stack(values).mean())


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_its_definition_per_image(channels):
    output, target = _pair(channels=channels)
    got = ssim(output, target)
    assert got.shape == (2,)
    for i in range(2):
        expected = _ssim_by_definition((output[i] + 1) / 2, (target[i] + 1) / 2)
        assert got[i].item() == pytest.approx(expected, abs=1e-4)
    assert ssim(target, target).tolist() == pytest.approx([1.0, 1.0])


def test_psnr_is_ten_log10_of_one_over_the_mse_on_the_unit_range():
    output, target = _pair()
    mse = (((output + 1) / 2 - (target + 1) / 2) ** 2).flatten(1).mean(1)
    assert psnr(output, target).tolist() == pytest.approx((10 * torch.log10(1 / mse)).tolist(), rel=1e-5)
    assert math.isinf(psnr(target, target)[0].item())
    # a uniform error of 0.1 on [0, 1] (0.2 on [-1, 1]) is 20 dB
    assert psnr(target.clamp(-0.8, 0.8) + 0.2, target.clamp(-0.8, 0.8))[0].item() == pytest.approx(20.0, abs=1e-3)


def test_shapes_must_match():
    output, target = _pair()
    with pytest.raises(UsageError, match="same shape"):
        psnr(output[:, :1], target)
