"""pix2pix (Isola et al. 2017, "Image-to-image translation with conditional adversarial networks") as a ganzoo
plugin: a conditional GAN that learns a mapping from a source image to a target image from aligned pairs.

Denoising and colorization are pix2pix on the `denoise` and `colorize` tasks of any image data
(`photos?task=colorize`, `mnist-4k?task=denoise&sigma=50`); aligned pairs from disk are `paired:ROOT` (the pix2pix
datasets' layout). Built on the paired kit (`ganzoo.kit.paired.PairedImageGAN`): the kit keeps 8 training pairs for
sample grids (rows of input, output, target), and `ganzoo translate RUN --direction a2b` runs the generator on
image files (an RGB file is turned into its luma for a colorization model; b2a is refused: one generator).

Networks (`networks.py`):
- `generator`: a U-Net (encoder of 4x4 stride-2 convolutions with LeakyReLU 0.2 and norm, decoder of transposed
  convolutions with ReLU and norm, each decoder level concatenated with the encoder's map of its size; tanh
  output). Its depth follows the resolution: down to 1x1 at powers of two (8 levels at 256 px as in the paper, 6 at
  64, 5 at 32). Dropout 0.5 in the innermost `dropout_layers` (3) decoder levels is the paper's noise z; it is
  active in training and off in eval mode, so `sample`, `enhance`, `translate` and `ganzoo eval` are deterministic
  (the paper keeps it at test time; a stochastic output scores worse on PSNR/SSIM).
- For colorization (`keep_luma`, on by default for the colorize task) the U-Net's output keeps the source's luma
  exactly: the difference between the input's ITU-R 601 luma and the output's is added to R, G and B, which sets the
  output's luma and leaves its colour differences (Cb, Cr) as the network chose them; so the generator only picks
  the colour, as colorizers that predict chrominance do (Zhang et al. 2016 predict ab in Lab from L). Without it, a
  short run spends its capacity re-drawing the grey image and loses detail: with 500 iterations (seed 0) the colour
  photo went from 19.66 dB (below the grey input's 19.98) to 20.97 dB, and the grey texture from 26.88 to 36.92 dB
  (a colorizer must leave grey grey: the grey input is exact there). Models saved by pix2pix 1.0.0 have no
  `keep_luma` in their config and load with it on when they colorize.
- `discriminator`: a PatchGAN that scores the pair, torch.cat([source, image]) on the channels, so D judges whether
  the output fits its input. Scoring one tensor keeps DiffAugment's geometric ops (translation, cutout) aligned
  across source and image. `--augment ada` is refused, with ADA's own one-line error: its overfitting heuristic
  reads D's outputs on the batch's image tensors themselves, and this D never sees `batch["target"]` on its own.
  Its `blocks` (input to output) are the FreezeD blocks.

Losses (Isola et al., eq. 4): G minimises the adversarial loss of D(source, G(source)) plus `l1_weight` (100) times
the L1 distance to the target; D minimises half its loss on (source, target) against (source, G(source)) ("we
divide the objective by 2 while optimizing D"). With `loss=least-squares` both sides use the squared errors
without LSGAN's 1/2 (as the authors' code; so D's halved loss is ganzoo's least-squares loss). Adam with betas
(0.5, 0.999) for both networks.

Defaults sized for a CPU (the paper's in brackets): widths 32 and 32 (64, 64); instance norm (the paper's batch norm
at batch 1 with test-batch statistics is instance norm; it also makes an output independent of its batch);
a 34x34 PatchGAN (`d_layers=2`) below 128 px and the paper's 70x70 (`d_layers=3`) from 128 px, since at 32-64 px a
70x70 patch is the whole image; the non-saturating loss (the paper's cross-entropy objective: the L1 term carries
the low frequencies, so the adversarial one only has to judge texture, and we kept the paper's); batch 16 (1-10),
500 iterations on 64 px crops of the embedded photos, colorization (`ganzoo train pix2pix`), an EMA of the
generator (0.999) for the outputs; learning rate 1e-3 for both networks (the paper: 2e-4 for 200 epochs). With a
budget of a few CPU minutes 2e-4 is far from converged: after 400 iterations (one seed, `benchmarks/pix2pix.py
--steps 400 --set lr_g=... --set lr_d=...`) the held-out PSNR was 22.7 dB (2e-4) vs 24.0 dB (1e-3) for
colorization and 25.4 vs 26.7 dB for denoising, the final L1 0.12 vs 0.08 and 0.070 vs 0.064. Half the width
(g_width=16) for twice the iterations at the same CPU time did worse on the colour photo (18.9-19.5 vs 20.4 dB).
Results of the defaults: `benchmarks/RESULTS.md`, "pix2pix" (3 seeds, about 2-4 CPU-minutes per task).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ganzoo import UsageError, option
from ganzoo.kit.paired import PairedImageGAN
from ganzoo.plugin import ADVERSARIAL_LOSSES, Recipe

NORMS = ("instance", "batch", "none")
PATCH_70_FROM = 128
"""From this resolution the PatchGAN defaults to the paper's 70x70 patches (3 layers); below it, 34x34 (2)."""


@dataclasses.dataclass
class Pix2PixConfig:
    resolution: int | None = option(None, "target size, divisible by 2**depth (default: the data's, else 64)", min=2)
    channels: int | None = option(None, "target (output) channels (default: the data's, else 3)", min=1)
    source_channels: int | None = option(None, "source (input) channels, filled from the data (1 for colorize)", min=1)
    g_width: int = option(32, "generator width: channels of its first layer, doubling to 8x (paper: 64)", min=1)
    d_width: int = option(32, "discriminator width: channels of its first layer, doubling to 8x (paper: 64)", min=1)
    depth: int | None = option(
        None, "U-Net levels (stride-2 convolutions); default: down to 1x1 (8 at 256 px, 6 at 64, 5 at 32)", min=1
    )
    skips: bool = option(True, "U-Net skip connections (false: the paper's encoder-decoder baseline)")
    norm: str = option("instance", "normalisation in both networks (paper: batch norm at batch 1)", choices=NORMS)
    dropout: float = option(0.5, "dropout rate in the innermost decoder levels, training only (paper: 0.5)", min=0)
    dropout_layers: int = option(3, "innermost decoder levels with dropout (paper: 3)", min=0)
    d_layers: int | None = option(
        None, "stride-2 layers of the PatchGAN: 3 gives 70x70 patches, 2 34x34 (default: 2 below 128 px, else 3)", min=1
    )
    loss: str = option(
        "non-saturating", "adversarial loss (paper: the cross-entropy GAN loss)", choices=ADVERSARIAL_LOSSES
    )
    l1_weight: float = option(100.0, "weight of the L1 distance to the target in G's loss (paper: 100)", min=0)
    keep_luma: bool | None = option(
        None, "colorize: the output keeps the input's luma, G chooses only the colour (default: on for colorize)"
    )
    lr_g: float = option(1e-3, "generator learning rate (Adam; paper: 2e-4, see the module docstring)", min=0)
    lr_d: float = option(1e-3, "discriminator learning rate (Adam; paper: 2e-4)", min=0)
    betas: tuple[float, float] = option((0.5, 0.999), "Adam betas of both networks (paper: 0.5, 0.999)")


def _full_squares(name: str, loss: Any) -> Any:
    """ganzoo's least-squares losses carry LSGAN's 1/2; pix2pix's (the authors' code) are the plain squared errors."""
    return 2.0 * loss if name == "least-squares" else loss


class Pix2Pix(PairedImageGAN):
    name = "pix2pix"
    description = (
        "pix2pix (Isola et al. 2017): image-to-image translation from aligned pairs with a U-Net generator, a "
        "PatchGAN conditioned on the source and L1 + adversarial losses.\n"
        "Denoising and colorization are pix2pix on the denoise and colorize tasks: --data 'photos?task=colorize' "
        "(the default), 'mnist-4k?task=denoise&sigma=50', 'folder:PATH?task=denoise'; pairs from disk: "
        "--data paired:ROOT (ROOT/train/*.jpg with source|target side by side, or ROOT/trainA + ROOT/trainB).\n"
        "ganzoo sample RUN: rows of input, output, target; ganzoo translate RUN --input DIR --direction a2b; "
        "ganzoo eval RUN --data 'photos?split=test&task=colorize' (PSNR, SSIM). --augment ada is refused (D scores "
        "the source and image together); --diffaugment works."
    )
    version = "1.1.0"
    Config = Pix2PixConfig
    reference_recipe = Recipe(
        "pix2pix-photos-denoise",
        "photos?task=denoise",
        500,
        eval_data="photos?split=test&task=denoise",
        metrics="psnr,ssim",
    )
    tasks: ClassVar[tuple[str, ...]] = ("paired", "denoise", "colorize")
    default_data: ClassVar[str | None] = "photos?task=colorize"
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 500,
        "batch_size": 16,
        "ema_decay": 0.999,
        "sample_grid": 24,
        "sample_every": 250,
        "checkpoint_every": 500,
    }

    def resolve_config(self, config: Pix2PixConfig, data_info: Any) -> Pix2PixConfig:
        config = super().resolve_config(config, data_info)
        d_layers = config.d_layers
        if d_layers is None:
            d_layers = 3 if config.resolution >= PATCH_70_FROM else 2
        keep_luma = config.keep_luma
        if keep_luma is None:
            keep_luma = data_info.extras.get("task") == "colorize" and config.channels == 3
        return dataclasses.replace(config, d_layers=d_layers, keep_luma=keep_luma)

    def validate(self, config: Pix2PixConfig) -> None:
        from ganzoo_plugins.pix2pix.networks import default_depth, patch_output_size

        super().validate(config)
        if config.resolution is None:
            return
        depth = default_depth(config.resolution) if config.depth is None else config.depth
        if depth < 1 or config.resolution % (2**depth):
            most = default_depth(config.resolution)
            raise UsageError(
                f"pix2pix resolution={config.resolution} does not halve evenly {depth} times (the U-Net's depth); "
                + (f"use depth={most} or less" if most else "use an even resolution, e.g. 32, 64 or 256")
            )
        if config.d_layers is not None and patch_output_size(config.resolution, config.d_layers) < 1:
            raise UsageError(
                f"pix2pix d_layers={config.d_layers} is too deep for {config.resolution} px images; use fewer"
            )
        if config.keep_luma and (config.source_channels, config.channels) != (1, 3):
            raise UsageError(
                f"pix2pix keep_luma colours a one-channel luma source in RGB; this model maps {config.source_channels}"
                f" to {config.channels} channels: use keep_luma=false"
            )
        if not config.dropout < 1:
            raise UsageError(f"pix2pix dropout={config.dropout} must be below 1 (it is the fraction of units dropped)")

    def build_networks(self, config: Pix2PixConfig, data_info: Any) -> dict[str, Any]:
        from ganzoo_plugins.pix2pix.networks import PatchDiscriminator, UNetGenerator

        generator = UNetGenerator(
            config.source_channels,
            config.channels,
            config.resolution,
            config.g_width,
            depth=config.depth,
            norm=config.norm,
            dropout=config.dropout,
            dropout_layers=config.dropout_layers,
            skips=config.skips,
            keep_luma=bool(config.keep_luma),
        )
        d_in = config.source_channels + config.channels
        return {
            "generator": generator,
            "discriminator": PatchDiscriminator(d_in, config.d_width, config.d_layers, config.norm),
        }

    @staticmethod
    def pair(source: Any, image: Any) -> Any:
        """The discriminator's input: the source and the (real or generated) image on the channels."""
        import torch

        return torch.cat([source, image.to(source.dtype)], dim=1)

    def d_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        import torch

        from ganzoo.losses import discriminator_loss

        source, target = batch["source"], batch["target"]
        with torch.no_grad():  # G is frozen in this update: no graph through it
            fake = self.generate(nets, source, None)
        d = nets["discriminator"]
        real_logits, fake_logits = d(self.pair(source, target)), d(self.pair(source, fake))
        loss = 0.5 * _full_squares(ctx.config.loss, discriminator_loss(ctx.config.loss, real_logits, fake_logits))
        logs = {"d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}
        return loss, logs

    def g_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        from ganzoo.losses import generator_loss

        config = ctx.config
        source, target = batch["source"], batch["target"]
        fake = self.generate(nets, source, None)
        adversarial = _full_squares(
            config.loss, generator_loss(config.loss, nets["discriminator"](self.pair(source, fake)))
        )
        l1 = (fake.float() - target.float()).abs().mean()
        loss = adversarial + config.l1_weight * l1
        return loss, {"l1": l1.detach(), "g_adversarial": adversarial.detach()}

    def translate(self, nets: Any, images: Any, direction: str) -> Any:
        """`ganzoo translate`: images (read with the target's channels) in the source's channels, then the kit's
        translate (a2b only). RGB becomes its ITU-R 601 luma for a colorization model, as in training; grey is
        repeated for an RGB source."""
        from ganzoo.data.degrade import luma

        wanted = nets["examples"].source.shape[1]
        if images.shape[1] != wanted:
            if wanted == 1 and images.shape[1] >= 3:
                images = luma(images)
            elif images.shape[1] == 1:
                images = images.expand(-1, wanted, -1, -1)
            else:
                raise UsageError(f"pix2pix takes {wanted}-channel sources; cannot convert {images.shape[1]} channels")
        return super().translate(nets, images, direction)


plugin = Pix2Pix()
