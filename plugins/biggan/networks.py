"""BigGAN's networks (Brock et al. 2019, "Large scale GAN training for high fidelity natural image synthesis"),
written from the paper at a size a CPU can train.

- Generator: the noise z is split into one chunk per resolution (the hierarchical latent); a shared class
  embedding is joined to each block's chunk and drives the conditional batch norm (gain 1 + linear, bias linear)
  of that residual block (BN, ReLU, 2x nearest upsampling, 3x3 conv, BN, ReLU, 3x3 conv; a 1x1 conv on the
  upsampled skip). A self-attention block (Zhang et al. 2019) at `attention` px, then BN, ReLU, 3x3 conv, tanh.
- Discriminator: residual blocks (ReLU, 3x3, ReLU, 3x3, 2x average pooling; a 1x1 conv on the pooled skip; the
  first block without the leading ReLU), self-attention at the same resolution, ReLU, a sum over space, and a
  linear output plus the projection term <embed(y), h> (Miyato & Koyama 2018).
- Spectral norm on every convolution and linear layer of both networks (`torch.nn.utils.parametrizations`), and
  orthogonal initialisation of every weight and embedding, as in the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def widths(resolution: int, width: int) -> dict[int, int]:
    """Channels at 4, 8, ..., `resolution` px: `width` times 8 at 4 px, halving per doubling down to `width`."""
    return {4 * 2**i: width * max(1, 8 // 2**i) for i in range(int(math.log2(resolution)) - 1)}


def _orthogonal(module: nn.Module) -> nn.Module:
    """Orthogonal initialisation (Saxe et al. 2014), as BigGAN's: W W^T = I where the rows allow it, so the
    orthogonal regularisation starts near 0 instead of dominating the generator's loss."""
    nn.init.orthogonal_(module.weight)
    return module


def snconv(c_in: int, c_out: int, kernel: int) -> nn.Module:
    return spectral_norm(_orthogonal(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)))


def snlinear(d_in: int, d_out: int) -> nn.Module:
    return spectral_norm(_orthogonal(nn.Linear(d_in, d_out)))


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine, scaled by 1 + gain(cond) and shifted by bias(cond) per sample."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain, self.bias = snlinear(cond_dim, channels), snlinear(cond_dim, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * (1 + self.gain(cond))[:, :, None, None] + self.bias(cond)[:, :, None, None]


class SelfAttention(nn.Module):
    """SAGAN's attention: queries and keys of C/8 channels, values of C/2 (keys and values 2x max-pooled), added
    back through a learned gate that starts at 0."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.theta, self.phi = snconv(channels, channels // 8, 1), snconv(channels, channels // 8, 1)
        self.g, self.out = snconv(channels, channels // 2, 1), snconv(channels // 2, channels, 1)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        query = self.theta(x).flatten(2)  # (N, C/8, HW)
        key = F.max_pool2d(self.phi(x), 2).flatten(2)  # (N, C/8, HW/4)
        value = F.max_pool2d(self.g(x), 2).flatten(2)  # (N, C/2, HW/4)
        attention = torch.softmax(query.transpose(1, 2) @ key, dim=-1)  # (N, HW, HW/4)
        attended = (value @ attention.transpose(1, 2)).view(n, c // 2, h, w)
        return x + self.gate * self.out(attended)


class GeneratorBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm(c_in, cond_dim), ConditionalBatchNorm(c_out, cond_dim)
        self.conv1, self.conv2, self.skip = snconv(c_in, c_out, 3), snconv(c_out, c_out, 3), snconv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(F.relu(self.bn1(x, cond)), scale_factor=2, mode="nearest")
        y = self.conv2(F.relu(self.bn2(self.conv1(y), cond)))
        return y + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
    """(z (N, latent_dim), labels (N,)) -> images (N, C, R, R) in [-1, 1]."""

    def __init__(
        self,
        resolution: int,
        channels: int,
        latent_dim: int,
        num_classes: int,
        shared_dim: int,
        width: int,
        attention: int,
    ) -> None:
        super().__init__()
        chans = widths(resolution, width)
        resolutions = sorted(chans)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.chunks = len(resolutions)  # one for the 4x4 input, one per block
        if latent_dim < self.chunks:
            raise ValueError(f"latent_dim={latent_dim} cannot be split into {self.chunks} chunks")
        self.chunk = latent_dim // self.chunks
        self.shared = _orthogonal(nn.Embedding(num_classes, shared_dim))
        self.input = snlinear(latent_dim - self.chunk * (self.chunks - 1), chans[4] * 16)
        cond_dim = shared_dim + self.chunk
        self.blocks = nn.ModuleList(GeneratorBlock(chans[r // 2], chans[r], cond_dim) for r in resolutions[1:])
        self.attention = nn.ModuleDict({str(attention): SelfAttention(chans[attention])} if attention in chans else {})
        self.out_bn = nn.BatchNorm2d(chans[resolution])
        self.out = snconv(chans[resolution], channels, 3)
        self.first = chans[4]

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        split = z.shape[1] - self.chunk * (self.chunks - 1)  # the first chunk takes the remainder
        x = self.input(z[:, :split]).view(-1, self.first, 4, 4)
        rest = z[:, split:]
        shared = self.shared(labels)
        for block, chunk in zip(self.blocks, rest.split(self.chunk, dim=1), strict=True):
            x = block(x, torch.cat([shared, chunk], dim=1))
            if str(x.shape[-1]) in self.attention:
                x = self.attention[str(x.shape[-1])](x)
        return torch.tanh(self.out(F.relu(self.out_bn(x))))


class DiscriminatorBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, first: bool = False) -> None:
        super().__init__()
        self.conv1, self.conv2, self.skip = snconv(c_in, c_out, 3), snconv(c_out, c_out, 3), snconv(c_in, c_out, 1)
        self.first = first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x if self.first else F.relu(x))
        y = F.avg_pool2d(self.conv2(F.relu(y)), 2)
        return y + self.skip(F.avg_pool2d(x, 2))


class Discriminator(nn.Module):
    """(images, labels) -> logits (N,); `blocks` from input to output (FreezeD)."""

    def __init__(self, resolution: int, channels: int, num_classes: int, width: int, attention: int) -> None:
        super().__init__()
        chans = widths(resolution, width)
        order = sorted(chans, reverse=True)[:-1]  # the input resolutions of the blocks, down to 8 px
        c_in = [channels] + [chans[r] for r in order[1:]]
        c_out = [chans[r // 2] for r in order]
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(a, b, first=i == 0) for i, (a, b) in enumerate(zip(c_in, c_out, strict=True))
        )
        self.attention = nn.ModuleDict()
        for index, res in enumerate(order):  # after the block whose output is at `attention` px
            if res // 2 == attention:
                self.attention[str(index)] = SelfAttention(c_out[index])
        self.linear = snlinear(c_out[-1], 1)
        self.embed = spectral_norm(_orthogonal(nn.Embedding(num_classes, c_out[-1])))
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        for index, block in enumerate(self.blocks):
            x = block(x)
            if str(index) in self.attention:
                x = self.attention[str(index)](x)
        h = F.relu(x).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)


def truncated_normal(
    n: int, size: int, threshold: float, generator: torch.Generator | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """(n, size) draws of the standard normal truncated to [-threshold, threshold], BigGAN's truncation trick
    (Brock et al. 2019, section 3.1): the entries that fall outside are drawn again, from `generator` like the
    first draw, until every one lies inside (never clamped, which would pile mass on the bounds). A threshold of
    0 gives zeros; small thresholds take about 1 / P(|z| <= threshold) draws per entry."""
    z = torch.randn(n, size, device=device, generator=generator)
    if threshold == 0:
        return torch.zeros_like(z)
    outside = z.abs() > threshold
    while bool(outside.any()):
        z[outside] = torch.randn(int(outside.sum()), device=device, generator=generator)
        outside = z.abs() > threshold
    return z


def orthogonal_penalty(module: nn.Module) -> torch.Tensor:
    """BigGAN's orthogonal regularisation, sum over weights W (flattened to (out, rest)) of
    ||W W^T * (1 - I)||_F^2: it pushes filters apart without constraining their norms. Embeddings, biases and
    gates are left out; under spectral norm it applies to the raw (un-normalised) weights."""
    weights = [
        p for name, p in module.named_parameters() if p.ndim >= 2 and "shared" not in name and "embed" not in name
    ]
    device = weights[0].device
    total = torch.zeros((), device=device, dtype=weights[0].dtype)
    with torch.autocast(device.type, enabled=False):  # the Gram matrices in the weights' own precision
        for parameter in weights:
            w = parameter.flatten(1)
            gram = w @ w.t()
            total = total + (gram * (1 - torch.eye(len(w), device=device, dtype=w.dtype))).square().sum()
    return total
