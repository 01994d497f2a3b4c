"""The plugin contract: what an architecture tells the engine, and nothing more.

A plugin is one instance of `GANPlugin` (or a subclass) named by an entry point in the `ganzoo.plugins` group.
It declares its config dataclass, builds its networks by role, and describes its update schedule as a list of
`UpdateStep`s whose loss functions the engine calls; the engine owns backward passes, optimizer steps, AMP,
EMA, DDP, checkpoints and logging. This module does not import torch, so listing plugins stays fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ganzoo.config import check_defaults, option
from ganzoo.errors import UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn

    Nets = Mapping[str, nn.Module]
    LossFn = Callable[[Nets, Mapping[str, Any], "StepContext"], "tuple[torch.Tensor, dict[str, Any]]"]

__all__ = [
    "ADVERSARIAL_LOSSES",
    "RELATIVISTIC_LOSSES",
    "DataInfo",
    "GANPlugin",
    "OptimizerSpec",
    "Recipe",
    "StepContext",
    "UpdateStep",
    "option",
]

MODALITIES = ("image", "image-to-image", "text")
ADVERSARIAL_LOSSES = ("non-saturating", "minimax", "hinge", "least-squares", "wasserstein")
"""Names of the adversarial losses in `ganzoo.losses`, for plugin configs (kept here: this module has no torch)."""
RELATIVISTIC_LOSSES = ("relativistic", "relativistic-average")
"""The losses that compare real and fake logits (their generator loss needs the real batch's logits too)."""


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What the engine learned about the training data, handed to `GANPlugin.build`.

    `channels` and `resolution` are the data's native values (None when the data has none, e.g. a folder of
    images of mixed sizes); `num_classes` is None for unlabelled data; `extras` holds modality-specific facts
    (a vocabulary, for text).
    """

    modality: str = "image"
    channels: int | None = None
    resolution: int | None = None
    num_classes: int | None = None
    num_samples: int | None = None
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "extras": dict(self.extras)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataInfo:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """The optimizer of one network: `kind` is adam, adamw, sgd or rmsprop."""

    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    kind: str = "adam"


@dataclasses.dataclass(frozen=True)
class UpdateStep:
    """One entry of a plugin's update schedule.

    Each training iteration runs the schedule's steps in order; a step runs `repeats` times (n_critic for
    WGAN-GP), each time drawing a fresh batch, calling `loss(nets, batch, ctx)` under the engine's autocast,
    back-propagating the returned loss into the networks named in `networks` only, and stepping their
    optimizers. `loss` returns `(loss_tensor, logs)` where `logs` maps names to floats or 0-d tensors.
    A step with `needs_data=False` (a generator step) gets an empty batch and uses `ctx.batch_size`.

    The batch (on the training device) by modality: `image`: `batch["image"]` float32 in [-1, 1], (N, C, H, W)
    at the config's resolution and channels, and `batch["label"]` int64 in 0..num_classes-1 when the data is
    labelled; `text`: `batch["tokens"]` int64 (N, T) token ids (padded) and `batch["length"]` int64 (N,), the
    scored positions of each sample (its tokens and eos); `image-to-image` (unpaired): `batch["image_a"]` and
    `batch["image_b"]`, images of the two domains as above (`label_a`/`label_b` where a domain is labelled);
    `image-to-image` (paired, `data_info.extras["paired"]`): `batch["source"]`, the model's input, and
    `batch["target"]`, the image to produce, float32 in [-1, 1]; target (N, C, R, R) at the config's resolution
    and channels; source (N, extras["source_channels"], R/scale, R/scale) with `extras["scale"]` 2 or 4 for
    super-resolution, else (N, C_src, R, R) (colorize: one luma channel); inpaint adds `batch["mask"]` (N, 1, R,
    R), 1 where pixels are missing, the source being the target with its holes set to 0 (mid-grey); `label` when
    the images are labelled. `extras["task"]` is sr2x, sr4x, inpaint, denoise, colorize or paired (from disk).
    Random numbers in a loss come from torch's global generator (`torch.randn(...)` with no `generator`): the
    engine seeds it per rank and saves and restores it in every checkpoint, so resumed runs are bit-identical. A
    private `torch.Generator`, numpy's or Python's own generators, or state kept outside the networks break that.
    `steps=(start, end)` makes it a phase: it runs only at iterations start <= step < end (0-based; end None:
    to the end of training), e.g. MLE pre-training of a text generator before the adversarial updates.
    `optimizer` names an extra optimizer of the plugin's `optimizers()` that this update steps instead of its
    network's own (the update then names one network): its own learning rate and state, as RelGAN pre-trains its
    generator by MLE with a separate Adam (lstm-gan's `mle` phase). `every=N` runs the update only at every N-th
    iteration of its range (lazy regularisation: StyleGAN2's R1 every 16 iterations, its loss scaled by N).
    """

    name: str
    networks: tuple[str, ...]
    loss: LossFn
    repeats: int = 1
    needs_data: bool = True
    steps: tuple[int, int | None] = (0, None)
    optimizer: str | None = None
    every: int = 1

    def __post_init__(self) -> None:
        if not self.networks:
            raise ValueError(f"update step {self.name!r} names no network to update")
        if self.repeats < 1:
            raise ValueError(f"update step {self.name!r} must repeat at least once, got {self.repeats}")
        if self.optimizer is not None and len(self.networks) != 1:
            raise ValueError(f"update step {self.name!r} has its own optimizer, so it must update one network")
        if self.every < 1:
            raise ValueError(f"update step {self.name!r} must run every 1 or more iterations, got {self.every}")
        start, end = self.steps
        if start < 0 or (end is not None and end <= start):
            raise ValueError(f"update step {self.name!r} has an empty or negative step range {self.steps}")

    def runs_at(self, step: int) -> bool:
        """Whether this update runs at (0-based) iteration `step`."""
        start, end = self.steps
        return start <= step and (end is None or step < end) and (step - start) % self.every == 0


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A plugin's reference recipe: what `ganzoo zoo build NAME` trains, scores and saves as its pretrained model.

    `name` names the saved directory and Hub repo (e.g. `dcgan-mnist`); `data` is the training data spec and
    `steps` the iterations; `overrides` are `--set` keys of the plugin's config and of `TrainConfig`. The model is
    then scored on `eval_data` (default: `data`) with `metrics` (default: its modality's, see `ganzoo eval`), `n`
    samples and `features`, and the scores go to its card; a text model is also scored at each of `temperatures`
    (its quality-diversity curve, shown on the card).
    """

    name: str
    data: str
    steps: int
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    eval_data: str | None = None
    metrics: str | None = None
    n: int = 2000
    features: str = "digits"
    temperatures: tuple[float, ...] = ()


@dataclasses.dataclass
class StepContext:
    """What a loss function may know about the training state besides the networks and the batch."""

    step: int
    device: torch.device
    precision: str
    config: Any
    data_info: DataInfo
    batch_size: int
    scaler: Any = None
    """The GradScaler of the update being computed (active under fp16 only): penalties that differentiate
    through the discriminator's input (`ganzoo.losses.gradient_penalty`) take it."""
    total_steps: int | None = None
    """The iterations the run trains for (None outside the engine): for schedules that anneal over training."""


class GANPlugin:
    """Base class of every plugin; subclass it, set the class attributes, implement `build` and `schedule`.

    Required: `name`, `Config` (a dataclass whose fields are made with `ganzoo.option`), `build`, `schedule`,
    `sample`. Optional hooks have defaults that suit a single generator/discriminator image GAN.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[str] = "image"
    description: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    Config: ClassVar[type] = type(None)
    generator_roles: ClassVar[tuple[str, ...]] = ("generator",)
    """Networks that get an EMA copy and are used for sampling."""
    train_defaults: ClassVar[Mapping[str, Any]] = {}
    """Overrides of the engine's `TrainConfig` defaults that suit this architecture (steps, batch size, EMA)."""
    conditional: ClassVar[bool] = False
    """True when the plugin is always class-conditional: `sample` takes class labels (a LongTensor of n labels in
    0..num_classes-1) as `condition`. A plugin that is conditional only on labelled data leaves this False and
    has a `num_classes_field` (see `is_conditional`)."""
    num_classes_field: ClassVar[str | None] = "num_classes"
    """The config field that holds the number of classes, when the Config has it: the engine fills it from the
    data's classes when it is None (before `resolve_config`, which may override it). Fine-tuning on data with
    another number of classes sets it afresh and re-sizes every tensor whose shape depends on it, copying the rows
    of the classes both have (class re-heading). None: no such field, so no re-heading."""
    default_data: ClassVar[str | None] = None
    """The data spec `ganzoo train` uses without --data (None: the embedded `mnist-4k` digits)."""
    truncation: ClassVar[bool] = False
    """True when `sample` takes `truncation=psi` in [0, 1] (`ganzoo sample --truncation`): psi 1 draws from the
    model as trained, 0 its mean sample (StyleGAN's truncation of w towards its mean, BigGAN's truncated normal z).
    It applies to `latents` and `synthesize` too (and to `mix_styles`)."""
    grid_columns: ClassVar[int | None] = None
    """Images per row of sample grids when the samples come in groups (e.g. input, translation, reconstruction);
    None: a square grid."""
    finetune_defaults: ClassVar[Mapping[str, Any]] = {}
    """`--set`-style keys (TrainConfig fields or training settings of the Config) that `ganzoo finetune` applies
    before the user's own: the plugin's fine-tuning recipe (dcgan: FreezeD on 1 block, benchmarks/RESULTS.md)."""
    reference_recipe: ClassVar[Recipe | None] = None
    """What `ganzoo zoo build` trains as this plugin's pretrained model (None: the plugin has no zoo entry)."""
    style_mixing: ClassVar[bool] = False
    """True when the plugin implements `mix_styles` (`ganzoo sample --mix`): a style-based generator whose coarse
    and fine layers can take their styles from different latents."""

    def default_config(self) -> Any:
        return self.Config()

    def resolve_config(self, config: Any, data_info: DataInfo) -> Any:
        """Fill config fields left as None from the data (e.g. channels, resolution); default: unchanged."""
        return config

    def is_conditional(self, config: Any) -> bool:
        """Whether the model of this (resolved) config samples by class: always when `conditional`, else when
        its `num_classes_field` holds a positive number (filled from labelled data, or set; 0 turns it off). The
        engine refuses a conditional model whose data has no labels before training starts."""
        if self.conditional:
            return True
        classes = getattr(config, self.num_classes_field, None) if self.num_classes_field else None
        return isinstance(classes, int) and classes > 0

    def validate(self, config: Any) -> None:
        """Raise `ganzoo.UsageError` for a config that cannot work (checked after `--set` and resolution)."""

    def data_options(self, config: Any) -> dict[str, Any]:
        """How the data must be prepared for this model: image plugins return resolution and channels."""
        options = {}
        for key in ("resolution", "channels"):
            if hasattr(config, key):
                options[key] = getattr(config, key)
        return options

    def build(self, config: Any, data_info: DataInfo) -> dict[str, nn.Module]:
        raise NotImplementedError(f"plugin {self.name!r} does not implement build()")

    def schedule(self, config: Any) -> Sequence[UpdateStep]:
        raise NotImplementedError(f"plugin {self.name!r} does not implement schedule()")

    def optimizers(self, config: Any) -> dict[str, OptimizerSpec]:
        """The optimizer of every trained network, keyed by role, plus those the schedule's updates name as their
        own (`UpdateStep.optimizer`); default: Adam with `config.lr` and `config.betas` for each role."""
        spec = OptimizerSpec(lr=config.lr, betas=tuple(config.betas))
        roles = {role for step in self.schedule(config) for role in step.networks}
        return {role: spec for role in sorted(roles)}

    def sample(
        self,
        nets: Nets,
        n: int,
        condition: Any = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor | list[str]:
        """n samples: images in [-1, 1] as an (n, C, H, W) tensor, or a list of strings for text."""
        raise NotImplementedError(f"plugin {self.name!r} does not implement sample()")

    def latent_size(self, nets: Nets) -> int | None:
        """The size of the latent z that `sample` draws, for a plugin whose `sample(n)` is
        `synthesize(latents(n))`; None (the default): its samples come from no such latent (text, image-to-image),
        and `ganzoo sample --interpolate` refuses it. A plugin that returns a size implements `latents` and
        `synthesize`; `ganzoo.kit.ImageGAN` does both for z ~ N(0, I)."""
        return None

    def latents(self, nets: Nets, n: int, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        """n latents (n, latent_size) drawn from `generator` as `sample(n, generator=generator, **options)` draws
        them. `options` are sample's, given to both `latents` and `synthesize`: a plugin whose truncation shapes the
        draw (biggan's truncated normal) takes `truncation` here, one that truncates later (stylegan2's w) ignores
        it here. Interpolations walk between such latents (spherically: `ganzoo.kit.slerp`)."""
        raise NotImplementedError(f"plugin {self.name!r} does not implement latents()")

    def synthesize(
        self,
        nets: Nets,
        z: torch.Tensor,
        condition: Any = None,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """Images (n, C, H, W) in [-1, 1] from given latents z (n, latent_size): `sample` is `synthesize(nets,
        latents(nets, n, generator, **options), condition, generator, **options)`. `condition` is sample's (the
        class labels of a conditional model); `generator` draws any other randomness (stylegan2's noise inputs),
        so the same generator state gives the same image of the same z."""
        raise NotImplementedError(f"plugin {self.name!r} does not implement synthesize()")

    def mix_styles(
        self,
        nets: Nets,
        rows: int,
        columns: int,
        generator: torch.Generator | None = None,
        truncation: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Style mixing (`style_mixing` plugins; Karras et al. 2019, figure 3): `rows` and `columns` source latents
        drawn from `generator`, and the images `(row_sources (rows, C, H, W), column_sources (columns, C, H, W),
        mixes (rows, columns, C, H, W))`, where mix (i, j) takes the coarse styles (the low-resolution layers) of
        row source i and the fine styles of column source j; `truncation` as sample's."""
        raise UsageError(f"{self.name} is not a style-based model; --mix needs one, e.g. stylegan2")

    def enhance(self, nets: Nets, source: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Paired image-to-image plugins (super-resolution, inpainting, denoising, colorization, pix2pix): the
        outputs for `source` images shaped as the data's `source` (N, C_src, R/scale, R/scale) in [-1, 1], and for
        inpainting `mask` (N, 1, R, R), 1 where pixels are missing; images (N, C, R, R) in [-1, 1]. `ganzoo
        enhance`, `ganzoo eval` (PSNR, SSIM) and sample grids call it; `ganzoo.kit.paired.PairedImageGAN` has it."""
        raise UsageError(f"{self.name} does not enhance images; paired image-to-image plugins do (e.g. pix2pix)")

    def translate(self, nets: Nets, images: torch.Tensor, direction: str) -> torch.Tensor:
        """Image-to-image plugins: `images` of one domain in [-1, 1] at the model's resolution, translated in
        `direction` (e.g. a2b, b2a)."""
        raise UsageError(f"{self.name} does not translate images; image-to-image plugins do (e.g. cyclegan)")

    def extra_files(self, data_info: DataInfo) -> dict[str, str]:
        """Text files (name -> content) written beside the weights in checkpoints and saved models (e.g. a text
        model's vocab.json); default: none."""
        return {}

    def frozen_d_blocks(self, nets: Nets) -> Sequence[nn.Module]:
        """The discriminator's blocks from input to output, for FreezeD; default: none declared."""
        return ()

    def summary(self) -> str:
        return self.description.strip().splitlines()[0] if self.description else ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} v{self.version}>"


def check_plugin(obj: object, origin: str) -> GANPlugin:
    """Return `obj` if it is a usable plugin, else raise PluginError naming `origin` and the problem."""
    from ganzoo.errors import PluginError

    if isinstance(obj, type) and issubclass(obj, GANPlugin):
        raise PluginError(f"{origin} is the class {obj.__name__}, not a plugin instance; name an instance of it")
    if not isinstance(obj, GANPlugin):
        raise PluginError(f"{origin} is a {type(obj).__name__}, not a ganzoo.GANPlugin instance")
    if not obj.name or not isinstance(obj.name, str):
        raise PluginError(f"{origin} has no name")
    if obj.modality not in MODALITIES:
        raise PluginError(f"{origin} has modality {obj.modality!r}; accepted: {', '.join(MODALITIES)}")
    if not dataclasses.is_dataclass(obj.Config):
        raise PluginError(f"{origin}: Config must be a dataclass, got {obj.Config!r}")
    try:
        check_defaults(obj.Config)
    except UsageError as exc:
        raise PluginError(f"{origin} has a broken config: {exc}") from None
    return obj
