"""The plugin kit: what every image GAN plugin needs besides its networks and its two loss functions.

`ImageGAN` is a `GANPlugin` for one generator (role `generator`) and one discriminator (role `d_role`). A plugin
sets its class attributes (name, Config, `resolutions`), writes `build`, `d_loss` and `g_loss`, and inherits:

- `resolve_config`: image data only (a paired or text spec is refused in one line); `resolution` and `channels`
  fields left None follow the data (else `default_resolution`, `default_channels`; with `round_up_resolution`, the
  data's size rounded up to the next of `resolutions`, so 28 px digits train a 32 px model); the engine itself
  fills `num_classes` from labelled data;
- `validate`: the resolution is one of `resolutions` (None: any);
- `schedule`: the discriminator update (repeated `config.<d_repeats_field>` times, e.g. n_critic) then the
  generator update (`g_needs_data`: whether it gets a real batch too, as relativistic losses need);
- `optimizers`: Adam with `lr_g` / `lr_d` (or one `lr`) and `betas` from the config;
- `sample`: `synthesize(latents(n))`, one code path for samples and interpolations: `latents` draws z ~ N(0, I)
  of the generator's `latent_dim` (`latent_size`) from the seeded `generator`, and `synthesize` runs the
  generator on z, with class labels (given, or cycling 0..K-1) when the generator has a positive `num_classes`;
- `frozen_d_blocks`: the discriminator's `blocks` (an `nn.ModuleList`, input to output) when it has them.

The helpers `latent(ctx, n)`, `random_labels(ctx, n)` and `class_labels(condition, n, num_classes)` draw noise and
labels the way exact resume needs (torch's global generator inside losses, the caller's generator in sample);
`slerp(a, b, t)` interpolates latents spherically. `digits_recipe` is the reference recipe (`ganzoo zoo build`) of a
model of the embedded digits: trained on `mnist-4k?split=train`, scored on its 500 held-out digits.
This module does not import torch at import time, so `ganzoo list` stays fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ganzoo.errors import UsageError
from ganzoo.plugin import DataInfo, GANPlugin, OptimizerSpec, Recipe, StepContext, UpdateStep

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["ImageGAN", "adam_optimizers", "class_labels", "digits_recipe", "latent", "random_labels", "slerp"]

DIGITS_TRAIN, DIGITS_TEST = "mnist-4k?split=train", "mnist-4k?split=test"


def digits_recipe(
    name: str, steps: int, metrics: str = "fid,kid,pr", task: str | None = None, **overrides: Any
) -> Recipe:
    """A reference recipe on the embedded digits: `steps` iterations on the 3,500 training digits (`task`: a paired
    task of them, e.g. inpaint), scored on the 500 held-out ones with `metrics` and the digits features."""
    suffix = f"&task={task}" if task else ""
    return Recipe(name, DIGITS_TRAIN + suffix, steps, overrides, DIGITS_TEST + suffix, metrics)


def latent(ctx: StepContext, n: int) -> torch.Tensor:
    """n noise vectors of the config's `latent_dim` on the training device (from torch's global generator)."""
    import torch

    return torch.randn(n, ctx.config.latent_dim, device=ctx.device)


def random_labels(ctx: StepContext, n: int) -> torch.Tensor:
    """n uniformly drawn class labels in 0..num_classes-1 (from torch's global generator)."""
    import torch

    return torch.randint(ctx.config.num_classes, (n,), device=ctx.device)


def class_labels(condition: Any, n: int, num_classes: int, device: Any = None, name: str = "the model") -> torch.Tensor:
    """The labels `sample(n, condition)` draws: the given ones (one label is repeated n times), or 0, 1, ...,
    K-1 cycling; a label outside the classes, or a count other than n, is a `UsageError`."""
    import torch

    if condition is None:
        return torch.arange(n, device=device) % num_classes
    labels = torch.as_tensor(condition, dtype=torch.long, device=device).reshape(-1)
    if labels.numel() == 1:
        labels = labels.expand(n)
    if len(labels) != n or labels.min() < 0 or labels.max() >= num_classes:
        raise UsageError(f"{name} labels must be {n} class numbers in 0..{num_classes - 1}")
    return labels


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation from `a` (t = 0) to `b` (t = 1) along the last dimension (Shoemake 1985; White 2016
    for GAN latents): the weights sin((1 - t) theta) / sin theta and sin(t theta) / sin theta, theta the angle
    between a and b, keep vectors of equal norm at that norm (a straight line would pass nearer the origin than
    Gaussian latents ever lie). Both ends are exact; (nearly) parallel vectors are interpolated linearly."""
    import torch

    norms = (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)).clamp_min(1e-12)
    theta = torch.arccos(((a * b).sum(dim=-1, keepdim=True) / norms).clamp(-1, 1))
    sin = torch.sin(theta)
    parallel = sin < 1e-6
    weight_a = torch.where(parallel, 1 - t, torch.sin((1 - t) * theta) / sin)
    weight_b = torch.where(parallel, t, torch.sin(t * theta) / sin)
    return weight_a * a + weight_b * b


def adam_optimizers(config: Any, d_role: str) -> dict[str, OptimizerSpec]:
    """Adam for the generator and the discriminator role with the config's `lr_g` / `lr_d` (or one `lr`) and
    `betas`."""
    betas = tuple(config.betas)
    lr_g, lr_d = (getattr(config, "lr_g", None), getattr(config, "lr_d", None))
    if lr_g is None or lr_d is None:
        lr_g = lr_d = config.lr
    return {"generator": OptimizerSpec(lr=lr_g, betas=betas), d_role: OptimizerSpec(lr=lr_d, betas=betas)}


class ImageGAN(GANPlugin):
    """A one-generator, one-discriminator image GAN: subclass it and write `build`, `d_loss` and `g_loss`."""

    modality: ClassVar[str] = "image"
    resolutions: ClassVar[tuple[int, ...] | None] = None
    """The image sizes the networks support (None: any)."""
    round_up_resolution: ClassVar[bool] = False
    """Whether a resolution left None is the data's rounded up to the next of `resolutions` (the data is resized)."""
    default_resolution: ClassVar[int] = 64
    default_channels: ClassVar[int] = 3
    d_role: ClassVar[str] = "discriminator"
    """The discriminator's role name (e.g. `critic`)."""
    d_repeats_field: ClassVar[str | None] = None
    """The config field with the number of discriminator updates per iteration (e.g. `n_critic`); None: one."""
    g_needs_data: ClassVar[bool] = False
    """Whether the generator's update gets a real batch (relativistic losses compare with the real logits)."""
    train_defaults: ClassVar[Mapping[str, Any]] = {"steps": 2000, "batch_size": 64, "ema_decay": 0.999}

    def d_loss(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> Any:
        """The discriminator's `(loss, logs)` for one batch of real images."""
        raise NotImplementedError(f"plugin {self.name!r} does not implement d_loss()")

    def g_loss(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], ctx: StepContext) -> Any:
        """The generator's `(loss, logs)`; `batch` is empty unless `g_needs_data`."""
        raise NotImplementedError(f"plugin {self.name!r} does not implement g_loss()")

    def resolve_config(self, config: Any, data_info: DataInfo) -> Any:
        if data_info.modality != "image":
            kind = "paired image-to-image" if data_info.extras.get("paired") else data_info.modality
            raise UsageError(
                f"{self.name} learns images from unlabelled or labelled image data, and this data is {kind} data; "
                "accepted: image specs such as mnist-4k, folder:PATH or photos (without task=)"
            )
        filled = {}
        if hasattr(config, "resolution"):
            resolution = config.resolution or data_info.resolution or self.default_resolution
            if config.resolution is None and self.round_up_resolution and self.resolutions:
                resolution = next((r for r in sorted(self.resolutions) if r >= resolution), max(self.resolutions))
            filled["resolution"] = resolution
        if hasattr(config, "channels"):
            filled["channels"] = config.channels or data_info.channels or self.default_channels
        return dataclasses.replace(config, **filled)

    def validate(self, config: Any) -> None:
        resolution = getattr(config, "resolution", None)
        if self.resolutions is not None and resolution not in self.resolutions:
            accepted = ", ".join(map(str, self.resolutions))
            raise UsageError(f"{self.name} resolution={resolution} is not supported; accepted: {accepted}")

    def schedule(self, config: Any) -> list[UpdateStep]:
        repeats = getattr(config, self.d_repeats_field) if self.d_repeats_field else 1
        return [
            UpdateStep(self.d_role, (self.d_role,), self.d_loss, repeats=repeats),
            UpdateStep("generator", ("generator",), self.g_loss, needs_data=self.g_needs_data),
        ]

    def optimizers(self, config: Any) -> dict[str, OptimizerSpec]:
        return adam_optimizers(config, self.d_role)

    def latent_size(self, nets: Mapping[str, nn.Module]) -> int:
        return nets["generator"].latent_dim

    def latents(
        self, nets: Mapping[str, nn.Module], n: int, generator: torch.Generator | None = None, **options: Any
    ) -> torch.Tensor:
        """z ~ N(0, I) (n, latent_size) on the generator's device; `options` (sample's) are synthesize's."""
        import torch

        device = next(nets["generator"].parameters()).device
        return torch.randn(n, self.latent_size(nets), device=device, generator=generator)

    def synthesize(
        self,
        nets: Mapping[str, nn.Module],
        z: torch.Tensor,
        condition: Any = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        g = nets["generator"]
        classes = getattr(g, "num_classes", None) or 0
        if classes <= 0:
            if condition is not None:
                raise UsageError(f"{self.name} is not a conditional model; it takes no condition")
            return g(z)
        return g(z, class_labels(condition, len(z), classes, z.device, self.name))

    def sample(
        self,
        nets: Mapping[str, nn.Module],
        n: int,
        condition: Any = None,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> torch.Tensor:
        z = self.latents(nets, n, generator, **options)
        return self.synthesize(nets, z, condition, generator, **options)

    def frozen_d_blocks(self, nets: Mapping[str, nn.Module]) -> list[nn.Module]:
        return list(getattr(nets[self.d_role], "blocks", ()))
