"""An MLP GAN as a third-party ganzoo plugin, written only against ganzoo's public API.

Images are flattened into vectors: the generator maps noise to C*H*W values through fully connected layers and
the discriminator scores flattened images. Both are trained with the hinge loss of `ganzoo.losses`.

It is built on the plugin kit (`ganzoo.kit.ImageGAN`), so it is only its config, its networks and its two loss
functions: filling the resolution and channels from the data, the update schedule, Adam from `config.lr`, sampling
and the rest come from the kit. This module does not import torch (the networks live in `networks.py`, imported
by `build`), so `ganzoo list` stays fast with this plugin installed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ganzoo import DataInfo, option
from ganzoo.kit import ImageGAN, latent

__version__ = "0.2.0"


@dataclasses.dataclass
class MLPGANConfig:
    resolution: int | None = option(None, "image size in pixels (default: the data's, else 28)", min=4, max=128)
    channels: int | None = option(None, "image channels (default: the data's, else 1)", min=1, max=4)
    latent_dim: int = option(64, "size of the noise vector z", min=1)
    hidden: int = option(256, "width of the hidden layers of both networks", min=1)
    lr: float = option(2e-4, "learning rate of both networks (Adam)", min=0)
    betas: tuple[float, float] = option((0.5, 0.999), "Adam betas of both networks")


class MLPGAN(ImageGAN):
    name = "mlp-gan"
    description = "MLP GAN: fully connected generator and discriminator on flattened images, hinge loss."
    version = __version__
    Config = MLPGANConfig
    default_resolution = 28
    default_channels = 1

    def build(self, config: MLPGANConfig, data_info: DataInfo) -> dict[str, Any]:
        from ganzoo_example_mlp.networks import Discriminator, Generator

        shape = (config.channels, config.resolution, config.resolution)
        return {
            "generator": Generator(shape, config.latent_dim, config.hidden),
            "discriminator": Discriminator(shape, config.hidden),
        }

    def d_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        from ganzoo import losses

        real = batch["image"]  # float32 in [-1, 1], (N, C, H, W)
        real_logits = nets["discriminator"](real)
        fake_logits = nets["discriminator"](nets["generator"](latent(ctx, real.shape[0])))
        loss = losses.discriminator_loss("hinge", real_logits, fake_logits)
        return loss, {"d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}

    def g_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        from ganzoo import losses

        # The generator's update needs no data: it draws ctx.batch_size noise vectors itself.
        fake_logits = nets["discriminator"](nets["generator"](latent(ctx, ctx.batch_size)))
        return losses.generator_loss("hinge", fake_logits), {}


plugin = MLPGAN()
