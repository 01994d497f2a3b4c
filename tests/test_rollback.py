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
