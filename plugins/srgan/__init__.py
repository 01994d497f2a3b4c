"""SRGAN / ESRGAN super-resolution (Ledig et al. 2017; Wang et al. 2018) as a ganzoo plugin, on the paired kit.

Networks by role (`networks.py`): `generator`, ESRGAN's RRDB network (a first conv, residual-in-residual dense
blocks without batch norm, residual scaling 0.2, a trunk conv with the global skip, x2 pixel-shuffle stages as in
SRGAN: one for sr2x, two for sr4x, two final convs); `discriminator`, a VGG-style conv net without normalisation
whose stages (`blocks`) give FreezeD's order and the features of the feature-matching loss; `examples`, the kit's
stored pairs.

The schedule has two phases, as ESRGAN trains:
- `pretrain` (iterations 0 .. `pretrain_steps`): the generator alone on the L1 loss (the PSNR-oriented model), with
  its own Adam at `lr_pretrain`;
- then `discriminator` and `generator` every iteration with fresh Adam moments at `lr_d` / `lr_g`: the
  relativistic average loss (RaGAN, `loss`) for D; for G
  `l1_weight * L1 + adv_weight * adversarial + fm_weight * feature matching (+ perceptual_weight * VGG)`.

The feature-matching term (pix2pixHD's, on D's stage outputs for the target and for the output, each stage's mean
absolute difference relative to the real features' mean magnitude) takes the place of ESRGAN's VGG perceptual
loss when no VGG weights are at hand; nothing is downloaded. With `perceptual_weights=FILE` (a safetensors file of
torchvision's vgg19 `features` state dict) the perceptual term is added: the mean absolute difference of VGG-19
features before the activation of `perceptual_layer` (ESRGAN: conv5_4). The file is read and checked when training
starts (not when a trained model is loaded, so a saved model works without it); a missing or incompatible file is
a one-line error.

Choices, and why:
- The output is clamped to [-1, 1] with a straight-through gradient rather than passed through a tanh (ESRGAN's
  last conv is linear and its images are clamped when saved): a tanh saturates where the targets are exactly
  black or white (the digits' background), slowing the L1 fit there, while a plain clamp would stop the gradient
  of any pixel beyond the range.
- `bicubic_skip` (default on; not in ESRGAN) adds the bicubic up-sampling of the input to the output, and the
  output conv starts at zero, so training starts from bicubic's output and learns the residual (VDSR, Kim et al.
  2016). On the photos x4 benchmark (`benchmarks/srgan.py`) the L1 phase without it (the paper's network) was
  2.1 dB below bicubic after 600 iterations; with it 0.44 dB above after 500 and 0.75 dB after 2,000.
- No normalisation in the discriminator: ESRGAN's has batch norm, whose statistics differ between the real and
  the generated batch it scores separately (and per DDP rank), and spectral norm is in neither paper. The
  feature-matching term is taken relative to the features' scale because an unnormalised D may grow them.
- Training pairs are mirrored and turned by multiples of 90 degrees at random (`flip`, `rotate`; ESRGAN and EDSR
  augment so), `lr_pretrain` is 1e-3 and `adv_weight` 1e-3, each by measurement (`benchmarks/srgan.py`, photos x4,
  seed 0, the L1 phase's PSNR over bicubic at 3,000 iterations): without augmentation the gain stops at +0.76-0.78
  dB from 2,000 iterations and falls after (+0.72 at 4,000: 7 training photos are soon learnt), with flips +0.85,
  with flips and turns +0.87; 4 blocks of 64 features or lr_pretrain 5e-4 gave no more (+0.76, +0.75 at 2,000); the
  paper's adversarial weight 5e-3 on the digits (3 seeds, 150 adversarial iterations, 0.1.0) lowered the
  classifier's accuracy on the outputs from 96.2% to 91.8% and raised FID 0.27 -> 0.81, where 1e-3 kept 95.5% and
  lowered FID to 0.17. The turns cost the digits a little (0.2.0's defaults, 3 seeds: 95.0% after the L1 phase,
  94.0% and FID 0.22 after the GAN phase): `--set rotate=false` for data with an upright orientation.
- Widths (4 blocks, 32 features, growth 16; D 32 wide up to 256) and `train_defaults` (1,000 iterations of batch
  16, 700 of them L1) are sized for a CPU: about 0.25 CPU-seconds per L1 iteration and 0.85 per adversarial one
  at 64 px on one thread. The paper's: 23 blocks, 64 features, growth 32, D 64 wide up to 512.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from ganzoo import DataInfo, OptimizerSpec, StepContext, UpdateStep, UsageError, option
from ganzoo.kit.paired import PairedImageGAN
from ganzoo.plugin import ADVERSARIAL_LOSSES, RELATIVISTIC_LOSSES, Recipe

VGG_LAYER_NAMES = ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4")


@dataclasses.dataclass
class SRGANConfig:
    resolution: int | None = option(
        None, "output (target) size, a multiple of the scale (default: the data's, else 64)"
    )
    channels: int | None = option(None, "image channels (default: the data's)", min=1)
    source_channels: int | None = option(None, "input channels (default: the data's)", min=1)
    scale: int | None = option(None, "up-sampling factor, 2 or 4 (from the data's task: sr2x, sr4x)")
    blocks: int = option(4, "residual-in-residual dense blocks (paper: 23)", min=1)
    features: int = option(32, "channels of the generator's trunk (paper: 64)", min=1)
    growth: int = option(16, "channels each conv of a dense block adds (paper: 32)", min=1)
    bicubic_skip: bool = option(
        True, "add the bicubic up-sampling of the input to the output: learn the residual (VDSR; ESRGAN: false)"
    )
    residual_scale: float = option(0.2, "scale of each residual branch (dense blocks and RRDBs; paper: 0.2)", min=0)
    d_width: int = option(32, "discriminator width: channels of its first stage, doubling per stage (paper: 64)", min=1)
    d_max_width: int = option(256, "the discriminator's widest stage (paper: 512)", min=1)
    loss: str = option(
        "relativistic-average",
        "adversarial loss (ESRGAN: relativistic average)",
        choices=(*RELATIVISTIC_LOSSES, *ADVERSARIAL_LOSSES),
    )
    l1_weight: float = option(1.0, "weight of the L1 loss in the adversarial phase", min=0)
    adv_weight: float = option(1e-3, "weight of the generator's adversarial loss (paper: 5e-3)", min=0)
    fm_weight: float = option(1.0, "weight of the feature matching on the discriminator's stage outputs", min=0)
    perceptual_weights: str | None = option(
        None, "a safetensors file of torchvision's vgg19 `features` state dict: adds the VGG perceptual loss"
    )
    perceptual_layer: str = option(
        "conv5_4",
        "the VGG-19 conv whose features (before its ReLU) the perceptual loss compares",
        choices=VGG_LAYER_NAMES,
    )
    perceptual_weight: float = option(1.0, "weight of the perceptual loss (with perceptual_weights; paper: 1)", min=0)
    flip: bool = option(True, "mirror training pairs left-right at random (ESRGAN: on)")
    rotate: bool = option(True, "turn training pairs by random multiples of 90 degrees (ESRGAN: on)")
    pretrain_steps: int = option(700, "first iterations: the generator alone on the L1 loss (PSNR-oriented)", min=0)
    lr_pretrain: float = option(1e-3, "learning rate of the L1 pre-training (its own Adam; paper: 2e-4)", min=0)
    lr_g: float = option(1e-4, "generator learning rate (Adam) of the adversarial phase (paper: 1e-4)", min=0)
    lr_d: float = option(1e-4, "discriminator learning rate (Adam; paper: 1e-4)", min=0)
    betas: tuple[float, float] = option((0.9, 0.999), "Adam betas of every optimizer (paper: 0.9, 0.999)")


class SRGAN(PairedImageGAN):
    name = "srgan"
    description = "SRGAN/ESRGAN super-resolution: RRDB generator, L1 pre-training, then RaGAN + L1 + feature matching."
    version = "0.2.0"
    Config = SRGANConfig
    reference_recipe = Recipe(
        "srgan-photos-x4",
        "photos?task=sr4x",
        3300,
        {"pretrain_steps": 3000},
        eval_data="photos?split=test&task=sr4x",
        metrics="psnr,ssim",
    )
    tasks: ClassVar[tuple[str, ...]] = ("sr2x", "sr4x")
    default_data: ClassVar[str | None] = "photos?task=sr4x"
    train_defaults: ClassVar[Mapping[str, Any]] = {"steps": 1000, "batch_size": 16, "ema_decay": 0.999}

    def __init__(self) -> None:
        self._vgg: dict[tuple[Any, ...], Any] = {}  # frozen VGG features by (file version, layer, device)

    # ------------------------------------------------------------------------------------------- networks

    def resolve_config(self, config: SRGANConfig, data_info: DataInfo) -> SRGANConfig:
        """The kit's, except that the input has the output's channels unless set: down-sampling keeps the
        channels the data is loaded with (`--set channels=1` on colour photos gives grey inputs too)."""
        resolved = super().resolve_config(config, data_info)
        if config.source_channels is None:
            resolved = dataclasses.replace(resolved, source_channels=resolved.channels)
        return resolved

    def validate(self, config: SRGANConfig) -> None:
        super().validate(config)
        if config.scale is not None and config.scale not in (2, 4):
            raise UsageError(f"srgan up-samples x2 or x4 (sr2x, sr4x), not x{config.scale}")

    def data_options(self, config: SRGANConfig) -> dict[str, Any]:
        return {**super().data_options(config), "flip": config.flip, "rotate": config.rotate}

    def build_networks(self, config: SRGANConfig, data_info: DataInfo) -> dict[str, Any]:
        from ganzoo_plugins.srgan.networks import RRDBGenerator, VGGDiscriminator

        generator = RRDBGenerator(
            config.source_channels,
            config.channels,
            config.scale,
            config.blocks,
            config.features,
            config.growth,
            config.residual_scale,
            config.bicubic_skip and config.source_channels == config.channels,
        )
        discriminator = VGGDiscriminator(config.channels, config.resolution, config.d_width, config.d_max_width)
        return {"generator": generator, "discriminator": discriminator}

    # ------------------------------------------------------------------------------------------- schedule

    def schedule(self, config: SRGANConfig) -> list[UpdateStep]:
        start = config.pretrain_steps
        steps = []
        if start > 0:
            steps.append(
                UpdateStep("pretrain", ("generator",), self._pretrain_loss, steps=(0, start), optimizer="pretrain")
            )
        return [
            *steps,
            UpdateStep(self.d_role, (self.d_role,), self._remembering_d_loss, steps=(start, None)),
            UpdateStep("generator", ("generator",), self.g_loss, steps=(start, None)),
        ]

    def optimizers(self, config: SRGANConfig) -> dict[str, OptimizerSpec]:
        """Adam for each network, and a separate one for the L1 pre-training: the adversarial phase starts with
        fresh moments (ESRGAN initialises its GAN from the PSNR model and trains it anew). Called when training
        starts: a `perceptual_weights` file is read and checked here, before anything is written."""
        if config.perceptual_weights is not None:
            self.perceptual_network(config, "cpu")
        betas = tuple(config.betas)
        specs = {
            "generator": OptimizerSpec(lr=config.lr_g, betas=betas),
            self.d_role: OptimizerSpec(lr=config.lr_d, betas=betas),
        }
        if config.pretrain_steps > 0:
            specs["pretrain"] = OptimizerSpec(lr=config.lr_pretrain, betas=betas)
        return specs

    def perceptual_network(self, config: SRGANConfig, device: Any) -> Any:
        """The frozen VGG-19 features of `perceptual_weights` at `perceptual_layer` on `device` (read once per
        file version: its path, size and modification time)."""
        import copy

        from ganzoo_plugins.srgan.networks import VGGFeatures

        path = Path(config.perceptual_weights).expanduser().resolve()
        stat = path.stat() if path.is_file() else None
        version = (str(path), stat.st_size, stat.st_mtime_ns) if stat else (str(path),)
        on_cpu, key = (*version, config.perceptual_layer, "cpu"), (*version, config.perceptual_layer, str(device))
        if on_cpu not in self._vgg:
            self._vgg[on_cpu] = VGGFeatures.from_file(path, config.perceptual_layer)  # UsageError if unusable
        if key not in self._vgg:
            self._vgg[key] = copy.deepcopy(self._vgg[on_cpu]).to(device)
        return self._vgg[key]

    # --------------------------------------------------------------------------------------------- losses

    def _pretrain_loss(self, nets: Mapping[str, Any], batch: Mapping[str, Any], ctx: StepContext) -> Any:
        """The PSNR-oriented phase: the mean absolute error of the output (the kit's example pairs are kept here
        too, as the adversarial phase may not have started when a grid is drawn)."""
        nets["examples"].remember(batch)
        fake = self.generate(nets, batch["source"], None)
        l1 = (fake.float() - batch["target"].float()).abs().mean()
        return l1, {"l1": l1.detach()}

    def d_loss(self, nets: Mapping[str, Any], batch: Mapping[str, Any], ctx: StepContext) -> Any:
        import torch

        from ganzoo.losses import discriminator_loss

        with torch.no_grad():
            fake = self.generate(nets, batch["source"], None)
        d = nets[self.d_role]
        real_logits, fake_logits = d(batch["target"]), d(fake)
        loss = discriminator_loss(ctx.config.loss, real_logits, fake_logits)
        return loss, {"d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}

    def g_loss(self, nets: Mapping[str, Any], batch: Mapping[str, Any], ctx: StepContext) -> Any:
        import torch

        from ganzoo.losses import feature_matching, generator_loss
        from ganzoo_plugins.srgan.networks import perceptual_distance

        config = ctx.config
        target = batch["target"]
        fake = self.generate(nets, batch["source"], None)
        d = nets[self.d_role]
        fake_logits, fake_features = d(fake, features=True)
        with torch.no_grad():
            real_logits, real_features = d(target, features=True)
        l1 = (fake.float() - target.float()).abs().mean()
        adversarial = generator_loss(config.loss, fake_logits, real_logits)
        fm = feature_matching(real_features, fake_features)
        loss = config.l1_weight * l1 + config.adv_weight * adversarial + config.fm_weight * fm
        logs = {"l1": l1.detach(), "adversarial": adversarial.detach(), "feature_matching": fm.detach()}
        if config.perceptual_weights is not None and config.perceptual_weight > 0:
            perceptual = perceptual_distance(self.perceptual_network(config, ctx.device), fake, target)
            loss = loss + config.perceptual_weight * perceptual
            logs["perceptual"] = perceptual.detach()
        return loss, logs


plugin = SRGAN()
