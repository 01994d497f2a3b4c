"""DCGAN (Radford et al. 2016) as a ganzoo plugin: strided (transposed) convolutions, batch norm, ReLU in G,
LeakyReLU(0.2) in D, tanh output, N(0, 0.02) init; 28 to 256 px and any channel count.

Built on the plugin kit (`ganzoo.kit.ImageGAN`): this module is the config, the two loss functions and the
networks' construction. It does not import torch, so `ganzoo list` stays fast; the networks are in `networks.py`,
imported when the model is built.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ganzoo import DataInfo, option
from ganzoo.kit import ImageGAN, digits_recipe, latent
from ganzoo.plugin import ADVERSARIAL_LOSSES

RESOLUTIONS = (28, 32, 64, 128, 256)  # 128 and 256 px: layers capped at 8 x width (networks.py)


@dataclasses.dataclass
class DCGANConfig:
    resolution: int | None = option(None, "image size: 28, 32, 64, 128 or 256 (default: the data's, else 64)")
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


class DCGAN(ImageGAN):
    name = "dcgan"
    description = "DCGAN (Radford et al. 2016): convolutional generator and discriminator with batch norm."
    version = "1.0.0"
    Config = DCGANConfig
    reference_recipe = digits_recipe("dcgan-mnist", 2000)
    finetune_defaults: ClassVar[dict[str, Any]] = {"freeze_d": 1}  # benchmarks/RESULTS.md, "transfer: what it shows"
    resolutions = RESOLUTIONS

    def build(self, config: DCGANConfig, data_info: DataInfo) -> dict[str, Any]:
        from ganzoo_plugins.dcgan.networks import Discriminator, Generator

        return {
            "generator": Generator(config.resolution, config.channels, config.latent_dim, config.g_width),
            "discriminator": Discriminator(config.resolution, config.channels, config.d_width, config.d_norm),
        }

    def d_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        from ganzoo.losses import discriminator_loss, gradient_penalty

        real = batch["image"]
        fake = nets["generator"](latent(ctx, real.shape[0]))
        real_logits = nets["discriminator"](real)
        fake_logits = nets["discriminator"](fake)
        loss = discriminator_loss(ctx.config.loss, real_logits, fake_logits)
        logs = {"d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}
        if ctx.config.r1_gamma > 0:
            penalty = gradient_penalty(nets["discriminator"], real, "r1", scaler=ctx.scaler)
            loss = loss + 0.5 * ctx.config.r1_gamma * penalty
            logs["r1_penalty"] = penalty.detach()
        return loss, logs

    def g_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        from ganzoo.losses import generator_loss

        fake_logits = nets["discriminator"](nets["generator"](latent(ctx, ctx.batch_size)))
        return generator_loss(ctx.config.loss, fake_logits), {}


plugin = DCGAN()
