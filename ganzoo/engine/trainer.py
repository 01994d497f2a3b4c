"""The one training loop every plugin runs on.

The plugin says which networks exist and, step by step, which loss updates which networks; the `Trainer` does
everything else: device placement, autocast and per-step GradScalers, optimizers, EMA of the generators,
data order, DDP gradient averaging, divergence checks, logging, sample grids, checkpoints and resume.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from timm.utils import ModelEmaV3
from torch import nn

from ganzoo import __version__
from ganzoo.config import config_to_dict, replace_config
from ganzoo.data import DataSource, resolve_data
from ganzoo.engine import checkpoint as ckpt
from ganzoo.engine import distributed as ddp
from ganzoo.engine.config import TrainConfig
from ganzoo.engine.data import BatchStream
from ganzoo.engine.logging import RunLogger, image_grid, save_samples
from ganzoo.engine.precision import autocast, make_scaler, resolve_device, resolve_precision
from ganzoo.errors import DivergenceError, UsageError
from ganzoo.model import CONFIG_FILE, GANModel, build_model, read_run_config, resolve_model_config
from ganzoo.plugin import GANPlugin, OptimizerSpec, StepContext, UpdateStep
from ganzoo.registry import get_plugin

Callback = Callable[["Trainer", int], None]


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
        self.step = 0
        self.model: GANModel | None = None

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
            self._check_resume_overrides(saved)
        tc = self.train_config
        device = resolve_device(tc.device, dist_state.local_rank)
        ddp.init_process_group(dist_state, device)
        deterministic_before = torch.are_deterministic_algorithms_enabled()
        try:
            if dist_state.enabled:
                self._agree_on_run_dir(dist_state)
            return self._fit(dist_state, device, saved)
        finally:
            torch.use_deterministic_algorithms(deterministic_before)
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

    def _fit(self, dist_state: ddp.DistState, device: torch.device, saved: Mapping[str, Any] | None) -> TrainResult:
        tc = self.train_config
        precision = resolve_precision(tc.precision, device)
        torch.backends.cudnn.benchmark = device.type == "cuda" and not tc.deterministic
        if tc.deterministic:
            torch.use_deterministic_algorithms(True)
        self._seed_everything(tc.seed)

        source = self.data_spec if isinstance(self.data_spec, DataSource) else resolve_data(self.data_spec)
        native = source.info()
        model_config = resolve_model_config(self.plugin, saved["config"] if saved else self.model_overrides, native)
        dataset = source.load(**self.plugin.data_options(model_config))
        data_info = dataclasses.replace(native, num_samples=len(dataset))
        model = build_model(self.plugin, model_config, data_info, with_ema=False)
        model.to(device)
        memory_format = torch.channels_last if tc.channels_last else torch.contiguous_format
        for net in model.nets.values():
            net.to(memory_format=memory_format)
            net.train()
            if dist_state.enabled:
                ddp.broadcast_module(net)
        emas = {}
        if tc.ema_decay > 0:
            for role in self.plugin.generator_roles:
                emas[role] = ModelEmaV3(
                    model.nets[role],
                    decay=tc.ema_decay,
                    update_after_step=tc.ema_start,
                    use_warmup=tc.ema_warmup_power > 0,
                    warmup_power=tc.ema_warmup_power or 1.0,
                )
                model.ema[role] = emas[role].module
        self.model = model

        schedule = list(self.plugin.schedule(model_config))
        specs = self.plugin.optimizers(model_config)
        optimizers = {role: make_optimizer(spec, list(model.nets[role].parameters())) for role, spec in specs.items()}
        missing = sorted({r for s in schedule for r in s.networks} - set(optimizers))
        if missing:
            raise UsageError(f"plugin {self.plugin.name} gives no optimizer for {', '.join(missing)}")
        scalers = {s.name: make_scaler(device, precision) for s in schedule}

        per_rank_batch = tc.batch_size // dist_state.world_size
        stream = BatchStream(
            dataset,
            tc.batch_size,
            tc.seed,
            dist_state.rank,
            dist_state.world_size,
            num_workers=tc.num_workers,
            pin_memory=device.type == "cuda",
        )
        draws_per_iteration = sum(s.repeats for s in schedule if s.needs_data)
        total_steps = tc.steps
        if tc.epochs is not None:
            total_steps = max(1, math.ceil(tc.epochs * stream.batches_per_epoch / max(1, draws_per_iteration)))

        run_dir = self.run_dir
        images_seen = 0
        if saved is not None:
            checkpoint = ckpt.latest_checkpoint(run_dir / "checkpoints")
            if checkpoint is None:
                raise UsageError(f"cannot resume: {run_dir} has no complete checkpoint")
            model.load_weights(ckpt.load_weights(checkpoint), str(checkpoint))
            state, info = ckpt.load_training_state(checkpoint)
            for role, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][role])
            for name, scaler in scalers.items():
                if state["scalers"].get(name):
                    scaler.load_state_dict(state["scalers"][name])
            self._restore_rng(state["rng"], dist_state, device, info)
            self.step = info["step"]
            images_seen = info["images_seen"]
            stream.seek(info["epoch"], info["batch_in_epoch"])
        else:
            self.step = 0
            torch.manual_seed(tc.seed * 1_000_003 + dist_state.rank + 1)
            if dist_state.is_main:
                run_dir.mkdir(parents=True, exist_ok=True)
                self._write_run_config(model, source.spec, precision, device, dist_state)

        is_main = dist_state.is_main
        logger = (
            RunLogger(run_dir, total_steps, self.step, tc.progress and is_main, tc.tensorboard) if is_main else None
        )
        context = StepContext(self.step, device, precision, model_config, data_info, per_rank_batch)
        trainable: tuple[str, ...] | None = None
        window: dict[str, torch.Tensor] = {}
        window_steps, window_images, window_start = 0, 0, time.perf_counter()
        last_checkpoint = ckpt.latest_checkpoint(run_dir / "checkpoints")
        sample_path = None
        check_every = 1 if device.type == "cpu" else tc.log_every
        pending: list[tuple[int, str, torch.Tensor]] = []

        def checkpoint_now() -> Path:
            return self._save_checkpoint(model, optimizers, scalers, stream, images_seen, dist_state, device)

        try:
            while self.step < total_steps:
                context.step = self.step
                for update in schedule:
                    if trainable != update.networks:
                        for role, net in model.nets.items():
                            net.requires_grad_(role in update.networks)
                        trainable = update.networks
                    for _ in range(update.repeats):
                        batch = {}
                        if update.needs_data:
                            batch = {k: _to_device(v, device, memory_format) for k, v in stream.next().items()}
                        loss, logs = self._run_update(
                            update,
                            model.nets,
                            batch,
                            context,
                            optimizers,
                            scalers[update.name],
                            device,
                            precision,
                            tc,
                            dist_state,
                        )
                        pending.append((self.step + 1, update.name, loss))
                        for key, value in logs.items():
                            value = torch.as_tensor(value, dtype=torch.float32).detach()
                            window[key] = window.get(key, 0) + value
                        window[f"loss/{update.name}"] = window.get(f"loss/{update.name}", 0) + loss.detach().float()
                images_seen += tc.batch_size * draws_per_iteration
                window_images += tc.batch_size * draws_per_iteration
                if dist_state.enabled:  # before the EMA reads them: batch-norm statistics follow rank 0
                    for net in model.nets.values():
                        ddp.broadcast_module(net, buffers_only=True)
                for role, ema in emas.items():
                    # timm copies while `step - update_after_step - 1 <= 0`: passing the completed iterations
                    # plus one makes exactly `ema_start` iterations copy before the averaging starts.
                    ema.update(model.nets[role], step=self.step + 2)
                self.step += 1
                window_steps += 1

                due_log = self.step % tc.log_every == 0 or self.step == total_steps
                due_checkpoint = self.step % tc.checkpoint_every == 0 or self.step == total_steps
                if self.step % check_every == 0 or due_log or due_checkpoint:
                    self._check_finite(pending, last_checkpoint, dist_state)
                    pending.clear()
                if due_log:
                    elapsed = time.perf_counter() - window_start
                    values = self._window_means(window, window_steps, dist_state)
                    values["images_per_s"] = window_images / elapsed if elapsed > 0 else 0.0
                    values.update({f"lr/{role}": opt.param_groups[0]["lr"] for role, opt in optimizers.items()})
                    values["epoch"] = stream.epoch
                    if logger is not None:
                        logger.log(self.step, values)
                        logger.show({k: v for k, v in values.items() if k.startswith(("loss/", "images"))})
                    window, window_steps, window_images, window_start = {}, 0, 0, time.perf_counter()
                if logger is not None:
                    logger.advance()
                if is_main and (self.step % tc.sample_every == 0 or self.step == total_steps):
                    sample_path = self._write_samples(model, logger)
                if due_checkpoint:
                    last_checkpoint = checkpoint_now()
                for callback in self.callbacks:
                    callback(self, self.step)
        finally:
            if logger is not None:
                logger.close()

        if is_main and sample_path is None:
            sample_path = self._write_samples(model, None)
        model.info = {
            "source": str(run_dir),
            "checkpoint": str(last_checkpoint),
            "step": self.step,
            "data": source.spec,
        }
        return TrainResult(run_dir, self.step, last_checkpoint, sample_path, model)

    def _run_update(
        self,
        update: UpdateStep,
        nets: Mapping[str, nn.Module],
        batch: Mapping[str, torch.Tensor],
        context: StepContext,
        optimizers: Mapping[str, torch.optim.Optimizer],
        scaler: torch.amp.GradScaler,
        device: torch.device,
        precision: str,
        tc: TrainConfig,
        dist_state: ddp.DistState,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        for role in update.networks:
            optimizers[role].zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss, logs = update.loss(nets, batch, context)
        scaler.scale(loss).backward()
        if dist_state.enabled:
            ddp.average_gradients([nets[r] for r in update.networks], dist_state.world_size)
        if tc.grad_clip is not None:
            for role in update.networks:
                scaler.unscale_(optimizers[role])
                torch.nn.utils.clip_grad_norm_(nets[role].parameters(), tc.grad_clip)
        for role in update.networks:
            scaler.step(optimizers[role])
        scaler.update()
        return loss, logs

    @staticmethod
    def _window_means(window: Mapping[str, torch.Tensor], steps: int, dist_state: ddp.DistState) -> dict[str, float]:
        """Mean of each logged value over the window's iterations (and over ranks under DDP)."""
        if not window:
            return {}
        keys = sorted(window)
        means = torch.stack([torch.as_tensor(window[k], dtype=torch.float32) for k in keys]) / steps
        if dist_state.enabled:
            means = ddp.all_reduce_mean(means, dist_state.world_size)
        return dict(zip(keys, means.tolist(), strict=True))

    def _check_finite(
        self,
        pending: list[tuple[int, str, torch.Tensor]],
        last_checkpoint: Path | None,
        dist_state: ddp.DistState,
    ) -> None:
        if not pending:
            return
        values = torch.stack([loss.detach().float() for _, _, loss in pending])
        if dist_state.enabled:
            values = ddp.all_reduce_mean(values, dist_state.world_size)
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

    def _write_run_config(
        self, model: GANModel, data_spec: str, precision: str, device: torch.device, dist_state: ddp.DistState
    ) -> None:
        record = {
            **model.config_dict(),
            "data": data_spec,
            "train": config_to_dict(self.train_config),
            "seed": self.train_config.seed,
            "precision": precision,
            "device": device.type,
            "world_size": dist_state.world_size,
            "created": datetime.now().isoformat(timespec="seconds"),
        }
        ckpt.write_text_atomic(self.run_dir / CONFIG_FILE, json.dumps(record, indent=2) + "\n")

    def _rng_state(self, dist_state: ddp.DistState, device: torch.device) -> dict[str, Any]:
        torch_states = [torch.get_rng_state()]
        cuda_states = [torch.cuda.get_rng_state(device)] if device.type == "cuda" else []
        if dist_state.enabled:
            torch_states = self._gather(torch_states[0], dist_state, device)
            if cuda_states:
                cuda_states = self._gather(cuda_states[0], dist_state, device)
        return {
            "torch": torch_states,
            "cuda": cuda_states,
            "python": random.getstate(),
            "numpy": np.random.get_state(),
        }

    @staticmethod
    def _gather(tensor: torch.Tensor, dist_state: ddp.DistState, device: torch.device) -> list[torch.Tensor]:
        local = tensor.to(device)
        gathered = [torch.empty_like(local) for _ in range(dist_state.world_size)]
        dist.all_gather(gathered, local)
        return [t.cpu() for t in gathered]

    def _restore_rng(
        self, rng: Mapping[str, Any], dist_state: ddp.DistState, device: torch.device, info: Mapping[str, Any]
    ) -> None:
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        states = rng["torch"]
        if len(states) == dist_state.world_size:
            torch.set_rng_state(states[dist_state.rank])
            if device.type == "cuda" and len(rng["cuda"]) == dist_state.world_size:
                torch.cuda.set_rng_state(rng["cuda"][dist_state.rank], device)
        else:  # resumed with another number of ranks: fresh, still reproducible, streams
            torch.manual_seed(self.train_config.seed * 1_000_003 + dist_state.rank + 1 + info["step"])

    def _save_checkpoint(
        self,
        model: GANModel,
        optimizers: Mapping[str, torch.optim.Optimizer],
        scalers: Mapping[str, torch.amp.GradScaler],
        stream: BatchStream,
        images_seen: int,
        dist_state: ddp.DistState,
        device: torch.device,
    ) -> Path:
        rng = self._rng_state(dist_state, device)  # a collective under DDP: every rank takes part
        path = self.run_dir / "checkpoints" / ckpt.step_dir_name(self.step)
        if dist_state.is_main:
            state = {
                "optimizers": {role: opt.state_dict() for role, opt in optimizers.items()},
                "scalers": {name: scaler.state_dict() for name, scaler in scalers.items()},
                "rng": rng,
            }
            info = {
                "step": self.step,
                "epoch": stream.epoch,
                "batch_in_epoch": stream.position,
                "images_seen": images_seen,
                "world_size": dist_state.world_size,
            }
            metadata = {"ganzoo_version": __version__, "plugin": self.plugin.name, "step": str(self.step)}
            path = ckpt.save_checkpoint(
                path.parent,
                self.step,
                model.weights(),
                state,
                info,
                metadata,
                self.train_config.keep_checkpoints,
            )
        if dist_state.enabled:
            dist.barrier()
        return path

    def _write_samples(self, model: GANModel, logger: RunLogger | None) -> Path:
        samples = model.sample(self.train_config.sample_grid, seed=self.train_config.seed)
        path = save_samples(samples, self.run_dir / "samples" / ckpt.step_dir_name(self.step))
        if logger is not None and isinstance(samples, torch.Tensor):
            logger.add_image("samples", image_grid(samples), self.step)
        return path


__all__ = ["TrainResult", "Trainer", "split_overrides"]
