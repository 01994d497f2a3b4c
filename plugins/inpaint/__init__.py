"""Inpainting as a ganzoo plugin: fill the holes of an image given its mask, in the manner of Yu et al. 2019
("Free-form image inpainting with gated convolution"): a generator of gated convolutions that sees the masked
image and the mask, an SN-PatchGAN discriminator (spectral norm, hinge loss on every patch) that sees the image
joined to its mask, and the generator's loss L1 on the hole and on the valid region (weighted as the partial
convolutions paper does, Liu et al. 2018: 6 and 1) plus the adversarial term on the composited image. Outputs are
composited by the kit, so the known pixels come back exactly.

Trains on any image data with `task=inpaint` (a random rectangle and free-form strokes per image: `mnist-4k`,
`photos`, `folder:PATH`); `ganzoo enhance RUN --input IMG --mask MASK` fills a user's files. The discriminator
scores one tensor (image and mask joined), so `--diffaugment` moves the image and its mask alike; `--augment ada`
refuses the plugin (it reads D's outputs for the batch's own target tensor). Built on the paired kit
(`ganzoo.kit.paired.PairedImageGAN`); the networks are in `networks.py`.

Defaults, measured on the digits benchmark (`benchmarks/inpaint.py`: 1,500 iterations on
`mnist-4k?split=train&task=inpaint`, the 1,000 held-out digits each with one 14 x 14 hole, the `digits`
classifier's accuracy on the filled digits; mean-digit fill 62.8%, one seed): version 0.1.0's tanh output died
within 100 iterations (every output black, 41.1% at any learning rate; see `ganzoo.kit.pairs.clamp_straight_through`).
With the straight-through clamp: Adam at the paper's lr_g 1e-4 gave 75.8% (FID 1.79); lr_g 1e-3 83.4% (FID 0.50);
lr_g and lr_d both 1e-3 82.6% (0.51), with adv_weight 0.01 82.1% (0.56); both at 2e-3 diverged (NaN at iteration
1,304). Hence lr_g 1e-3 with lr_d 4e-4, adv_weight 0.1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from ganzoo import DataInfo, option
from ganzoo.kit import digits_recipe
from ganzoo.kit.paired import PairedImageGAN


@dataclasses.dataclass
class InpaintConfig:
    resolution: int | None = option(None, "image size, a multiple of 4 (default: the data's)")
    channels: int | None = option(None, "image channels (default: the data's)", min=1)
    g_width: int = option(32, "generator width (channels of its first layer; the paper's 48)", min=1)
    d_width: int = option(32, "discriminator width (the paper's 64)", min=1)
    d_layers: int = option(3, "discriminator layers (stride-2 convolutions; the paper's 6 at 256 px)", min=1)
    dilated: int = option(4, "dilated gated convolutions at the generator's bottleneck", min=0)
    hole_weight: float = option(6.0, "L1 weight on the missing pixels", min=0)
    valid_weight: float = option(1.0, "L1 weight on the known pixels (of the raw output)", min=0)
    adv_weight: float = option(0.1, "weight of the adversarial term in the generator's loss", min=0)
    lr_g: float = option(1e-3, "generator learning rate (Adam; the paper's 1e-4, see the module docstring)", min=0)
    lr_d: float = option(4e-4, "discriminator learning rate (Adam)", min=0)
    betas: tuple[float, float] = option((0.5, 0.999), "Adam betas of both networks")


def _with_mask(image: Any, mask: Any) -> Any:
    import torch

    return torch.cat([image, mask.to(image.dtype)], dim=1)


class Inpaint(PairedImageGAN):
    name = "inpaint"
    description = (
        "Inpainting (Yu et al. 2019): gated-convolution generator, SN-PatchGAN, L1 on hole and valid pixels + hinge."
    )
    version = "0.2.0"
    Config = InpaintConfig
    reference_recipe = digits_recipe("inpaint-mnist", 1500, "psnr,ssim,accuracy", task="inpaint")
    tasks = ("inpaint",)
    default_data = "mnist-4k?task=inpaint"
    train_defaults: ClassVar[Mapping[str, Any]] = {"steps": 1500, "batch_size": 16, "ema_decay": 0.999}

    def validate(self, config: InpaintConfig) -> None:
        super().validate(config)
        if config.resolution % 4:
            from ganzoo import UsageError

            raise UsageError(f"inpaint resolution={config.resolution} must be a multiple of 4")

    def build_networks(self, config: InpaintConfig, data_info: DataInfo) -> dict[str, Any]:
        from ganzoo_plugins.inpaint.networks import Discriminator, Generator

        return {
            "generator": Generator(config.channels, config.g_width, config.dilated),
            "discriminator": Discriminator(config.channels, config.d_width, config.d_layers),
        }

    def _filled(self, nets: Any, batch: Any) -> tuple[Any, Any]:
        """(the raw output, the composite: the output in the holes, the known pixels elsewhere)."""
        from ganzoo.kit.pairs import composite

        output = self.generate(nets, batch["source"], batch["mask"])
        return output, composite(output, batch["target"], batch["mask"])

    def d_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        import torch

        from ganzoo.losses import discriminator_loss

        with torch.no_grad():
            _, filled = self._filled(nets, batch)
        d, mask = nets["discriminator"], batch["mask"]
        real, fake = d(_with_mask(batch["target"], mask)), d(_with_mask(filled, mask))
        loss = discriminator_loss("hinge", real, fake)
        return loss, {"d_real": real.detach().float().mean(), "d_fake": fake.detach().float().mean()}

    def g_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        from ganzoo.losses import generator_loss

        output, filled = self._filled(nets, batch)
        mask, target, config = batch["mask"], batch["target"], ctx.config
        error = (output.float() - target).abs()
        hole = (error * mask).sum() / (mask.sum() * target.shape[1]).clamp(min=1)
        valid = (error * (1 - mask)).sum() / ((1 - mask).sum() * target.shape[1]).clamp(min=1)
        adversarial = generator_loss("hinge", nets["discriminator"](_with_mask(filled, mask)))
        loss = config.hole_weight * hole + config.valid_weight * valid + config.adv_weight * adversarial
        return loss, {"l1_hole": hole.detach(), "l1_valid": valid.detach()}


plugin = Inpaint()
