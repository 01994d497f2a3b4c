"""The DCGAN generator and discriminator for 28 px images and 32 to 256 px (powers of two)."""

from __future__ import annotations

import itertools

import torch
from torch import nn

WIDEST = 8  # no layer is wider than 8x the width: DCGAN's 64 px networks (512 = 8 x 64), capped above 64 px


def stages(resolution: int) -> tuple[int, int]:
    """(spatial size after the generator's first layer, number of 2x stages): 28 = 7 x 2^2, 32 = 4 x 2^3, ...,
    256 = 4 x 2^6. The discriminators mirror it: as many stride-2 convolutions, down to the same size."""
    if resolution == 28:
        return 7, 2
    return 4, {32: 3, 64: 4, 128: 5, 256: 6}[resolution]


def generator_widths(resolution: int, width: int) -> list[int]:
    """Channels of each up-sampling stage, halving towards the image: e.g. 512, 256, 128, 64 at 64 px (width 64);
    at 128 and 256 px the first stages stay at 8 x width instead of 1024 or 2048 channels."""
    ups = stages(resolution)[1]
    return [width * min(2 ** (ups - 1 - i), WIDEST) for i in range(ups)]


def discriminator_widths(resolution: int, width: int) -> list[int]:
    """Channels of each stride-2 stage, doubling from the image: e.g. 64, 128, 256, 512 at 64 px, capped alike."""
    return generator_widths(resolution, width)[::-1]


def init_dcgan_weights(module: nn.Module) -> None:
    """N(0, 0.02) for convolutions, N(1, 0.02) and zero bias for batch norm (Radford et al.)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = module.weight
        if nn.utils.parametrize.is_parametrized(module, "weight"):  # spectral norm: initialise the raw weight
            weight = module.parametrizations.weight.original
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (N, latent, 1, 1) -> images (N, channels, resolution, resolution) in [-1, 1]."""

    def __init__(self, resolution: int, channels: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.base = stages(resolution)[0]
        widths = generator_widths(resolution, width)
        # "Project and reshape" (Radford et al.): a linear map of z to base x base feature maps. It equals a
        # transposed convolution on a 1x1 input, and runs about 10x faster under bf16 on the CPU.
        self.project = nn.Linear(latent_dim, widths[0] * self.base**2, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for w_in, w_out in itertools.pairwise(widths):
            layers += [
                nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(w_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z.reshape(z.shape[0], self.latent_dim))
        return self.net(x.view(z.shape[0], -1, self.base, self.base))


class Discriminator(nn.Module):
    """images -> one logit per image. `norm`: batch (DCGAN), spectral (Miyato et al. 2018) or none."""

    def __init__(self, resolution: int, channels: int, width: int, norm: str = "batch") -> None:
        super().__init__()
        base = stages(resolution)[0]
        widths = discriminator_widths(resolution, width)
        wrap = nn.utils.parametrizations.spectral_norm if norm == "spectral" else (lambda m: m)
        blocks = [nn.Sequential(wrap(nn.Conv2d(channels, widths[0], 4, 2, 1)), nn.LeakyReLU(0.2, True))]
        for w_in, w_out in itertools.pairwise(widths):
            layers: list[nn.Module] = [wrap(nn.Conv2d(w_in, w_out, 4, 2, 1, bias=norm != "batch"))]
            if norm == "batch":
                layers.append(nn.BatchNorm2d(w_out))
            layers.append(nn.LeakyReLU(0.2, True))
            blocks.append(nn.Sequential(*layers))
        blocks.append(nn.Sequential(wrap(nn.Conv2d(widths[-1], 1, base, 1, 0))))
        self.blocks = nn.ModuleList(blocks)
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x.flatten(1).squeeze(1)
