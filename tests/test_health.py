"""Training health: the diagnostics (separation, diversity, gradient norms) and each named warning on synthetic
traces built to trigger it and on a healthy one; the engine logs them, writes health.json, says them at the end,
and a resumed run replays its past into the rules."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import ganzoo
from ganzoo.cli import cli
from ganzoo.data import resolve_data
from ganzoo.engine.health import (
    HEALTH_FILE,
    HealthProbe,
    HealthRules,
    RecallProbe,
    Thresholds,
    pairwise_spread,
    parameter_snapshot,
    relative_update,
    separation,
)
from ganzoo.engine.logging import read_metrics
from ganzoo.errors import UsageError
from ganzoo.metrics.features import get_features

TINY = {"g_width": 4, "d_width": 4, "latent_dim": 8}
QUIET = {"progress": False, "tensorboard": False, "batch_size": 8, "log_every": 2, "health_every": 2}


def healthy_line(step: int) -> dict[str, float]:
    """A line of a run that learns: D about 80% sure, diversity near the data's, gradients steady."""
    wobble = 0.02 * (-1) ** step
    return {
        "step": step,
        "loss/discriminator": 1.1 + wobble,
        "loss/generator": 1.4 - 0.001 * step,
        "health/d_auc": 0.8 + wobble,
        "health/d_acc_gap": 0.05 + wobble,
        "health/diversity": 0.95 - wobble,
        "health/grad_norm/generator": 3.0 + wobble,
        "health/grad_norm/discriminator": 2.0,
        "health/update/generator": 4e-3 + 1e-4 * wobble,
    }


def warnings_of(lines: list[dict[str, float]], **thresholds: float) -> list[str]:
    rules = HealthRules(Thresholds(**thresholds), ["generator"])
    rules.replay(lines)
    return [w.name for w in rules.warnings]


def trace(change: dict[str, object], start: int = 10) -> list[dict[str, float]]:
    """20 healthy lines, then from line `start` on the values `change` gives (a value, or a function of i)."""
    lines = []
    for i in range(20):
        line = healthy_line(i)
        if i >= start:
            line.update({k: v(i) if callable(v) else v for k, v in change.items()})
        lines.append(line)
    return lines


def test_a_healthy_trace_raises_nothing():
    assert warnings_of([healthy_line(i) for i in range(200)]) == []


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("mode collapse suspected", {"health/diversity": lambda i: 0.4 - 0.02 * i}),
        ("mode collapse suspected", {"health/precision": 0.5, "health/recall": 0.01}),  # within-class collapse
        ("discriminator wins", {"health/d_auc": 0.999, "loss/generator": lambda i: 2 + 0.3 * i}),
        ("generator not learning", {"health/grad_norm/generator": 1e-6}),
        ("generator not learning", {"health/update/generator": 0.0}),  # lr 0: gradients as usual, no move
        ("oscillation", {"health/d_auc": lambda i: 0.75 + 0.2 * (-1) ** i}),
        ("loss scale collapsing", {"health/loss_scale/generator": lambda i: 2.0 ** (15 - i)}),
    ],
)
def test_each_warning_fires_on_its_trace_once(name, change):
    lines = trace(change)
    if name == "loss scale collapsing":  # an fp16 run logs the scale from the start
        for i, line in enumerate(lines[:10]):
            line["health/loss_scale/generator"] = 65536.0 * (1 + i % 2)
    rules = HealthRules(Thresholds(), ["generator"])
    rules.replay(lines)
    assert [w.name for w in rules.warnings] == [name]
    assert rules.warnings[0].step >= 10 and rules.warnings[0].evidence


def test_near_misses_raise_nothing():
    assert warnings_of(trace({"health/diversity": 0.4})) == []  # low but not falling (a data-limited model)
    drifting = {"health/diversity": lambda i: 0.28 - 0.004 * i}  # a fresh wgan-gp's: low, a few percent down
    assert warnings_of(trace(drifting)) == []
    assert warnings_of(trace(drifting), diversity_fall=0.0) == ["mode collapse suspected"]
    assert warnings_of(trace({"health/d_auc": 0.999})) == []  # D sure but G's loss not rising
    assert warnings_of(trace({"health/precision": 0.05, "health/recall": 0.0})) == []  # not trained yet
    assert warnings_of(trace({"health/precision": 0.5, "health/recall": 0.2})) == []  # still learning to cover
    critic = {"health/d_auc": 1.0, "loss/generator": lambda i: 14 + 3 * i, "loss/discriminator": lambda i: -20 + i}
    assert warnings_of(trace(critic)) == []  # a Wasserstein critic (negative loss) separates by design
    assert warnings_of(trace({"health/d_auc": lambda i: 0.85 + 0.07 * (-1) ** i})) == []  # small swings
    assert warnings_of(trace({"health/d_acc_gap": lambda i: 0.7 * (-1) ** i})) == []  # D's bias, not oscillation


def test_d_wins_needs_the_samples_to_stop_covering_the_data_when_the_recall_is_measured():
    wins = {"health/d_auc": 0.999, "loss/generator": lambda i: 2 + 0.3 * i}
    assert warnings_of(trace({**wins, "health/recall": 0.8})) == []  # a long healthy run's D: sure, samples fine
    assert warnings_of(trace({**wins, "health/recall": 0.05})) == ["discriminator wins"]
    assert warnings_of(trace({**wins, "health/recall": 0.2}), recall_floor=0.1) == []


def test_separation_and_diversity():
    real, fake = torch.tensor([2.0, 3.0, 1.0]), torch.tensor([-1.0, -2.0, 0.5])
    values = separation(real, fake)
    assert float(values["d_auc"]) == 1.0 and float(values["d_acc_real"]) == 1.0
    assert float(values["d_acc_fake"]) == pytest.approx(2 / 3) and float(values["d_acc_gap"]) == pytest.approx(1 / 3)
    assert float(separation(real, real)["d_auc"]) == 0.5  # ties count half
    assert float(pairwise_spread(torch.ones(5, 3))) == 0.0
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert float(pairwise_spread(points)) == 5.0


def test_the_diversity_of_a_collapsed_generator_is_far_below_the_datas():
    model = ganzoo.create_model("dcgan", resolution=28, channels=1, **TINY)
    d = model.nets["discriminator"]
    probe = HealthProbe()
    probe.install([d], list(model.plugin.frozen_d_blocks(model.nets))[-1:])
    images = resolve_data("mnist-4k?n=64").load(resolution=28, channels=1).images.float() / 127.5 - 1

    def measure(fake: torch.Tensor) -> float:
        real = images[0::2]
        probe.begin({"image": real}, measure=True)
        d(real), d(fake)
        return float(probe.end()["diversity"])

    collapsed = images[41:42].expand(32, -1, -1, -1).clone()  # every sample the same digit
    assert measure(collapsed) < 0.01  # (cdist rounding: not exactly 0)
    assert 0.7 < measure(images[1::2]) < 1.4  # other real digits: about as varied as the data


def test_the_relative_update_is_zero_for_a_network_that_does_not_move():
    net = torch.nn.Linear(3, 2)
    before = parameter_snapshot(net)
    assert float(relative_update(net, before)) == 0.0
    with torch.no_grad():
        net.weight.add_(0.5)
    size = torch.linalg.vector_norm(torch.cat([b.flatten() for b in before]))
    assert float(relative_update(net, before)) == pytest.approx(0.5 * 6**0.5 / float(size), rel=1e-5)


class FixedSamples:
    """A stand-in model whose samples are given images (unconditional)."""

    conditional, num_classes = False, None

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def sample(self, n: int, seed: int | None = None, condition: object = None, use_ema: bool = True) -> torch.Tensor:
        return self.images[:n]


def test_the_small_sample_recall_of_a_collapsed_generator_is_near_zero_and_of_real_digits_high():
    images = resolve_data("mnist-4k?n=128").load(resolution=28, channels=1).images.float() / 127.5 - 1
    probe = RecallProbe(get_features("digits"), images[0::2], seed=0)
    assert probe.n == 64
    precision, recall = probe.measure(FixedSamples(images[1::2]))
    assert precision > 0.6 and recall > 0.6  # other real digits: realistic, and they cover the real ones
    precision, recall = probe.measure(FixedSamples(images[7:8].expand(64, -1, -1, -1)))
    assert precision == 1.0 and recall < 0.05  # one real digit: realistic, but it covers none of the others


def test_a_generator_that_does_not_move_is_named(tmp_path):
    train = {**QUIET, "steps": 8, "health_window": 2}
    result = ganzoo.Trainer("dcgan", {**TINY, "lr_g": 0.0}, train, data="mnist-4k?n=32", out=tmp_path / "r").fit()
    assert "generator not learning" in [w.name for w in result.warnings]
    stuck = next(w for w in result.warnings if w.name == "generator not learning")
    assert stuck.evidence == "generator weights move by 0 of their norm per step"
    assert all(
        line["health/update/generator"] == 0 < line["health/update/discriminator"]
        for line in read_metrics(tmp_path / "r")
    )


def test_the_engine_logs_health_warns_once_says_it_at_the_end_and_replays_on_resume(tmp_path):
    out = tmp_path / "run"
    train = {**QUIET, "steps": 8, "health_window": 2, "health_g_grad": 1e9}  # every G gradient counts as stuck
    train.update(health_diversity=0, health_d_auc=1, health_oscillation=2)  # and nothing else can fire
    result = ganzoo.Trainer("dcgan", TINY, train, data="mnist-4k?n=32", out=out).fit()
    lines = read_metrics(out)
    assert {"health/d_auc", "health/diversity", "health/grad_norm/generator", "health/recall"} <= set(lines[0])
    assert all(0 <= line["health/recall"] <= 1 and 0 <= line["health/precision"] <= 1 for line in lines)
    assert [w.name for w in result.warnings] == ["generator not learning"] and result.warnings[0].step == 4
    assert result.health.startswith("health: step 4: generator not learning (generator gradient norm ")
    recorded = json.loads((out / HEALTH_FILE).read_text())["warnings"]
    assert [(w["step"], w["name"]) for w in recorded] == [(4, "generator not learning")]

    resumed = ganzoo.Trainer("dcgan", train={**train, "steps": 12}, out=out, resume=True).fit()
    assert [(w.step, w.name) for w in resumed.warnings] == [(4, "generator not learning")]  # not raised again
    assert len(json.loads((out / HEALTH_FILE).read_text())["warnings"]) == 1

    recall_off = {**QUIET, "steps": 2, "health_recall": 0}
    off = ganzoo.Trainer("dcgan", TINY, recall_off, data="mnist-4k?n=32", out=tmp_path / "off").fit()
    assert "health/recall" not in read_metrics(off.run_dir)[0] and "health/d_auc" in read_metrics(off.run_dir)[0]
    with pytest.raises(UsageError, match="health_recall=3: the recall needs more than 3 samples"):
        ganzoo.Trainer("dcgan", TINY, {**recall_off, "health_recall": 3}, data="mnist-4k?n=32").fit()

    quiet = ganzoo.Trainer("dcgan", TINY, {**QUIET, "steps": 4, "health_every": 0}, data="mnist-4k?n=32").fit()
    assert not any(k.startswith("health/") for line in read_metrics(quiet.run_dir) for k in line)


def test_the_probe_sees_the_real_batch_under_ada_and_the_command_prints_the_health_line(tmp_path):
    args = ["train", "dcgan", "--steps", "4", "--data", "mnist-4k?n=32", "--augment", "ada"]
    args += ["--out", str(tmp_path / "a")]
    for key, value in {**TINY, **QUIET}.items():
        args += ["--set", f"{key}={value}"]
    result = CliRunner().invoke(cli, args, prog_name="ganzoo")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "health: healthy (no warnings)"
    assert all("health/d_auc" in line for line in read_metrics(tmp_path / "a"))  # real told from fake


def test_a_text_run_gets_the_same_diagnostics(tmp_path):
    corpus = tmp_path / "names.txt"
    corpus.write_text("ANNA\nBOB\nCARL\nDORA\nEVE\nFRED\n" * 4)
    config = {"embed_dim": 4, "hidden_dim": 8, "d_embed_dim": 4, "d_hidden_dim": 4, "pretrain_steps": 0}
    run = ganzoo.Trainer("lstm-gan", config, {**QUIET, "steps": 4}, data=f"text:{corpus}", out=tmp_path / "t").fit()
    for line in read_metrics(run.run_dir):
        assert {"health/d_auc", "health/diversity", "health/grad_norm/generator"} <= set(line)
        assert 0 <= line["health/d_auc"] <= 1 and line["health/diversity"] > 0
