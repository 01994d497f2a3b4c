"""Degradations that turn clean images into the inputs of image-to-image tasks (the `?task=` of a data spec).

Every function takes float images in [-1, 1], (N, C, H, W), and returns the degraded source in [-1, 1]; those that
draw random numbers take one private `torch.Generator` per image (never torch's global generator, which the
engine checkpoints), so the same generators give the same degradations:

- `downsample` (sr2x, sr4x): bicubic down-sampling with anti-aliasing by the scale factor;
- `add_noise` (denoise): additive Gaussian noise of standard deviation `sigma` in 0..255 pixel units, clipped;
- `luma` (colorize): the ITU-R 601 luma Y = 0.299 R + 0.587 G + 0.114 B, one channel;
- `hole_masks` and `cut_holes` (inpaint): a random rectangle and 1-3 random free-form brush strokes per image;
  masks are 1 where pixels are missing, and the source is the image with its holes set to 0 (mid-grey).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

TASKS = ("sr2x", "sr4x", "inpaint", "denoise", "colorize")
SR_SCALES = {"sr2x": 2, "sr4x": 4}
DEFAULT_SIGMA = 25.0
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_UNIFORMS_PER_MASK = 128  # every mask consumes the same count of draws, whatever its shape


def downsample(images: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic, anti-aliased down-sampling by `scale` (the size must be divisible by it), clipped to [-1, 1]."""
    h, w = images.shape[-2:]
    size = (h // scale, w // scale)
    return F.interpolate(images, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(-1.0, 1.0)


def add_noise(images: torch.Tensor, sigma: float, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """`images` plus Gaussian noise of standard deviation `sigma` (0..255 pixel units), clipped to [-1, 1]."""
    noise = torch.empty_like(images)
    for row, g in zip(noise, generators, strict=True):
        row.normal_(generator=g)
    return (images + noise * (sigma / 127.5)).clamp_(-1.0, 1.0)


def luma(images: torch.Tensor) -> torch.Tensor:
    """The luma of RGB images, (N, 1, H, W): the weights sum to one, so it stays in [-1, 1]."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images[:, :3] * weights).sum(1, keepdim=True).clamp_(-1.0, 1.0)


def hole_mask(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """One (1, H, W) float mask, 1 in the holes: a rectangle (each side 1/8 to 1/2 of the image's) and 1-3
    free-form strokes (4-9 segments each, brush width 3-10% of the image, in the manner of DeepFill v2's masks)."""
    uniforms = iter(torch.rand(_UNIFORMS_PER_MASK, generator=generator, dtype=torch.float64).tolist())
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    box_w = max(1, round(width * (0.125 + 0.375 * next(uniforms))))
    box_h = max(1, round(height * (0.125 + 0.375 * next(uniforms))))
    left = math.floor((width - box_w + 1) * next(uniforms))
    top = math.floor((height - box_h + 1) * next(uniforms))
    draw.rectangle((left, top, left + box_w - 1, top + box_h - 1), fill=255)
    side = min(height, width)
    for _ in range(1 + math.floor(3 * next(uniforms))):
        brush = max(1, round(side * (0.03 + 0.07 * next(uniforms))))
        x, y = width * next(uniforms), height * next(uniforms)
        angle = 2 * math.pi * next(uniforms)
        points = [(x, y)]
        for _ in range(4 + math.floor(6 * next(uniforms))):
            angle += math.pi * (next(uniforms) - 0.5)
            length = side * (0.05 + 0.2 * next(uniforms))
            if not (0 <= x + length * math.cos(angle) < width and 0 <= y + length * math.sin(angle) < height):
                angle += math.pi  # turn back at the border rather than run along it
            x = min(max(x + length * math.cos(angle), 0.0), width - 1.0)
            y = min(max(y + length * math.sin(angle), 0.0), height - 1.0)
            points.append((x, y))
        draw.line(points, fill=255, width=brush, joint="curve")
        for px, py in points:  # round caps
            draw.ellipse((px - brush / 2, py - brush / 2, px + brush / 2, py + brush / 2), fill=255)
    return torch.from_numpy(np.asarray(canvas) > 0).float()[None]


def hole_masks(height: int, width: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """One hole mask per generator, (N, 1, H, W) float32, 1 where pixels are missing."""
    return torch.from_numpy(np.stack([hole_mask(height, width, g).numpy() for g in generators]))


def cut_holes(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """`images` with the pixels under `masks` (1 = missing) set to exactly 0, mid-grey in [-1, 1]."""
    return images.masked_fill(masks.bool().expand_as(images), 0.0)


def degrade(
    task: str, images: torch.Tensor, generators: Sequence[torch.Generator], sigma: float = DEFAULT_SIGMA
) -> dict[str, torch.Tensor]:
    """The model's input for `task` made from clean `images`: {"source"}, plus {"mask"} for inpaint."""
    if task in SR_SCALES:
        return {"source": downsample(images, SR_SCALES[task])}
    if task == "denoise":
        return {"source": add_noise(images, sigma, generators)}
    if task == "colorize":
        return {"source": luma(images)}
    if task == "inpaint":
        masks = hole_masks(images.shape[-2], images.shape[-1], generators)
        return {"source": cut_holes(images, masks), "mask": masks}
    raise ValueError(f"unknown task {task!r}; accepted: {', '.join(TASKS)}")
