"""The torch side of the paired image-to-image kit (`ganzoo.kit.paired`): the module that keeps a model's first
training pairs for sample grids, exact compositing of inpainted outputs, and how an input is shown beside outputs."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return images.detach().float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1.0)


class PairExamples(nn.Module):
    """The first `count` training pairs (source, target and, for inpainting, mask) as uint8 buffers."""

    def __init__(self, count: int, source_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("source", torch.zeros((count, *source_shape), dtype=torch.uint8))
        self.register_buffer("target", torch.zeros((count, *target_shape), dtype=torch.uint8))
        self.register_buffer("mask", torch.zeros((count, 1, *target_shape[1:]), dtype=torch.uint8))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("masked", torch.zeros((), dtype=torch.bool))  # pairs with masks: an inpainting model

    @torch.no_grad()
    def remember(self, batch: Mapping[str, torch.Tensor]) -> None:
        have, capacity = int(self.count), len(self.source)
        take = min(capacity - have, len(batch["source"]))
        if take <= 0:
            return
        self.source[have : have + take] = to_uint8(batch["source"][:take])
        self.target[have : have + take] = to_uint8(batch["target"][:take])
        if "mask" in batch:
            self.mask[have : have + take] = batch["mask"][:take].to(torch.uint8)
            self.masked.fill_(True)
        self.count += take

    def pairs(self) -> dict[str, torch.Tensor]:
        """The stored pairs: source and target in [-1, 1], and for an inpainting model the masks in {0, 1}."""
        count = int(self.count)
        pairs = {"source": from_uint8(self.source[:count]), "target": from_uint8(self.target[:count])}
        if bool(self.masked):
            pairs["mask"] = self.mask[:count].float()
        return pairs


def composite(output: torch.Tensor, source: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Inpainting: the output in the holes (mask 1), the source's known pixels, exactly, elsewhere."""
    if mask is None:
        return output
    hole = mask.to(torch.bool).expand_as(output)
    return torch.where(hole, output.to(source.dtype), source)


def shown_at(source: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """A model input drawn beside outputs of `size` px and `channels`: enlarged by repeating pixels (so the
    low-resolution input of a super-resolution model shows as such), grey repeated to colour."""
    if source.shape[-1] != size:
        source = F.interpolate(source, size=(size, size), mode="nearest")
    if source.shape[1] != channels:
        source = source.mean(dim=1, keepdim=True).expand(-1, channels, -1, -1)
    return source


def clamp_straight_through(x: torch.Tensor) -> torch.Tensor:
    """x clamped to [-1, 1] in the forward pass, the identity in the backward pass: the output of an image
    generator trained by L1 towards targets that sit exactly at -1 or 1 (black or white backgrounds). A tanh
    saturates there: under Adam's normalised steps the pre-activations run far past -1, where tanh's gradient is
    exactly 0 in fp32 and bf16 and the generator dies (inpaint 0.1.0: every output black); a plain clamp would leave
    an output stuck outside; through the straight-through clamp every output keeps the gradient that pulls it back."""
    return x + (x.clamp(-1.0, 1.0) - x).detach()


__all__ = ["PairExamples", "clamp_straight_through", "composite", "from_uint8", "shown_at", "to_uint8"]
