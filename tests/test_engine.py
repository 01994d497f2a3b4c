"""The training engine: update schedule, EMA, precision, divergence, epochs, logs and artifacts."""

from __future__ import annotations

import itertools
import json
import time

import pytest
import torch
from helpers_engine import DCGAN_TINY, ToyGAN, dcgan_train, toy_data, toy_train
from PIL import Image

import ganzoo
from ganzoo import OptimizerSpec, Trainer, UpdateStep
from ganzoo.engine import checkpoint as ckpt
from ganzoo.engine import precision as precision_module
from ganzoo.errors import DivergenceError, PluginError


@pytest.fixture
def registered_toy():
    """A toy plugin registered by name, so that `load_pretrained` can rebuild it."""
    plugin = ganzoo.register(ToyGAN(name="toy-engine-test"), replace=True)
    yield plugin
    ganzoo.unregister(plugin.name)


@pytest.fixture
def restore_determinism():
    enabled = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(enabled)


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before)


def _params(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in net.named_parameters()}


# ------------------------------------------------------------------------------------------------ schedule


def test_n_critic_schedule_fresh_batches_and_isolated_updates(tmp_path):
    plugin = ToyGAN()
    result = Trainer(
        plugin, config={"d_repeats": 3}, train=toy_train(steps=2), data=toy_data(), out=tmp_path / "run"
    ).fit()
    assert result.step == 2

    names = [c["name"] for c in plugin.calls]
    assert names == ["discriminator"] * 3 + ["generator"] + ["discriminator"] * 3 + ["generator"]
    assert [c["step"] for c in plugin.calls] == [0, 0, 0, 0, 1, 1, 1, 1]

    # every D call draws a fresh batch of batch_size samples; the G step gets an empty batch
    d_batches = [c["labels"] for c in plugin.calls if c["name"] == "discriminator"]
    assert all(len(b) == 8 for b in d_batches)
    seen = [label for b in d_batches for label in b]
    assert len(seen) == len(set(seen)) == 6 * 8  # 6 draws within the first epoch: pairwise disjoint
    assert all(c["batch_keys"] == [] for c in plugin.calls if c["name"] == "generator")

    # the snapshot before call i+1 minus the one before call i is what update i changed
    snapshots = [c["params"] for c in plugin.calls]
    snapshots.append({role: _params(net) for role, net in result.model.nets.items()})
    for i, call in enumerate(plugin.calls):
        updated = call["name"]
        other = "generator" if updated == "discriminator" else "discriminator"
        assert _changed(snapshots[i][updated], snapshots[i + 1][updated]), f"call {i} did not update {updated}"
        assert not _changed(snapshots[i][other], snapshots[i + 1][other]), f"call {i} ({updated}) touched {other}"


def test_all_networks_frozen_except_the_updated_one(tmp_path):
    """Inside a loss function only the step's networks require gradients (no wasted backward into others)."""
    seen = []

    class Recording(ToyGAN):
        def _d_loss(self, nets, batch, ctx):
            seen.append(("discriminator", {r: all(p.requires_grad for p in n.parameters()) for r, n in nets.items()}))
            return super()._d_loss(nets, batch, ctx)

        def _g_loss(self, nets, batch, ctx):
            seen.append(("generator", {r: any(p.requires_grad for p in n.parameters()) for r, n in nets.items()}))
            return super()._g_loss(nets, batch, ctx)

    Trainer(Recording(snapshot=False), train=toy_train(steps=1), data=toy_data(), out=tmp_path / "run").fit()
    assert seen == [
        ("discriminator", {"generator": False, "discriminator": True}),
        ("generator", {"generator": True, "discriminator": False}),
    ]


# ------------------------------------------------------------------------------------------------------ EMA


def _ema_history(tmp_path, **train):
    """Train the toy and return, per iteration, the generator's weights and its EMA weights (flattened)."""
    history = []

    def record(trainer, step):
        raw = torch.cat([p.detach().flatten() for p in trainer.model.nets["generator"].parameters()])
        ema = torch.cat([p.detach().flatten() for p in trainer.model.ema["generator"].parameters()])
        history.append((step, raw.clone(), ema.clone()))

    plugin = ToyGAN()
    result = Trainer(plugin, train=toy_train(**train), data=toy_data(), out=tmp_path / "run", callbacks=[record]).fit()
    initial = torch.cat([p.flatten() for p in plugin.calls[0]["params"]["generator"].values()])
    return initial, history, result


def test_ema_averages_with_the_configured_decay(tmp_path):
    initial, history, _ = _ema_history(tmp_path, steps=8, ema_decay=0.5, ema_warmup_power=0.0)
    assert [s for s, _, _ in history] == list(range(1, 9))
    # once averaging runs (at the latest from iteration 3 on), ema_k = 0.5 ema_{k-1} + 0.5 w_k exactly
    for (_, _, ema_prev), (_, raw, ema) in itertools.pairwise(history[2:]):
        torch.testing.assert_close(ema, 0.5 * ema_prev + 0.5 * raw, rtol=1e-6, atol=1e-7)
        assert not torch.equal(ema, raw)
    # and the EMA lags: it lies strictly closer to the current weights than the initial weights do
    _, raw, ema = history[-1]
    assert 0 < torch.dist(ema, raw) < torch.dist(initial, raw)


def test_ema_kimg_sets_the_decay_from_the_half_life_in_images(tmp_path):
    """ema_kimg 0.008 at batch 8 is a half-life of one iteration: decay 0.5, the same averaging as ema_decay=0.5."""
    from ganzoo.engine.trainer import ema_decay_of

    assert ema_decay_of(ganzoo.TrainConfig(batch_size=64, ema_kimg=10.0)) == pytest.approx(0.5 ** (64 / 10_000))
    assert ema_decay_of(ganzoo.TrainConfig(ema_decay=0.9)) == 0.9
    assert ema_decay_of(ganzoo.TrainConfig(ema_kimg=0.0)) == 0.0
    _, history, _ = _ema_history(tmp_path, steps=6, ema_kimg=0.008, ema_warmup_power=0.0, ema_decay=0.999)
    for (_, _, ema_prev), (_, raw, ema) in itertools.pairwise(history[2:]):
        torch.testing.assert_close(ema, 0.5 * ema_prev + 0.5 * raw, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("ema_start", [0, 2])
def test_ema_start_counts_iterations_of_copying(tmp_path, ema_start):
    """TrainConfig.ema_start: "iterations before the EMA starts averaging (it copies the weights until then)".

    With ema_start=N the EMA equals the weights after iterations 1..N and averages from iteration N+1 on, starting
    from the initial weights when N=0 (the EMA is a copy of the initial generator).
    """
    initial, history, _ = _ema_history(tmp_path, steps=5, ema_decay=0.5, ema_warmup_power=0.0, ema_start=ema_start)
    previous = initial
    for step, raw, ema in history:
        expected = raw if step <= ema_start else 0.5 * previous + 0.5 * raw
        torch.testing.assert_close(ema, expected, rtol=1e-6, atol=1e-7, msg=f"EMA after iteration {step}")
        previous = ema


def test_ema_with_warmup_trails_the_weights(tmp_path):
    initial, history, result = _ema_history(tmp_path, steps=10, ema_decay=0.9, ema_warmup_power=0.75)
    _, raw, ema = history[-1]
    assert 0 < torch.dist(ema, raw) < torch.dist(initial, raw)
    # the EMA copy is what sampling uses and what the checkpoint stores under generator_ema
    weights = ckpt.load_weights(result.checkpoint)
    for key, tensor in result.model.ema["generator"].state_dict().items():
        assert torch.equal(weights[f"generator_ema.{key}"], tensor)
    assert not torch.equal(weights["generator_ema.fc.weight"], weights["generator.fc.weight"])


def test_ema_decay_zero_disables_ema(tmp_path):
    result = Trainer(ToyGAN(snapshot=False), train=toy_train(ema_decay=0.0), data=toy_data(), out=tmp_path / "r").fit()
    assert result.model.ema == {}
    assert not any(k.startswith("generator_ema.") for k in ckpt.load_weights(result.checkpoint))


# ------------------------------------------------------------------------------------------------ precision


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_autocast_dtype_on_cpu(tmp_path, precision, dtype):
    plugin = ToyGAN(snapshot=False)
    result = Trainer(plugin, train=toy_train(steps=2, precision=precision), data=toy_data(), out=tmp_path / "r").fit()
    assert {c["conv_dtype"] for c in plugin.calls} == {dtype}
    assert {c["precision"] for c in plugin.calls} == {precision}
    assert all(p.dtype == torch.float32 for net in result.model.nets.values() for p in net.parameters())
    assert json.loads((result.run_dir / "config.json").read_text())["precision"] == precision


def test_fp16_grad_scaler_per_update_step(tmp_path):
    """fp16 autocasts to float16 and keeps one GradScaler per update step: an fp16 overflow in the G step
    skips that G update and halves only the generator's scale."""
    plugin = ToyGAN()
    result = Trainer(
        plugin,
        config={"overflow_at": 2},
        train=toy_train(steps=3, precision="fp16", checkpoint_every=3),
        data=toy_data(),
        out=tmp_path / "run",
    ).fit()
    assert {c["conv_dtype"] for c in plugin.calls} == {torch.float16}

    state, _ = ckpt.load_training_state(result.checkpoint)
    scalers = state["scalers"]
    assert set(scalers) == {"discriminator", "generator"}
    assert all("scale" in s for s in scalers.values())
    assert scalers["generator"]["scale"] == scalers["discriminator"]["scale"] / 2 == 2.0**15

    # calls: D1 G1 D2 G2 D3 G3; G2 overflowed, so G's weights before G3 equal those before G2
    g_before = [c["params"]["generator"] for c in plugin.calls if c["name"] == "generator"]
    assert _changed(g_before[0], g_before[1])
    assert not _changed(g_before[1], g_before[2])


@pytest.mark.parametrize("native_bf16", [False, True])
def test_precision_auto_resolves_and_is_recorded(tmp_path, monkeypatch, native_bf16):
    monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: native_bf16)
    plugin = ToyGAN(snapshot=False)
    result = Trainer(plugin, train=toy_train(steps=1, precision="auto"), data=toy_data(), out=tmp_path / "r").fit()
    expected = "bf16" if native_bf16 else "fp32"
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["precision"] == expected
    assert saved["train"]["precision"] == "auto"
    assert {c["precision"] for c in plugin.calls} == {expected}


# ---------------------------------------------------------------------------------------------- divergence


def test_nan_loss_raises_divergence_error_and_keeps_last_checkpoint(tmp_path, registered_toy):
    run_dir = tmp_path / "run"
    trainer = Trainer(
        registered_toy,
        config={"nan_at": 7},
        train=toy_train(steps=20, checkpoint_every=5),
        data=toy_data(),
        out=run_dir,
    )
    with pytest.raises(DivergenceError) as caught:
        trainer.fit()
    error = caught.value
    assert error.step == 7
    assert error.loss_name == "generator"
    assert "step 7" in str(error)
    assert "generator" in str(error)
    assert "step-000005" in str(error)

    checkpoints = run_dir / "checkpoints"
    assert [p.name for p in ckpt.list_checkpoints(checkpoints)] == ["step-000005"]
    assert (checkpoints / "latest").read_text().strip() == "step-000005"
    model = ganzoo.load_pretrained(run_dir)
    assert model.info["step"] == 5
    assert all(torch.isfinite(p).all() for net in model.nets.values() for p in net.parameters())
    assert model.sample(2, seed=0).isfinite().all()


class RaisingToy(ToyGAN):
    """A toy whose generator loss raises at iteration 5, like a shape bug that only some batches hit."""

    def _g_loss(self, nets, batch, ctx):
        if ctx.step == 4:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\n(8x3 and 4x64)")
        return super()._g_loss(nets, batch, ctx)


def test_a_plugin_exception_is_one_line_naming_plugin_update_and_step(tmp_path, monkeypatch):
    """`ganzoo train` of a plugin whose loss raises: one line (plugin, update, step, exception, where the traceback
    went, the last checkpoint), exit 1, and the run keeps that checkpoint."""
    from click.testing import CliRunner

    from ganzoo.cli import cli

    plugin = ganzoo.register(RaisingToy(name="toy-raises", snapshot=False), replace=True)
    monkeypatch.setitem(ganzoo.data.sources._NAMED, "toy-data", lambda spec: toy_data())
    run_dir = tmp_path / "run"
    args = ["train", plugin.name, "--data", "toy-data", "--steps", "8", "--out", str(run_dir), "--device", "cpu"]
    args += ["--set", "checkpoint_every=2", "--set", "progress=false", "--set", "ema_decay=0", "--batch-size", "8"]
    try:
        result = CliRunner().invoke(cli, args, prog_name="ganzoo")
    finally:
        ganzoo.unregister(plugin.name)
    assert result.exit_code == 1, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert line.startswith("Error: plugin toy-raises failed in its generator update at step 5: RuntimeError: mat1")
    assert "(8x3 and 4x64)" in line and "Traceback" not in result.output
    log = run_dir / "errors.log"
    assert f"traceback in {log}; the last checkpoint is {run_dir / 'checkpoints' / 'step-000004'})" in line
    assert "Traceback (most recent call last)" in log.read_text() and "_g_loss" in log.read_text()
    assert ckpt.latest_checkpoint(run_dir / "checkpoints") == run_dir / "checkpoints" / "step-000004"


# ----------------------------------------------------------------------------------------- steps and epochs


@pytest.mark.parametrize(
    ("train", "d_repeats", "expected_steps"),
    [
        ({"steps": 3}, 1, 3),
        ({"steps": 3, "epochs": 1.5}, 1, 12),  # 64 samples / batch 8 = 8 batches per epoch; epochs wins
        ({"steps": 100, "epochs": 1}, 2, 4),  # two draws per iteration
    ],
)
def test_steps_versus_epochs(tmp_path, train, d_repeats, expected_steps):
    plugin = ToyGAN(snapshot=False)
    result = Trainer(
        plugin, config={"d_repeats": d_repeats}, train=toy_train(**train), data=toy_data(), out=tmp_path / "run"
    ).fit()
    assert result.step == expected_steps
    assert sum(c["name"] == "generator" for c in plugin.calls) == expected_steps
    info = json.loads((result.checkpoint / "trainer.json").read_text())
    assert info["step"] == expected_steps
    assert info["images_seen"] == expected_steps * d_repeats * 8
    draws = expected_steps * d_repeats
    assert info["epoch"] * 8 + info["batch_in_epoch"] == draws


# ------------------------------------------------------------------------------------------ logs and outputs


def test_channels_last_trains_in_that_layout_and_hands_back_the_default_one(tmp_path):
    """`channels_last`: 4-D weights are channels-last while training; the returned model is back in the default
    layout, so it samples exactly as its saved copy loads."""
    from ganzoo.hub import load_pretrained, save_pretrained

    layouts = []

    def weights_4d(model) -> list[torch.Tensor]:
        return [p for net in model.nets.values() for p in net.parameters() if p.ndim == 4]

    def record(trainer, step):
        layouts.append(all(p.is_contiguous(memory_format=torch.channels_last) for p in weights_4d(trainer.model)))

    train = dcgan_train(steps=2, channels_last=True)
    result = Trainer("dcgan", DCGAN_TINY, train, data="mnist-4k", out=tmp_path / "run", callbacks=[record]).fit()
    assert layouts == [True, True]
    assert all(p.is_contiguous() for p in weights_4d(result.model))
    loaded = load_pretrained(save_pretrained(result.model, tmp_path / "saved"))
    assert torch.equal(result.model.sample(4, seed=0), loaded.sample(4, seed=0))


def test_data_share_is_the_time_spent_waiting_for_batches(tmp_path, monkeypatch):
    """A data path that sleeps 0.2 s per batch dominates a tiny model's step: its share of the wall time shows it."""
    from ganzoo.engine.data import BatchStream

    fetch = BatchStream.next

    def slow(self):
        time.sleep(0.2)
        return fetch(self)

    monkeypatch.setattr(BatchStream, "next", slow)
    train = dcgan_train(steps=4, log_every=2)
    Trainer("dcgan", config=DCGAN_TINY, train=train, data="mnist-4k", out=tmp_path / "run").fit()
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(0.3 < line["data_share"] <= 1 for line in lines), lines


def test_run_writes_metrics_samples_tensorboard_and_config(tmp_path):
    result = Trainer(
        "dcgan",
        config=DCGAN_TINY,
        train=dcgan_train(steps=4, log_every=2, sample_every=2, tensorboard=True),
        data="mnist-4k",
        out=tmp_path / "run",
    ).fit()
    run_dir = result.run_dir
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]
    for line in lines:
        for key in ("loss/discriminator", "loss/generator", "images_per_s", "lr/generator", "lr/discriminator"):
            assert isinstance(line[key], float), key
        assert line["images_per_s"] > 0
        assert 0 <= line["data_share"] < 1
        assert line["lr/generator"] == pytest.approx(1.6e-3)

    samples = sorted(p.name for p in (run_dir / "samples").iterdir())
    assert samples == ["step-000002.png", "step-000004.png"]
    assert result.samples == run_dir / "samples" / "step-000004.png"
    with Image.open(result.samples) as image:
        image.verify()

    events = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)

    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["plugin"] == "dcgan"
    assert saved["data"] == "mnist-4k"
    assert saved["config"]["g_width"] == 8
    assert saved["config"]["resolution"] == 28 and saved["config"]["channels"] == 1
    assert saved["world_size"] == 1
    assert result.checkpoint == run_dir / "checkpoints" / "step-000004"


class _PhasedLogs(ToyGAN):
    """Logs the value 2 from each of 3 critic repeats, and 5 from a generator phase that ends at iteration 3."""

    def schedule(self, config):
        def critic(nets, batch, ctx):
            loss, _ = self._d_loss(nets, batch, ctx)
            return loss, {"probe/critic": 2.0}

        def warmup(nets, batch, ctx):
            loss, _ = self._g_loss(nets, batch, ctx)
            return loss, {"probe/warmup": torch.tensor(5.0)}

        return [
            UpdateStep("discriminator", ("discriminator",), critic, repeats=3),
            UpdateStep("warmup", ("generator",), warmup, needs_data=False, steps=(0, 3)),
        ]


def test_logged_values_average_over_the_times_they_were_logged(tmp_path):
    """Not per iteration: a repeated update is not summed, a phase ending mid-window is not diluted."""
    plugin = _PhasedLogs(snapshot=False)
    result = Trainer(plugin, train=toy_train(steps=4, log_every=4), data=toy_data(), out=tmp_path / "run").fit()
    (line,) = [json.loads(text) for text in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert line["probe/critic"] == pytest.approx(2.0) and line["probe/warmup"] == pytest.approx(5.0)
    d_losses = [c for c in plugin.calls if c["name"] == "discriminator"]
    assert len(d_losses) == 12 and 0 < line["loss/discriminator"] < 3  # a mean of losses near log 4, not a sum


class _WarmStart(ToyGAN):
    """The generator's first two iterations are an update with its own optimizer at ten times the rate."""

    def schedule(self, config):
        return [
            UpdateStep("discriminator", ("discriminator",), self._d_loss),
            UpdateStep("warmup", ("generator",), self._g_loss, needs_data=False, steps=(0, 2), optimizer="warmup"),
            UpdateStep("generator", ("generator",), self._g_loss, needs_data=False, steps=(2, None)),
        ]

    def optimizers(self, config):
        return {**super().optimizers(config), "warmup": OptimizerSpec(lr=10 * config.lr)}


def test_an_update_may_step_its_network_with_its_own_optimizer(tmp_path):
    train = toy_train(steps=4, log_every=4, checkpoint_every=4)
    result = Trainer(_WarmStart(snapshot=False), {"lr": 0.01}, train, data=toy_data(), out=tmp_path / "run").fit()
    (line,) = [json.loads(text) for text in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert (line["lr/warmup"], line["lr/generator"]) == pytest.approx((0.1, 0.01))
    state, _ = ckpt.load_training_state(result.checkpoint)
    steps = {name: int(opt["state"][0]["step"]) for name, opt in state["optimizers"].items()}
    assert steps == {"warmup": 2, "generator": 2, "discriminator": 4}  # separate Adam moments and counts
    resumed = Trainer(
        _WarmStart(snapshot=False),
        {"lr": 0.01},
        {**train, "steps": 5},
        data=toy_data(),
        out=tmp_path / "run",
        resume=True,
    )
    assert resumed.fit().step == 5


@pytest.mark.parametrize(
    ("optimizers", "message"),
    [
        ({"generator": 1, "discriminator": 1}, "gives no optimizer 'warmup' for its warmup update"),
        ({"generator": 1, "discriminator": 1, "warmup": 1, "extra": 1}, "optimizers extra that no update"),
    ],
)
def test_optimizer_names_are_checked(tmp_path, optimizers, message):
    plugin = _WarmStart(snapshot=False)
    plugin.optimizers = lambda config: {name: OptimizerSpec(lr=0.01) for name in optimizers}
    with pytest.raises(PluginError, match=message):
        Trainer(plugin, train=toy_train(steps=1), data=toy_data(), out=tmp_path / "run").fit()
    with pytest.raises(ValueError, match="must update one network"):
        UpdateStep("both", ("generator", "discriminator"), plugin._g_loss, optimizer="warmup")


def test_denormals_read_as_zero_during_training_only(tmp_path):
    """They slow CPU matmuls several times (the Gumbel-softmax tails of lstm-gan) and training needs none."""
    tiny = torch.tensor([1e-39])  # below float32's smallest normal number
    during = []

    def record(trainer, step):
        during.append(float((tiny * 1.0)[0]))

    Trainer(
        ToyGAN(snapshot=False), train=toy_train(steps=1), data=toy_data(), out=tmp_path / "run", callbacks=[record]
    ).fit()
    assert during == [0.0]
    assert float((tiny * 1.0)[0]) > 0


def test_no_tensorboard_events_when_disabled(tmp_path):
    result = Trainer(ToyGAN(snapshot=False), train=toy_train(tensorboard=False), data=toy_data(), out=tmp_path / "r")
    run_dir = result.fit().run_dir
    assert not (run_dir / "tensorboard").exists()
    assert (run_dir / "metrics.jsonl").is_file()


def test_callbacks_see_every_step(tmp_path):
    steps = []
    Trainer(
        ToyGAN(snapshot=False),
        train=toy_train(steps=3),
        data=toy_data(),
        out=tmp_path / "run",
        callbacks=[lambda trainer, step: steps.append((step, trainer.step))],
    ).fit()
    assert steps == [(1, 1), (2, 2), (3, 3)]


def test_deterministic_runs_are_reproducible(tmp_path, restore_determinism):
    flags = []

    def run(name):
        plugin = ToyGAN(snapshot=False)
        result = Trainer(
            plugin,
            train=toy_train(steps=3, deterministic=True),
            data=toy_data(),
            out=tmp_path / name,
            callbacks=[lambda trainer, step: flags.append(torch.are_deterministic_algorithms_enabled())],
        ).fit()
        return ckpt.load_weights(result.checkpoint)

    first, second = run("a"), run("b")
    assert flags == [True] * 6
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
