"""DCGAN (Radford et al. 2016) as a ganzoo plugin: strided (transposed) convolutions, batch norm, ReLU in G,
LeakyReLU(0.2) in D, tanh output, N(0, 0.02) init; 28, 32 or 64 px and any channel count.

Only the plugin description lives here so that `ganzoo list` does not import torch; the networks are in
`networks.py`, imported when the model is built.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ganzoo import DataInfo, GANPlugin, OptimizerSpec, UpdateStep, UsageError, option
from ganzoo.plugin import ADVERSARIAL_LOSSES

RESOLUTIONS = (28, 32, 64)


@dataclasses.dataclass
class DCGANConfig:
    resolution: int | None = option(None, "image size: 28, 32 or 64 (default: the data's, else 64)")
    channels: int | None = option(None, "image channels (default: the data's)", min=1)
    latent_dim: int = option(100, "size of the noise vector z", min=1)
    g_width: int = option(64, "generator width: channels of its last hidden layer (ngf)", min=1)
    d_width: int = option(64, "discriminator width: channels of its first layer (ndf)", min=1)
    d_norm: str = option("batch", "normalisation in D after the first layer", choices=("batch", "spectral", "none"))
    loss: str = option("non-saturating", "adversarial loss", choices=ADVERSARIAL_LOSSES)
    r1_gamma: float = option(0.0, "R1 penalty weight: adds gamma/2 E||grad D(x)||^2 on real images; 0: off", min=0)
    lr_g: float = option(1.6e-3, "generator learning rate (Adam; the paper: 2e-4; see benchmarks/RESULTS.md)", min=0)
    lr_d: float = option(1.6e-3, "discriminator learning rate (Adam)", min=0)
    betas: tuple[float, float] = option((0.5, 0.999), "Adam betas of both networks")


def _d_step(nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
    import torch

    from ganzoo.losses import discriminator_loss, r1_penalty

    real = batch["image"]
    z = torch.randn(real.shape[0], ctx.config.latent_dim, device=real.device)
    fake = nets["generator"](z)
    real_logits = nets["discriminator"](real)
    fake_logits = nets["discriminator"](fake)
    loss = discriminator_loss(ctx.config.loss, real_logits, fake_logits)
    logs = {"d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}
    if ctx.config.r1_gamma > 0:
        penalty = r1_penalty(nets["discriminator"], real, ctx.scaler)
        loss = loss + 0.5 * ctx.config.r1_gamma * penalty
        logs["r1_penalty"] = penalty.detach()
    return loss, logs


def _g_step(nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
    import torch

    from ganzoo.losses import generator_loss

    z = torch.randn(ctx.batch_size, ctx.config.latent_dim, device=ctx.device)
    fake_logits = nets["discriminator"](nets["generator"](z))
    return generator_loss(ctx.config.loss, fake_logits), {}


class DCGAN(GANPlugin):
    name = "dcgan"
    modality = "image"
    description = "DCGAN (Radford et al. 2016): convolutional generator and discriminator with batch norm."
    version = "1.0.0"
    Config = DCGANConfig
    train_defaults: ClassVar[dict[str, Any]] = {"steps": 2000, "batch_size": 64, "ema_decay": 0.999}

    def resolve_config(self, config: DCGANConfig, data_info: DataInfo) -> DCGANConfig:
        resolution = config.resolution or data_info.resolution or 64
        channels = config.channels or data_info.channels or 3
        return dataclasses.replace(config, resolution=resolution, channels=channels)

    def validate(self, config: DCGANConfig) -> None:
        if config.resolution not in RESOLUTIONS:
            raise UsageError(f"dcgan resolution={config.resolution} is not supported; accepted: 28, 32, 64")

    def build(self, config: DCGANConfig, data_info: DataInfo) -> dict[str, Any]:
        from ganzoo_plugins.dcgan.networks import Discriminator, Generator

        return {
            "generator": Generator(config.resolution, config.channels, config.latent_dim, config.g_width),
            "discriminator": Discriminator(config.resolution, config.channels, config.d_width, config.d_norm),
        }

    def schedule(self, config: DCGANConfig) -> list[UpdateStep]:
        return [
            UpdateStep("discriminator", ("discriminator",), _d_step),
            UpdateStep("generator", ("generator",), _g_step, needs_data=False),
        ]

    def optimizers(self, config: DCGANConfig) -> dict[str, OptimizerSpec]:
        betas = tuple(config.betas)
        return {
            "generator": OptimizerSpec(lr=config.lr_g, betas=betas),
            "discriminator": OptimizerSpec(lr=config.lr_d, betas=betas),
        }

    def sample(self, nets: Any, n: int, condition: Any = None, generator: Any = None) -> Any:
        import torch

        g = nets["generator"]
        device = next(g.parameters()).device
        z = torch.randn(n, g.latent_dim, device=device, generator=generator)
        return g(z)

    def frozen_d_blocks(self, nets: Any) -> list[Any]:
        return list(nets["discriminator"].blocks)


plugin = DCGAN()
