"""The inpainting networks, written from Yu et al. 2019 ("Free-form image inpainting with gated convolution"):

- `GatedConv2d`: features * sigmoid(gate), two convolutions of the same input, so every layer learns where its
  input is valid (a soft, learned form of the partial convolutions' mask update, Liu et al. 2018);
- `Generator`: the masked image and its mask in, an encoder-decoder of gated convolutions (two stride-2
  downsamplings, dilated gated convolutions at the bottleneck for a receptive field that reaches across holes,
  nearest-neighbour upsampling), a linear last convolution clamped to [-1, 1] with a straight-through gradient
  (`ganzoo.kit.pairs.clamp_straight_through`). One stage: the paper's coarse-to-fine second stage and contextual
  attention are left out (small images);
- `Discriminator`: SN-PatchGAN: stride-2 5x5 convolutions with spectral norm over the image joined to its mask,
  one score per patch (hinge loss on every patch); `blocks` from input to output (FreezeD).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganzoo.kit.pairs import clamp_straight_through


class GatedConv2d(nn.Module):
    """ELU(conv_f(x)) * sigmoid(conv_g(x)) (the output layer: no activation, no gate)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        padding = dilation * (kernel - 1) // 2
        self.conv = nn.Conv2d(c_in, 2 * c_out, kernel, stride, padding, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gate = self.conv(x).chunk(2, dim=1)
        return F.elu(features) * torch.sigmoid(gate)


class Generator(nn.Module):
    """(masked image (N, C, H, W), mask (N, 1, H, W)) -> image (N, C, H, W) in [-1, 1]; H, W multiples of 4."""

    def __init__(self, channels: int, width: int, dilated: int = 4) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            GatedConv2d(channels + 1, w, 5),
            GatedConv2d(w, 2 * w, 3, stride=2),
            GatedConv2d(2 * w, 2 * w),
            GatedConv2d(2 * w, 4 * w, 3, stride=2),
        )
        self.bottleneck = nn.Sequential(*(GatedConv2d(4 * w, 4 * w, dilation=2 ** (i % 4 + 1)) for i in range(dilated)))
        self.decoder = nn.Sequential(
            GatedConv2d(4 * w, 4 * w),
            nn.Upsample(scale_factor=2, mode="nearest"),
            GatedConv2d(4 * w, 2 * w),
            nn.Upsample(scale_factor=2, mode="nearest"),
            GatedConv2d(2 * w, w),
            nn.Conv2d(w, channels, 3, padding=1),
        )

    def forward(self, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([source, mask.to(source.dtype)], dim=1)
        return clamp_straight_through(self.decoder(self.bottleneck(self.encoder(x))))


class Discriminator(nn.Module):
    """SN-PatchGAN: an image with its mask as a fourth (second) channel, (N, C + 1, H, W) -> patch scores (N, P);
    `layers` stride-2 5x5 convolutions with spectral norm, the last one without activation. The image and its mask
    come as one tensor so that an augmentation of D's input moves both alike."""

    def __init__(self, channels: int, width: int, layers: int) -> None:
        super().__init__()
        widths = [channels + 1] + [width * min(2**i, 4) for i in range(layers)]
        blocks: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            conv = spectral_norm(nn.Conv2d(a, b, 5, 2, 2))
            blocks.append(nn.Sequential(conv, nn.LeakyReLU(0.2)) if i < layers - 1 else conv)
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x.flatten(1)
