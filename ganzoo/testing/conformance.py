"""The conformance kit: every guarantee the engine makes of a plugin, checked on tiny widths in a few steps.

`check_plugin(plugin, data=..., config=...)` runs the checks below and returns a `ConformanceReport` that names
each failure; `conformance_tests(...)` makes the same checks one pytest item each. `config` should make the
networks tiny (widths of 4-8): the checks train for a few iterations only, on the CPU.

- config: every field has a doc line; the defaults pass their own bounds and choices and survive JSON and back.
- build: the networks build on the data's shapes (as the engine builds them), finite, with the generator roles.
- fp32, bf16, fp16: a few iterations train under each precision with no error and no non-finite value; under
  fp32 every network that an update of those iterations trains moves.
- sample: `sample()` gives n images (n, C, H, W) in [-1, 1] (or n strings), equal under one seed, not under two.
- resume: a run interrupted after a checkpoint and resumed ends bit-identical (weights, EMA, optimizer state) to
  one that was not interrupted.
- save-load: `save_pretrained` then `load_pretrained` gives the same weights and the same samples.
- freeze-d: the FreezeD blocks the plugin declares exist, and under `freeze_d=1` the first stays as it was.
- reheading: a conditional model fine-tunes onto data with one class fewer and samples its classes.
- ddp: two ranks under torchrun (gloo) end with identical networks, EMA copies and buffers.

A check that does not apply (no FreezeD blocks declared, an unconditional model, no torchrun) is reported as
skipped with the reason. Under DDP each rank draws its own noise and batch norm keeps per-rank statistics, so
two ranks are not the same computation as one process on the double batch; the ddp check asks what the engine
does guarantee: the ranks stay in sync.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ganzoo.config import config_to_dict, replace_config, validate_config
from ganzoo.data import DataSource, resolve_data
from ganzoo.errors import GanzooError
from ganzoo.plugin import GANPlugin
from ganzoo.registry import get_plugin, register, unregister

CHECKS = ("config", "build", "fp32", "bf16", "fp16", "sample", "resume", "save-load", "freeze-d", "reheading", "ddp")
"""Every check, in the order `check_plugin` runs them."""

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
STEPS = 2
"""Iterations of each short training run (the resume check runs twice as many, interrupted half way)."""


class ConformanceError(AssertionError):
    """Raised by `ConformanceReport.raise_for_failures`: the message lists every failed check."""


class _NotApplicable(Exception):
    """Raised inside a check that does not apply to this plugin; the message says why."""


@dataclasses.dataclass(frozen=True)
class CheckResult:
    name: str
    status: str
    detail: str = ""
    seconds: float = 0.0


@dataclasses.dataclass
class ConformanceReport:
    """The outcome of every check that ran, in order."""

    plugin: str
    results: list[CheckResult]

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == FAILED]

    @property
    def ok(self) -> bool:
        return not self.failures

    def __getitem__(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    def __str__(self) -> str:
        lines = [f"conformance of {self.plugin}: {len(self.failures)} of {len(self.results)} checks failed"]
        for r in self.results:
            lines.append(f"  {r.status:7} {r.name:10} {r.seconds:6.1f} s  {r.detail}".rstrip())
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        if self.failures:
            raise ConformanceError(str(self))


def _quiet_train(**settings: Any) -> dict[str, Any]:
    base = {
        "steps": STEPS,
        "batch_size": 8,
        "device": "cpu",
        "precision": "fp32",
        "progress": False,
        "tensorboard": False,
        "log_every": 1,
        "sample_every": 10_000,
        "sample_grid": 4,
        "checkpoint_every": 10_000,
        "eval_every": None,
    }
    return {**base, **settings}


def _tensors(model: Any) -> dict[str, torch.Tensor]:
    return {key: tensor.detach().cpu().clone() for key, tensor in model.weights().items()}


def _differing(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [k for k in keys if k not in a or k not in b or not torch.equal(a[k], b[k])]


def _listed(keys: Sequence[str], limit: int = 4) -> str:
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _non_finite(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    return [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def _with_selection(spec: str, selection: str) -> str:
    return f"{spec}{'&' if '?' in spec else '?'}{selection}"


class _Suite:
    """One plugin under test: its settings, a scratch directory, and the training runs the checks share."""

    def __init__(
        self,
        plugin: str | GANPlugin,
        data: str | DataSource | None,
        config: Mapping[str, Any] | None,
        train: Mapping[str, Any] | None,
        ddp: bool | None,
    ) -> None:
        self.plugin = plugin if isinstance(plugin, GANPlugin) else get_plugin(plugin)
        self.data = data if data is not None else (self.plugin.default_data or "mnist-4k")
        self.config = dict(config or {})
        self.train = dict(train or {})
        self.ddp = ddp
        self._registered = False
        try:
            get_plugin(self.plugin.name)
        except GanzooError:  # a plugin object not installed: loading a saved model finds it by name
            register(self.plugin)
            self._registered = True
        self._scratch = tempfile.TemporaryDirectory(prefix=f"ganzoo-conformance-{self.plugin.name}-")
        self.root = Path(self._scratch.name)
        self._runs: dict[str, Any] = {}
        self._counter = 0

    def close(self) -> None:
        self._scratch.cleanup()
        if self._registered:
            unregister(self.plugin.name)

    def out(self, name: str) -> Path:
        self._counter += 1
        return self.root / f"{self._counter:02d}-{name}"

    def trainer(self, out: Path, resume: bool = False, callbacks: Sequence[Any] = (), **train: Any) -> Any:
        from ganzoo.engine.trainer import Trainer

        settings = _quiet_train(**{**self.train, **train})
        return Trainer(self.plugin, self.config, settings, data=self.data, out=out, resume=resume, callbacks=callbacks)

    def trained(self, precision: str = "fp32") -> tuple[Any, dict[str, torch.Tensor]]:
        """A short run under `precision` (shared between checks): its result and the weights it started from."""
        if precision not in self._runs:
            start: dict[str, torch.Tensor] = {}
            trainer = self.trainer(self.out(precision), precision=precision)
            trainer.init = lambda model: start.update(_tensors(model))
            self._runs[precision] = (trainer.fit(), start)
        return self._runs[precision]

    def fresh_model(self) -> Any:
        """The model the engine would build for this data, untrained (data loaded as the engine loads it)."""
        from ganzoo.model import build_model, resolve_model_config

        source = self.data if isinstance(self.data, DataSource) else resolve_data(self.data)
        native = source.info()
        config = resolve_model_config(self.plugin, self.config, native)
        dataset = source.load(**self.plugin.data_options(config))
        extras = {**native.extras, **getattr(dataset, "extras", {})}
        info = dataclasses.replace(native, num_samples=len(dataset), extras=extras)
        return build_model(self.plugin, config, info)


# ------------------------------------------------------------------------------------------------ checks


def _check_config(suite: _Suite) -> str:
    config_cls = suite.plugin.Config
    undocumented = [f.name for f in dataclasses.fields(config_cls) if not str(f.metadata.get("help", "")).strip()]
    if undocumented:
        raise AssertionError(f"fields without a doc line (make them with ganzoo.option): {_listed(undocumented)}")
    default = suite.plugin.default_config()
    try:
        validate_config(default)
    except GanzooError as exc:
        raise AssertionError(f"a default breaks its own bounds: {exc}") from None
    round_trip = replace_config(suite.plugin.default_config(), config_to_dict(default))
    if round_trip != default:
        changed = [k for k, v in dataclasses.asdict(default).items() if getattr(round_trip, k) != v]
        raise AssertionError(f"defaults do not survive config.json (JSON) and back: {_listed(changed)}")
    replace_config(default, suite.config, what=f"{suite.plugin.name} config")  # the kit's own overrides apply
    return f"{len(dataclasses.fields(config_cls))} fields"


def _check_build(suite: _Suite) -> str:
    model = suite.fresh_model()
    updated = sorted({role for step in suite.plugin.schedule(model.config) for role in step.networks})
    missing = [role for role in suite.plugin.generator_roles if role not in model.nets]
    if missing:
        raise AssertionError(f"build() returned no network for the generator roles {missing}")
    bad = _non_finite(_tensors(model))
    if bad:
        raise AssertionError(f"freshly built tensors are not finite: {_listed(bad)}")
    if suite.plugin.is_conditional(model.config) and not model.data_info.num_classes:
        raise AssertionError("the model is conditional on data without classes")
    sizes = ", ".join(f"{r} {sum(p.numel() for p in model.nets[r].parameters()):,}" for r in updated)
    return f"parameters: {sizes}"


def _check_precision(precision: str) -> Callable[[_Suite], str]:
    def check(suite: _Suite) -> str:
        result, start = suite.trained(precision)
        end = _tensors(result.model)
        bad = _non_finite(end)
        if bad:
            raise AssertionError(f"non-finite tensors after {result.step} {precision} iterations: {_listed(bad)}")
        if precision == "fp32":
            trained_roles = {
                role
                for update in suite.plugin.schedule(result.model.config)
                for role in update.networks
                if any(update.runs_at(step) for step in range(result.step))
            }
            still = [
                role
                for role in sorted(trained_roles)
                if all(torch.equal(start[k], end[k]) for k in start if k.startswith(role + "."))
            ]
            if still:
                raise AssertionError(f"{result.step} fp32 iterations left these networks unchanged: {still}")
        lines = (result.run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        losses = {k: v for k, v in json.loads(lines[-1]).items() if k.startswith("loss/")}
        return ", ".join(f"{k} {v:.3g}" for k, v in losses.items())

    return check


def _samples_equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    return a == b


def _check_sample(suite: _Suite) -> str:
    result, _ = suite.trained("fp32")
    model, n = result.model, 6
    first, again, other = (model.sample(n, seed=s) for s in (0, 0, 1))
    if not _samples_equal(first, again):
        raise AssertionError("two sample() calls with the same seed differ: draw noise from the `generator` argument")
    if _samples_equal(first, other):
        raise AssertionError("samples under seeds 0 and 1 are identical: sample() ignores its generator")
    if suite.plugin.modality == "text":
        if not (isinstance(first, list) and len(first) == n and all(isinstance(s, str) for s in first)):
            raise AssertionError(f"a text model's sample({n}) must return {n} strings, got {type(first).__name__}")
        return f"{n} texts, e.g. {first[0]!r}"
    if not isinstance(first, torch.Tensor) or first.ndim != 4 or len(first) != n:
        shape = tuple(first.shape) if isinstance(first, torch.Tensor) else type(first).__name__
        raise AssertionError(f"sample({n}) must return an (n, C, H, W) tensor, got {shape}")
    config = model.config
    expected = [getattr(config, k, None) for k in ("channels", "resolution", "resolution")]
    if None not in expected and list(first.shape[1:]) != expected:
        raise AssertionError(f"samples are {tuple(first.shape[1:])}, the config says (C, H, W) = {tuple(expected)}")
    if not bool(torch.isfinite(first).all()) or first.min() < -1 or first.max() > 1:
        raise AssertionError(f"samples must be finite and in [-1, 1]; got [{first.min():.3g}, {first.max():.3g}]")
    return f"{tuple(first.shape)} in [{first.min():.2f}, {first.max():.2f}]"


class _StopAfter:
    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, trainer: Any, step: int) -> None:
        if step == self.step:
            raise KeyboardInterrupt


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from ganzoo.engine.checkpoint import latest_checkpoint

    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    return {**load_file(checkpoint / "model.safetensors"), **load_file(checkpoint / "state.safetensors")}


def _check_resume(suite: _Suite) -> str:
    steps, half = 2 * STEPS, STEPS
    settings = {"steps": steps, "checkpoint_every": half}
    straight = suite.trainer(suite.out("straight"), **settings).fit()
    interrupted = suite.out("interrupted")
    with contextlib.suppress(KeyboardInterrupt):
        suite.trainer(interrupted, callbacks=[_StopAfter(half)], **settings).fit()
    resumed = suite.trainer(interrupted, resume=True, **settings).fit()
    differing = _differing(_final_state(straight.run_dir), _final_state(resumed.run_dir))
    if differing:
        raise AssertionError(
            f"resumed after {half} of {steps} iterations, the run ends with other values of {_listed(differing)}: "
            "does a loss draw random numbers outside torch's global generator (a private torch.Generator, numpy, "
            "random.Random), or keep state outside the networks?"
        )
    return f"interrupted at {half} of {steps} iterations, bit-identical weights, EMA and optimizer state"


def _check_save_load(suite: _Suite) -> str:
    from ganzoo.hub import load_pretrained, save_pretrained

    result, _ = suite.trained("fp32")
    directory = save_pretrained(result.model, suite.out("saved"))
    loaded = load_pretrained(directory)
    original = _tensors(result.model)  # (a run without EMA loads with EMA copies of its generators: not compared)
    differing = _differing(original, {k: v for k, v in _tensors(loaded).items() if k in original})
    if differing:
        raise AssertionError(f"the loaded model differs in {_listed(differing)}")
    if not _samples_equal(result.model.sample(4, seed=0), loaded.sample(4, seed=0)):
        raise AssertionError("the loaded model draws other samples under the same seed")
    return f"{len(original)} tensors and samples equal"


def _check_freeze_d(suite: _Suite) -> str:
    blocks = list(suite.plugin.frozen_d_blocks(suite.fresh_model().nets))
    if not blocks:
        raise _NotApplicable("declares no FreezeD blocks (frozen_d_blocks), so freeze_d is refused for it")
    frozen_start: dict[str, torch.Tensor] = {}
    trainer = suite.trainer(suite.out("freeze-d"), freeze_d=1)
    trainer.init = lambda model: frozen_start.update(
        {str(i): p.detach().clone() for i, p in enumerate(suite.plugin.frozen_d_blocks(model.nets)[0].parameters())}
    )
    result = trainer.fit()
    after = [p.detach() for p in suite.plugin.frozen_d_blocks(result.model.nets)[0].parameters()]
    if not after:
        raise AssertionError("the first FreezeD block has no parameters")
    moved = [i for i, p in enumerate(after) if not torch.equal(frozen_start[str(i)], p)]
    if moved:
        raise AssertionError(f"freeze_d=1 but parameters {moved} of the first of {len(blocks)} blocks moved")
    return f"{len(blocks)} blocks; the first ({sum(p.numel() for p in after):,} parameters) stayed frozen"


def _check_reheading(suite: _Suite) -> str:
    from ganzoo.transfer import prepare_finetune

    fresh = suite.fresh_model()
    if not suite.plugin.is_conditional(fresh.config):
        raise _NotApplicable("the model is unconditional here")
    if not isinstance(suite.data, str):
        raise _NotApplicable("needs a data spec that takes ?classes= (got a DataSource)")
    classes = fresh.data_info.num_classes
    if not classes or classes < 3:
        raise _NotApplicable(f"needs data with 3 or more classes (this has {classes})")
    result, _ = suite.trained("fp32")
    data = _with_selection(suite.data, f"classes=0-{classes - 2}")
    finetune = prepare_finetune(result.model, data, _quiet_train(**suite.train, steps=1), out=suite.out("reheading"))
    tuned = finetune.trainer.fit().model
    if tuned.data_info.num_classes != classes - 1:
        raise AssertionError(f"fine-tuned onto {classes - 1} classes, the model has {tuned.data_info.num_classes}")
    grid, _ = tuned.sample_grid(classes - 1, seed=0)
    if len(grid) != classes - 1:
        raise AssertionError(f"a grid of {classes - 1} classes gave {len(grid)} samples")
    return f"{classes} -> {classes - 1} classes; " + (finetune.notes[0] if finetune.notes else "")


def _plugin_target(plugin: GANPlugin) -> str | None:
    """`module:attribute` under which another process finds this very plugin object, if any."""
    module = sys.modules.get(type(plugin).__module__)
    for attribute, value in vars(module or object()).items():
        if value is plugin:
            return f"{module.__name__}:{attribute}"
    return None


def _check_ddp(suite: _Suite) -> str:
    if suite.ddp is False:
        raise _NotApplicable("turned off (ddp=False)")
    if not isinstance(suite.data, str):
        raise _NotApplicable("needs a data spec another process can open (got a DataSource)")
    target = _plugin_target(suite.plugin)
    if target is None and suite._registered:
        raise _NotApplicable("the plugin is neither installed (an entry point) nor a module attribute to import")
    out = suite.out("ddp")
    spec = {
        "plugin": suite.plugin.name,
        "target": target,
        "config": suite.config,
        "data": suite.data,
        "train": _quiet_train(**suite.train, batch_size=2 * _quiet_train(**suite.train)["batch_size"]),
        "out": str(out),
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "ganzoo.testing.ddp_worker", json.dumps(spec)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-12:]
        raise AssertionError(f"torchrun exited {proc.returncode}:\n" + "\n".join(tail))
    from safetensors.torch import load_file

    ranks = [load_file(out / f"rank{r}.safetensors") for r in (0, 1)]
    differing = _differing(*ranks)
    if differing:
        raise AssertionError(f"the two ranks disagree on {_listed(differing)}")
    saved = _differing(_final_state(out / "run"), ranks[0])
    weights = [k for k in saved if k in ranks[0]]
    if weights:
        raise AssertionError(f"rank 0's checkpoint differs from its networks in {_listed(weights)}")
    return f"2 ranks agree on {len(ranks[0])} tensors"


_CHECK_FUNCTIONS: dict[str, Callable[[_Suite], str]] = {
    "config": _check_config,
    "build": _check_build,
    "fp32": _check_precision("fp32"),
    "bf16": _check_precision("bf16"),
    "fp16": _check_precision("fp16"),
    "sample": _check_sample,
    "resume": _check_resume,
    "save-load": _check_save_load,
    "freeze-d": _check_freeze_d,
    "reheading": _check_reheading,
    "ddp": _check_ddp,
}


def _run_check(suite: _Suite, name: str) -> CheckResult:
    start = time.perf_counter()
    try:
        detail, status = _CHECK_FUNCTIONS[name](suite), PASSED
    except _NotApplicable as exc:
        detail, status = str(exc), SKIPPED
    except (AssertionError, Exception) as exc:  # every failure is reported by name, never raised
        message = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
        detail, status = message, FAILED
    return CheckResult(name, status, detail, time.perf_counter() - start)


def _validated_checks(checks: Sequence[str] | None) -> list[str]:
    chosen = list(CHECKS if checks is None else checks)
    unknown = [c for c in chosen if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown conformance checks {unknown}; accepted: {', '.join(CHECKS)}")
    return chosen


def check_plugin(
    plugin: str | GANPlugin,
    data: str | DataSource | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    train: Mapping[str, Any] | None = None,
    checks: Sequence[str] | None = None,
    ddp: bool | None = None,
) -> ConformanceReport:
    """Run the conformance checks (all of `CHECKS` by default) on a plugin or a registered plugin name.

    Args:
        plugin: the plugin object, or its name in the registry.
        data: the data spec (or DataSource) to train on; default: the plugin's `default_data`, else mnist-4k.
        config: overrides of the plugin's config, e.g. tiny widths; they must keep the networks small.
        train: overrides of the short runs' TrainConfig (default: batch 8, fp32, 2 iterations, CPU).
        checks: which checks to run, by name.
        ddp: False skips the torchrun check; None runs it.

    Returns a report; `report.raise_for_failures()` turns failures into one `ConformanceError`.
    """
    names = _validated_checks(checks)
    suite = _Suite(plugin, data, config, train, ddp)
    try:
        results = [_run_check(suite, name) for name in names]
    finally:
        suite.close()
    return ConformanceReport(suite.plugin.name, results)


def conformance_tests(
    plugin: str | GANPlugin,
    data: str | DataSource | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    train: Mapping[str, Any] | None = None,
    checks: Sequence[str] | None = None,
    ddp: bool | None = None,
) -> Callable[..., None]:
    """A pytest test function parametrized over the checks, one test item each, for a plugin's own test module:

        test_conformance = conformance_tests("my-gan", config={"hidden": 16})

    The items share one scratch directory (removed when the process exits) and the training runs (the first item
    that needs a run trains it).
    A check that does not apply is skipped with its reason; a failed one fails with its message.
    """
    import pytest

    names = _validated_checks(checks)
    state: dict[str, _Suite] = {}

    def suite() -> _Suite:
        if "suite" not in state:
            state["suite"] = _Suite(plugin, data, config, train, ddp)
        return state["suite"]

    @pytest.mark.parametrize("check", names)
    def test_conformance(check: str) -> None:
        result = _run_check(suite(), check)
        if result.status == SKIPPED:
            pytest.skip(f"{check}: {result.detail}")
        assert result.status == PASSED, f"{check}: {result.detail}"

    return test_conformance


__all__ = ["CHECKS", "CheckResult", "ConformanceError", "ConformanceReport", "check_plugin", "conformance_tests"]
