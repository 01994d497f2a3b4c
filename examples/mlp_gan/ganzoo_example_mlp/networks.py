"""The MLP generator and discriminator (imported only when the model is built)."""

from __future__ import annotations

import math

import torch
from torch import nn


class Generator(nn.Module):
    """z (N, latent_dim) -> images (N, C, H, W) in [-1, 1]."""

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.shape = shape
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, math.prod(shape)),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.flatten(1)).view(z.shape[0], *self.shape)


class Discriminator(nn.Module):
    """images (N, C, H, W) -> one logit per image, (N,).

    Its layers are `blocks` (input to output), which the plugin kit declares for FreezeD (`--freeze-d N`).
    """

    def __init__(self, shape: tuple[int, int, int], hidden: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), hidden), nn.LeakyReLU(0.2)),
                nn.Sequential(nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)),
                nn.Linear(hidden, 1),
            ]
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        for block in self.blocks:
            x = block(x)
        return x.squeeze(1)
