"""Class-conditional GAN as a ganzoo plugin: a DCGAN-style generator conditioned by class through conditional
batch norm (or a label embedding concatenated to z) and a projection discriminator (Miyato & Koyama 2018; the
label as extra input channels as an option) that also learns to reject real images under wrong labels (the
matching-aware discriminator of Reed et al. 2016) and to classify real images with its projection's class
scores (the auxiliary classifier of AC-GAN, Odena et al. 2017). Defaults measured on the embedded digits:
benchmarks/RESULTS.md, "cgan defaults". The number of classes comes from the data
(`mnist-4k`, class subfolders of `folder:`, `?classes=` selections) and is saved with the model.

`sample(..., condition=labels)` draws the given classes; without labels the classes cycle 0, 1, ..., K-1.
Built on the plugin kit (`ganzoo.kit.ImageGAN`). Networks are in `networks.py`, imported when the model is built,
so `ganzoo list` does not import torch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ganzoo import DataInfo, UsageError, option
from ganzoo.kit import ImageGAN, digits_recipe, latent, random_labels
from ganzoo.plugin import ADVERSARIAL_LOSSES
from ganzoo_plugins.dcgan import RESOLUTIONS


@dataclasses.dataclass
class CGANConfig:
    resolution: int | None = option(None, "image size: 28, 32, 64, 128 or 256 (default: the data's, else 64)")
    channels: int | None = option(None, "image channels (default: the data's)", min=1)
    num_classes: int | None = option(None, "number of classes (default: the data's)", min=1)
    latent_dim: int = option(100, "size of the noise vector z", min=1)
    g_width: int = option(64, "generator width: channels of its last hidden layer", min=1)
    d_width: int = option(64, "discriminator width: channels of its first layer", min=1)
    g_conditioning: str = option(
        "cbn",
        "how G sees the class: concat (embedding joined to z) or cbn (conditional batch norm)",
        choices=("concat", "cbn"),
    )
    d_conditioning: str = option(
        "projection", "how D sees the class: projection or concat", choices=("projection", "concat")
    )
    d_norm: str = option("batch", "normalisation in D", choices=("batch", "spectral", "none"))
    d_mismatch: bool = option(
        True, "D also sees real images with wrong labels as fake (matching-aware D, Reed et al. 2016)"
    )
    class_weight: float = option(
        1.0,
        "weight of a classification term on the projection's class scores: D learns to classify real images and G"
        " to draw the requested class (the auxiliary classifier of AC-GAN, Odena et al. 2017); 0: off",
        min=0,
    )
    loss: str = option("non-saturating", "adversarial loss", choices=ADVERSARIAL_LOSSES)
    r1_gamma: float = option(0.0, "R1 penalty weight: adds gamma/2 E||grad D(x)||^2 on real images; 0: off", min=0)
    lr_g: float = option(3.2e-3, "generator learning rate (Adam; see benchmarks/RESULTS.md)", min=0)
    lr_d: float = option(3.2e-3, "discriminator learning rate (Adam)", min=0)
    betas: tuple[float, float] = option((0.5, 0.999), "Adam betas of both networks")


class CGAN(ImageGAN):
    name = "cgan"
    description = "Conditional GAN: conditional-batch-norm generator, projection discriminator (Miyato & Koyama 2018)."
    version = "1.0.0"
    Config = CGANConfig
    reference_recipe = digits_recipe("cgan-mnist", 2000, "fid,kid,accuracy")
    conditional = True
    resolutions = RESOLUTIONS

    def validate(self, config: CGANConfig) -> None:
        super().validate(config)
        if config.class_weight > 0 and config.d_conditioning != "projection":
            raise UsageError(
                f"cgan class_weight={config.class_weight} needs d_conditioning=projection (the class scores are its "
                "projection); with d_conditioning=concat set class_weight=0"
            )

    def build(self, config: CGANConfig, data_info: DataInfo) -> dict[str, Any]:
        from ganzoo_plugins.cgan.networks import ConditionalDiscriminator, ConditionalGenerator

        if data_info.num_classes is not None and data_info.num_classes != config.num_classes:
            raise UsageError(f"cgan num_classes={config.num_classes} but the data has {data_info.num_classes} classes")
        return {
            "generator": ConditionalGenerator(
                config.resolution,
                config.channels,
                config.latent_dim,
                config.g_width,
                config.num_classes,
                config.g_conditioning,
            ),
            "discriminator": ConditionalDiscriminator(
                config.resolution,
                config.channels,
                config.d_width,
                config.num_classes,
                config.d_conditioning,
                config.d_norm,
            ),
        }

    def d_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        import torch

        from ganzoo.losses import discriminator_loss, gradient_penalty

        real, labels = batch["image"], batch["label"]
        fake_labels = random_labels(ctx, real.shape[0])
        with torch.no_grad():
            fake = nets["generator"](latent(ctx, real.shape[0]), fake_labels)
        real_logits, real_classes = nets["discriminator"].scores(real, labels)
        fake_logits = nets["discriminator"](fake, fake_labels)
        classes = ctx.config.num_classes
        if ctx.config.d_mismatch and classes > 1:  # real images under a wrong label count as fake
            wrong = (labels + torch.randint_like(labels, 1, classes)) % classes
            fake_logits = torch.cat([fake_logits, nets["discriminator"](real, wrong)])
        loss = discriminator_loss(ctx.config.loss, real_logits, fake_logits)
        logs = {"d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}
        if ctx.config.class_weight > 0:
            classification = torch.nn.functional.cross_entropy(real_classes.float(), labels)
            loss = loss + ctx.config.class_weight * classification
            logs["d_class"] = classification.detach()
        if ctx.config.r1_gamma > 0:
            penalty = gradient_penalty(nets["discriminator"], real, "r1", extra=(labels,), scaler=ctx.scaler)
            loss = loss + 0.5 * ctx.config.r1_gamma * penalty
            logs["r1_penalty"] = penalty.detach()
        return loss, logs

    def g_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        import torch

        from ganzoo.losses import generator_loss

        labels = random_labels(ctx, ctx.batch_size)
        fake = nets["generator"](latent(ctx, ctx.batch_size), labels)
        logits, classes = nets["discriminator"].scores(fake, labels)
        loss = generator_loss(ctx.config.loss, logits)
        if ctx.config.class_weight == 0:
            return loss, {}
        classification = torch.nn.functional.cross_entropy(classes.float(), labels)
        return loss + ctx.config.class_weight * classification, {"g_class": classification.detach()}


plugin = CGAN()
