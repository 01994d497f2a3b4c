"""WGAN-GP (Gulrajani et al. 2017) as a ganzoo plugin: a critic without batch norm, the Wasserstein loss, the
gradient penalty on random interpolates (lambda 10), n_critic = 5 critic updates per generator update, and
Adam(1e-4, betas (0, 0.9)); DCGAN-style or ResNet-style networks at 28, 32 or 64 px.

The penalty comes from `ganzoo.losses.gradient_penalty`, which stays correct under bf16 and fp16 + GradScaler.
Networks are in `networks.py`, imported when the model is built, so `ganzoo list` does not import torch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ganzoo import DataInfo, GANPlugin, OptimizerSpec, UpdateStep, UsageError, option

RESOLUTIONS = (28, 32, 64)


@dataclasses.dataclass
class WGANGPConfig:
    resolution: int | None = option(None, "image size: 28, 32 or 64 (default: the data's, else 64)")
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


def _critic_step(nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
    import torch

    from ganzoo.losses import d_wasserstein, gradient_penalty

    real = batch["image"]
    with torch.no_grad():
        fake = nets["generator"](torch.randn(real.shape[0], ctx.config.latent_dim, device=real.device))
    critic = nets["critic"]
    real_scores, fake_scores = critic(real), critic(fake)
    wasserstein = d_wasserstein(real_scores, fake_scores)
    penalty = gradient_penalty(critic, real, fake, ctx.scaler)
    return wasserstein + ctx.config.gp_weight * penalty, {
        "wasserstein_estimate": -wasserstein.detach(),
        "gradient_penalty": penalty.detach(),
    }


def _generator_step(nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
    import torch

    from ganzoo.losses import g_wasserstein

    z = torch.randn(ctx.batch_size, ctx.config.latent_dim, device=ctx.device)
    return g_wasserstein(nets["critic"](nets["generator"](z))), {}


class WGANGP(GANPlugin):
    name = "wgan-gp"
    modality = "image"
    description = "WGAN-GP (Gulrajani et al. 2017): Wasserstein critic with a gradient penalty, n_critic = 5."
    version = "1.0.0"
    Config = WGANGPConfig
    train_defaults: ClassVar[dict[str, Any]] = {"steps": 2000, "batch_size": 64, "ema_decay": 0.999}

    def resolve_config(self, config: WGANGPConfig, data_info: DataInfo) -> WGANGPConfig:
        resolution = config.resolution or data_info.resolution or 64
        channels = config.channels or data_info.channels or 3
        return dataclasses.replace(config, resolution=resolution, channels=channels)

    def validate(self, config: WGANGPConfig) -> None:
        if config.resolution not in RESOLUTIONS:
            raise UsageError(f"wgan-gp resolution={config.resolution} is not supported; accepted: 28, 32, 64")

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

    def schedule(self, config: WGANGPConfig) -> list[UpdateStep]:
        return [
            UpdateStep("critic", ("critic",), _critic_step, repeats=config.n_critic),
            UpdateStep("generator", ("generator",), _generator_step, needs_data=False),
        ]

    def optimizers(self, config: WGANGPConfig) -> dict[str, OptimizerSpec]:
        betas = tuple(config.betas)
        return {
            "generator": OptimizerSpec(lr=config.lr_g, betas=betas),
            "critic": OptimizerSpec(lr=config.lr_d, betas=betas),
        }

    def sample(self, nets: Any, n: int, condition: Any = None, generator: Any = None) -> Any:
        import torch

        g = nets["generator"]
        z = torch.randn(n, g.latent_dim, device=next(g.parameters()).device, generator=generator)
        return g(z)

    def frozen_d_blocks(self, nets: Any) -> list[Any]:
        return list(nets["critic"].blocks)


plugin = WGANGP()
