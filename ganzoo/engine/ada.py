"""Adaptive discriminator augmentation (ADA, Karras et al. 2020): the engine's controller of the strength p.

Every input of the discriminators goes through `ganzoo.augment.ada_augment` at the current p while they train
(real and generated images alike, and a penalty's inputs), so a plugin needs no change. The overfitting heuristic
r_t = E[sign(D(real))] is measured on the discriminators' outputs for the real batch: a call whose first
argument is one of the current batch's image tensors (`expect_real`) is a call on real images; its first output
tensor is the logits. Every `interval` iterations p moves by sign(r_t - target) times the images seen since the
last adjustment over `kimg` thousand, clamped to [0, 1]: a D that is sure of the real images (r_t above the
target) is overfitting, so it sees more augmentation. Under DDP the sums are all-reduced, so every rank holds the
same p. p and the unfinished sums are saved in checkpoints, so a resumed run moves p exactly as an uninterrupted
one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import distributed as dist
from torch import nn

from ganzoo.augment import ada_augment
from ganzoo.errors import PluginError


def first_tensor(output: Any) -> torch.Tensor | None:
    """The logits of a discriminator's output: the tensor itself, or the first tensor of a tuple or list."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next((item for item in output if isinstance(item, torch.Tensor)), None)
    return None


class AdaptiveAugment:
    """ADA's p and its heuristic, hooked into discriminator modules.

    Args:
        target: the r_t that p steers towards (the paper's 0.6).
        interval: iterations between adjustments.
        kimg: thousands of images it takes p to move by 1.
        images_per_iteration: real images all ranks draw per iteration (the step of p counts them).
        device: where the sums live (the discriminators' device).
    """

    def __init__(
        self, target: float, interval: int, kimg: float, images_per_iteration: int, device: torch.device
    ) -> None:
        self.p = 0.0
        self.target = target
        self.interval = interval
        self.step_size = images_per_iteration * interval / (kimg * 1000)
        self.signs = torch.zeros(2, device=device)  # sum of sign(D(real)) and how many outputs
        self._real: tuple[torch.Tensor, ...] = ()
        self._real_call = False
        self._called = False  # whether a discriminator ran since the last adjustment

    def install(self, modules: Iterable[nn.Module]) -> list[torch.utils.hooks.RemovableHandle]:
        """Augment every training-mode call of each module and record its outputs on the real batch."""

        def before(module: nn.Module, args: tuple) -> tuple | None:
            if not module.training or not args:
                return None
            self._called = True
            self._real_call = any(args[0] is real for real in self._real)
            return (ada_augment(args[0], self.p), *args[1:])

        def after(module: nn.Module, args: tuple, output: Any) -> None:
            if not self._real_call:
                return
            self._real_call = False
            logits = first_tensor(output)
            if logits is not None:
                logits = logits.detach().float()
                self.signs += torch.stack([logits.sign().sum(), logits.new_tensor(float(logits.numel()))])

        handles = []
        for module in modules:
            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
        return handles

    def expect_real(self, batch: Mapping[str, Any]) -> None:
        """The update about to run gets `batch`: its image tensors are the real images."""
        self._real = tuple(v for v in batch.values() if isinstance(v, torch.Tensor) and v.ndim == 4)

    def adjust(self, world_size: int = 1) -> float | None:
        """Move p from the outputs seen since the last adjustment; returns r_t (None, p kept, when no discriminator
        ran in the interval, as in a generator-only phase). A collective under DDP."""
        signs = self.signs.clone()
        if world_size > 1:
            dist.all_reduce(signs)
        total, count = signs.tolist()
        called, self._called = self._called, False
        if count == 0 and not called:  # no discriminator update ran (e.g. a generator-only pre-training phase)
            return None
        if count == 0:
            raise PluginError(
                "augment=ada measures E[sign(D(real))], but no discriminator was called on the real batch itself "
                "(e.g. on torch.cat of real and fake images, or of source and target); call it on batch['image'] "
                "(batch['target'] for paired data) itself to use ada"
            )
        r_t = total / count
        direction = (r_t > self.target) - (r_t < self.target)
        self.p = min(1.0, max(0.0, self.p + direction * self.step_size))
        self.signs.zero_()
        return r_t

    def state_dict(self, world_size: int = 1) -> dict[str, Any]:
        """p and the sums so far (all ranks' sums together: a collective under DDP)."""
        signs = self.signs.clone()
        if world_size > 1:
            dist.all_reduce(signs)
        return {"p": self.p, "signs": signs.cpu()}

    def load_state_dict(self, state: Mapping[str, Any], is_main: bool = True) -> None:
        """Restore p; the saved sums go to rank 0 only, since the next adjustment adds up every rank's."""
        self.p = float(state["p"])
        self.signs.copy_(state["signs"] if is_main else torch.zeros_like(self.signs))


__all__ = ["AdaptiveAugment", "first_tensor"]
