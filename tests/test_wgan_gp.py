"""The WGAN-GP plugin: networks at every resolution and backbone, a critic without batch norm, the paper's
schedule and optimizers, and training that stays finite under every precision, fp16 + GradScaler included."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers_engine import dcgan_train
from torch import nn

import ganzoo
from ganzoo import Trainer
from ganzoo.data import resolve_data

TINY = {"g_width": 8, "d_width": 8, "latent_dim": 16}


@pytest.mark.parametrize("backbone", ["dcgan", "resnet"])
@pytest.mark.parametrize("resolution", [28, 32, 64, 256])
def test_shapes_and_no_batch_norm_in_the_critic(backbone, resolution):
    model = ganzoo.create_model("wgan-gp", resolution=resolution, channels=3, backbone=backbone, **TINY)
    samples = model.sample(3, seed=0)
    assert samples.shape == (3, 3, resolution, resolution) and samples.abs().max() <= 1
    critic = model.nets["critic"]
    assert critic(samples).shape == (3,)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in critic.modules())  # layer norm by default
    plain = ganzoo.create_model("wgan-gp", resolution=resolution, backbone=backbone, critic_norm="none", **TINY)
    assert not any(isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)) for m in plain.nets["critic"].modules())


def test_paper_defaults():
    plugin = ganzoo.get_plugin("wgan-gp")
    config = plugin.default_config()
    assert (config.gp_weight, config.n_critic, config.lr_g, config.lr_d, tuple(config.betas)) == (
        10.0,
        5,
        1e-4,
        1e-4,
        (0.0, 0.9),
    )
    critic_step, generator_step = plugin.schedule(config)
    assert (critic_step.networks, critic_step.repeats) == (("critic",), 5)
    assert (generator_step.networks, generator_step.needs_data) == (("generator",), False)
    specs = plugin.optimizers(config)
    assert specs["critic"].lr == 1e-4 and specs["critic"].betas == (0.0, 0.9) and specs["critic"].kind == "adam"


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_short_training_logs_the_wasserstein_estimate_and_the_penalty(tmp_path, precision):
    out = tmp_path / "run"
    Trainer("wgan-gp", TINY, dcgan_train(steps=4, precision=precision, log_every=1), out=out).fit()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for key in ("loss/critic", "loss/generator", "wasserstein_estimate", "gradient_penalty"):
        assert math.isfinite(lines[-1][key]), key
    skipped = [line.get("amp/skipped/critic", 0) for line in lines]
    if precision == "fp16":  # the GradScaler starts at 2^16 and halves it on overflow: a few skips, then none
        assert sum(skipped) < 10 and skipped[-1] == 0
    else:
        assert not any(skipped)
        assert all("loss/critic" in line for line in lines)
    assert json.loads((out / "config.json").read_text())["precision"] == precision


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_two_thousand_steps_under_mixed_precision_stay_finite(tmp_path, precision):
    """Users of other libraries report NaNs around 1.5k WGAN-GP steps under mixed precision. Every loss of
    every step is checked by the engine: a NaN/inf would raise DivergenceError (fp16 steps the GradScaler
    skips for overflow are counted, not fatal, and may not repeat 30 times in a row)."""
    out = tmp_path / "run"
    data = resolve_data("mnist-4k?n=512")
    train = dcgan_train(steps=2000, precision=precision, batch_size=8, log_every=100, checkpoint_every=2000)
    smallest = {"g_width": 4, "d_width": 4, "latent_dim": 8, "resolution": 28}  # fp16 on a CPU is emulated: slow
    result = Trainer("wgan-gp", smallest, train, data=data, out=out).fit()
    assert result.step == 2000
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 20 and all(torch.isfinite(torch.tensor(line["loss/critic"])) for line in lines)
    skipped = sum(line.get("amp/skipped/critic", 0) * 100 for line in lines)
    assert skipped < 100  # a few overflow skips while the fp16 scale calibrates, not a stalled run
    assert torch.isfinite(ganzoo.load_pretrained(out).sample(8, seed=0)).all()
