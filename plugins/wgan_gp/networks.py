"""WGAN-GP networks: DCGAN-style or ResNet-style generators and critics (no batch norm in the critic)."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo_plugins.dcgan.networks import Generator as DCGANGenerator
from ganzoo_plugins.dcgan.networks import discriminator_widths, init_dcgan_weights, stages


def _critic_norm(kind: str, channels: int) -> nn.Module:
    """`layer`: layer norm over (C, H, W) with per-channel affine (GroupNorm with one group); `none`: identity."""
    return nn.GroupNorm(1, channels) if kind == "layer" else nn.Identity()


class DCGANCritic(nn.Module):
    """The DCGAN discriminator with its batch norm replaced (Gulrajani et al.: no batch norm in the critic)."""

    def __init__(self, resolution: int, channels: int, width: int, norm: str) -> None:
        super().__init__()
        base = stages(resolution)[0]
        widths = discriminator_widths(resolution, width)
        blocks = [nn.Sequential(nn.Conv2d(channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2))]
        for w_in, w_out in itertools.pairwise(widths):
            blocks.append(nn.Sequential(nn.Conv2d(w_in, w_out, 4, 2, 1), _critic_norm(norm, w_out), nn.LeakyReLU(0.2)))
        blocks.append(nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * base * base, 1)))
        self.blocks = nn.ModuleList(blocks)
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x.squeeze(1)


class UpBlock(nn.Module):
    """Pre-activation residual block that doubles the size: BN, ReLU, up, conv3, BN, ReLU, conv3 (+ up, conv1)."""

    def __init__(self, w_in: int, w_out: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(w_in), nn.Conv2d(w_in, w_out, 3, 1, 1)
        self.norm2, self.conv2 = nn.BatchNorm2d(w_out), nn.Conv2d(w_out, w_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(w_in, w_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = self.conv1(F.interpolate(F.relu(self.norm1(x)), scale_factor=2.0, mode="nearest"))
        return self.shortcut(up) + self.conv2(F.relu(self.norm2(h)))


class DownBlock(nn.Module):
    """Pre-activation residual block that halves the size (the first block skips the leading activation)."""

    def __init__(self, w_in: int, w_out: int, norm: str, first: bool) -> None:
        super().__init__()
        self.first = first
        self.norm1 = nn.Identity() if first else _critic_norm(norm, w_in)
        self.conv1, self.norm2 = nn.Conv2d(w_in, w_out, 3, 1, 1), _critic_norm(norm, w_out)
        self.conv2, self.shortcut = nn.Conv2d(w_out, w_out, 3, 1, 1), nn.Conv2d(w_in, w_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(self.norm1(x))
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        return F.avg_pool2d(self.shortcut(x), 2) + F.avg_pool2d(h, 2)


class ResNetGenerator(nn.Module):
    """z -> linear to base x base -> one UpBlock per doubling -> BN, ReLU, conv3, tanh (Gulrajani et al.'s CIFAR G)."""

    def __init__(self, resolution: int, channels: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.base, ups = stages(resolution)
        self.width = width
        self.project = nn.Linear(latent_dim, width * self.base**2)
        self.blocks = nn.Sequential(*(UpBlock(width, width) for _ in range(ups)))
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z.reshape(z.shape[0], self.latent_dim)).view(z.shape[0], self.width, self.base, self.base)
        return self.out(self.blocks(x))


class ResNetCritic(nn.Module):
    """One DownBlock per halving, ReLU, global sum pooling, linear (Gulrajani et al.'s CIFAR critic)."""

    def __init__(self, resolution: int, channels: int, width: int, norm: str) -> None:
        super().__init__()
        _, downs = stages(resolution)
        blocks: list[nn.Module] = [DownBlock(channels, width, norm, first=True)]
        blocks += [DownBlock(width, width, norm, first=False) for _ in range(downs - 1)]
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(F.relu(x).sum(dim=(2, 3))).squeeze(1)


def build_networks(
    backbone: str, resolution: int, channels: int, latent_dim: int, g_width: int, d_width: int, norm: str
) -> dict[str, nn.Module]:
    if backbone == "resnet":
        return {
            "generator": ResNetGenerator(resolution, channels, latent_dim, g_width),
            "critic": ResNetCritic(resolution, channels, d_width, norm),
        }
    return {
        "generator": DCGANGenerator(resolution, channels, latent_dim, g_width),
        "critic": DCGANCritic(resolution, channels, d_width, norm),
    }
