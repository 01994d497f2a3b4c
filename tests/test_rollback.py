"""on_divergence=rollback: a diverging run goes back to its last good checkpoint (its weights exactly), lowers the
learning rates, re-seeds its data, records each rollback in trainer.json, gives up after max_rollbacks, and resumes
bit-identically like any other run."""

from __future__ import annotations

import json

import pytest
import torch
from helpers_engine import ToyGAN, toy_data, toy_train

import ganzoo
from ganzoo.engine import checkpoint as ckpt
from ganzoo.engine.config import TrainConfig
from ganzoo.engine.logging import read_metrics
from ganzoo.engine.trainer import ROLLBACK_SEED_STRIDE, Trainer
from ganzoo.errors import DivergenceError


@pytest.fixture
def toy():
    plugin = ganzoo.register(ToyGAN(name="toy-rollback-test", snapshot=False), replace=True)
    yield plugin
    ganzoo.unregister(plugin.name)


def rolling(steps: int, **train: object) -> dict:
    return toy_train(steps=steps, checkpoint_every=5, on_divergence="rollback", **train)


def test_a_rollback_restores_the_checkpoint_lowers_the_learning_rates_and_finishes(toy, tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(toy, {"nan_at": 7, "nan_times": 1}, rolling(12), data=toy_data(), out=out)
    seen = {}
    original = trainer._roll_back

    def watched(run, error, logger):
        original(run, error, logger)
        seen["weights"] = {k: v.clone() for k, v in run.model.weights().items()}
        seen["lrs"] = [g["lr"] for opt in run.optimizers.values() for g in opt.param_groups]
        seen["seed"] = run.stream.seed

    trainer._roll_back = watched
    result = trainer.fit()
    assert result.step == 12
    at_five = ckpt.load_weights(out / "checkpoints" / "step-000005")
    assert sorted(seen["weights"]) == sorted(at_five)
    assert all(torch.equal(seen["weights"][k], at_five[k]) for k in at_five)  # the checkpoint's weights exactly
    assert seen["lrs"] == [0.5e-2, 0.5e-2] and seen["seed"] == TrainConfig().seed + ROLLBACK_SEED_STRIDE
    info = ckpt.read_trainer_info(out / "checkpoints" / "step-000012")
    assert [(r["step"], r["to"]) for r in info["rollbacks"]] == [(7, 5)]
    assert "the generator loss is nan" in info["rollbacks"][0]["reason"]
    assert result.rollbacks == info["rollbacks"]  # the result says it too
    steps = [line["step"] for line in read_metrics(out)]
    assert steps == sorted(set(steps)) == list(range(1, 13))  # the lines after the checkpoint were rewound
    state, _ = ckpt.load_training_state(out / "checkpoints" / "step-000012")
    assert [state["optimizers"][role]["param_groups"][0]["lr"] for role in ("generator", "discriminator")] == [
        0.5e-2,
        0.5e-2,
    ]


def test_a_rolled_back_run_resumes_bit_identically(toy, tmp_path):
    straight = Trainer(toy, {"nan_at": 7, "nan_times": 1}, rolling(14), data=toy_data(), out=tmp_path / "a").fit()
    toy.nans = 0
    Trainer(toy, {"nan_at": 7, "nan_times": 1}, rolling(10), data=toy_data(), out=tmp_path / "b").fit()
    resumed = Trainer(toy, train=rolling(14), data=toy_data(), out=tmp_path / "b", resume=True).fit()
    a, b = straight.model.weights(), resumed.model.weights()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ckpt.read_trainer_info(tmp_path / "b" / "checkpoints" / "step-000014")["rollbacks"][0]["to"] == 5


def test_rollbacks_give_up_after_max_rollbacks_and_stop_stays_the_default(toy, tmp_path):
    trainer = Trainer(toy, {"nan_at": 7}, rolling(12, max_rollbacks=2), data=toy_data(), out=tmp_path / "r")
    with pytest.raises(DivergenceError, match=r"after 2 rollbacks, the most max_rollbacks=2 allows"):
        trainer.fit()
    info = ckpt.read_trainer_info(tmp_path / "r" / "checkpoints" / "step-000005")
    assert info["rollbacks"] == []  # (no checkpoint was written after the rollbacks)
    assert toy.nans == 3
    early = Trainer(toy, {"nan_at": 3}, rolling(12), data=toy_data(), out=tmp_path / "e")
    with pytest.raises(DivergenceError, match="no checkpoint to roll back to yet"):
        early.fit()
    stop = Trainer(toy, {"nan_at": 7}, toy_train(steps=12, checkpoint_every=5), data=toy_data(), out=tmp_path / "s")
    with pytest.raises(DivergenceError, match=r"^training diverged at step 7"):
        stop.fit()
    assert json.loads((tmp_path / "s" / "config.json").read_text())["train"]["on_divergence"] == "stop"


def test_discard_after_keeps_the_newest_checkpoint_at_or_before_the_step_and_deletes_the_newer(tmp_path):
    for step in (2, 4, 6):
        folder = tmp_path / ckpt.step_dir_name(step)
        folder.mkdir()
        for name in (ckpt.MODEL_FILE, ckpt.STATE_FILE, ckpt.TRAINER_FILE):
            (folder / name).write_text("{}")
    assert ckpt.discard_after(tmp_path, 1) is None and len(ckpt.list_checkpoints(tmp_path)) == 3  # nothing to keep
    assert ckpt.discard_after(tmp_path, 5) == tmp_path / "step-000004"
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-000002", "step-000004"]
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "step-000004"


TINY = {"g_width": 4, "d_width": 4, "latent_dim": 8}


def warning_rollbacks(steps: int) -> dict:
    """A tiny run whose generator counts as stuck from the first window on, rolled back on that warning."""
    train = {"steps": steps, "batch_size": 8, "progress": False, "tensorboard": False, "log_every": 2}
    train.update(health_every=2, health_window=2, health_g_grad=1e9, health_recall=0)  # G counts as stuck at once
    train.update(health_diversity=0, health_d_auc=1, health_oscillation=2)  # and nothing else can fire
    train.update(checkpoint_every=2, rollback_on_warning=True, max_rollbacks=2)
    return train


def test_a_health_warning_rolls_back_before_its_evidence_when_asked(tmp_path, capsys):
    result = ganzoo.Trainer("dcgan", TINY, warning_rollbacks(12), data="mnist-4k?n=32", out=tmp_path / "r").fit()
    assert result.step == 12
    # step 4 warns on the lines of steps 2 and 4: back to the checkpoint before step 2, the initial state, twice
    assert [(r["step"], r["to"]) for r in result.rollbacks] == [(4, 0), (4, 0)]
    assert all(
        r["reason"].startswith("health: step ") and "generator not learning" in r["reason"] for r in result.rollbacks
    )
    assert [w.name for w in result.warnings] == ["generator not learning"]  # no rollback left: it only warns now
    state, info = ckpt.load_training_state(tmp_path / "r" / "checkpoints" / "step-000012")
    assert info["rollbacks"] == result.rollbacks
    assert state["optimizers"]["generator"]["param_groups"][0]["lr"] == pytest.approx(0.25 * 1.6e-3)  # x 0.5 twice
    steps = [line["step"] for line in read_metrics(tmp_path / "r")]
    assert steps == list(range(2, 13, 2))  # the abandoned stretches' lines are gone
    said = capsys.readouterr()
    assert "rollback 2 of at most 2: health: step 4: generator not learning" in said.out + said.err
    assert "rollback_on_warning: not rolling back (no rollback left)" in said.out + said.err


def test_a_run_rolled_back_on_a_warning_resumes_bit_identically(tmp_path):
    straight = ganzoo.Trainer("dcgan", TINY, warning_rollbacks(12), data="mnist-4k?n=32", out=tmp_path / "a").fit()
    ganzoo.Trainer("dcgan", TINY, warning_rollbacks(8), data="mnist-4k?n=32", out=tmp_path / "b").fit()
    resumed = ganzoo.Trainer("dcgan", train=warning_rollbacks(12), out=tmp_path / "b", resume=True).fit()
    a, b = straight.model.weights(), resumed.model.weights()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.rollbacks == straight.rollbacks and len(straight.rollbacks) == 2
