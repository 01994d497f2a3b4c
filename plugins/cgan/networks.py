"""Class-conditional DCGAN-style networks: a generator with conditional batch norm (or the label embedding
concatenated to z) and a projection discriminator (Miyato & Koyama 2018, or the label as extra input channels)."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo_plugins.dcgan.networks import discriminator_widths, generator_widths, init_dcgan_weights, stages


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine; a per-class scale (init 1) and shift (init 0) instead."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        scale = self.scale(labels)[:, :, None, None]
        shift = self.shift(labels)[:, :, None, None]
        return self.norm(x) * scale + shift


class ConditionalGenerator(nn.Module):
    """(z, labels) -> images in [-1, 1]. `conditioning`: cbn (conditional batch norm after every layer) or concat
    (a learned label embedding of size `latent_dim` concatenated to z, plain batch norm)."""

    def __init__(
        self, resolution: int, channels: int, latent_dim: int, width: int, num_classes: int, conditioning: str
    ) -> None:
        super().__init__()
        self.latent_dim, self.num_classes, self.conditioning = latent_dim, num_classes, conditioning
        self.base = stages(resolution)[0]
        widths = generator_widths(resolution, width)
        in_dim = latent_dim
        if conditioning == "concat":
            self.embed = nn.Embedding(num_classes, latent_dim)
            in_dim = 2 * latent_dim
        self.project = nn.Linear(in_dim, widths[0] * self.base**2, bias=False)
        self.convs = nn.ModuleList(
            nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False) for w_in, w_out in itertools.pairwise(widths)
        )
        self.norms = nn.ModuleList(
            ConditionalBatchNorm(w, num_classes) if conditioning == "cbn" else nn.BatchNorm2d(w) for w in widths
        )
        self.to_image = nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False)
        self.apply(init_dcgan_weights)
        if conditioning == "concat":
            nn.init.normal_(self.embed.weight, 0.0, 1.0)

    def _norm(self, index: int, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        norm = self.norms[index]
        return F.relu(norm(x, labels) if isinstance(norm, ConditionalBatchNorm) else norm(x))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = z.reshape(z.shape[0], self.latent_dim)
        if self.conditioning == "concat":
            z = torch.cat([z, self.embed(labels)], dim=1)
        x = self.project(z).view(z.shape[0], -1, self.base, self.base)
        x = self._norm(0, x, labels)
        for index, conv in enumerate(self.convs, start=1):
            x = self._norm(index, conv(x), labels)
        return torch.tanh(self.to_image(x))


class ConditionalDiscriminator(nn.Module):
    """(images, labels) -> one logit per image.

    `projection`: logit = psi(h) + <embed(y), h> with h the spatially summed last features (Miyato & Koyama);
    `concat`: the label's one-hot maps as extra input channels, then an unconditional head.
    `norm`: spectral (default with projection, as in the paper), batch or none.
    """

    def __init__(
        self, resolution: int, channels: int, width: int, num_classes: int, conditioning: str, norm: str
    ) -> None:
        super().__init__()
        self.num_classes, self.conditioning = num_classes, conditioning
        widths = discriminator_widths(resolution, width)
        wrap = nn.utils.parametrizations.spectral_norm if norm == "spectral" else (lambda m: m)
        in_channels = channels + (num_classes if conditioning == "concat" else 0)
        blocks = [nn.Sequential(wrap(nn.Conv2d(in_channels, widths[0], 4, 2, 1)), nn.LeakyReLU(0.2))]
        for w_in, w_out in itertools.pairwise(widths):
            layers: list[nn.Module] = [wrap(nn.Conv2d(w_in, w_out, 4, 2, 1, bias=norm != "batch"))]
            if norm == "batch":
                layers.append(nn.BatchNorm2d(w_out))
            layers.append(nn.LeakyReLU(0.2))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.head = wrap(nn.Linear(widths[-1], 1))
        self.apply(init_dcgan_weights)
        if conditioning == "projection":
            embed = nn.Embedding(num_classes, widths[-1])
            nn.init.normal_(embed.weight, 0.0, 0.02)
            self.embed = wrap(embed)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor, class_scores: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """The logits; with `class_scores`, also every class's projection score (N x K): <embed(k), h> for each
        class k, a classifier that shares the projection's weights (None for the concat D)."""
        if self.conditioning == "concat":
            maps = F.one_hot(labels, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, x.shape[2], x.shape[3])], dim=1)
        for block in self.blocks:
            x = block(x)
        features = x.sum(dim=(2, 3))
        logits = self.head(features).squeeze(1)
        scores = None
        if self.conditioning == "projection":
            scores = features @ self.embed.weight.t()
            logits = logits + scores.gather(1, labels[:, None]).squeeze(1)
        return (logits, scores) if class_scores else logits

    def scores(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, class scores) through `__call__`, so forward hooks (DiffAugment) apply."""
        return self(x, labels, class_scores=True)
