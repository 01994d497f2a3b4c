"""The one training loop every plugin runs on.

The plugin says which networks exist and, step by step, which loss updates which networks; the `Trainer` does
everything else: device placement, autocast and per-step GradScalers, optimizers, EMA of the generators,
data order, DDP gradient averaging, divergence checks, logging, sample grids, checkpoints and resume.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from timm.utils import ModelEmaV3
from torch import nn

from ganzoo import __version__, augment
from ganzoo.config import config_to_dict, replace_config
from ganzoo.data import DataSource, resolve_data
from ganzoo.engine import checkpoint as ckpt
from ganzoo.engine import distributed as ddp
from ganzoo.engine.ada import AdaptiveAugment
from ganzoo.engine.config import TrainConfig
from ganzoo.engine.data import BatchStream
from ganzoo.engine.health import (
    HealthProbe,
    HealthRules,
    HealthWarning,
    RecallProbe,
    Thresholds,
    gradient_norm,
    parameter_snapshot,
    relative_update,
    write_health,
)
from ganzoo.engine.lock import RunLock
from ganzoo.engine.logging import RunLogger, image_grid, read_metrics, save_samples
from ganzoo.engine.precision import autocast, make_scaler, resolve_device, resolve_precision
from ganzoo.errors import DivergenceError, GanzooError, PluginError, PluginFailure, UsageError
from ganzoo.model import CONFIG_FILE, GANModel, build_model, read_run_config, resolve_model_config
from ganzoo.plugin import DataInfo, GANPlugin, OptimizerSpec, StepContext, UpdateStep
from ganzoo.registry import get_plugin

Callback = Callable[["Trainer", int], None]
Initializer = Callable[[GANModel], None]
BEST = "best"  # checkpoints/best: the weights of the best evaluation
ERRORS_LOG = "errors.log"  # tracebacks of a plugin's exceptions, one line of which the user sees
RUN_FILES = (CONFIG_FILE, "metrics.jsonl", "eval.json", ERRORS_LOG, "samples", "tensorboard", "checkpoints")
"""What a run writes into its directory (moved aside together when an earlier run left no checkpoint)."""
MAX_CONSECUTIVE_SKIPS = 30  # fp16 steps skipped in a row (scale / 2^30) before training counts as diverged
ROLLBACK_SEED_STRIDE = 104_729  # rollback k re-seeds the data order and the noise with seed + k * this


def split_overrides(plugin: GANPlugin, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sort `--set` keys into the plugin's config and the engine's TrainConfig; unknown keys are errors."""
    model_keys = {f.name for f in dataclasses.fields(plugin.Config)}
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    model, train = {}, {}
    for key, value in overrides.items():
        if key in model_keys:
            model[key] = value
        elif key in train_keys:
            train[key] = value
        else:
            raise UsageError(
                f"unknown config key {key!r} for {plugin.name}; valid keys: "
                f"{', '.join(sorted(model_keys))} (model), {', '.join(sorted(train_keys))} (training)"
            )
    return model, train


def make_optimizer(spec: OptimizerSpec, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
    kinds = {
        "adam": lambda: torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay),
        "adamw": lambda: torch.optim.AdamW(params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay),
        "sgd": lambda: torch.optim.SGD(params, lr=spec.lr, momentum=spec.betas[0], weight_decay=spec.weight_decay),
        "rmsprop": lambda: torch.optim.RMSprop(params, lr=spec.lr, weight_decay=spec.weight_decay),
    }
    if spec.kind not in kinds:
        raise UsageError(f"unknown optimizer {spec.kind!r}; accepted: {', '.join(kinds)}")
    return kinds[spec.kind]()


def lr_factor(step: int, total_steps: int, schedule: str, decay_start: float) -> float:
    """The multiplier of every base learning rate at iteration `step` (0-based) of `total_steps`.

    `constant`: 1. `linear-decay`: 1 for the first `decay_start` fraction of the iterations, then falling
    linearly so that the last iteration runs at 1/(decaying iterations) of the base rate (it reaches 0 just after
    training ends), as in CycleGAN's schedule (Zhu et al. 2017).
    """
    if schedule == "constant":
        return 1.0
    start = round(decay_start * total_steps)
    if step < start:
        return 1.0
    return (total_steps - step) / (total_steps - start)


def ema_decay_of(tc: TrainConfig) -> float:
    """The EMA's per-iteration decay: `ema_decay`, or from the half-life `ema_kimg` (thousands of images) at the
    global batch size, 0.5^(batch / (1000 ema_kimg)) (0: no EMA)."""
    if tc.ema_kimg is None:
        return tc.ema_decay
    return 0.5 ** (tc.batch_size / (1000 * tc.ema_kimg)) if tc.ema_kimg > 0 else 0.0


def _to_device(tensor: torch.Tensor, device: torch.device, memory_format: torch.memory_format) -> torch.Tensor:
    tensor = tensor.to(device, non_blocking=True)
    return tensor.contiguous(memory_format=memory_format) if tensor.ndim == 4 else tensor


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    step: int
    checkpoint: Path | None
    samples: Path | None
    model: GANModel
    warnings: list[HealthWarning] = dataclasses.field(default_factory=list)
    """The health warnings the run raised (all of them, a resumed run's earlier ones too)."""
    rollbacks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Each rollback (on_divergence=rollback, rollback_on_warning): {step, to, reason}, a resumed run's earlier ones
    too."""

    @property
    def health(self) -> str:
        """One line: healthy, or the warnings seen."""
        if not self.warnings:
            return "health: healthy (no warnings)"
        return "health: " + "; ".join(w.line() for w in self.warnings)


@dataclasses.dataclass
class _Run:
    """Everything one `fit()` works with once it is set up."""

    dist: ddp.DistState
    device: torch.device
    precision: str
    memory_format: torch.memory_format
    data_spec: str
    model: GANModel
    emas: dict[str, ModelEmaV3]
    schedule: list[UpdateStep]
    optimizers: dict[str, torch.optim.Optimizer]
    base_lrs: dict[str, float]
    """Each optimizer's learning rate from the plugin; the rate in use is this times `lr_scale` (and the schedule)."""
    scalers: dict[str, torch.amp.GradScaler]
    stream: BatchStream
    context: StepContext
    total_steps: int
    images_per_iteration: int
    images_seen: int = 0
    frozen: list[nn.Parameter] = dataclasses.field(default_factory=list)
    """FreezeD: discriminator parameters that no optimizer updates."""
    hooks: list[Any] = dataclasses.field(default_factory=list)
    """DiffAugment's or ADA's hooks on the discriminators, removed when training ends."""
    ada: AdaptiveAugment | None = None
    probe: HealthProbe | None = None
    rules: HealthRules | None = None
    recall: RecallProbe | None = None
    lr_scale: float = 1.0
    """rollback_lr_factor to the power of the rollbacks so far."""


class _WarningRollback(Exception):
    """rollback_on_warning: a health warning sends the run back to the newest checkpoint at or before `before`."""

    def __init__(self, warning: HealthWarning, before: int) -> None:
        super().__init__(f"health: {warning.line()}")
        self.step, self.before = warning.step, before


def _mean_logs(logged: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The mean of each value the micro-batches of an accumulated update logged."""
    keys = dict.fromkeys(key for logs in logged for key in logs)
    values = {key: [torch.as_tensor(logs[key]).detach().float() for logs in logged if key in logs] for key in keys}
    return {key: torch.stack(found).mean() for key, found in values.items()}


class _Window:
    """Logged values since the last metrics line, the images/s meanwhile, and the share of that wall time spent
    waiting for data (`data_share`: fetching a batch and moving it to the device; near 0 unless data is the
    bottleneck).

    A value is averaged over the times it was logged (an update repeated n_critic times, a phase that ended
    mid-window), a count (`count`) over the window's iterations.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device  # the sums stay where the losses are: all-reduce needs them there under NCCL
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.times: dict[str, int] = {}
        self.counters: set[str] = set()
        self.iterations = 0
        self.images = 0
        self.data_seconds = 0.0
        self.start = time.perf_counter()

    def add(self, key: str, value: Any) -> None:
        value = torch.as_tensor(value, dtype=torch.float32, device=self.device).detach()
        self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.times[key] = self.times.get(key, 0) + 1

    def count(self, key: str) -> None:
        """One more event (e.g. an update the GradScaler skipped), reported per iteration."""
        self.add(key, 1.0)
        self.counters.add(key)

    def close_iteration(self, images: int) -> None:
        self.iterations += 1
        self.images += images

    def means(self, dist: ddp.DistState) -> dict[str, float]:
        """The mean of each value (averaged over ranks under DDP, a collective), events per iteration, images/s."""
        values = {}
        if self.sums:
            keys = sorted(self.sums)
            divisors = [self.iterations if k in self.counters else self.times[k] for k in keys]
            means = torch.stack([self.sums[k] for k in keys]) / torch.tensor(divisors, device=self.device).clamp(min=1)
            if dist.enabled:
                means = ddp.all_reduce_mean(means, dist.world_size)
            values = dict(zip(keys, means.tolist(), strict=True))
        elapsed = time.perf_counter() - self.start
        values["images_per_s"] = self.images / elapsed if elapsed > 0 else 0.0
        values["data_share"] = min(1.0, self.data_seconds / elapsed) if elapsed > 0 else 0.0
        return values


def _default_run_dir(plugin: GANPlugin) -> Path:
    return Path("runs") / f"{plugin.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


class Trainer:
    """Train a plugin's networks.

    Args:
        plugin: a plugin or its registered name.
        config: overrides of the plugin's Config (field name -> value, strings are parsed).
        train: a TrainConfig, or overrides of its fields (the plugin's `train_defaults` apply first).
        data: a data spec (`mnist-4k`, `folder:PATH`, ...) or a DataSource.
        out: the run directory (default `runs/<plugin>-<timestamp>`).
        resume: continue the run in `out` from its newest checkpoint.
        callbacks: called as `callback(trainer, step)` after every iteration.
        init: called as `init(model)` on a new run once the networks and their EMA copies are built, before the
            optimizers: loads the starting weights (fine-tuning, `ganzoo.transfer`). Not called on resume.
        record: extra keys for the run's config.json (e.g. `base_model`).
    """

    def __init__(
        self,
        plugin: str | GANPlugin,
        config: Mapping[str, Any] | None = None,
        train: TrainConfig | Mapping[str, Any] | None = None,
        data: str | DataSource | None = None,
        out: str | Path | None = None,
        resume: bool = False,
        callbacks: Sequence[Callback] = (),
        init: Initializer | None = None,
        record: Mapping[str, Any] | None = None,
    ) -> None:
        self.plugin = plugin if isinstance(plugin, GANPlugin) else get_plugin(plugin)
        self.model_overrides = dict(config or {})
        # A TrainConfig instance is taken whole: all its fields act as overrides (also over a resumed run's).
        self._train_overrides = dataclasses.asdict(train) if isinstance(train, TrainConfig) else dict(train or {})
        self.train_config = self._make_train_config({})
        self.data_spec = data
        self.resume = resume
        self.run_dir = Path(out) if out is not None else None
        self.callbacks = list(callbacks)
        self.init = init
        self.record = dict(record or {})
        self._check_augmentation()
        self.step = 0
        self.model: GANModel | None = None
        self.best: dict[str, Any] | None = None
        """The best evaluation so far ({step, metric, value}) when `eval_every` is set."""
        self._extractor: Any = None
        self._eval_metrics: tuple[str, ...] = ()
        self._scale_before: dict[str, float] = {}  # fp16: each update's loss scale before its step
        self._consecutive_skips: dict[str, int] = {}  # saved in checkpoints, so a resumed storm still stops
        self._rollbacks: list[dict[str, Any]] = []  # (on_divergence=rollback) saved in every checkpoint's trainer.json
        self._lock: RunLock | None = None

    def _check_augmentation(self) -> None:
        """A bad DiffAugment policy, or augmentation of text, fails here rather than after loading data."""
        tc = self.train_config
        augment.parse_policy(tc.diffaugment)
        if tc.diffaugment and tc.augment != "none":
            raise UsageError("choose one augmentation: diffaugment or augment=ada, not both")
        if self.plugin.modality == "text" and (tc.diffaugment or tc.augment != "none"):
            raise UsageError(f"augmentation acts on images, and {self.plugin.name} is a text model")

    def _make_train_config(self, saved: Mapping[str, Any]) -> TrainConfig:
        base = replace_config(TrainConfig(), dict(self.plugin.train_defaults), what="training")
        base = replace_config(base, dict(saved), what="training")
        return replace_config(base, self._train_overrides, what="training")

    # ----------------------------------------------------------------------------------------------- setup

    def _prepare_run_dir(self) -> dict[str, Any] | None:
        """Create the run directory (or read the run being resumed); the saved run config when resuming."""
        if self.resume:
            if self.run_dir is None:
                candidates = sorted(Path("runs").glob(f"{self.plugin.name}-*"), key=lambda p: p.stat().st_mtime)
                if not candidates:
                    raise UsageError(f"--resume found no run of {self.plugin.name} under runs/; pass --out RUN_DIR")
                self.run_dir = candidates[-1]
            config_path = self.run_dir / CONFIG_FILE
            if not config_path.is_file():
                raise UsageError(f"cannot resume: {config_path} does not exist")
            saved = read_run_config(config_path)
            if saved.get("plugin") != self.plugin.name:
                raise UsageError(
                    f"cannot resume: {self.run_dir} is a {saved.get('plugin')} run, not {self.plugin.name}"
                )
            return saved
        self.run_dir = self.run_dir or _default_run_dir(self.plugin)
        if ckpt.list_checkpoints(self.run_dir / "checkpoints"):
            raise UsageError(
                f"{self.run_dir} already holds checkpoints; pass --resume to continue it or choose another --out"
            )
        return None

    def _agree_on_run_dir(self, dist_state: ddp.DistState) -> None:
        """Every rank uses rank 0's run directory (its default name holds a timestamp)."""
        encoded = torch.zeros(1024, dtype=torch.uint8)
        if dist_state.is_main:
            raw = str(self.run_dir).encode()
            encoded[: len(raw)] = torch.tensor(list(raw), dtype=torch.uint8)
        dist.broadcast(encoded, src=0)
        self.run_dir = Path(bytes(encoded[encoded.nonzero()].flatten().tolist()).decode())

    def _seed_everything(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    # ------------------------------------------------------------------------------------------- training

    def fit(self) -> TrainResult:
        dist_state = ddp.from_environment()
        saved = self._prepare_run_dir()
        if saved is not None:
            self.train_config = self._make_train_config(saved.get("train", {}))
            self._check_augmentation()
            self._check_resume_overrides(saved)
        tc = self.train_config
        device = resolve_device(tc.device, dist_state.local_rank)
        ddp.init_process_group(dist_state, device)
        deterministic_before = torch.are_deterministic_algorithms_enabled()
        # Denormal floats (e.g. the far tail of a sharp softmax, as in a text GAN's Gumbel-softmax samples) make
        # CPU matrix products several times slower; training needs none, so they are read and written as zero.
        torch.set_flush_denormal(True)
        try:
            if dist_state.enabled:
                self._agree_on_run_dir(dist_state)
            return self._fit(dist_state, device, saved)
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            torch.use_deterministic_algorithms(deterministic_before)
            torch.set_flush_denormal(False)  # torch's default (it offers no way to read the current setting)
            ddp.shutdown(dist_state)

    def _check_resume_overrides(self, saved: Mapping[str, Any]) -> None:
        saved_config = saved.get("config", {})
        for key, value in self.model_overrides.items():
            current = replace_config(self.plugin.default_config(), {key: value})
            if config_to_dict(current)[key] != saved_config.get(key):
                raise UsageError(f"cannot change {key} when resuming (the run has {key}={saved_config.get(key)!r})")
        if self.data_spec is None:
            self.data_spec = saved.get("data")
            return
        given = self.data_spec.spec if isinstance(self.data_spec, DataSource) else str(self.data_spec)
        if given != saved.get("data"):
            raise UsageError(f"cannot change the data when resuming (the run used {saved.get('data')!r})")

    def _fit(self, dist: ddp.DistState, device: torch.device, saved: Mapping[str, Any] | None) -> TrainResult:
        tc = self.train_config
        torch.backends.cudnn.benchmark = device.type == "cuda" and not tc.deterministic
        if tc.deterministic:
            torch.use_deterministic_algorithms(True)
        self._seed_everything(tc.seed)
        if saved is not None and dist.is_main:
            self._take_run_dir()
        run = self._setup(dist, device, saved)
        if saved is not None:
            self._restore(run)
        else:
            self.step = 0
            torch.manual_seed(tc.seed * 1_000_003 + dist.rank + 1)  # each rank its own noise from here on
            if dist.is_main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self._take_run_dir()
                self._move_incomplete_run_aside()
                self._write_run_config(run)
        return self._loop(run)

    def _take_run_dir(self) -> None:
        """Lock the run directory for this process (a second writer is refused), then remove what killed writers
        left half-written."""
        self._lock = RunLock(self.run_dir)
        self._lock.acquire()
        ckpt.remove_stale_temporaries(self.run_dir / "checkpoints")

    def _move_incomplete_run_aside(self) -> None:
        """A fresh run into a directory that holds an earlier run's files but no complete checkpoint (it died
        before its first one) starts clean: those files move to `previous-<time>/`, and a warning says so."""
        leftovers = [self.run_dir / name for name in RUN_FILES if (self.run_dir / name).exists()]
        if not leftovers:
            return
        aside = self.run_dir / f"previous-{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
        aside.mkdir()
        for path in leftovers:
            path.rename(aside / path.name)
        warnings.warn(
            f"{self.run_dir} held files of an earlier run with no complete checkpoint; moved to {aside}", stacklevel=2
        )

    def _setup(self, dist: ddp.DistState, device: torch.device, saved: Mapping[str, Any] | None) -> _Run:
        """Data, networks (on the device, broadcast from rank 0), EMA, optimizers, scalers, batch stream."""
        tc = self.train_config
        if isinstance(self.data_spec, DataSource):
            source = self.data_spec
        else:  # no --data: the plugin's own default data when it names one (e.g. a two-domain set), else mnist-4k
            source = resolve_data(self.data_spec or self.plugin.default_data)
        saved_info = DataInfo.from_dict(saved["data_info"]) if saved and "data_info" in saved else None
        if saved_info is not None and "vocab" in saved_info.extras:  # a resumed text run keeps its vocabulary
            from ganzoo.text.corpus import VocabularySource

            source = VocabularySource(source, saved_info)
        native = source.info()
        model_config = resolve_model_config(self.plugin, saved["config"] if saved else self.model_overrides, native)
        dataset = source.load(**self.plugin.data_options(model_config))
        # A dataset may add what only loading revealed (a text vocabulary) to the data's extras.
        extras = {**native.extras, **getattr(dataset, "extras", {})}
        data_info = dataclasses.replace(native, num_samples=len(dataset), extras=extras)
        model = build_model(self.plugin, model_config, data_info, with_ema=False)
        model.to(device)
        memory_format = torch.channels_last if tc.channels_last else torch.contiguous_format
        for net in model.nets.values():
            net.to(memory_format=memory_format)
            net.train()
            if dist.enabled:
                ddp.broadcast_module(net)
        emas = {}
        ema_decay = ema_decay_of(tc)
        if ema_decay > 0:
            for role in self.plugin.generator_roles:
                emas[role] = ModelEmaV3(
                    model.nets[role],
                    decay=ema_decay,
                    update_after_step=tc.ema_start,
                    use_warmup=tc.ema_warmup_power > 0,
                    warmup_power=tc.ema_warmup_power or 1.0,
                )
                model.ema[role] = emas[role].module
        if saved is None and self.init is not None:
            self.init(model)
        if tc.compile:  # after the EMA copies (which only sample) are made: they stay eager
            self._compile(model)
        self.model = model

        schedule = list(self.plugin.schedule(model_config))
        specs = self.plugin.optimizers(model_config)
        frozen = self._freeze_d(model)
        frozen_ids = {id(p) for p in frozen}
        optimizers = {}
        for name, role in self._optimizer_roles(schedule, specs, model.nets).items():
            trainable = [p for p in model.nets[role].parameters() if id(p) not in frozen_ids]
            if frozen and not trainable:
                raise UsageError(f"freeze_d={tc.freeze_d} leaves the {role} nothing to train; freeze fewer blocks")
            optimizers[name] = make_optimizer(specs[name], trainable)
        precision = resolve_precision(tc.precision, device)
        if tc.eval_every is not None and dist.is_main:  # fail before training, not at the first evaluation
            from ganzoo.metrics.evaluation import default_metrics, parse_metrics
            from ganzoo.metrics.features import get_features

            default = default_metrics(self.plugin.modality, bool(data_info.extras.get("paired")))
            self._eval_metrics = parse_metrics(tc.eval_metrics or default[:1])
            if self.plugin.modality != "text":
                self._extractor = get_features(tc.eval_features, device)
        stream = BatchStream(
            dataset,
            tc.batch_size,
            tc.seed,
            dist.rank,
            dist.world_size,
            num_workers=tc.num_workers,
            pin_memory=device.type == "cuda",
        )
        draws = max(  # batches drawn per iteration: the largest over the phases (periodic updates not counted)
            sum(s.repeats for s in schedule if s.needs_data and s.every == 1 and s.runs_at(start))
            for start in {s.steps[0] for s in schedule}
        )
        total_steps = tc.steps
        if tc.epochs is not None:
            total_steps = max(1, math.ceil(tc.epochs * stream.batches_per_epoch / max(1, draws)))
        per_rank_batch = tc.batch_size // dist.world_size
        if per_rank_batch % tc.accumulate:
            raise UsageError(
                f"batch_size={tc.batch_size} over {dist.world_size} rank(s) is {per_rank_batch} per rank, which "
                f"accumulate={tc.accumulate} must divide into equal micro-batches"
            )
        context = StepContext(0, device, precision, model_config, data_info, per_rank_batch, total_steps=total_steps)
        ada = None
        if tc.augment == "ada":
            ada = AdaptiveAugment(tc.ada_target, tc.ada_interval, tc.ada_kimg, tc.batch_size * draws, device)
        probe, rules, recall, hooks = None, None, None, []
        if tc.health_every > 0:  # its hooks first: they must see the batch before augmentation replaces it
            probe = HealthProbe()
            blocks = list(self.plugin.frozen_d_blocks(model.nets))
            hooks = probe.install(self._discriminators(model, schedule), blocks[-1:])
            thresholds = Thresholds(
                window=tc.health_window,
                diversity=tc.health_diversity,
                diversity_fall=tc.health_diversity_fall,
                d_auc=tc.health_d_auc,
                g_grad=tc.health_g_grad,
                g_update=tc.health_g_update,
                recall_floor=tc.health_recall_floor,
                recall_ratio=tc.health_recall_ratio,
                min_precision=tc.health_min_precision,
                oscillation=tc.health_oscillation,
                min_scale=tc.health_min_scale,
            )
            rules = HealthRules(thresholds, self.plugin.generator_roles)
            recall = self._recall_probe(model, dataset, device)
        return _Run(
            dist=dist,
            device=device,
            precision=precision,
            memory_format=memory_format,
            data_spec=source.spec,
            model=model,
            emas=emas,
            schedule=schedule,
            optimizers=optimizers,
            base_lrs={role: spec.lr for role, spec in specs.items()},
            scalers={s.name: make_scaler(device, precision) for s in schedule},
            stream=stream,
            context=context,
            total_steps=total_steps,
            images_per_iteration=tc.batch_size * draws,
            frozen=frozen,
            hooks=hooks + self._install_augmentation(model, schedule, ada),
            ada=ada,
            probe=probe,
            rules=rules,
            recall=recall,
        )

    def _optimizer_roles(
        self, schedule: list[UpdateStep], specs: Mapping[str, OptimizerSpec], nets: Mapping[str, nn.Module]
    ) -> dict[str, str]:
        """The network each optimizer of `specs` trains: a role's own, or the one network of the updates that
        name it (`UpdateStep.optimizer`); every update must find its optimizers."""
        plugin, roles = self.plugin.name, {}
        for update in schedule:
            for role in update.networks:
                name = update.optimizer or role
                if name not in specs:
                    raise PluginError(f"plugin {plugin} gives no optimizer {name!r} for its {update.name} update")
                if roles.setdefault(name, role) != role:
                    raise PluginError(
                        f"plugin {plugin}'s optimizer {name!r} is named for both {roles[name]} and {role}"
                    )
        roles.update({name: name for name in specs if name not in roles and name in nets})
        unused = sorted(set(specs) - set(roles))
        if unused:
            raise PluginError(f"plugin {plugin} gives optimizers {', '.join(unused)} that no update or network uses")
        return roles

    def _freeze_d(self, model: GANModel) -> list[nn.Parameter]:
        """FreezeD (Mo et al. 2020): the parameters of the first `freeze_d` blocks the plugin declares."""
        count = self.train_config.freeze_d
        if count == 0:
            return []
        blocks = list(self.plugin.frozen_d_blocks(model.nets))
        if not blocks:
            raise UsageError(f"freeze_d needs discriminator blocks, and {self.plugin.name} declares none")
        if count > len(blocks):
            raise UsageError(
                f"freeze_d={count} but the {self.plugin.name} discriminator has {len(blocks)} blocks; "
                f"accepted: 0-{len(blocks)}"
            )
        frozen = [p for block in blocks[:count] for p in block.parameters()]
        for parameter in frozen:
            parameter.requires_grad_(False)
        return frozen

    def _install_augmentation(
        self, model: GANModel, schedule: Sequence[UpdateStep], ada: AdaptiveAugment | None
    ) -> list[Any]:
        """DiffAugment or ADA on the inputs of every trained network that is not a generator (the discriminators)."""
        tc = self.train_config
        if not tc.diffaugment and ada is None:
            return []
        discriminators = self._discriminators(model, schedule)
        return ada.install(discriminators) if ada is not None else augment.install(discriminators, tc.diffaugment)

    def _compile(self, model: GANModel) -> None:
        """torch.compile every trained network in place (its state_dict keys stay the same, so checkpoints are
        unchanged); inductor's cache goes to `compile_cache` when set. A platform where compiling cannot work
        (no C++ compiler for the CPU kernels) is a one-line error before training."""
        tc = self.train_config
        if tc.compile_cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tc.compile_cache).expanduser().resolve())
        on_cpu = all(p.device.type == "cpu" for net in model.nets.values() for p in net.parameters())
        if on_cpu and not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "clang++", "c++")):
            raise UsageError("compile=true on the CPU needs a C++ compiler (inductor builds C++ kernels): install g++")
        for net in model.nets.values():
            if any(p.requires_grad for p in net.parameters()):
                net.compile()

    def _recall_probe(self, model: GANModel, dataset: Any, device: torch.device) -> RecallProbe | None:
        """The small-sample recall of an image generator (health_recall > 0) against that many real images of the
        training data, drawn once with the run's seed, when the eval_features extractor loads; None for text and
        image-to-image models, which generate from no noise."""
        from ganzoo.metrics.evaluation import is_paired
        from ganzoo.metrics.features import get_features

        tc = self.train_config
        if tc.health_recall == 0 or self.plugin.modality != "image" or is_paired(model):
            return None
        if tc.health_recall <= 3:
            raise UsageError(f"health_recall={tc.health_recall}: the recall needs more than 3 samples; 0 turns it off")
        try:
            extractor = get_features(tc.eval_features, device)
        except GanzooError as error:  # e.g. inception without its weights offline: no recall, the rest stays
            warnings.warn(f"health: no small-sample recall ({error})", UserWarning, stacklevel=2)
            return None
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(tc.seed))
        indices = order[: tc.health_recall].tolist()
        items = dataset.__getitems__(indices) if hasattr(dataset, "__getitems__") else None
        if items is None:
            items = {"image": torch.stack([dataset[i]["image"] for i in indices])}
        return RecallProbe(extractor, items["image"].to(device), seed=tc.seed)

    def _discriminators(self, model: GANModel, schedule: Sequence[UpdateStep]) -> list[nn.Module]:
        """Every trained network that is not a generator."""
        roles = sorted({r for s in schedule for r in s.networks} - set(self.plugin.generator_roles))
        return [model.nets[role] for role in roles]

    def _restore(self, run: _Run) -> None:
        """Load the newest checkpoint that verifies (its checksums, finite weights, readable state), saying which
        newer ones were skipped and why: weights (EMA too), optimizer and scaler state, RNG, data position."""
        directory, tried = self.run_dir / "checkpoints", []
        for checkpoint, problem in ckpt.usable_checkpoints(directory):
            if problem is None:
                try:
                    run.model.load_weights(ckpt.load_weights(checkpoint), str(checkpoint))
                    state, info = ckpt.load_training_state(checkpoint)
                    break
                except GanzooError as exc:
                    problem = str(exc)
            tried.append(f"{checkpoint.name}: {problem}")
            if run.dist.is_main:
                warnings.warn(f"skipping the checkpoint {checkpoint}: {problem}", stacklevel=2)
        else:
            if tried:
                raise GanzooError(f"cannot resume: no checkpoint in {directory} is usable ({'; '.join(tried)})")
            raise UsageError(f"cannot resume: {self.run_dir} has no complete checkpoint")
        if tried and run.dist.is_main:
            warnings.warn(f"resuming from the newest usable checkpoint, {checkpoint}", stacklevel=2)
        self._consecutive_skips = {name: int(count) for name, count in state.get("skips", {}).items()}
        for role, opt in run.optimizers.items():
            opt.load_state_dict(state["optimizers"][role])
        for name, scaler in run.scalers.items():
            if state["scalers"].get(name):
                scaler.load_state_dict(state["scalers"][name])
        if run.ada is not None and "ada" in state:  # (a run that starts ada on resume starts at p = 0)
            run.ada.load_state_dict(state["ada"], run.dist.is_main)
        self._restore_rng(state["rng"], run, info["step"])
        self.step = info["step"]
        best = self.run_dir / "checkpoints" / BEST
        if (best / ckpt.TRAINER_FILE).is_file():
            try:
                self.best = ckpt.read_trainer_info(best)
            except GanzooError as exc:  # the best weights are a by-product: a garbled record is started afresh
                warnings.warn(f"ignoring the best evaluation's record: {exc}", stacklevel=2)
        if run.dist.is_main:
            from ganzoo.metrics.evaluation import forget_evaluations_after

            forget_evaluations_after(self.run_dir, self.step)
        run.images_seen = info["images_seen"]
        self._rollbacks = list(info.get("rollbacks", []))
        self._apply_rollbacks(run)
        run.stream.seek(info["epoch"], info["batch_in_epoch"])

    def _apply_rollbacks(self, run: _Run) -> None:
        """The learning rates and data order of the rollbacks so far (none: the run's own)."""
        count, tc = len(self._rollbacks), self.train_config
        run.lr_scale = tc.rollback_lr_factor**count
        run.stream.seed = tc.seed + ROLLBACK_SEED_STRIDE * count
        for name, optimizer in run.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = run.base_lrs[name] * run.lr_scale

    def _roll_back(self, run: _Run, error: DivergenceError | _WarningRollback, logger: RunLogger | None) -> None:
        """on_divergence=rollback: back to the newest good checkpoint, learning rates scaled, data and noise
        re-seeded (deterministically: a resumed run continues exactly); re-raises when no rollback is left.
        rollback_on_warning: back to the newest checkpoint before the warning's evidence (`_warning_rollback`
        checked there is one and a rollback left), the newer ones deleted."""
        tc = self.train_config
        if isinstance(error, _WarningRollback):
            if run.dist.is_main:
                ckpt.discard_after(self.run_dir / "checkpoints", error.before)
            if run.dist.enabled:
                dist.barrier()
        elif tc.on_divergence != "rollback":
            raise error
        done = list(self._rollbacks)
        if len(done) >= tc.max_rollbacks:
            raise DivergenceError(
                f"{error} (after {len(done)} rollbacks, the most max_rollbacks={tc.max_rollbacks} allows)",
                error.step,
                error.loss_name,
            ) from None
        if ckpt.latest_checkpoint(self.run_dir / "checkpoints") is None:
            raise DivergenceError(f"{error} (no checkpoint to roll back to yet)", error.step, error.loss_name) from None
        self._restore(run)  # weights, EMA, optimizers, scalers, RNG and data position of the newest good checkpoint
        self._rollbacks = [*done, {"step": error.step, "to": self.step, "reason": str(error)}]
        self._apply_rollbacks(run)
        torch.manual_seed(tc.seed * 1_000_003 + run.dist.rank + 1 + ROLLBACK_SEED_STRIDE * len(self._rollbacks))
        if logger is not None:
            logger.rewind(self.step)
            logger.write(
                f"rollback {len(self._rollbacks)} of at most {tc.max_rollbacks}: {error}; back to step {self.step} "
                f"with the learning rates x{run.lr_scale:g} and a re-seeded data order"
            )
        self._replay_health(run)

    def _replay_health(self, run: _Run) -> None:
        """Rules that have read the run's metrics.jsonl so far (resumed or rolled back: the lines up to its step),
        and health.json rewritten to their warnings (dropping any of steps after it)."""
        if run.rules is not None and run.dist.is_main:
            run.rules = HealthRules(run.rules.thresholds, run.rules.generator_roles)
            run.rules.replay(read_metrics(self.run_dir))
            write_health(self.run_dir, run.rules.warnings)

    def _loop(self, run: _Run) -> TrainResult:
        tc = self.train_config
        logger = None
        if run.dist.is_main:
            logger = RunLogger(self.run_dir, run.total_steps, self.step, tc.progress, tc.tensorboard)
        window = _Window(run.device)
        if self.step > 0:  # resumed: the rules read the run's past again
            self._replay_health(run)
        pending: list[tuple[int, str, torch.Tensor]] = []  # losses not yet checked for NaN/inf
        check_every = 1 if run.device.type == "cpu" else tc.log_every  # on CUDA a check is a sync
        last_checkpoint = ckpt.latest_checkpoint(self.run_dir / "checkpoints")
        if tc.rollback_on_warning and last_checkpoint is None:  # a run that goes wrong at once restarts from here
            last_checkpoint = self._save_checkpoint(run)
        sample_path = None
        try:
            while self.step < run.total_steps:
                try:
                    for name, loss in self._iteration(run, window):
                        pending.append((self.step + 1, name, loss))
                    self.step += 1
                    window.close_iteration(run.images_per_iteration)
                    run.images_seen += run.images_per_iteration
                    last = self.step == run.total_steps
                    due_log = self.step % tc.log_every == 0 or last
                    due_checkpoint = self.step % tc.checkpoint_every == 0 or last
                    due_eval = tc.eval_every is not None and (self.step % tc.eval_every == 0 or last)
                    if self.step % check_every == 0 or due_log or due_checkpoint:
                        self._check_finite(pending, last_checkpoint, run.dist)
                        pending.clear()
                    if due_log:
                        self._log(run, window, logger)
                    if logger is not None:
                        logger.advance()
                    if run.dist.is_main and (self.step % tc.sample_every == 0 or last):
                        sample_path = self._write_samples(run.model, logger)
                    if due_eval:
                        self._evaluate(run, logger)
                    if due_checkpoint:
                        last_checkpoint = self._save_checkpoint(run)
                    for callback in self.callbacks:
                        callback(self, self.step)
                except (DivergenceError, _WarningRollback) as error:  # stop (re-raised), or roll back and go on
                    self._roll_back(run, error, logger)
                    pending.clear()
                    window.reset()
                    last_checkpoint = ckpt.latest_checkpoint(self.run_dir / "checkpoints")
        finally:
            for hook in run.hooks:
                hook.remove()
            if logger is not None:
                logger.close()
        if run.dist.is_main and sample_path is None:
            sample_path = self._write_samples(run.model, None)
        if run.memory_format != torch.contiguous_format:  # the default layout back: the returned model then
            for net in [*run.model.nets.values(), *run.model.ema.values()]:  # samples exactly as its saved copy
                net.to(memory_format=torch.contiguous_format)  # loads (kernels of other layouts round otherwise)
        run.model.info = {
            "source": str(self.run_dir),
            "checkpoint": str(last_checkpoint),
            "step": self.step,
            "data": run.data_spec,
        }
        warnings = list(run.rules.warnings) if run.rules is not None else []
        return TrainResult(
            self.run_dir, self.step, last_checkpoint, sample_path, run.model, warnings, list(self._rollbacks)
        )

    def _iteration(self, run: _Run, window: _Window) -> list[tuple[str, torch.Tensor]]:
        """One pass over the update schedule, then buffer sync and EMA; returns each update's loss."""
        run.context.step = self.step
        tc = self.train_config
        if tc.lr_schedule != "constant":
            factor = lr_factor(self.step, run.total_steps, tc.lr_schedule, tc.lr_decay_start)
            for name, optimizer in run.optimizers.items():
                for group in optimizer.param_groups:
                    group["lr"] = run.base_lrs[name] * run.lr_scale * factor
        losses = []
        health_step = run.probe is not None and (self.step + 1) % tc.health_every == 0
        generators = set(self.plugin.generator_roles)
        for update in run.schedule:
            if not update.runs_at(self.step):
                continue
            judged = health_step and update.needs_data and not set(update.networks) <= generators
            for role, net in run.model.nets.items():  # only the updated networks build gradients
                net.requires_grad_(role in update.networks)
            for parameter in run.frozen:
                parameter.requires_grad_(False)
            for repeat in range(update.repeats):
                batch = {}
                if update.needs_data:
                    waiting = time.perf_counter()
                    batch = {k: _to_device(v, run.device, run.memory_format) for k, v in run.stream.next().items()}
                    window.data_seconds += time.perf_counter() - waiting
                measure = judged and repeat == 0
                loss, logs = self._update(run, update, batch, health=health_step and repeat == 0, measure=measure)
                if run.probe is not None:
                    for key, value in run.probe.end().items():
                        window.add(f"health/{key}", value)
                if self._skipped_by_scaler(run, update):
                    window.count(f"amp/skipped/{update.name}")
                    continue
                losses.append((update.name, loss))
                window.add(f"loss/{update.name}", loss)
                for key, value in logs.items():
                    window.add(key, value)
        if run.ada is not None:
            r_t = run.ada.adjust(run.dist.world_size) if (self.step + 1) % run.ada.interval == 0 else None
            if r_t is not None:
                window.add("augment/r_t", r_t)
            window.add("augment/p", run.ada.p)
        if run.dist.enabled:  # before the EMA reads them: batch-norm statistics follow rank 0
            for net in run.model.nets.values():
                ddp.broadcast_module(net, buffers_only=True)
        for role, ema in run.emas.items():
            # timm copies while `step - update_after_step - 1 <= 0`: passing the completed iterations plus one
            # makes exactly `ema_start` iterations copy before the averaging starts.
            ema.update(run.model.nets[role], step=self.step + 2)
        if health_step and run.recall is not None:
            precision, recall = run.recall.measure(run.model)
            window.add("health/precision", precision)
            window.add("health/recall", recall)
        return losses

    def _update(
        self,
        run: _Run,
        update: UpdateStep,
        batch: Mapping[str, torch.Tensor],
        health: bool = False,
        measure: bool = False,
    ) -> tuple[torch.Tensor, Mapping[str, Any]]:
        """One optimisation step of the networks `update` names: loss, (scaled) backward, sync, clip, step.

        With `accumulate` N the batch is cut into N equal micro-batches (a generator-only update draws N times
        batch/N samples), each loss divided by N is back-propagated into the same gradients, and the optimizers
        step once: for mean losses, no batch norm and noise drawn once per (micro-)batch, the gradients of the
        whole batch at once, in 1/N of the activation memory. `health`: also log each network's gradient norm
        (unscaled), the step's relative change of its weights and the fp16 loss scale; `measure`: the health probe
        reads this update's D calls (on the first micro-batch)."""
        nets = run.model.nets
        scaler = run.scalers[update.name]
        optimizers = [run.optimizers[update.optimizer or role] for role in update.networks]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        if scaler.is_enabled():
            self._scale_before[update.name] = scaler.get_scale()
        run.context.scaler = scaler
        parts = self.train_config.accumulate
        whole = run.context.batch_size
        chunks = [{k: v.chunk(parts)[i] for k, v in batch.items()} for i in range(parts)] if parts > 1 else [batch]
        losses, logged = [], []
        try:
            run.context.batch_size = whole // parts
            for index, chunk in enumerate(chunks):
                if run.ada is not None:
                    run.ada.expect_real(chunk)
                if run.probe is not None:
                    run.probe.begin(chunk, measure=measure and index == 0, keep=index > 0)
                with autocast(run.device, run.precision):
                    loss, logs = update.loss(nets, chunk, run.context)
                scaler.scale(loss / parts if parts > 1 else loss).backward()
                losses.append(loss.detach())
                logged.append(logs)
        except GanzooError:
            raise
        except Exception as exc:  # the plugin's code: one line for the user, the traceback in the run directory
            raise self._plugin_failure(f"its {update.name} update", exc, run.dist) from exc
        finally:
            run.context.batch_size = whole
        loss, logs = (losses[0], logged[0]) if parts == 1 else (torch.stack(losses).mean(), _mean_logs(logged))
        if run.dist.enabled:
            ddp.average_gradients([nets[r] for r in update.networks], run.dist.world_size)
        if health:
            scale = scaler.get_scale() if scaler.is_enabled() else 1.0
            logs = dict(logs)
            for role in update.networks:
                norm = gradient_norm(nets[role], scale)
                if norm is not None:
                    logs[f"health/grad_norm/{role}"] = norm
            if scaler.is_enabled():
                logs[f"health/loss_scale/{update.name}"] = scale
        if self.train_config.grad_clip is not None:
            for role, optimizer in zip(update.networks, optimizers, strict=True):
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(nets[role].parameters(), self.train_config.grad_clip)
        before = {role: parameter_snapshot(nets[role]) for role in update.networks} if health else {}
        for optimizer in optimizers:
            scaler.step(optimizer)
        scaler.update()
        for role, snapshot in before.items():
            moved = relative_update(nets[role], snapshot)
            if moved is not None:
                logs[f"health/update/{role}"] = moved
        return loss, logs

    def _skipped_by_scaler(self, run: _Run, update: UpdateStep) -> bool:
        """Under fp16: did the GradScaler just skip this update for inf/NaN gradients (and lower its scale)?

        Such a step changes no weights; its loss may be inf (a penalty's scaled inner gradient overflowed) and is
        not a divergence. Many skips in a row are: the scale keeps falling and training has stopped.
        """
        scaler = run.scalers[update.name]
        if not scaler.is_enabled():
            return False
        skipped = scaler.get_scale() < self._scale_before[update.name]
        count = self._consecutive_skips.get(update.name, 0) + 1 if skipped else 0
        self._consecutive_skips[update.name] = count
        if count >= MAX_CONSECUTIVE_SKIPS:
            raise DivergenceError(
                f"training diverged at step {self.step + 1}: fp16 gradients of the {update.name} update were "
                f"inf/NaN {count} times in a row (loss scale now {scaler.get_scale():g}); try --precision bf16 or fp32",
                self.step + 1,
                update.name,
            )
        return skipped

    def _log(self, run: _Run, window: _Window, logger: RunLogger | None) -> None:
        """A metrics line (means over the window and, under DDP, over ranks); every rank takes part."""
        values = window.means(run.dist)
        values.update({f"lr/{role}": opt.param_groups[0]["lr"] for role, opt in run.optimizers.items()})
        values["epoch"] = run.stream.epoch
        if logger is not None:
            logger.log(self.step, values)
            logger.show({k: v for k, v in values.items() if k.startswith(("loss/", "images"))})
        window.reset()
        fresh = run.rules.observe(self.step, values) if run.rules is not None else []
        if fresh and run.dist.is_main and run.rules is not None:
            write_health(self.run_dir, run.rules.warnings)
            for warning in fresh:
                if logger is not None:
                    logger.write(f"warning: {warning.line()}")
        if self.train_config.rollback_on_warning and run.rules is not None:
            self._warning_rollback(run, fresh, logger)

    def _warning_rollback(self, run: _Run, fresh: Sequence[HealthWarning], logger: RunLogger | None) -> None:
        """rollback_on_warning: raise `_WarningRollback` for the first fresh warning when a rollback is left and a
        checkpoint precedes the first line of its evidence (rank 0 decides and, under DDP, tells the others: a
        resumed run's other ranks have not replayed the rules)."""
        assert run.rules is not None
        before, due = -1, False
        if fresh and run.dist.is_main:
            before = run.rules.evidence_start() - 1  # the first line's state already shows it
            checkpoints = ckpt.list_checkpoints(self.run_dir / "checkpoints")
            target = any((ckpt.checkpoint_step(p) or 0) <= before for p in checkpoints)
            left = len(self._rollbacks) < self.train_config.max_rollbacks
            due = target and left
            if not due and logger is not None:
                why = "no rollback left" if not left else f"no checkpoint before step {before + 1}"
                logger.write(f"rollback_on_warning: not rolling back ({why})")
        if run.dist.enabled:
            decision = torch.tensor([float(due), float(before)], dtype=torch.float64, device=run.device)
            dist.broadcast(decision, src=0)
            due, before = bool(decision[0]), int(decision[1])
        if due:
            warning = fresh[0] if fresh else HealthWarning(self.step, "health warning", "on rank 0")
            raise _WarningRollback(warning, before)

    def _evaluate(self, run: _Run, logger: RunLogger | None) -> None:
        """Score the EMA generator (rank 0), log the metrics, and keep `checkpoints/best` for the first one."""
        from ganzoo.metrics.evaluation import evaluate, primary_value, record_evaluation

        tc = self.train_config
        if run.dist.is_main:
            result = evaluate(
                run.model,
                data=tc.eval_data or run.data_spec,
                metrics=self._eval_metrics,
                features=self._extractor or tc.eval_features,
                n=tc.eval_n,
                seed=tc.seed,
            )
            values = {f"eval/{k}": v for k, v in result.items() if isinstance(v, float) and k != "seconds"}
            if logger is not None:
                logger.log(self.step, values)
                logger.write(f"step {self.step}: " + ", ".join(f"{k[5:]} {v:.4g}" for k, v in values.items()))
            record_evaluation(self.run_dir, result, step=self.step, checkpoint=None)
            name, value, lower = primary_value(self._eval_metrics, result)
            if self.best is None or (value < self.best["value"] if lower else value > self.best["value"]):
                self.best = {"step": self.step, "metric": name, "value": value}
                metadata = {"ganzoo_version": __version__, "plugin": self.plugin.name, "step": str(self.step)}
                ckpt.save_weights_dir(self.run_dir / "checkpoints" / BEST, run.model.weights(), self.best, metadata)
        if run.dist.enabled:
            dist.barrier()

    def _check_finite(
        self, pending: list[tuple[int, str, torch.Tensor]], last_checkpoint: Path | None, dist: ddp.DistState
    ) -> None:
        if not pending:
            return
        values = torch.stack([loss.detach().float() for _, _, loss in pending])
        if dist.enabled:
            values = ddp.all_reduce_mean(values, dist.world_size)
        finite = torch.isfinite(values)
        if bool(finite.all()):
            return
        index = int((~finite).nonzero()[0])
        step, name, _ = pending[index]
        kept = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
        raise DivergenceError(
            f"training diverged at step {step}: the {name} loss is {float(values[index])}; {kept}", step, name
        )

    # ---------------------------------------------------------------------------------------- persistence

    def _write_run_config(self, run: _Run) -> None:
        record = {
            **run.model.config_dict(),
            "data": run.data_spec,
            "train": config_to_dict(self.train_config),
            "seed": self.train_config.seed,
            "precision": run.precision,
            "device": run.device.type,
            "world_size": run.dist.world_size,
            "created": datetime.now().isoformat(timespec="seconds"),
            **self.record,
        }
        ckpt.write_text_atomic(self.run_dir / CONFIG_FILE, json.dumps(record, indent=2) + "\n")

    @staticmethod
    def _rng_state(run: _Run) -> dict[str, Any]:
        """Every rank's torch (and CUDA) generator state, and rank 0's python and numpy states."""
        torch_states = [torch.get_rng_state()]
        cuda_states = [torch.cuda.get_rng_state(run.device)] if run.device.type == "cuda" else []
        if run.dist.enabled:  # a collective: every rank takes part
            torch_states = _gather(torch_states[0], run)
            if cuda_states:
                cuda_states = _gather(cuda_states[0], run)
        return {
            "torch": torch_states,
            "cuda": cuda_states,
            "python": random.getstate(),
            "numpy": np.random.get_state(),
        }

    def _restore_rng(self, rng: Mapping[str, Any], run: _Run, step: int) -> None:
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        if len(rng["torch"]) == run.dist.world_size:
            torch.set_rng_state(rng["torch"][run.dist.rank])
            if run.device.type == "cuda" and len(rng["cuda"]) == run.dist.world_size:
                torch.cuda.set_rng_state(rng["cuda"][run.dist.rank], run.device)
        else:  # resumed with another number of ranks: fresh, still reproducible, streams
            torch.manual_seed(self.train_config.seed * 1_000_003 + run.dist.rank + 1 + step)
            if run.dist.is_main:
                warnings.warn(
                    f"resuming a run of {len(rng['torch'])} rank(s) on {run.dist.world_size}: the global batch and the "
                    "data order carry on, the noise streams start afresh (reproducible, not bit-identical to an "
                    "uninterrupted run)",
                    stacklevel=2,
                )

    def _check_finite_state(self, run: _Run) -> None:
        """Before a checkpoint: every parameter and buffer of every network and EMA copy must be finite (one
        device sync), else the run stops naming the tensor and the last good checkpoint, and saves nothing."""
        tensors = [(key, t) for key, t in run.model.weights().items() if t.is_floating_point()]
        finite = torch.stack([torch.isfinite(t).all() for _, t in tensors]).cpu() if tensors else torch.ones(0)
        if bool(finite.all()):
            return
        bad = [key for (key, _), ok in zip(tensors, finite.tolist(), strict=True) if not ok]
        last = ckpt.latest_checkpoint(self.run_dir / "checkpoints")
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
        raise DivergenceError(
            f"training diverged at step {self.step}: {shown} hold inf or NaN, so this state was not saved; {kept}",
            self.step,
            bad[0].partition(".")[0],
        )

    def _save_checkpoint(self, run: _Run) -> Path:
        self._check_finite_state(run)
        rng = self._rng_state(run)
        ada = {"ada": run.ada.state_dict(run.dist.world_size)} if run.ada is not None else {}  # collectives first
        path = self.run_dir / "checkpoints" / ckpt.step_dir_name(self.step)
        if run.dist.is_main:
            state = {
                "optimizers": {role: opt.state_dict() for role, opt in run.optimizers.items()},
                "scalers": {name: scaler.state_dict() for name, scaler in run.scalers.items()},
                "skips": dict(self._consecutive_skips),
                "rng": rng,
                **ada,
            }
            info = {
                "step": self.step,
                "epoch": run.stream.epoch,
                "batch_in_epoch": run.stream.position,
                "images_seen": run.images_seen,
                "world_size": run.dist.world_size,
                "rollbacks": self._rollbacks,
            }
            metadata = {"ganzoo_version": __version__, "plugin": self.plugin.name, "step": str(self.step)}
            keep, extra = self.train_config.keep_checkpoints, self.plugin.extra_files(run.model.data_info)
            path = ckpt.save_checkpoint(
                path.parent, self.step, run.model.weights(), state, info, metadata, keep, extra_files=extra
            )
        if run.dist.enabled:
            dist.barrier()
        return path

    def _plugin_failure(self, where: str, exc: Exception, dist_state: ddp.DistState) -> PluginFailure:
        """Write `exc`'s traceback to the run directory's errors log; the one-line error that says so."""
        name = ERRORS_LOG if dist_state.is_main else ERRORS_LOG.replace(".log", f"-rank{dist_state.rank}.log")
        path = self.run_dir / name
        header = f"{datetime.now().isoformat(timespec='seconds')} {self.plugin.name} {where}, step {self.step + 1}\n"
        with path.open("a", encoding="utf-8") as log:
            log.write(header + "".join(traceback.format_exception(exc)) + "\n")
        last = ckpt.latest_checkpoint(self.run_dir / "checkpoints")
        kept = f"the last checkpoint is {last}" if last else "no checkpoint was written yet"
        message = " ".join(str(exc).split()) or "(no message)"
        return PluginFailure(
            f"plugin {self.plugin.name} failed in {where} at step {self.step + 1}: {type(exc).__name__}: {message} "
            f"(traceback in {path}; {kept})"
        )

    def _write_samples(self, model: GANModel, logger: RunLogger | None) -> Path:
        try:
            samples, per_row = model.sample_grid(self.train_config.sample_grid, seed=self.train_config.seed)
        except GanzooError:
            raise
        except Exception as exc:
            raise self._plugin_failure("sample()", exc, ddp.DistState()) from exc
        path = save_samples(samples, self.run_dir / "samples" / ckpt.step_dir_name(self.step), per_row)
        if logger is not None and isinstance(samples, torch.Tensor):
            logger.add_image("samples", image_grid(samples, per_row), self.step)
        return path


def _gather(tensor: torch.Tensor, run: _Run) -> list[torch.Tensor]:
    local = tensor.to(run.device)
    gathered = [torch.empty_like(local) for _ in range(run.dist.world_size)]
    dist.all_gather(gathered, local)
    return [t.cpu() for t in gathered]


__all__ = ["TrainResult", "Trainer", "ema_decay_of", "lr_factor", "split_overrides"]
