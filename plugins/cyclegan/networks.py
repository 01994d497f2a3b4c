"""CycleGAN's networks (Zhu et al. 2017): the ResNet generator of Johnson et al. (2016) and the PatchGAN
discriminator, plus the training memory that is saved with them: the two history pools of generated images
(Shrivastava et al. 2017) and a few real images of each domain for sample grids."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """The reference implementation's init: convolution weights N(0, std), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class InstanceNorm(nn.Module):
    """Instance norm without affine parameters (as in CycleGAN), computed as group norm with one channel per
    group: the same numbers, several times faster than `instance_norm` on the CPU for small images."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, x.shape[1], eps=1e-5)


def _conv_norm_relu(conv: nn.Module) -> list[nn.Module]:
    return [conv, InstanceNorm(), nn.ReLU(inplace=True)]


class ResidualBlock(nn.Module):
    """x + (reflection pad, 3x3 conv, instance norm, ReLU, reflection pad, 3x3 conv, instance norm)(x)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            *_conv_norm_relu(nn.Conv2d(channels, channels, 3)),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            InstanceNorm(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Images in [-1, 1] to images in [-1, 1] of the same size (a multiple of 4).

    c7s1-w, d2w, d4w (stride-2 downsamplings), `blocks` residual blocks at 4w channels, u2w, uw (stride-2
    transposed convolutions), c7s1-channels, tanh; instance norm and reflection padding throughout. `encode` runs it
    up to the residual blocks' output (the latent code, 4w channels at a quarter of the size), `decode` the rest.
    """

    def __init__(self, channels: int, width: int, blocks: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), *_conv_norm_relu(nn.Conv2d(channels, width, 7))]
        for scale in (1, 2):
            layers += _conv_norm_relu(nn.Conv2d(width * scale, width * scale * 2, 3, 2, 1))
        layers += [ResidualBlock(width * 4) for _ in range(blocks)]
        self.latent_layers = len(layers)
        for scale in (4, 2):
            up = nn.ConvTranspose2d(width * scale, width * scale // 2, 3, 2, 1, output_padding=1)
            layers += _conv_norm_relu(up)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_normal)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net[: self.latent_layers](x)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.net[self.latent_layers :](latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: one logit per overlapping patch, shape (N, 1, h, w).

    4x4 convolutions: `layers` of stride 2 (the first without norm), one of stride 1, then the 1-channel output;
    widths double up to 8x. With 3 stride-2 layers each logit sees a 70x70 patch; 2 give 34x34, 1 gives 16x16.
    """

    def __init__(self, channels: int, width: int, layers: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        mult = 1
        for index in range(1, layers + 1):
            previous, mult = mult, min(2**index, 8)
            stride = 2 if index < layers else 1
            blocks += [
                nn.Conv2d(width * previous, width * mult, 4, stride, 1),
                InstanceNorm(),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        blocks.append(nn.Conv2d(width * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*blocks)
        self.apply(init_normal)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The activations the output layer reads (N, 8w at most, h, w): for feature-space cycle losses."""
        return self.net[:-1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def patch_output_size(resolution: int, layers: int) -> int:
    """The side of the PatchGAN's logit map for square inputs of `resolution` pixels."""
    size = resolution
    for _ in range(layers):
        size = (size + 2 - 4) // 2 + 1
    for _ in range(2):  # the stride-1 layer and the output layer
        size = size + 2 - 4 + 1
    return size


class ImagePool(nn.Module):
    """A history of up to `size` generated images (Shrivastava et al. 2017), kept as buffers so that it is saved
    and restored with the checkpoint.

    `query(images)` returns a batch for the discriminator: while the pool fills, each image is stored and
    returned; once full, each image is, with probability 1/2, swapped with a random stored one (the stored one is
    returned, the new one takes its place), else returned as it is. Size 0 returns the images unchanged.
    """

    def __init__(self, size: int, channels: int, resolution: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, channels, resolution, resolution))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.size == 0:
            return images
        out = images.detach().clone()
        for i in range(len(out)):
            stored = int(self.count)
            if stored < self.size:
                self.images[stored] = out[i]
                self.count += 1
            elif float(torch.rand((), generator=generator)) < 0.5:
                slot = int(torch.randint(self.size, (), generator=generator))
                previous = self.images[slot].clone()
                self.images[slot] = out[i]
                out[i] = previous
        return out


class CycleMemory(nn.Module):
    """What CycleGAN training keeps besides weights: a pool of generated images per discriminator and the first
    real images of each domain (uint8, for sample grids). Buffers only; nothing here is trained.

    Within an iteration, the generator update `hand_over`s its real and generated (detached) images to the
    discriminator updates, which `take` them; those transient tensors are not saved.
    """

    def __init__(self, pool_size: int, examples: int, channels: int, resolution: int) -> None:
        super().__init__()
        self.pool_a = ImagePool(pool_size, channels, resolution)
        self.pool_b = ImagePool(pool_size, channels, resolution)
        shape = (examples, channels, resolution, resolution)
        self.register_buffer("examples_a", torch.zeros(shape, dtype=torch.uint8))
        self.register_buffer("examples_b", torch.zeros(shape, dtype=torch.uint8))
        self.register_buffer("examples_count", torch.zeros((), dtype=torch.long))
        self._handed: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def remember_examples(self, real_a: torch.Tensor, real_b: torch.Tensor) -> None:
        """Keep real images of both domains until `examples` of each are stored."""
        have, capacity = int(self.examples_count), len(self.examples_a)
        take = min(capacity - have, len(real_a), len(real_b))
        if take <= 0:
            return
        for buffer, images in ((self.examples_a, real_a), (self.examples_b, real_b)):
            buffer[have : have + take] = images[:take].float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        self.examples_count += take

    def examples(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored real images of domains A and B in [-1, 1]."""
        count = int(self.examples_count)
        return tuple(e[:count].float().div(127.5).sub(1.0) for e in (self.examples_a, self.examples_b))

    def hand_over(self, **images: torch.Tensor) -> None:
        self._handed = {name: image.detach() for name, image in images.items()}

    def take(self, name: str) -> torch.Tensor:
        if name not in self._handed:
            raise RuntimeError(f"no {name} images were handed over: the generator update must run first")
        return self._handed[name]
