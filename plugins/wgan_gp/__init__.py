"""WGAN-GP (Gulrajani et al. 2017) as a ganzoo plugin: a critic without batch norm, the Wasserstein loss, the
gradient penalty on random interpolates (lambda 10), n_critic = 5 critic updates per generator update, and
Adam(1e-4, betas (0, 0.9)); DCGAN-style or ResNet-style networks at 28 to 256 px.

The penalty comes from `ganzoo.losses.gradient_penalty`, which stays correct under bf16 and fp16 + GradScaler.
Built on the plugin kit (`ganzoo.kit.ImageGAN`). Networks are in `networks.py`, imported when the model is built,
so `ganzoo list` does not import torch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ganzoo import DataInfo, option
from ganzoo.kit import ImageGAN, digits_recipe, latent
from ganzoo_plugins.dcgan import RESOLUTIONS


@dataclasses.dataclass
class WGANGPConfig:
    resolution: int | None = option(None, "image size: 28, 32, 64, 128 or 256 (default: the data's, else 64)")
    channels: int | None = option(None, "image channels (default: the data's)", min=1)
    backbone: str = option("dcgan", "networks: dcgan (strided convolutions) or resnet", choices=("dcgan", "resnet"))
    latent_dim: int = option(128, "size of the noise vector z", min=1)
    g_width: int = option(64, "generator width (dcgan: channels of its last hidden layer; resnet: every block)", min=1)
    d_width: int = option(64, "critic width (dcgan: channels of its first layer; resnet: every block)", min=1)
    critic_norm: str = option("layer", "normalisation in the critic (never batch norm)", choices=("layer", "none"))
    gp_weight: float = option(10.0, "lambda: weight of the gradient penalty", min=0)
    n_critic: int = option(5, "critic updates per generator update", min=1)
    lr_g: float = option(1e-4, "generator learning rate (Adam)", min=0)
    lr_d: float = option(1e-4, "critic learning rate (Adam)", min=0)
    betas: tuple[float, float] = option((0.0, 0.9), "Adam betas of both networks")


class WGANGP(ImageGAN):
    name = "wgan-gp"
    description = "WGAN-GP (Gulrajani et al. 2017): Wasserstein critic with a gradient penalty, n_critic = 5."
    version = "1.0.0"
    Config = WGANGPConfig
    reference_recipe = digits_recipe("wgan-gp-mnist", 2000)
    resolutions = RESOLUTIONS
    d_role = "critic"
    d_repeats_field = "n_critic"

    def build(self, config: WGANGPConfig, data_info: DataInfo) -> dict[str, Any]:
        from ganzoo_plugins.wgan_gp.networks import build_networks

        return build_networks(
            config.backbone,
            config.resolution,
            config.channels,
            config.latent_dim,
            config.g_width,
            config.d_width,
            config.critic_norm,
        )

    def d_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        import torch

        from ganzoo.losses import d_wasserstein, gradient_penalty

        real = batch["image"]
        with torch.no_grad():
            fake = nets["generator"](latent(ctx, real.shape[0]))
        critic = nets["critic"]
        real_scores, fake_scores = critic(real), critic(fake)
        wasserstein = d_wasserstein(real_scores, fake_scores)
        penalty = gradient_penalty(critic, real, "wgan-gp", fake=fake, scaler=ctx.scaler)
        return wasserstein + ctx.config.gp_weight * penalty, {
            "wasserstein_estimate": -wasserstein.detach(),
            "gradient_penalty": penalty.detach(),
        }

    def g_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        from ganzoo.losses import g_wasserstein

        return g_wasserstein(nets["critic"](nets["generator"](latent(ctx, ctx.batch_size)))), {}


plugin = WGANGP()
