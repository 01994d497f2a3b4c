"""Toy plugins and data shared by the engine, checkpoint and DDP tests.

`ToyGAN` is a tiny image GAN (8x8 grey images) whose loss functions record every call: the iteration, the
batch's labels (the data's labels are the sample indices, so fresh batches are recognisable), the conv output
dtype under autocast and a snapshot of every parameter taken before the update. Options make it repeat the
D step (n_critic), return a NaN loss at a chosen iteration, or blow up the fp16 gradients once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ganzoo import DataInfo, GANPlugin, UpdateStep, option
from ganzoo.data.sources import TensorImageSource
from ganzoo.losses import discriminator_loss, generator_loss

TOY_SAMPLES = 64
TOY_RESOLUTION = 8


@dataclasses.dataclass
class ToyConfig:
    latent_dim: int = option(4, "size of the noise vector", min=1)
    width: int = option(2, "channels of the discriminator's conv", min=1)
    d_repeats: int = option(1, "discriminator updates per iteration (n_critic)", min=1)
    nan_at: int = option(0, "1-based iteration whose generator loss is NaN (0: never)", min=0)
    nan_times: int = option(0, "NaN only the first N times nan_at runs (a rollback reruns it; 0: every time)", min=0)
    overflow_at: int = option(0, "1-based iteration whose generator loss is scaled by 1e8 (0: never)", min=0)
    lr: float = option(1e-2, "learning rate of both networks", min=0)
    betas: tuple[float, float] = option((0.5, 0.9), "Adam betas")


class ToyGenerator(nn.Module):
    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.fc = nn.Linear(latent_dim, TOY_RESOLUTION * TOY_RESOLUTION)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(z)).view(-1, 1, TOY_RESOLUTION, TOY_RESOLUTION)


class ToyDiscriminator(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.fc = nn.Linear(width * TOY_RESOLUTION * TOY_RESOLUTION, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(nn.functional.leaky_relu(self.conv(x), 0.2).flatten(1)).squeeze(1)


class ToyGAN(GANPlugin):
    """A recording toy GAN; every instance keeps its own `calls` list."""

    name = "toy-engine"
    modality = "image"
    description = "A tiny recording GAN for the engine tests."
    version = "0.0.1"
    Config = ToyConfig

    def __init__(self, name: str = "toy-engine", snapshot: bool = True) -> None:
        self.name = name  # instance attribute: tests may register several
        self.snapshot = snapshot
        self.calls: list[dict[str, Any]] = []
        self.nans = 0  # NaN losses made so far (nan_times)

    def build(self, config: ToyConfig, data_info: DataInfo) -> dict[str, nn.Module]:
        return {"generator": ToyGenerator(config.latent_dim), "discriminator": ToyDiscriminator(config.width)}

    def schedule(self, config: ToyConfig) -> list[UpdateStep]:
        return [
            UpdateStep("discriminator", ("discriminator",), self._d_loss, repeats=config.d_repeats),
            UpdateStep("generator", ("generator",), self._g_loss, needs_data=False),
        ]

    def _record(self, name: str, nets: Any, batch: Any, ctx: Any, conv_dtype: torch.dtype) -> None:
        entry: dict[str, Any] = {
            "name": name,
            "step": ctx.step,
            "batch_keys": sorted(batch),
            "labels": batch["label"].tolist() if "label" in batch else None,
            "conv_dtype": conv_dtype,
            "precision": ctx.precision,
        }
        if self.snapshot:
            entry["params"] = {
                role: {k: p.detach().clone() for k, p in net.named_parameters()} for role, net in nets.items()
            }
        self.calls.append(entry)

    def _d_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        real = batch["image"]
        self._record("discriminator", nets, batch, ctx, nets["discriminator"].conv(real).dtype)
        z = torch.randn(real.shape[0], ctx.config.latent_dim, device=real.device)
        real_logits = nets["discriminator"](real)
        fake_logits = nets["discriminator"](nets["generator"](z))
        loss = discriminator_loss("non-saturating", real_logits, fake_logits)
        return loss, {"d_real": real_logits.detach().float().mean()}

    def _g_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        z = torch.randn(ctx.batch_size, ctx.config.latent_dim, device=ctx.device)
        fake = nets["generator"](z)
        self._record("generator", nets, batch, ctx, nets["discriminator"].conv(fake).dtype)
        loss = generator_loss("non-saturating", nets["discriminator"](fake))
        if ctx.step + 1 == ctx.config.nan_at and (not ctx.config.nan_times or self.nans < ctx.config.nan_times):
            self.nans += 1
            loss = loss * float("nan")
        if ctx.step + 1 == ctx.config.overflow_at:
            loss = loss * 1e8
        return loss, {}

    def sample(self, nets: Any, n: int, condition: Any = None, generator: Any = None) -> torch.Tensor:
        g = nets["generator"]
        z = torch.randn(n, g.latent_dim, generator=generator, device=next(g.parameters()).device)
        return g(z)


def toy_data(n: int = TOY_SAMPLES) -> TensorImageSource:
    """`n` random 8x8 grey images whose label is their index."""

    def read() -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(1234)
        images = torch.randint(0, 256, (n, 1, TOY_RESOLUTION, TOY_RESOLUTION), generator=generator, dtype=torch.uint8)
        return images, torch.arange(n)

    info = DataInfo(modality="image", channels=1, resolution=TOY_RESOLUTION, num_classes=None, num_samples=n)
    return TensorImageSource("toy-data", read, info)


def _quiet_cpu_run(**settings: Any) -> dict[str, Any]:
    """TrainConfig overrides for a short, quiet fp32 CPU run without samples or checkpoints on the way."""
    base: dict[str, Any] = {
        "steps": 4,
        "device": "cpu",
        "precision": "fp32",
        "progress": False,
        "tensorboard": False,
        "sample_every": 1000,
        "sample_grid": 4,
        "checkpoint_every": 1000,
    }
    return {**base, **settings}


def toy_train(**overrides: Any) -> dict[str, Any]:
    """TrainConfig overrides for a quick, quiet CPU run of the toy plugin."""
    return _quiet_cpu_run(**{"batch_size": 8, "log_every": 1, "ema_decay": 0.0, **overrides})


DCGAN_TINY = {"g_width": 8, "d_width": 8, "latent_dim": 16}


def dcgan_train(**overrides: Any) -> dict[str, Any]:
    """TrainConfig overrides for a quick, quiet CPU run of a tiny DCGAN on mnist-4k."""
    return _quiet_cpu_run(**{"batch_size": 16, "log_every": 2, **overrides})


class StopAfter:
    """A training callback that interrupts the run after iteration `step`, as Ctrl-C would (for resume tests)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, trainer: Any, step: int) -> None:
        if step == self.step:
            raise KeyboardInterrupt
