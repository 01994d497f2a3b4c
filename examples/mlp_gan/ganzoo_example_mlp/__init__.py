"""An MLP GAN as a third-party ganzoo plugin, written only against ganzoo's public API.

Images are flattened into vectors: the generator maps noise to C*H*W values through fully connected layers and
the discriminator scores flattened images. Both are trained with the hinge loss of `ganzoo.losses`.

This module does not import torch (the networks live in `networks.py`, imported by `build`), so `ganzoo list`
stays fast with this plugin installed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ganzoo import DataInfo, GANPlugin, UpdateStep, UsageError, option

__version__ = "0.1.0"


@dataclasses.dataclass
class MLPGANConfig:
    resolution: int | None = option(None, "image size in pixels (default: the data's, else 28)", min=4, max=128)
    channels: int | None = option(None, "image channels (default: the data's, else 1)", min=1, max=4)
    latent_dim: int = option(64, "size of the noise vector z", min=1)
    hidden: int = option(256, "width of the hidden layers of both networks", min=1)
    lr: float = option(2e-4, "learning rate of both networks (Adam)", min=0)
    betas: tuple[float, float] = option((0.5, 0.999), "Adam betas of both networks")


def _d_step(nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
    import torch

    from ganzoo import losses

    real = batch["image"]
    z = torch.randn(real.shape[0], ctx.config.latent_dim, device=real.device)
    fake = nets["generator"](z)
    real_logits = nets["discriminator"](real)
    fake_logits = nets["discriminator"](fake)
    loss = losses.discriminator_loss("hinge", real_logits, fake_logits)
    return loss, {"d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}


def _g_step(nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
    import torch

    from ganzoo import losses

    # A generator step needs no data (needs_data=False): it draws ctx.batch_size noise vectors itself.
    z = torch.randn(ctx.batch_size, ctx.config.latent_dim, device=ctx.device)
    fake_logits = nets["discriminator"](nets["generator"](z))
    return losses.generator_loss("hinge", fake_logits), {}


class MLPGAN(GANPlugin):
    name = "mlp-gan"
    modality = "image"
    description = "MLP GAN: fully connected generator and discriminator on flattened images, hinge loss."
    version = __version__
    Config = MLPGANConfig
    train_defaults: ClassVar[dict[str, Any]] = {"steps": 2000, "batch_size": 64, "ema_decay": 0.999}

    def resolve_config(self, config: MLPGANConfig, data_info: DataInfo) -> MLPGANConfig:
        return dataclasses.replace(
            config,
            resolution=config.resolution or data_info.resolution or 28,
            channels=config.channels or data_info.channels or 1,
        )

    def validate(self, config: MLPGANConfig) -> None:
        if config.resolution is None or config.channels is None:
            raise UsageError("mlp-gan needs a resolution and a channel count")

    def build(self, config: MLPGANConfig, data_info: DataInfo) -> dict[str, Any]:
        from ganzoo_example_mlp.networks import Discriminator, Generator

        shape = (config.channels, config.resolution, config.resolution)
        return {
            "generator": Generator(shape, config.latent_dim, config.hidden),
            "discriminator": Discriminator(shape, config.hidden),
        }

    def schedule(self, config: MLPGANConfig) -> list[UpdateStep]:
        return [
            UpdateStep("discriminator", ("discriminator",), _d_step),
            UpdateStep("generator", ("generator",), _g_step, needs_data=False),
        ]

    # optimizers(): the default of GANPlugin (Adam with config.lr and config.betas for every trained network)

    def sample(self, nets: Any, n: int, condition: Any = None, generator: Any = None) -> Any:
        import torch

        g = nets["generator"]
        device = next(g.parameters()).device
        z = torch.randn(n, g.latent_dim, device=device, generator=generator)
        return g(z)


plugin = MLPGAN()
