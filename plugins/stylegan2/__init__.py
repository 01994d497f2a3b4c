"""StyleGAN2 (Karras et al. 2020) as a ganzoo plugin, in plain PyTorch: a mapping network (lr multiplier 0.01), a
skip-architecture synthesis network of modulated, demodulated convolutions with per-pixel noise from a learned
constant, a residual discriminator with minibatch standard deviation, equalised learning rates everywhere, style
mixing regularisation (two latents, a random crossover layer, with probability `style_mixing`), the non-saturating
logistic loss, and lazy R1: a separate update every `r1_every` iterations whose penalty is scaled by that period
(`UpdateStep(every=...)`, so the engine still owns backward and AMP).

Resolutions 32 to 256 (powers of two; data at another size is resized, e.g. the 28 px digits to 32). Defaults are
sized for a CPU (widths 64, latent and w 64, 4 mapping layers); the paper's FFHQ networks are 512 wide with 8
mapping layers. Sampling: truncation of w towards its mean, interpolations through the kit's `synthesize`, and
style-mixing grids (`mix_styles`: coarse styles from one latent, fine from another). Optional lazy path length
regularisation (`pl_weight`, every `pl_every` iterations); adaptive augmentation is the engine's (`--augment
ada`). Built on the plugin kit (`ganzoo.kit.ImageGAN`); the networks are in `networks.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from ganzoo import DataInfo, UpdateStep, option
from ganzoo.kit import ImageGAN, digits_recipe, latent

RESOLUTIONS = (32, 64, 128, 256)
COARSE_STYLES = 4
"""The styles a mixing grid takes from its row sources: those of the 4x4 and 8x8 layers (w 0-3), StyleGAN's
coarse styles (pose, shape); the rest, from 16x16 up, are the fine ones (its middle and fine styles)."""


@dataclasses.dataclass
class StyleGAN2Config:
    resolution: int | None = option(None, "image size: 32-256, a power of two (default: the data's, rounded up)")
    channels: int | None = option(None, "image channels (default: the data's)", min=1)
    latent_dim: int = option(64, "size of z", min=1)
    w_dim: int = option(64, "size of the intermediate latent w (the styles)", min=1)
    mapping_layers: int = option(4, "fully connected layers of the mapping network (the paper: 8)", min=1)
    g_width: int = option(64, "synthesis channels up to 32 px (halved at each doubling above)", min=8)
    d_width: int = option(64, "discriminator channels up to 32 px (halved at each doubling above)", min=8)
    style_mixing: float = option(0.9, "probability that a generated batch mixes two latents", min=0, max=1)
    r1_gamma: float | None = option(
        None, "R1 weight gamma (default: the ADA paper's heuristic 0.0002 * resolution^2 / 64)", min=0
    )
    r1_every: int = option(16, "lazy R1: iterations between R1 updates (each scaled by this period)", min=1)
    pl_weight: float = option(
        0.0, "path length regularisation weight (the paper's 2 for FFHQ; 0: off, as for small images)", min=0
    )
    pl_every: int = option(4, "lazy path length regularisation: iterations between its updates", min=1)
    fused_modconv: bool = option(
        False, "modulated convolutions as one grouped convolution (True) or in the non-fused form (faster on CPU)"
    )
    lr: float = option(2.5e-3, "Adam learning rate of both networks (the paper's 0.0025)", min=0)
    betas: tuple[float, float] = option((0.0, 0.99), "Adam betas (the paper's)")


def _styles(nets: Any, ctx: Any, n: int) -> Any:
    """n style vectors per layer (N, num_ws, w_dim): one latent each, or with probability `style_mixing` two,
    switching at a random layer."""
    import torch

    g = nets["generator"]
    ws = g.mapping(latent(ctx, n)).unsqueeze(1).expand(-1, g.num_ws, -1)
    if ctx.config.style_mixing > 0 and float(torch.rand(())) < ctx.config.style_mixing:
        cutoff = int(torch.randint(1, g.num_ws, ()))
        other = g.mapping(latent(ctx, n)).unsqueeze(1).expand(-1, g.num_ws - cutoff, -1)
        ws = torch.cat([ws[:, :cutoff], other], dim=1)
    return ws


def _truncated_styles(g: Any, z: Any, truncation: float) -> Any:
    """The styles (N, num_ws, w_dim) of latents z: w = mapping(z) moved towards the mean w by `truncation` psi
    (Karras et al. 2019), w_avg + psi (w - w_avg), the same w for every layer."""
    from ganzoo import UsageError

    if not 0 <= truncation <= 1:
        raise UsageError(f"stylegan2 truncation={truncation} must be in [0, 1]")
    w = g.mapping(z)
    if truncation != 1:
        w = g.mapping.w_avg.to(w.dtype).lerp(w, truncation)
    return w.unsqueeze(1).expand(-1, g.num_ws, -1)


class StyleGAN2(ImageGAN):
    name = "stylegan2"
    description = (
        "StyleGAN2 (Karras et al. 2020): style-based generator, modulated convolutions, lazy R1; pure PyTorch."
    )
    version = "0.1.0"
    Config = StyleGAN2Config
    reference_recipe = digits_recipe("stylegan2-mnist", 2000)
    resolutions = RESOLUTIONS
    round_up_resolution = True
    truncation = True
    style_mixing = True
    # channels-last batches and weights: 1.4x (bf16, 32 px, batch 64) to 2.3x (256 px) the images/s on the CPU
    # (benchmarks/RESULTS.md, "throughput (64-256 px)")
    train_defaults: ClassVar[Mapping[str, Any]] = {"channels_last": True}

    def resolve_config(self, config: StyleGAN2Config, data_info: DataInfo) -> StyleGAN2Config:
        config = super().resolve_config(config, data_info)
        if config.r1_gamma is not None:
            return config
        return dataclasses.replace(config, r1_gamma=0.0002 * config.resolution**2 / 64)  # the ADA heuristic

    def build(self, config: StyleGAN2Config, data_info: DataInfo) -> dict[str, Any]:
        from ganzoo_plugins.stylegan2.networks import Discriminator, Generator

        return {
            "generator": Generator(
                config.resolution,
                config.channels,
                config.latent_dim,
                config.w_dim,
                config.mapping_layers,
                config.g_width,
                config.fused_modconv,
            ),
            "discriminator": Discriminator(config.resolution, config.channels, config.d_width),
        }

    def schedule(self, config: StyleGAN2Config) -> list[UpdateStep]:
        d_step, g_step = super().schedule(config)
        steps = [d_step]
        if config.r1_gamma != 0:
            steps.append(UpdateStep("r1", ("discriminator",), self.r1_loss, every=config.r1_every))
        steps.append(g_step)
        if config.pl_weight != 0:
            steps.append(
                UpdateStep("path_length", ("generator",), self.pl_loss, needs_data=False, every=config.pl_every)
            )
        return steps

    def d_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        import torch

        from ganzoo.losses import discriminator_loss

        real = batch["image"]
        with torch.no_grad():
            fake = nets["generator"](ws=_styles(nets, ctx, real.shape[0]))
        real_logits, fake_logits = nets["discriminator"](real), nets["discriminator"](fake)
        loss = discriminator_loss("non-saturating", real_logits, fake_logits)
        return loss, {"d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}

    def r1_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        """Lazy R1 (Karras et al. 2020, section 3.1): gamma/2 E||grad D(x)||^2 every r1_every iterations, scaled by
        r1_every so that its average weight is the same as an R1 in every iteration."""
        from ganzoo.losses import gradient_penalty

        penalty = gradient_penalty(nets["discriminator"], batch["image"], "r1", scaler=ctx.scaler)
        return 0.5 * ctx.config.r1_gamma * ctx.config.r1_every * penalty, {"r1_penalty": penalty.detach()}

    def pl_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        """Lazy path length regularisation (Karras et al. 2020, section 3.2): E (||J_w^T y|| - a)^2 on half a batch,
        a the running mean of the lengths (decay 0.99), weighted by pl_weight and scaled by pl_every."""
        import torch

        from ganzoo.losses import path_lengths

        g = nets["generator"]
        ws = _styles(nets, ctx, max(1, ctx.batch_size // 2))
        lengths = path_lengths(g(ws=ws), ws, ctx.scaler)
        mean = lengths.detach().mean()  # inf when fp16's scaled inner gradient overflowed: the scaler skips the step
        g.pl_mean.copy_(torch.where(mean.isfinite(), g.pl_mean.lerp(mean, 0.01), g.pl_mean))
        penalty = (lengths - g.pl_mean).square().mean()
        loss = ctx.config.pl_weight * ctx.config.pl_every * penalty
        return loss, {"pl_penalty": penalty.detach(), "pl_mean": g.pl_mean.clone()}

    def g_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        from ganzoo.losses import generator_loss

        fake = nets["generator"](ws=_styles(nets, ctx, ctx.batch_size))
        return generator_loss("non-saturating", nets["discriminator"](fake)), {}

    def synthesize(
        self, nets: Any, z: Any, condition: Any = None, generator: Any = None, truncation: float = 1.0
    ) -> Any:
        """Images of latents z; `truncation` psi moves each w towards the mean w, so psi 0 gives the mean image (up
        to the noise inputs, drawn from `generator`) and psi 1 the untruncated samples."""
        from ganzoo import UsageError

        if condition is not None:
            raise UsageError("stylegan2 is not a conditional model; it takes no condition")
        g = nets["generator"]
        return g(ws=_truncated_styles(g, z, truncation), generator=generator)

    def mix_styles(
        self,
        nets: Any,
        rows: int,
        columns: int,
        generator: Any = None,
        truncation: float = 1.0,
        crossover: int = COARSE_STYLES,
    ) -> tuple[Any, Any, Any]:
        """The style-mixing grid of Karras et al. 2019 (figure 3): mix (i, j) takes the first `crossover` styles
        (coarse: the 4x4 and 8x8 layers by default) of row source i and the rest of column source j. Every image
        gets the same noise inputs (one draw from `generator`), so the images differ by their styles only."""
        import torch

        from ganzoo import UsageError

        g = nets["generator"]
        if not 0 < crossover < g.num_ws:
            raise UsageError(f"stylegan2 crossover={crossover} must be in 1..{g.num_ws - 1} (the model's styles)")
        ws = _truncated_styles(g, self.latents(nets, rows + columns, generator), truncation)
        coarse = ws[:rows, None, :crossover].expand(-1, columns, -1, -1)
        fine = ws[None, rows:, crossover:].expand(rows, -1, -1, -1)
        mixes = torch.cat([coarse, fine], dim=2).flatten(0, 1)
        images = g(ws=torch.cat([ws, mixes]), generator=generator, same_noise=True)
        return images[:rows], images[rows : rows + columns], images[rows + columns :].unflatten(0, (rows, columns))


plugin = StyleGAN2()
