"""CycleGAN (Zhu et al. 2017) as a ganzoo plugin: unpaired image-to-image translation between domains A and B.

Networks by role: `generator_ab` and `generator_ba` (ResNet generators: c7s1-w, two stride-2 downsamplings,
residual blocks, two upsamplings, c7s1-channels; instance norm, reflection padding), `discriminator_a` and
`discriminator_b` (PatchGANs), and `memory`, which trains nothing: it holds the two pools of 50 generated images
the discriminators learn from and a few real images of each domain for sample grids, as buffers, so checkpoints
save them and a resumed run continues with the same pools.

One iteration: the `generators` update (least-squares adversarial loss of both generators, cycle-consistency
L1 loss weighted by `lambda_cycle`, identity L1 loss weighted by `lambda_identity * lambda_cycle`), then the
`discriminator_a` and `discriminator_b` updates on the real images of the same batch and pooled fakes. Adam
(2e-4, (0.5, 0.999)); the learning rates stay constant for half the iterations, then decay linearly
(`lr_schedule=linear-decay` in the training config).

Against the generators changing what an image shows (cycle consistency alone allows it, hiding the source in faint
signal: Chu et al. 2017), four optional terms: Gaussian noise on the translation before the cycle reads it back
(`cycle_noise`), a cycle loss on the discriminators' features (`lambda_feature_cycle`), UNIT's shared-latent
assumption (Liu et al. 2017) as a loss: each generator's code of a translation (`ResnetGenerator.encode`, the
residual blocks' output) matches the other generator's code of its source (`lambda_latent`; UNIT also shares
weights between the two encoders' last layers, which separate generator roles cannot; on the digits task, seed 0:
76.0% of classes kept at weight 1, 75.8% at 10, against 78.0% without), and CyCADA's semantic consistency loss
(Hoffman et al. 2018) with frozen classifiers of the domains (`semantic`, `semantic_b`: shipped names or safetensors
files, `ganzoo.metrics.classifiers`), read when training starts and never trained. On the
embedded digits task the semantic loss with a classifier of each domain (`semantic=uci-digits`,
`semantic_b=mnist-resnet`) keeps the digit's class in 96.0% of A->B translations (3 seeds: 96.0, 96.0, 95.8; FID
A->B 1.33 against 2.17 without it), as judged by the `digits` network, which is not the loss's B classifier (another
architecture and seed, the same MNIST training split); with domain A's classifier alone, 82.6%.

The identity loss is off by default (`lambda_identity` 0; 0.5 in cyclegan 1.0.0): the paper adds it for
painting->photo only, to keep colours, and on the digits task (`benchmarks/cyclegan.py`, 3 seeds) it costs the
content: without it A->B translations keep their class 77.2% of the time (78.0, 70.0, 77.2) against 66.6% (68.2,
62.4, 66.6) with 0.5, at the same FID (2.17 against 2.21). `--set lambda_identity=0.5` for photo tasks where colour
must stay.

Defaults are sized for the embedded 28 px digits pair `digits-8x8-to-mnist` on a CPU: generator width 16 and
discriminator width 32 (paper: 64 and 64), 2 residual blocks below 64 px (paper: 6 up to 128 px, 9 from 256 px,
used here at those sizes), PatchGANs with 2 stride-2 layers (34x34 patches) below 64 px and 3 (70x70, the
paper's) from 64 px, batch 8 (paper: 1), 1,500 iterations. Against widths 8/16, two seeds each of
`benchmarks/cyclegan.py` gave a lower target-domain FID (2.2-2.5 vs 2.7-3.0 A->B, 1.75 vs 2.4-2.9 B->A) and cycle
L1 (0.075 vs 0.087) at the same label preservation (64-65% vs 62-64%) for about 1.3x the time.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ganzoo import DataInfo, GANPlugin, OptimizerSpec, UpdateStep, UsageError, option
from ganzoo.plugin import ADVERSARIAL_LOSSES, Recipe

DIRECTIONS = ("a2b", "b2a")
SMALL = 64  # below this resolution the CPU-sized defaults apply


@dataclasses.dataclass
class CycleGANConfig:
    resolution: int | None = option(None, "image size, a multiple of 4 (default: the data's, else 256)", min=8)
    channels: int | None = option(None, "image channels of both domains (default: the data's, else 3)", min=1)
    g_width: int = option(16, "generator width: channels of its first layer (paper: 64)", min=1)
    d_width: int = option(32, "discriminator width: channels of its first layer (paper: 64)", min=1)
    residual_blocks: int | None = option(
        None, "residual blocks per generator (default: 2 below 64 px, 6 up to 128 px, 9 from 256 px)", min=0
    )
    d_layers: int | None = option(
        None, "stride-2 layers of the PatchGANs: 3 gives 70x70 patches (default: 2 below 64 px, else 3)", min=1
    )
    loss: str = option("least-squares", "adversarial loss", choices=ADVERSARIAL_LOSSES)
    lambda_cycle: float = option(10.0, "weight of the cycle-consistency L1 loss (per direction)", min=0)
    lambda_identity: float = option(
        0.0, "weight of the identity L1 loss, relative to lambda_cycle (the paper's painting->photo: 0.5)", min=0
    )
    cycle_noise: float = option(
        0.0,
        "std of Gaussian noise added to each translation before it is translated back in the cycle loss, so the "
        "generators cannot hide the source in faint signal (Chu et al. 2017); 0: off",
        min=0,
    )
    lambda_feature_cycle: float = option(
        0.0,
        "weight of a cycle loss on the discriminators' features: feature matching between D_A's features of a and "
        "of a->b->a (and the same for b), relative to the real features' scale; 0: off",
        min=0,
    )
    lambda_latent: float = option(
        0.0,
        "weight of a shared-latent loss (UNIT's assumption, Liu et al. 2017, as a loss): G_ba's code of a->b "
        "matches G_ab's code of a (and the same for b), relative to the code's scale; 0: off",
        min=0,
    )
    semantic: str | None = option(
        None,
        "a frozen classifier of domain A (a shipped name: uci-digits for digits-8x8-to-mnist, digits, mnist-resnet; "
        "or a safetensors file): adds CyCADA's semantic consistency loss KL(f_A(a) || f(a->b)), f the domain-B "
        "classifier when semantic_b is set, else f_A",
    )
    semantic_b: str | None = option(
        None,
        "a frozen classifier of domain B (e.g. mnist-resnet for digits-8x8-to-mnist): with semantic, f of "
        "KL(f_A(a) || f(a->b)), and also KL(f_B(b) || f_A(b->a)) (both directions)",
    )
    lambda_semantic: float = option(1.0, "weight of the semantic consistency loss (per direction)", min=0)
    pool_size: int = option(50, "generated images in each discriminator's history pool (0: no pool)", min=0)
    flip: bool = option(False, "random horizontal flips of the training images (off: digits are not symmetric)")
    examples: int = option(8, "real images of each domain kept for sample grids", min=1)
    lr: float = option(2e-4, "Adam learning rate of all four networks", min=0)
    betas: tuple[float, float] = option((0.5, 0.999), "Adam betas")


def _adversarial_g(name: str, logits: Any) -> Any:
    """The generator's adversarial loss; least-squares is the paper's E[(D(G(x)) - 1)^2] (twice LSGAN's 1/2)."""
    from ganzoo.losses import generator_loss

    loss = generator_loss(name, logits)
    return 2.0 * loss if name == "least-squares" else loss


def _with_noise(images: Any, std: float) -> Any:
    import torch

    return images if std == 0 else images + std * torch.randn_like(images)


def semantic_loss(config: CycleGANConfig, device: Any, real_a: Any, fake_b: Any, real_b: Any, fake_a: Any) -> Any:
    """CyCADA's semantic consistency with the frozen classifiers of the config: KL(f_A(a) || f(a->b)), f being f_B
    when there is one, else f_A (CyCADA's source classifier on the translation); with f_B also
    KL(f_B(b) || f_A(b->a)). Each classifier reads one domain's images (and, without f_B, f_A the translations)."""
    from ganzoo.losses import semantic_consistency
    from ganzoo.metrics.classifiers import load_classifier

    f_a = load_classifier(config.semantic, device)
    if config.semantic_b is None:
        return semantic_consistency(f_a(real_a), f_a(fake_b))
    f_b = load_classifier(config.semantic_b, device)
    return semantic_consistency(f_a(real_a), f_b(fake_b)) + semantic_consistency(f_b(real_b), f_a(fake_a))


def translations_and_cycles(
    g_ab: Any, g_ba: Any, real_a: Any, real_b: Any, config: CycleGANConfig
) -> tuple[Any, Any, Any, Any, Any]:
    """a->b, b->a, a->b->a and b->a->b (with `cycle_noise` on the translations read back), and with
    `lambda_latent` the shared-latent term: how far each generator's code of a translation is from the other's code
    of its source (feature matching, the source's code a constant); None without it."""
    if config.lambda_latent == 0:
        fake_b, fake_a = g_ab(real_a), g_ba(real_b)
        rec_a, rec_b = g_ba(_with_noise(fake_b, config.cycle_noise)), g_ab(_with_noise(fake_a, config.cycle_noise))
        return fake_b, fake_a, rec_a, rec_b, None
    from ganzoo.losses import feature_matching

    code_a, code_b = g_ab.encode(real_a), g_ba.encode(real_b)
    fake_b, fake_a = g_ab.decode(code_a), g_ba.decode(code_b)
    code_fake_b = g_ba.encode(_with_noise(fake_b, config.cycle_noise))
    code_fake_a = g_ab.encode(_with_noise(fake_a, config.cycle_noise))
    latent = feature_matching([code_a], [code_fake_b]) + feature_matching([code_b], [code_fake_a])
    return fake_b, fake_a, g_ba.decode(code_fake_b), g_ab.decode(code_fake_a), latent


def generators_loss(nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
    """Adversarial, cycle-consistency and identity losses of both generators on one batch of each domain, plus the
    optional content-preservation terms: noise on the translations the cycle reads back (`cycle_noise`), the cycle
    loss on the discriminators' features (`lambda_feature_cycle`) and the semantic consistency loss (`semantic`)."""
    config = ctx.config
    real_a, real_b = batch["image_a"], batch["image_b"]
    g_ab, g_ba = nets["generator_ab"], nets["generator_ba"]
    fake_b, fake_a, rec_a, rec_b, latent = translations_and_cycles(g_ab, g_ba, real_a, real_b, config)
    cycle_a = (rec_a.float() - real_a.float()).abs().mean()
    cycle_b = (rec_b.float() - real_b.float()).abs().mean()
    adversarial_ab = _adversarial_g(config.loss, nets["discriminator_b"](fake_b))
    adversarial_ba = _adversarial_g(config.loss, nets["discriminator_a"](fake_a))
    loss = adversarial_ab + adversarial_ba + config.lambda_cycle * (cycle_a + cycle_b)
    logs = {
        "g_adversarial_ab": adversarial_ab.detach(),
        "g_adversarial_ba": adversarial_ba.detach(),
        "cycle_a": cycle_a.detach(),
        "cycle_b": cycle_b.detach(),
    }
    if latent is not None:
        loss = loss + config.lambda_latent * latent
        logs["latent"] = latent.detach()
    if config.lambda_feature_cycle > 0:
        from ganzoo.losses import feature_matching

        d_a, d_b = nets["discriminator_a"], nets["discriminator_b"]
        feature_cycle = feature_matching([d_a.features(real_a)], [d_a.features(rec_a)]) + feature_matching(
            [d_b.features(real_b)], [d_b.features(rec_b)]
        )
        loss = loss + config.lambda_feature_cycle * feature_cycle
        logs["feature_cycle"] = feature_cycle.detach()
    if config.semantic is not None and config.lambda_semantic > 0:
        semantic = semantic_loss(config, ctx.device, real_a, fake_b, real_b, fake_a)
        loss = loss + config.lambda_semantic * semantic
        logs["semantic"] = semantic.detach()
    if config.lambda_identity > 0:
        identity_a = (g_ba(real_a).float() - real_a.float()).abs().mean()
        identity_b = (g_ab(real_b).float() - real_b.float()).abs().mean()
        loss = loss + config.lambda_cycle * config.lambda_identity * (identity_a + identity_b)
        logs.update(identity_a=identity_a.detach(), identity_b=identity_b.detach())
    memory = nets["memory"]
    memory.remember_examples(real_a, real_b)
    memory.hand_over(real_a=real_a, real_b=real_b, fake_a=fake_a, fake_b=fake_b)
    return loss, logs


def _discriminator_loss(domain: str) -> Any:
    def loss_fn(nets: Any, batch: Any, ctx: Any) -> tuple[Any, dict[str, Any]]:
        from ganzoo.losses import discriminator_loss

        memory = nets["memory"]
        pool = memory.pool_a if domain == "a" else memory.pool_b
        fake = pool.query(memory.take(f"fake_{domain}"))
        d = nets[f"discriminator_{domain}"]
        real_logits, fake_logits = d(memory.take(f"real_{domain}")), d(fake)
        loss = discriminator_loss(ctx.config.loss, real_logits, fake_logits)
        logs = {
            f"d_{domain}_real": real_logits.detach().float().mean(),
            f"d_{domain}_fake": fake_logits.detach().float().mean(),
        }
        return loss, logs

    loss_fn.__name__ = f"discriminator_{domain}_loss"
    return loss_fn


discriminator_a_loss = _discriminator_loss("a")
discriminator_b_loss = _discriminator_loss("b")


class CycleGAN(GANPlugin):
    name = "cyclegan"
    modality = "image-to-image"
    description = "CycleGAN (Zhu et al. 2017): unpaired image-to-image translation with cycle consistency."
    version = "1.2.0"
    Config = CycleGANConfig
    reference_recipe = Recipe(
        "cyclegan-digits-8x8-to-mnist",
        "digits-8x8-to-mnist?split=train",
        1500,
        eval_data="digits-8x8-to-mnist?split=test",  # A->B translations of held-out UCI digits against MNIST's
        metrics="fid,kid,pr,accuracy",  # accuracy: the `digits` classifier reads the source digit's class
    )
    generator_roles = ("generator_ab", "generator_ba")
    default_data = "digits-8x8-to-mnist"
    grid_columns = 6
    """Sample grids: one row per example pair, A -> B -> A then B -> A -> B."""
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 1500,
        "batch_size": 8,
        "ema_decay": 0.0,
        "lr_schedule": "linear-decay",
        "lr_decay_start": 0.5,
        "sample_grid": 48,
    }

    def resolve_config(self, config: CycleGANConfig, data_info: DataInfo) -> CycleGANConfig:
        if data_info.modality != "image-to-image" or data_info.extras.get("paired"):
            raise UsageError(
                f"cyclegan needs two unpaired image domains, and this data is "
                f"{'paired' if data_info.extras.get('paired') else data_info.modality} data; accepted: "
                "unpaired:DIR_A,DIR_B, unpaired:ROOT (trainA, trainB) or digits-8x8-to-mnist"
            )
        resolution = config.resolution or data_info.resolution or 256
        small = resolution < SMALL
        blocks = 2 if small else 6 if resolution <= 128 else 9
        return dataclasses.replace(
            config,
            resolution=resolution,
            channels=config.channels or data_info.channels or 3,
            residual_blocks=blocks if config.residual_blocks is None else config.residual_blocks,
            d_layers=(2 if small else 3) if config.d_layers is None else config.d_layers,
        )

    def validate(self, config: CycleGANConfig) -> None:
        from ganzoo_plugins.cyclegan.networks import patch_output_size

        if config.resolution % 4:
            raise UsageError(f"cyclegan resolution={config.resolution} must be a multiple of 4 (two 2x downsamplings)")
        if patch_output_size(config.resolution, config.d_layers) < 1:
            raise UsageError(
                f"cyclegan d_layers={config.d_layers} is too deep for {config.resolution} px images; use fewer"
            )

    def data_options(self, config: CycleGANConfig) -> dict[str, Any]:
        return {"resolution": config.resolution, "channels": config.channels, "flip": config.flip}

    def build(self, config: CycleGANConfig, data_info: DataInfo) -> dict[str, Any]:
        from ganzoo_plugins.cyclegan.networks import CycleMemory, PatchDiscriminator, ResnetGenerator

        c = config.channels
        return {
            "generator_ab": ResnetGenerator(c, config.g_width, config.residual_blocks),
            "generator_ba": ResnetGenerator(c, config.g_width, config.residual_blocks),
            "discriminator_a": PatchDiscriminator(c, config.d_width, config.d_layers),
            "discriminator_b": PatchDiscriminator(c, config.d_width, config.d_layers),
            "memory": CycleMemory(config.pool_size, config.examples, c, config.resolution),
        }

    def schedule(self, config: CycleGANConfig) -> list[UpdateStep]:
        return [
            UpdateStep("generators", ("generator_ab", "generator_ba"), generators_loss),
            UpdateStep("discriminator_a", ("discriminator_a",), discriminator_a_loss, needs_data=False),
            UpdateStep("discriminator_b", ("discriminator_b",), discriminator_b_loss, needs_data=False),
        ]

    def optimizers(self, config: CycleGANConfig) -> dict[str, OptimizerSpec]:
        """Adam for the four networks. Called when training starts: the `semantic` classifiers are read and checked
        here, before anything is written."""
        if config.semantic_b is not None and config.semantic is None:
            raise UsageError("cyclegan semantic_b needs semantic (the domain-A classifier) too")
        if config.semantic is not None:
            from ganzoo.metrics.classifiers import load_classifier

            for spec in (config.semantic, config.semantic_b):
                channels = None if spec is None else load_classifier(spec).channels
                if channels not in (None, config.channels):
                    raise UsageError(
                        f"cyclegan semantic classifier {spec!r} reads {channels}-channel images; this model's have "
                        f"{config.channels}"
                    )
        spec = OptimizerSpec(lr=config.lr, betas=tuple(config.betas))
        return {role: spec for role in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b")}

    def translate(self, nets: Any, images: Any, direction: str) -> Any:
        """Images of one domain in [-1, 1], (N, C, H, W) at the model's resolution, translated to the other:
        `direction` a2b uses generator_ab, b2a generator_ba."""
        if direction not in DIRECTIONS:
            raise UsageError(f"unknown direction {direction!r}; accepted: {', '.join(DIRECTIONS)}")
        generator = nets["generator_ab" if direction == "a2b" else "generator_ba"]
        return generator(images.to(next(generator.parameters()).device))

    def sample(self, nets: Any, n: int, condition: Any = None, generator: Any = None) -> Any:
        """Rows of six images from the stored real examples: a, a->b, a->b->a, b, b->a, b->a->b.

        max(1, n // 6) rows (at most as many as the examples kept); `generator` picks which examples. A model that
        has not seen data yet has no examples: it is an error. `condition` is not accepted.
        """
        import torch

        if condition is not None:
            raise UsageError("cyclegan samples from its stored examples and takes no condition; use translate")
        examples_a, examples_b = nets["memory"].examples()
        if len(examples_a) == 0:
            raise UsageError("this cyclegan has no stored examples yet (they are kept from the first training batch)")
        rows = min(max(1, n // 6), len(examples_a))
        pick = torch.randperm(len(examples_a), generator=generator, device=examples_a.device)[:rows]
        real_a, real_b = examples_a[pick], examples_b[pick]
        fake_b, fake_a = self.translate(nets, real_a, "a2b"), self.translate(nets, real_b, "b2a")
        rec_a, rec_b = self.translate(nets, fake_b, "b2a"), self.translate(nets, fake_a, "a2b")
        return torch.stack([real_a, fake_b, rec_a, real_b, fake_a, rec_b], dim=1).flatten(0, 1)


plugin = CycleGAN()
