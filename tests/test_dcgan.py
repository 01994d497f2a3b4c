"""The DCGAN plugin: shapes at every resolution, init, discriminator norms, config validation, loss choices."""

from __future__ import annotations

import json

import pytest
import torch
from helpers_engine import DCGAN_TINY, dcgan_train
from torch import nn

import ganzoo
from ganzoo import Trainer, UsageError
from ganzoo.plugin import ADVERSARIAL_LOSSES


@pytest.mark.parametrize("resolution", [28, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes(resolution, channels):
    model = ganzoo.create_model("dcgan", resolution=resolution, channels=channels, **DCGAN_TINY)
    assert model.config.resolution == resolution and model.config.channels == channels
    samples = model.sample(4, seed=0)
    assert samples.shape == (4, channels, resolution, resolution)
    assert samples.dtype == torch.float32
    assert samples.min() >= -1 and samples.max() <= 1
    assert samples.std() > 0

    g, d = model.nets["generator"], model.nets["discriminator"]
    g.eval(), d.eval()
    with torch.no_grad():
        assert g(torch.randn(3, 16, 1, 1)).shape == (3, channels, resolution, resolution)
        assert g(torch.randn(3, 16)).shape == (3, channels, resolution, resolution)  # flat z is accepted
        logits = d(torch.rand(5, channels, resolution, resolution) * 2 - 1)
    assert logits.shape == (5,)


def test_defaults_follow_the_data():
    model = ganzoo.create_model("dcgan", data_info=ganzoo.DataInfo(channels=1, resolution=28))
    assert (model.config.resolution, model.config.channels) == (28, 1)
    model = ganzoo.create_model("dcgan")
    assert (model.config.resolution, model.config.channels) == (64, 3)


def _conv_weights(net: nn.Module) -> list[torch.Tensor]:
    """The stored weight of every (transposed) convolution: under spectral norm, the parametrization's original."""
    weights = []
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            if nn.utils.parametrize.is_parametrized(module, "weight"):
                weights.append(module.parametrizations.weight.original.detach())
            else:
                weights.append(module.weight.detach())
    return weights


@pytest.mark.parametrize("d_norm", ["batch", "none", "spectral"])
def test_init_is_normal_with_std_002(d_norm):
    """Radford et al.: every convolution starts from N(0, 0.02), batch-norm scales from N(1, 0.02)."""
    torch.manual_seed(0)
    model = ganzoo.create_model("dcgan", resolution=64, channels=3, d_norm=d_norm)
    for role in ("generator", "discriminator"):
        weights = _conv_weights(model.nets[role])
        assert weights, role
        flat = torch.cat([w.flatten() for w in weights])
        assert flat.numel() > 100_000
        assert flat.std().item() == pytest.approx(0.02, rel=0.05), f"{role} conv weights (d_norm={d_norm})"
        assert abs(flat.mean().item()) < 0.002
    for module in model.nets["generator"].modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.weight.mean().item() == pytest.approx(1.0, abs=0.02)
            assert torch.equal(module.bias, torch.zeros_like(module.bias))


@pytest.mark.parametrize("d_norm", ["spectral", "none", "batch"])
def test_discriminator_norms_build_and_run(d_norm):
    model = ganzoo.create_model("dcgan", resolution=32, channels=3, d_norm=d_norm, **DCGAN_TINY)
    d = model.nets["discriminator"]
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    has_sn = any(nn.utils.parametrize.is_parametrized(m, "weight") for m in d.modules())
    assert has_bn == (d_norm == "batch")
    assert has_sn == (d_norm == "spectral")
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    logits = d(x)
    assert logits.shape == (4,) and torch.isfinite(logits).all()
    logits.mean().backward()
    assert all(p.grad is not None for p in d.parameters())
    if d_norm == "spectral":
        # the effective weights are normalised to spectral norm ~1 (after a few power iterations in train mode)
        for _ in range(20):
            d(x)
        d.eval()
        for module in d.modules():
            if isinstance(module, nn.Conv2d):
                sigma = torch.linalg.matrix_norm(module.weight.detach().flatten(1), ord=2)
                assert sigma.item() == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("resolution", [48, 16, 512])
def test_unsupported_resolution_is_a_usage_error(resolution):
    with pytest.raises(UsageError, match=f"resolution={resolution}") as caught:
        ganzoo.create_model("dcgan", resolution=resolution)
    assert "28, 32, 64, 128, 256" in str(caught.value)


def test_widths_double_per_stage_up_to_eight_times_the_width():
    """DCGAN's 64 px widths (so earlier 28-64 px checkpoints keep their shapes); above, capped at 8 x width."""
    from ganzoo_plugins.dcgan.networks import discriminator_widths, generator_widths

    assert generator_widths(28, 64) == [128, 64]
    assert generator_widths(64, 64) == [512, 256, 128, 64]
    assert generator_widths(256, 64) == [512, 512, 512, 256, 128, 64]
    assert discriminator_widths(128, 32) == [32, 64, 128, 256, 256]


def test_bad_option_values_are_usage_errors():
    with pytest.raises(UsageError, match="d_norm"):
        ganzoo.create_model("dcgan", d_norm="layer")
    with pytest.raises(UsageError, match="loss"):
        ganzoo.create_model("dcgan", loss="bogus")
    with pytest.raises(UsageError, match="g_width"):
        ganzoo.create_model("dcgan", g_width=0)


def test_schedule_and_optimizers():
    plugin = ganzoo.get_plugin("dcgan")
    config = ganzoo.create_model("dcgan", lr_g=1e-3, lr_d=3e-4, betas="0.0,0.9").config
    schedule = plugin.schedule(config)
    assert [(s.name, s.networks, s.repeats, s.needs_data) for s in schedule] == [
        ("discriminator", ("discriminator",), 1, True),
        ("generator", ("generator",), 1, False),
    ]
    specs = plugin.optimizers(config)
    assert specs["generator"].lr == 1e-3 and specs["discriminator"].lr == 3e-4
    assert specs["generator"].betas == (0.0, 0.9)
    assert len(plugin.frozen_d_blocks(ganzoo.create_model("dcgan", resolution=32).nets)) == 4


@pytest.mark.parametrize("loss", ["hinge", "least-squares"])
def test_loss_choices_train(tmp_path, loss):
    assert loss in ADVERSARIAL_LOSSES
    result = Trainer(
        "dcgan",
        config={**DCGAN_TINY, "loss": loss, "d_norm": "spectral" if loss == "hinge" else "batch"},
        train=dcgan_train(steps=2, log_every=1),
        data="mnist-4k",
        out=tmp_path / "run",
    ).fit()
    assert result.step == 2
    assert result.model.config.loss == loss
    lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert all(torch.isfinite(p).all() for net in result.model.nets.values() for p in net.parameters())
    reloaded = ganzoo.load_pretrained(result.run_dir)
    assert reloaded.config.loss == loss
    torch.testing.assert_close(reloaded.sample(2, seed=3), result.model.sample(2, seed=3))


def test_sampling_is_reproducible_per_seed():
    model = ganzoo.create_model("dcgan", resolution=32, channels=3, **DCGAN_TINY)
    first = model.sample(4, seed=0)
    assert torch.equal(first, model.sample(4, seed=0))
    assert not torch.equal(first, model.sample(4, seed=1))
    assert model.nets["generator"].training  # sampling restores train mode
    # the global RNG does not influence a seeded sample
    torch.manual_seed(123)
    assert torch.equal(first, model.sample(4, seed=0))


def test_r1_penalty_by_config(tmp_path):
    out = tmp_path / "run"
    Trainer("dcgan", {**DCGAN_TINY, "r1_gamma": 10.0}, dcgan_train(steps=2, log_every=1), out=out).fit()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(line["r1_penalty"] > 0 for line in lines)
    plain = tmp_path / "plain"
    Trainer("dcgan", DCGAN_TINY, dcgan_train(steps=1, log_every=1), out=plain).fit()
    assert "r1_penalty" not in (plain / "metrics.jsonl").read_text()
