"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for training GANs on little data.

Every image the discriminator sees, real or generated, goes through the same kinds of random transformation with
independent draws per image and per call, and the transformations are differentiable, so the generator's gradient
(and a gradient or R1 penalty's input gradient) flows through them. The ops, chosen by name in a policy string
such as `color,translation,cutout`:

- `color`: brightness (add U[-0.5, 0.5)), saturation (scale the distance to the per-pixel channel mean by
  U[0, 2)) and contrast (scale the distance to the image mean by U[0.5, 1.5));
- `translation`: shift by up to 1/8 of the image size in each direction, the uncovered border filled with zeros;
- `cutout`: zero one square of half the image size at a random centre (clipped at the borders).

`ada_augment(x, p)` is the adaptive augmentation pipeline of ADA (Karras et al. 2020, "Training generative
adversarial networks with limited data", section 2 and appendix B), the subset that suits small images: the
"blit" ops (x-flip, 90-degree rotations, integer translation by up to 1/8 of the size), isotropic scaling and
the colour ops brightness, contrast and saturation, each applied to each image with probability p, their
parameters drawn as the paper draws them. The geometric ops are composed into one affine map per image and
resampled once (bilinear, reflection padding; torch's `grid_sample` is differentiable to second order, as R1
needs). `ganzoo.engine.ada` moves p during training.

`install(modules, policy)` adds a forward pre-hook that augments the first positional input of each module while
it is in training mode; the engine installs it on the discriminator roles when `TrainConfig.diffaugment` is set,
so plugins need no change. Random numbers come from torch's generator of the images' device (or `generator`), so
a seeded run (and a resumed one) draws the same augmentations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from ganzoo.errors import UsageError

Op = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]

TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def _uniform(x: torch.Tensor, generator: torch.Generator | None, low: float, high: float) -> torch.Tensor:
    """One U[low, high) factor per image, shaped to broadcast over (C, H, W), in the images' dtype."""
    draw = torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=generator)
    return (low + (high - low) * draw).to(x.dtype)


def color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, saturation and contrast, each drawn per image."""
    x = x + _uniform(x, generator, -0.5, 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(x, generator, 0.0, 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, generator, 0.5, 1.5) + mean


def _offsets(n: int, low: int, high: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """n integers drawn uniformly from [low, high]."""
    return torch.randint(low, high + 1, (n,), device=device, generator=generator)


def translation(
    x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = TRANSLATION_RATIO
) -> torch.Tensor:
    """Shift each image by up to `ratio` of its height and width (independently per axis), zero-filled."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = _offsets(n, -max_dy, max_dy, x.device, generator)
    dx = _offsets(n, -max_dx, max_dx, x.device, generator)
    padded = nn.functional.pad(x, (max_dx, max_dx, max_dy, max_dy))
    # output pixel (i, j) reads padded pixel (i + max_dy - dy, j + max_dx - dx): the content moves by (dy, dx)
    rows = torch.arange(h, device=x.device)[None, :] + (max_dy - dy)[:, None]  # (n, h)
    cols = torch.arange(w, device=x.device)[None, :] + (max_dx - dx)[:, None]  # (n, w)
    channels = x.shape[1]
    index = rows[:, None, :, None].expand(n, channels, h, padded.shape[3])
    picked = padded.gather(2, index)
    index = cols[:, None, None, :].expand(n, channels, h, w)
    return picked.gather(3, index)


def cutout(x: torch.Tensor, generator: torch.Generator | None = None, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero a square of `ratio` times the image size, centred on a random pixel of each image."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = _offsets(n, 0, h - 1, x.device, generator) - size_y // 2
    left = _offsets(n, 0, w - 1, x.device, generator) - size_x // 2
    rows = torch.arange(h, device=x.device)[None, :] - top[:, None]
    cols = torch.arange(w, device=x.device)[None, :] - left[:, None]
    inside = ((rows >= 0) & (rows < size_y))[:, :, None] & ((cols >= 0) & (cols < size_x))[:, None, :]
    return x * (~inside)[:, None].to(x.dtype)


OPS: dict[str, Op] = {"color": color, "translation": translation, "cutout": cutout}
"""The augmentations by policy name, applied in the order the policy names them."""


def parse_policy(policy: str | Iterable[str] | None) -> tuple[str, ...]:
    """`"color,translation,cutout"` (or a sequence of names) -> the op names; empty or None: no augmentation.

    An unknown name is a `UsageError` listing the accepted ones.
    """
    if policy is None:
        return ()
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in OPS]
    if unknown:
        raise UsageError(
            f"unknown DiffAugment op {', '.join(map(repr, unknown))}; accepted: {', '.join(OPS)} "
            "(comma-separated, e.g. color,translation,cutout)"
        )
    return tuple(dict.fromkeys(names))


def diff_augment(
    x: torch.Tensor, policy: str | Iterable[str] | None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Images (N, C, H, W) through the policy's ops: same shape and dtype, differentiable in `x`."""
    if x.ndim != 4 or not x.is_floating_point():
        raise UsageError(
            f"DiffAugment needs (N, C, H, W) float images, got a {x.dtype} tensor of shape {tuple(x.shape)}"
        )
    for name in parse_policy(policy):
        x = OPS[name](x, generator)
    return x


ADA_TRANSLATION = 0.125
"""Integer translation: up to this fraction of the image size in each direction."""
ADA_SCALE_STD = 0.2 * math.log(2)
"""Isotropic scaling: the log of the factor is N(0, ADA_SCALE_STD^2)."""
ADA_BRIGHTNESS_STD = 0.2
ADA_CONTRAST_STD = 0.5 * math.log(2)
ADA_SATURATION_STD = math.log(2)


def _happens(n: int, p: float, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """For each of n images, whether an op with probability p applies (a bool tensor)."""
    return torch.rand(n, device=device, generator=generator) < p


def _geometric(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """x-flip, 90-degree rotation, integer translation and isotropic scaling, each with probability p."""
    n, _, h, w = x.shape
    device = x.device
    # The inverse map (output -> input coordinates, normalised to [-1, 1]) of each image, as a 3x3 matrix.
    inverse = torch.eye(3, device=device).repeat(n, 1, 1)

    def then(step: torch.Tensor) -> None:  # the content goes through one more op: its inverse comes first
        inverse.copy_(inverse @ step)

    flip = _happens(n, p, device, generator) & (torch.rand(n, device=device, generator=generator) < 0.5)
    mirror = torch.eye(3, device=device).repeat(n, 1, 1)
    mirror[:, 0, 0] = 1 - 2 * flip.float()
    then(mirror)
    quarter = torch.randint(4, (n,), device=device, generator=generator)
    quarter = torch.where(_happens(n, p, device, generator), quarter, torch.zeros_like(quarter))
    cos = torch.tensor([1.0, 0.0, -1.0, 0.0], device=device)[quarter]
    sin = torch.tensor([0.0, 1.0, 0.0, -1.0], device=device)[quarter]
    rotation = torch.eye(3, device=device).repeat(n, 1, 1)
    rotation[:, 0, 0], rotation[:, 0, 1], rotation[:, 1, 0], rotation[:, 1, 1] = cos, sin, -sin, cos
    then(rotation)
    shift = (torch.rand(n, 2, device=device, generator=generator) * 2 - 1) * ADA_TRANSLATION
    size = torch.tensor([w, h], device=device, dtype=torch.float32)
    shift = torch.round(shift * size) * 2 / size  # whole pixels, in normalised units (the image spans 2)
    shift = shift * _happens(n, p, device, generator)[:, None]
    translation = torch.eye(3, device=device).repeat(n, 1, 1)
    translation[:, :2, 2] = -shift
    then(translation)
    scale = torch.exp(torch.randn(n, device=device, generator=generator) * ADA_SCALE_STD)
    scale = torch.where(_happens(n, p, device, generator), scale, torch.ones_like(scale))
    scaling = torch.eye(3, device=device).repeat(n, 1, 1)
    scaling[:, 0, 0] = scaling[:, 1, 1] = 1 / scale
    then(scaling)
    moved = ~torch.isclose(inverse, torch.eye(3, device=device)).flatten(1).all(dim=1)
    grid = nn.functional.affine_grid(inverse[:, :2], [n, 1, h, w], align_corners=False)
    resampled = nn.functional.grid_sample(
        x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False
    ).to(x.dtype)
    return torch.where(moved[:, None, None, None], resampled, x)  # untouched images stay exact


def _colour(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Brightness (add), contrast (scale about 0, mid-grey) and saturation (scale about the grey axis)."""
    n, channels = x.shape[:2]

    def factor(neutral: float, draw: torch.Tensor) -> torch.Tensor:
        chosen = _happens(n, p, x.device, generator)
        return torch.where(chosen, draw, torch.full_like(draw, neutral)).to(x.dtype)[:, None, None, None]

    x = x + factor(0.0, torch.randn(n, device=x.device, generator=generator) * ADA_BRIGHTNESS_STD)
    x = x * factor(1.0, torch.exp(torch.randn(n, device=x.device, generator=generator) * ADA_CONTRAST_STD))
    if channels > 1:
        grey = x.mean(dim=1, keepdim=True)
        draw = torch.exp(torch.randn(n, device=x.device, generator=generator) * ADA_SATURATION_STD)
        x = grey + (x - grey) * factor(1.0, draw)
    return x


def ada_augment(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """ADA's pipeline at strength p in [0, 1]: same shape and dtype, differentiable in `x`; p 0 returns `x`."""
    if x.ndim != 4 or not x.is_floating_point():
        raise UsageError(f"ADA needs (N, C, H, W) float images, got a {x.dtype} tensor of shape {tuple(x.shape)}")
    if p <= 0:
        return x
    return _colour(_geometric(x, p, generator), p, generator)


def install(modules: Iterable[nn.Module], policy: str | Iterable[str]) -> list[torch.utils.hooks.RemovableHandle]:
    """Augment the first positional input of every call of each module while it is in training mode.

    Only calls through `module(...)` run forward hooks: a method that bypasses `__call__` is not augmented.
    Returns the hook handles (`handle.remove()` takes the augmentation off again).
    """
    names = parse_policy(policy)
    if not names:
        return []

    def hook(module: nn.Module, args: tuple) -> tuple | None:
        if not module.training or not args:
            return None
        return (diff_augment(args[0], names), *args[1:])

    return [module.register_forward_pre_hook(hook) for module in modules]


__all__ = ["OPS", "ada_augment", "color", "cutout", "diff_augment", "install", "parse_policy", "translation"]
