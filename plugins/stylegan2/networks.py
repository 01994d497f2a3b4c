"""StyleGAN2's networks in plain PyTorch (Karras et al. 2020, "Analyzing and improving the image quality of
StyleGAN"), written from the paper: no custom CUDA or C++ op and nothing in float64, so they run on CUDA, the CPU
and MPS alike.

- Equalised learning rate: every weight is stored N(0, 1) / lr_mul and scaled at run time by lr_mul / sqrt(fan_in)
  (the mapping network runs at lr_mul 0.01).
- Mapping network: z -> normalised -> `mapping_layers` fully connected layers -> w; `w_avg` tracks the mean w (for
  truncation).
- Synthesis network: a learned constant 4x4 input, then per resolution two modulated 3x3 convolutions (the first
  upsamples) with weight demodulation, per-pixel noise with a learned strength, bias and leaky ReLU (gain
  sqrt 2); skip architecture: every resolution's toRGB (a modulated 1x1 convolution without demodulation) is
  added to the upsampled image so far. Upsampling is bilinear before the convolution: the paper's transposed
  convolution with a [1, 3, 3, 1] FIR filter differs in its low-pass filter only.
- Modulated convolution in StyleGAN2's non-fused form (scale the input by the style, the output by the
  demodulation coefficients), or fused as one grouped convolution over the batch (each sample its own weights).
- Discriminator: residual blocks (two 3x3 convolutions, 2x average-pool downsampling, a 1x1 skip, the sum divided
  by sqrt 2), minibatch standard deviation at 4x4 (groups of up to 4), a 3x3 convolution and two linear layers.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

GAIN = math.sqrt(2.0)


def widths(resolution: int, width: int) -> dict[int, int]:
    """Channels per resolution 4, 8, ..., `resolution`: `width` up to 32 px, halved at each doubling above."""
    return {4 * 2**i: max(8, min(width, width * 32 // (4 * 2**i))) for i in range(int(math.log2(resolution)) - 1)}


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * GAIN


class EqualLinear(nn.Module):
    """A linear layer with an equalised learning rate (`lr_mul` also scales the bias)."""

    def __init__(self, fan_in: int, fan_out: int, lr_mul: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((fan_out,), bias_init / lr_mul))
        self.scale, self.lr_mul = lr_mul / math.sqrt(fan_in), lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """A convolution with an equalised learning rate; `down` average-pools by 2 after it."""

    def __init__(self, c_in: int, c_out: int, kernel: int, bias: bool = True, down: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale, self.padding, self.down = 1 / math.sqrt(c_in * kernel * kernel), kernel // 2, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)
        return F.avg_pool2d(x, 2) if self.down else x


class ModulatedConv2d(nn.Module):
    """A convolution whose input channels are scaled by a style of w (per sample), then (optionally) demodulated:
    each output channel's weights are divided by their L2 norm, so unit-variance inputs give unit-variance outputs.

    Two exact forms of the same map: `fused` folds the batch into the channels of one grouped convolution with
    per-sample weights; otherwise the input is scaled by the style, convolved with the shared weight, and the output
    scaled by the demodulation coefficients (StyleGAN2's non-fused form: 1-10x faster on the CPU at these widths,
    benchmarks/modconv.py). The scaling and the coefficients are computed in float32 under autocast."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        w_dim: int,
        demodulate: bool = True,
        up: bool = False,
        fused: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.scale, self.padding = 1 / math.sqrt(c_in * kernel * kernel), kernel // 2
        self.demodulate, self.up, self.fused = demodulate, up, fused

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w).float()  # (N, C_in)
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        if self.fused:
            return self._grouped(x, style)
        weight = self.weight * self.scale  # (C_out, C_in, k, k)
        out = F.conv2d(x.float() * style[:, :, None, None], weight, padding=self.padding)
        if not self.demodulate:
            return out
        # d[n, o] = 1 / sqrt(sum_{c, k} (W[o, c, k] s[n, c])^2), elementwise (so float32 under autocast)
        energy = (style.square()[:, None, :] * weight.float().square().sum(dim=(2, 3))[None]).sum(dim=2)
        return out * torch.rsqrt(energy + 1e-8)[:, :, None, None].to(out.dtype)

    def _grouped(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        batch, c_in, height, width = x.shape
        weight = self.weight.unsqueeze(0) * self.scale * style[:, None, :, None, None]  # (N, C_out, C_in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        x = x.reshape(1, batch * c_in, height, width)
        out = F.conv2d(x, weight.reshape(-1, c_in, *weight.shape[3:]).to(x.dtype), padding=self.padding, groups=batch)
        return out.reshape(batch, -1, height, width)


class StyledLayer(nn.Module):
    """Modulated 3x3 convolution, per-pixel noise times a learned strength, bias, leaky ReLU."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, up: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c_out, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, generator: torch.Generator | None = None, same_noise: bool = False
    ) -> torch.Tensor:
        x = self.conv(x, w)
        noise = torch.randn(1 if same_noise else x.shape[0], 1, *x.shape[2:], device=x.device, generator=generator)
        return lrelu(x + self.noise_strength * noise.to(x.dtype) + self.bias.view(1, -1, 1, 1))


class ToRGB(nn.Module):
    def __init__(self, c_in: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(c_in, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias.view(1, -1, 1, 1)


class MappingNetwork(nn.Module):
    def __init__(self, latent_dim: int, w_dim: int, layers: int, lr_mul: float = 0.01, w_avg_beta: float = 0.995):
        super().__init__()
        dims = [latent_dim] + [w_dim] * layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul) for a, b in itertools.pairwise(dims))
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.w_avg_beta = w_avg_beta

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for layer in self.layers:
            x = lrelu(layer(x))
        if self.training:  # the running mean of w, for truncation (a buffer, so EMA and checkpoints carry it)
            self.w_avg.copy_(self.w_avg.lerp(x.detach().float().mean(dim=0), 1 - self.w_avg_beta))
        return x


class Generator(nn.Module):
    """z (N, latent_dim) -> images (N, C, R, R) in [-1, 1]; `ws` (N, num_ws, w_dim) may be given instead (style
    mixing). The per-pixel noise is drawn from `generator` (torch's global one when None); `same_noise`: one noise
    image per layer for the whole batch (style-mixing grids, whose images differ by their styles only).
    `fused_modconv`: the modulated convolutions' form (see `ModulatedConv2d`). `pl_mean` is the running mean of the
    path lengths (path length regularisation)."""

    def __init__(
        self,
        resolution: int,
        channels: int,
        latent_dim: int,
        w_dim: int,
        mapping_layers: int,
        width: int,
        fused_modconv: bool = False,
    ) -> None:
        super().__init__()
        self.latent_dim, self.w_dim, self.resolution = latent_dim, w_dim, resolution
        self.mapping = MappingNetwork(latent_dim, w_dim, mapping_layers)
        chans = widths(resolution, width)
        self.const = nn.Parameter(torch.randn(chans[4], 4, 4))
        self.first = StyledLayer(chans[4], chans[4], w_dim)
        self.first_rgb = ToRGB(chans[4], channels, w_dim)
        self.blocks = nn.ModuleList()
        for res in sorted(chans)[1:]:
            block = nn.ModuleDict(
                {
                    "up": StyledLayer(chans[res // 2], chans[res], w_dim, up=True),
                    "conv": StyledLayer(chans[res], chans[res], w_dim),
                    "rgb": ToRGB(chans[res], channels, w_dim),
                }
            )
            self.blocks.append(block)
        self.num_ws = 2 + 2 * len(self.blocks)  # first conv and rgb, then two convs per block (rgb shares the 2nd)
        for module in self.modules():
            if isinstance(module, ModulatedConv2d):
                module.fused = fused_modconv
        self.register_buffer("pl_mean", torch.zeros(()))

    def forward(
        self,
        z: torch.Tensor | None = None,
        ws: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        same_noise: bool = False,
    ) -> torch.Tensor:
        if ws is None:
            ws = self.mapping(z).unsqueeze(1).expand(-1, self.num_ws, -1)
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        x = self.first(x, ws[:, 0], generator, same_noise)
        image = self.first_rgb(x, ws[:, 1])
        for i, block in enumerate(self.blocks):
            x = block["up"](x, ws[:, 2 * i + 1], generator, same_noise)
            x = block["conv"](x, ws[:, 2 * i + 2], generator, same_noise)
            skip = F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False)
            image = skip + block["rgb"](x, ws[:, 2 * i + 3])
        return torch.tanh(image)


class MinibatchStdDev(nn.Module):
    """Appends one channel: the standard deviation of each feature over groups of up to `group` samples."""

    def __init__(self, group: int = 4) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        group = min(self.group, n)
        while n % group:
            group -= 1
        y = x.float().reshape(group, -1, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n / group,)
        y = y.repeat(group).view(n, 1, 1, 1).expand(n, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)


class FromRGB(nn.Module):
    def __init__(self, channels: int, c_out: int) -> None:
        super().__init__()
        self.conv = EqualConv2d(channels, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrelu(self.conv(x))


class DiscriminatorBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(c_in, c_in, 3)
        self.conv2 = EqualConv2d(c_in, c_out, 3, down=True)
        self.skip = EqualConv2d(c_in, c_out, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = lrelu(self.conv2(lrelu(self.conv1(x))))
        return (y + self.skip(x)) / GAIN


class Discriminator(nn.Module):
    """images (N, C, R, R) -> logits (N,); `blocks` from input to output (FreezeD)."""

    def __init__(self, resolution: int, channels: int, width: int) -> None:
        super().__init__()
        chans = widths(resolution, width)
        order = sorted(chans, reverse=True)
        blocks: list[nn.Module] = [FromRGB(channels, chans[resolution])]
        blocks += [DiscriminatorBlock(chans[res], chans[res // 2]) for res in order[:-1]]
        self.blocks = nn.ModuleList(blocks)
        self.mbstd = MinibatchStdDev()
        self.conv = EqualConv2d(chans[4] + 1, chans[4], 3)
        self.fc = EqualLinear(chans[4] * 16, chans[4])
        self.out = EqualLinear(chans[4], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        x = lrelu(self.conv(self.mbstd(x)))
        return self.out(lrelu(self.fc(x.flatten(1)))).squeeze(1)
