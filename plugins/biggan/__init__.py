"""BigGAN (Brock et al. 2019) as a ganzoo plugin, class-conditional: residual generator and discriminator with
spectral norm in both, a shared class embedding joined to a hierarchical latent (one chunk of z per block) that
drives conditional batch norm in every generator block, self-attention, a projection discriminator, the hinge
loss, orthogonal regularisation of the generator's weights, and two discriminator updates per generator update.
`ganzoo sample --truncation PSI` draws z from a truncated normal (the truncation trick, see `BigGAN.latents`).

Sized for a CPU by default (32 px for the digits, widths 32, z 64, shared embedding 32) where the paper trains
ImageNet at 128-512 px with widths of 96 and z 120; its learning rates and betas are the paper's (G 1e-4, D 4e-4,
Adam (0, 0.999)). The number of classes comes from the data and is re-headed by fine-tuning like cgan's. Built on
the plugin kit (`ganzoo.kit.ImageGAN`); the networks are in `networks.py`.
"""

from __future__ import annotations

import dataclasses
from statistics import NormalDist
from typing import Any

from ganzoo import DataInfo, option
from ganzoo.kit import ImageGAN, digits_recipe, latent, random_labels

RESOLUTIONS = (32, 64, 128)


@dataclasses.dataclass
class BigGANConfig:
    resolution: int | None = option(None, "image size: 32, 64 or 128 (default: the data's, rounded up)")
    channels: int | None = option(None, "image channels (default: the data's)", min=1)
    num_classes: int | None = option(None, "number of classes (default: the data's)", min=1)
    latent_dim: int = option(64, "size of z, split into one chunk per generator block (hierarchical latent)", min=4)
    shared_dim: int = option(32, "size of the shared class embedding", min=1)
    g_width: int = option(32, "generator channels at full resolution (x8 at 4 px)", min=8)
    d_width: int = option(32, "discriminator channels at full resolution (x8 at 4 px)", min=8)
    attention: int = option(16, "resolution of the self-attention blocks (0: none)", min=0)
    ortho_weight: float = option(1e-4, "beta of the orthogonal regularisation of G's weights (0: off)", min=0)
    d_steps: int = option(2, "discriminator updates per generator update", min=1)
    lr_g: float = option(1e-4, "generator learning rate (Adam)", min=0)
    lr_d: float = option(4e-4, "discriminator learning rate (Adam)", min=0)
    betas: tuple[float, float] = option((0.0, 0.999), "Adam betas of both networks")


class BigGAN(ImageGAN):
    name = "biggan"
    description = "BigGAN (Brock et al. 2019): class-conditional residual GAN, shared embedding, self-attention, SN."
    version = "0.1.0"
    Config = BigGANConfig
    reference_recipe = digits_recipe("biggan-mnist", 2000, "fid,kid,accuracy")
    conditional = True
    resolutions = RESOLUTIONS
    round_up_resolution = True
    d_repeats_field = "d_steps"
    truncation = True

    def build(self, config: BigGANConfig, data_info: DataInfo) -> dict[str, Any]:
        from ganzoo_plugins.biggan.networks import Discriminator, Generator

        return {
            "generator": Generator(
                config.resolution,
                config.channels,
                config.latent_dim,
                config.num_classes,
                config.shared_dim,
                config.g_width,
                config.attention,
            ),
            "discriminator": Discriminator(
                config.resolution, config.channels, config.num_classes, config.d_width, config.attention
            ),
        }

    def d_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        import torch

        from ganzoo.losses import discriminator_loss

        real, labels = batch["image"], batch["label"]
        fake_labels = random_labels(ctx, len(real))
        with torch.no_grad():
            fake = nets["generator"](latent(ctx, len(real)), fake_labels)
        real_logits = nets["discriminator"](real, labels)
        fake_logits = nets["discriminator"](fake, fake_labels)
        loss = discriminator_loss("hinge", real_logits, fake_logits)
        return loss, {"d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}

    def g_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        from ganzoo.losses import generator_loss
        from ganzoo_plugins.biggan.networks import orthogonal_penalty

        labels = random_labels(ctx, ctx.batch_size)
        fake = nets["generator"](latent(ctx, ctx.batch_size), labels)
        loss = generator_loss("hinge", nets["discriminator"](fake, labels))
        if ctx.config.ortho_weight == 0:
            return loss, {}
        penalty = orthogonal_penalty(nets["generator"])
        return loss + ctx.config.ortho_weight * penalty, {"ortho_penalty": penalty.detach()}

    def latents(self, nets: Any, n: int, generator: Any = None, truncation: float = 1.0) -> Any:
        """z (n, latent_dim), truncated for `truncation` psi < 1 (Brock et al. 2019, section 3.1): every entry is
        drawn from the standard normal restricted to [-t, t], the entries outside drawn again (all from
        `generator`), where t = Phi^-1((1 + psi) / 2) is the threshold that keeps a fraction psi of the normal's
        mass. So psi 1 is no truncation (the very samples drawn without it), psi 0.95 about the paper's threshold
        of 2, psi 0.68 a threshold of 1, and psi 0 the threshold 0: z = 0, each class's mean sample."""
        from ganzoo import UsageError
        from ganzoo_plugins.biggan.networks import truncated_normal

        if not 0 <= truncation <= 1:
            raise UsageError(f"biggan truncation={truncation} must be in [0, 1]")
        if truncation == 1:
            return super().latents(nets, n, generator)
        device = next(nets["generator"].parameters()).device
        threshold = NormalDist().inv_cdf((1 + truncation) / 2)
        return truncated_normal(n, self.latent_size(nets), threshold, generator, device)

    def synthesize(
        self, nets: Any, z: Any, condition: Any = None, generator: Any = None, truncation: float = 1.0
    ) -> Any:
        """Images of latents z and class labels; `truncation` (sample's) acts on the draw of z, in `latents`."""
        return super().synthesize(nets, z, condition, generator)


plugin = BigGAN()
