"""The networks of the srgan plugin (ESRGAN's, Wang et al. 2018; SRGAN's up-sampling, Ledig et al. 2017) and the
optional VGG-19 perceptual loss, built only from weights given as a local safetensors file.

- `RRDBGenerator`: a first conv, `blocks` residual-in-residual dense blocks (RRDB) without batch norm, a trunk conv
  with the global skip around them, one or two x2 pixel-shuffle up-samplings, two final convs; the output is
  clamped to [-1, 1] with a straight-through gradient (`ganzoo.kit.pairs.clamp_straight_through`).
- `VGGDiscriminator`: ESRGAN's VGG-style discriminator without batch norm: stages of a 3x3 stride-1 and a 4x4
  stride-2 conv (LeakyReLU 0.2), widths doubling up to `max_width`, until the map is at most 4 px, then two
  linear layers to one logit. `blocks` (an `nn.ModuleList`) are the stages, for FreezeD and for the features of
  the feature-matching loss.
- `VGGFeatures`: torchvision's vgg19 `features` up to a named conv (ESRGAN: conv5_4, before its ReLU), frozen.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganzoo.errors import UsageError
from ganzoo.kit.pairs import clamp_straight_through

LEAK = 0.2


def _scaled_kaiming(module: nn.Module, scale: float) -> None:
    """Kaiming-normal (fan-in) weights times `scale`, zero biases: ESRGAN's initialisation (scale 0.1 in the
    residual blocks keeps the residual branches small at the start, so a deep stack trains without batch norm)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_in")
            m.weight.data.mul_(scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _icnr(conv: nn.Conv2d, factor: int = 2) -> None:
    """ICNR initialisation of a conv followed by PixelShuffle(factor) (Aitken et al. 2017): each group of
    factor^2 output channels starts equal, so the shuffled output is a nearest-neighbour up-sampling of one
    kernel's response, free of checkerboard artefacts at the start."""
    out_channels = conv.out_channels // factor**2
    kernel = torch.empty(out_channels, conv.in_channels, *conv.kernel_size)
    nn.init.kaiming_normal_(kernel, a=LEAK, mode="fan_in")
    with torch.no_grad():
        conv.weight.copy_(kernel.repeat_interleave(factor**2, dim=0))
        if conv.bias is not None:
            conv.bias.zero_()


class DenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block's input and every earlier conv's output (growth `growth` channels
    each, LeakyReLU 0.2 after the first four); the fifth maps back to `features`, scaled by `residual_scale` and
    added to the input."""

    def __init__(self, features: int, growth: int, residual_scale: float = 0.2) -> None:
        super().__init__()
        self.residual_scale = residual_scale
        self.convs = nn.ModuleList(
            nn.Conv2d(features + i * growth, growth if i < 4 else features, 3, padding=1) for i in range(5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = [x]
        for conv in self.convs[:4]:
            seen.append(F.leaky_relu(conv(torch.cat(seen, dim=1)), LEAK))
        return x + self.residual_scale * self.convs[4](torch.cat(seen, dim=1))


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, their result scaled by `residual_scale` and added to
    the block's input."""

    def __init__(self, features: int, growth: int, residual_scale: float = 0.2) -> None:
        super().__init__()
        self.residual_scale = residual_scale
        self.dense = nn.Sequential(*(DenseBlock(features, growth, residual_scale) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual_scale * self.dense(x)


class RRDBGenerator(nn.Module):
    """ESRGAN's generator: first conv, RRDB trunk with a trunk conv and the global skip, `scale` = 2 or 4 by one or
    two (conv, PixelShuffle(2), LeakyReLU) stages, then a conv + LeakyReLU and the output conv.

    `bicubic_skip` adds the bicubic up-sampling of the input to the output (an image-level skip: the network
    learns the residual, as VDSR does, Kim et al. 2016; ESRGAN has none), with the output conv's weights initialised
    to zero so that training starts from bicubic's output; it needs as many input channels as output ones."""

    def __init__(
        self,
        source_channels: int,
        channels: int,
        scale: int,
        blocks: int,
        features: int,
        growth: int,
        residual_scale: float = 0.2,
        bicubic_skip: bool = False,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"the generator up-samples x1, x2 or x4, not x{scale}")
        if bicubic_skip and source_channels != channels:
            raise ValueError(f"bicubic_skip adds the input to the output: {source_channels} and {channels} channels")
        self.scale, self.bicubic_skip = scale, bicubic_skip
        self.first = nn.Conv2d(source_channels, features, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(features, growth, residual_scale) for _ in range(blocks)))
        self.trunk = nn.Conv2d(features, features, 3, padding=1)
        self.upsample = nn.ModuleList(
            nn.Conv2d(features, 4 * features, 3, padding=1) for _ in range(int(math.log2(scale)))
        )
        self.hr = nn.Conv2d(features, features, 3, padding=1)
        self.last = nn.Conv2d(features, channels, 3, padding=1)
        _scaled_kaiming(self, 1.0)
        _scaled_kaiming(self.body, 0.1)
        if bicubic_skip:  # the residual starts at zero: the untrained output is bicubic's
            nn.init.zeros_(self.last.weight)
        for conv in self.upsample:
            _icnr(conv)

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        x = self.first(source)
        x = x + self.trunk(self.body(x))
        for conv in self.upsample:
            x = F.leaky_relu(F.pixel_shuffle(conv(x), 2), LEAK)
        x = self.last(F.leaky_relu(self.hr(x), LEAK))
        if self.bicubic_skip:
            x = x + F.interpolate(source.float(), scale_factor=self.scale, mode="bicubic", align_corners=False)
        return clamp_straight_through(x)


def discriminator_stages(resolution: int) -> int:
    """Stride-2 stages that bring `resolution` down to at most 4 px (at least one)."""
    stages, size = 0, resolution
    while size > 4 or stages == 0:
        size = (size + 2 - 4) // 2 + 1  # a 4x4 stride-2 conv with padding 1
        stages += 1
    return stages


class VGGDiscriminator(nn.Module):
    """VGG-style discriminator: `blocks[i]` is (3x3 conv stride 1, LeakyReLU, 4x4 conv stride 2, LeakyReLU) at
    width min(width * 2^i, max_width), then Linear(., 100), LeakyReLU, Linear(100, 1). No normalisation.

    `forward(x)` returns the logits (N, 1); `forward(x, features=True)` returns `(logits, [each block's output])`,
    the features of the feature-matching loss."""

    def __init__(self, channels: int, resolution: int, width: int, max_width: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        size, previous = resolution, channels
        for i in range(discriminator_stages(resolution)):
            out = min(width * 2**i, max_width)
            self.blocks.append(
                nn.Sequential(
                    nn.Conv2d(previous, out, 3, 1, 1),
                    nn.LeakyReLU(LEAK),
                    nn.Conv2d(out, out, 4, 2, 1),
                    nn.LeakyReLU(LEAK),
                )
            )
            size, previous = (size + 2 - 4) // 2 + 1, out
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(previous * size * size, 100), nn.LeakyReLU(LEAK))
        self.out = nn.Linear(100, 1)
        _scaled_kaiming(self, 1.0)

    def forward(
        self, x: torch.Tensor, features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        seen = []
        for block in self.blocks:
            x = block(x)
            seen.append(x)
        logits = self.out(self.head(x))
        return (logits, seen) if features else logits


# ------------------------------------------------------------------------------------- the perceptual loss

VGG_LAYERS = {"conv1_2": 2, "conv2_2": 7, "conv3_4": 16, "conv4_4": 25, "conv5_4": 34}
"""Index in torchvision's vgg19 `features` of each conv the perceptual loss can read (before its ReLU)."""
VGG19_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
"""torchvision's vgg19 `features` ("E"): 3x3 convs (padding 1) each followed by a ReLU, "M" a 2x2 max-pool."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_features(layer: str, device: torch.device | str | None = None) -> nn.Sequential:
    """torchvision's vgg19 `features` (the same modules at the same indices, so its state dict keys) up to and
    including the conv `layer`; on `device` "meta" it holds shapes only."""
    modules: list[nn.Module] = []
    channels = 3
    for width in VGG19_CONFIG:
        if width == "M":
            modules.append(nn.MaxPool2d(2, 2))
        else:
            modules += [nn.Conv2d(channels, int(width), 3, padding=1, device=device), nn.ReLU(inplace=True)]
            channels = int(width)
    return nn.Sequential(*modules[: VGG_LAYERS[layer] + 1])


def _vgg_state(path: Path, layer: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file of torchvision's vgg19 `features` (keys `0.weight`, or
    `features.0.weight`) that the layers up to `layer` need, checked against the architecture; else UsageError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise UsageError(f"perceptual_weights file not found: {path}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"perceptual_weights {path} is not a readable safetensors file ({first})") from None
    state = {key.removeprefix("features."): value for key, value in state.items()}
    expected = vgg19_features(layer, device="meta").state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or wrong:
        problems = [f"lacks {', '.join(missing[:4])}"] if missing else []
        problems += [f"{k} is {tuple(state[k].shape)}, vgg19 has {tuple(expected[k].shape)}" for k in wrong[:2]]
        raise UsageError(
            f"perceptual_weights {path} is not torchvision's vgg19 `features` up to {layer}: " + "; ".join(problems)
        )
    return {k: state[k].float() for k in expected}


class VGGFeatures(nn.Module):
    """vgg19 `features` up to `layer` (before its ReLU), frozen; takes images in [-1, 1] (grey repeated to RGB)
    and normalises them with ImageNet's mean and std, as torchvision's weights expect."""

    def __init__(self, state: dict[str, torch.Tensor], layer: str) -> None:
        super().__init__()
        self.net = vgg19_features(layer, device="meta").to_empty(device="cpu")
        self.net.load_state_dict(state)
        self.net.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval()

    @classmethod
    def from_file(cls, path: str | Path, layer: str) -> VGGFeatures:
        return cls(_vgg_state(Path(path).expanduser(), layer), layer)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return self.net(((images[:, :3] + 1) / 2 - self.mean) / self.std)


def perceptual_distance(vgg: VGGFeatures, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """ESRGAN's perceptual loss: the mean absolute difference of VGG features (before activation), float32."""
    with torch.no_grad():
        target = vgg(real)
    return (vgg(fake).float() - target.float()).abs().mean()


__all__ = [
    "RRDB",
    "VGG_LAYERS",
    "DenseBlock",
    "RRDBGenerator",
    "VGGDiscriminator",
    "VGGFeatures",
    "discriminator_stages",
    "perceptual_distance",
    "vgg19_features",
]
