"""pix2pix's networks (Isola et al. 2017): the U-Net generator and the PatchGAN discriminator conditioned on the
source image.

Notation of the paper (section 6.1.1): Ck is a convolution with k filters, norm and ReLU (leaky, slope 0.2, in the
encoder; plain in the decoder); CDk the same with dropout 0.5 after the norm. Every convolution is 4x4 with
stride 2 (the discriminator's last two: stride 1), weights drawn from N(0, 0.02).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.data.degrade import luma
from ganzoo.kit.pairs import clamp_straight_through
from ganzoo_plugins.pix2pix import NORMS

MAX_WIDTH_MULTIPLE = 8
"""Widths double per level up to 8x the first (the paper's 64 ... 512)."""


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """The paper's init: convolution weights N(0, std), biases 0; batch norm scales N(1, std), shifts 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, std)
        nn.init.zeros_(module.bias)


class InstanceNorm(nn.Module):
    """Instance norm without affine parameters, computed as group norm with one channel per group: the same
    numbers as `instance_norm`, several times faster on the CPU for small images."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, x.shape[1], eps=1e-5)


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return InstanceNorm()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; accepted: {', '.join(NORMS)}")


def default_depth(resolution: int) -> int:
    """U-Net levels down to the smallest feature map a stride-2 convolution reaches: halve while the side is even,
    so 1x1 at powers of two (8 levels at 256 px, 6 at 64, 5 at 32) and 7x7 at 28 px (2 levels)."""
    depth, size = 0, resolution
    while size % 2 == 0 and size > 1:
        depth, size = depth + 1, size // 2
    return depth


def level_width(width: int, level: int) -> int:
    """Channels of encoder level `level` (1-based): width, 2 width, 4 width, then 8 width."""
    return width * min(2 ** (level - 1), MAX_WIDTH_MULTIPLE)


class UNetGenerator(nn.Module):
    """Source images (N, source_channels, R, R) in [-1, 1] to images (N, channels, R, R) in [-1, 1].

    Encoder: `depth` levels of C(level_width) with stride 2 and LeakyReLU 0.2 (the first and the innermost without
    norm: the first as in the paper, the innermost because its map is 1x1 at powers of two, where a norm zeroes
    it). Decoder: `depth - 1` levels of transposed C(level_width) with stride 2 and ReLU, the first (innermost)
    `dropout_layers` with dropout, each output concatenated with the encoder's map of the same size (the skip
    connections; `skips=False` is the paper's encoder-decoder baseline), then a transposed convolution to
    `channels` and tanh. `depth` must halve the resolution evenly that many times.

    `keep_luma` (colorization: a one-channel luma source, an RGB output) adds to every channel of the output the
    difference between the source's luma and the output's, so the output's ITU-R 601 luma is the source's exactly
    (up to a clamp to [-1, 1], straight-through so that no pixel loses its gradient) and the network only chooses
    the colour: adding one value to R, G and B moves Y by that value (the weights sum to one) and leaves the colour
    differences B - Y and R - Y unchanged.
    """

    def __init__(
        self,
        source_channels: int,
        channels: int,
        resolution: int,
        width: int,
        depth: int | None = None,
        norm: str = "instance",
        dropout: float = 0.5,
        dropout_layers: int = 3,
        skips: bool = True,
        keep_luma: bool = False,
    ) -> None:
        super().__init__()
        depth = default_depth(resolution) if depth is None else depth
        if depth < 1 or resolution % (2**depth):
            raise ValueError(f"a U-Net of depth {depth} needs a resolution divisible by {2**depth}, got {resolution}")
        if keep_luma and (source_channels, channels) != (1, 3):
            raise ValueError(f"keep_luma maps a luma source to RGB, not {source_channels} to {channels} channels")
        self.depth, self.skips, self.keep_luma = depth, skips, keep_luma
        self.encoder = nn.ModuleList()
        previous = source_channels
        for level in range(1, depth + 1):
            out = level_width(width, level)
            plain = level in (1, depth)
            layers = [nn.Conv2d(previous, out, 4, 2, 1, bias=plain or norm == "none")]
            layers += [nn.Identity() if plain else make_norm(norm, out), nn.LeakyReLU(0.2, inplace=True)]
            self.encoder.append(nn.Sequential(*layers))
            previous = out
        self.decoder = nn.ModuleList()
        for index, level in enumerate(range(depth - 1, 0, -1)):  # the decoder level mirroring encoder `level`
            out = level_width(width, level)
            layers = [nn.ConvTranspose2d(previous, out, 4, 2, 1, bias=norm == "none"), make_norm(norm, out)]
            if index < dropout_layers and dropout > 0:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.ReLU(inplace=True))
            self.decoder.append(nn.Sequential(*layers))
            previous = out + (out if skips else 0)
        self.output = nn.Sequential(nn.ConvTranspose2d(previous, channels, 4, 2, 1), nn.Tanh())
        self.apply(init_normal)

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        features = []
        x = source
        for block in self.encoder:
            x = block(x)
            features.append(x)
        for block, skip in zip(self.decoder, reversed(features[:-1]), strict=True):
            x = block(x)
            if self.skips:
                x = torch.cat([x, skip], dim=1)
        image = self.output(x)
        if self.keep_luma:
            image = clamp_straight_through(image + (source.to(image.dtype) - luma(image)))
        return image


class PatchDiscriminator(nn.Module):
    """PatchGAN conditioned on the source: `forward(pair)` takes torch.cat([source, image], dim=1) and returns one
    logit per overlapping patch, (N, 1, h, w).

    4x4 convolutions: `layers` of stride 2 (the first without norm), one of stride 1, then the 1-channel output;
    widths double up to 8x. 3 stride-2 layers give each logit a 70x70 receptive field (the paper's), 2 give 34x34,
    1 gives 16x16. `blocks` (input to output, for FreezeD) are the five or so convolutions with their norm and
    activation.
    """

    def __init__(self, in_channels: int, width: int, layers: int, norm: str = "instance") -> None:
        super().__init__()
        blocks = [nn.Sequential(nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True))]
        mult = 1
        for index in range(1, layers + 1):
            previous, mult = mult, min(2**index, MAX_WIDTH_MULTIPLE)
            stride = 2 if index < layers else 1
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(width * previous, width * mult, 4, stride, 1, bias=norm == "none"),
                    make_norm(norm, width * mult),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            )
        blocks.append(nn.Sequential(nn.Conv2d(width * mult, 1, 4, 1, 1)))
        self.blocks = nn.ModuleList(blocks)
        self.apply(init_normal)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        x = pair
        for block in self.blocks:
            x = block(x)
        return x


def patch_output_size(resolution: int, layers: int) -> int:
    """The side of the PatchGAN's logit map for square inputs of `resolution` pixels."""
    size = resolution
    for _ in range(layers):
        size = (size + 2 - 4) // 2 + 1
    for _ in range(2):  # the stride-1 layer and the output layer
        size = size + 2 - 4 + 1
    return size


def receptive_field(layers: int) -> int:
    """The side of the input patch each PatchGAN logit sees: 70 for 3 stride-2 layers, 34 for 2, 16 for 1."""
    field = 4  # the output layer (4x4, stride 1)
    field += 3  # the stride-1 layer
    for _ in range(layers):
        field = 2 * field + 2  # a 4x4 stride-2 layer: (field - 1) * 2 + 4
    return field
