"""The stylegan2 plugin: shapes, weight demodulation, style mixing, lazy R1 as a periodic update, and the
conformance kit (every guarantee the engine makes, on tiny widths)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from helpers_engine import dcgan_train

import ganzoo
from ganzoo import DataInfo, StepContext, Trainer, UpdateStep
from ganzoo.testing import conformance_tests
from ganzoo_plugins.stylegan2 import _styles
from ganzoo_plugins.stylegan2.networks import ModulatedConv2d

TINY = {"latent_dim": 8, "w_dim": 8, "mapping_layers": 2, "g_width": 8, "d_width": 8}

test_conformance = conformance_tests(
    "stylegan2", "mnist-4k?n=256", {**TINY, "r1_every": 2, "pl_weight": 2.0, "pl_every": 2}
)


@pytest.mark.parametrize(("resolution", "channels"), [(32, 1), (64, 3)])
def test_shapes_and_the_style_count(resolution, channels):
    model = ganzoo.create_model("stylegan2", resolution=resolution, channels=channels, **TINY)
    g, d = model.nets["generator"], model.nets["discriminator"]
    assert g.num_ws == 2 * (resolution.bit_length() - 1) - 2  # 2 log2(R) - 2, as in the paper
    samples = model.sample(3, seed=0)
    assert samples.shape == (3, channels, resolution, resolution) and samples.abs().max() <= 1
    assert d(samples).shape == (3,)
    assert len(model.plugin.frozen_d_blocks(model.nets)) == len(d.blocks) == resolution.bit_length() - 2


def test_the_data_size_is_rounded_up_to_a_supported_resolution_and_gamma_follows_it():
    model = ganzoo.create_model("stylegan2", data_info=DataInfo(channels=1, resolution=28), **TINY)
    assert model.config.resolution == 32 and model.config.r1_gamma == pytest.approx(0.0002 * 32**2 / 64)
    with pytest.raises(ganzoo.UsageError, match="stylegan2 resolution=48 is not supported; accepted: 32, 64, 128"):
        ganzoo.create_model("stylegan2", resolution=48, **TINY)


def test_weight_demodulation_keeps_unit_variance():
    torch.manual_seed(0)
    x, w = torch.randn(16, 64, 8, 8), torch.randn(16, 32)
    demodulated = ModulatedConv2d(64, 64, 3, 32)(x, w)[:, :, 1:-1, 1:-1]  # (away from the zero padding)
    plain = ModulatedConv2d(64, 64, 3, 32, demodulate=False)
    with torch.no_grad():
        plain.affine.bias.fill_(3.0)  # styles of 3: without demodulation the output scales with them
    assert demodulated.var().item() == pytest.approx(1.0, rel=0.1)
    assert plain(x, w)[:, :, 1:-1, 1:-1].var().item() > 4


def test_the_grouped_convolution_equals_a_per_sample_loop():
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 6, 3, 5, up=True)
    x, w = torch.randn(3, 4, 5, 5), torch.randn(3, 5)
    batched = conv(x, w)
    for i in range(3):
        assert torch.allclose(batched[i : i + 1], conv(x[i : i + 1], w[i : i + 1]), atol=1e-5)
    assert batched.shape == (3, 6, 10, 10)


def _context(model, **config):
    config = ganzoo.config.replace_config(model.config, config)
    return StepContext(0, torch.device("cpu"), "fp32", config, model.data_info, 4)


def test_style_mixing_switches_latents_at_one_layer_and_mixes_the_image():
    model = ganzoo.create_model("stylegan2", resolution=32, channels=1, **TINY)
    g = model.nets["generator"].eval()
    torch.manual_seed(3)
    mixed = _styles(model.nets, _context(model, style_mixing=1.0), 4)
    changes = (mixed[:, 1:] != mixed[:, :-1]).any(dim=2).any(dim=0).nonzero().flatten().tolist()
    assert len(changes) == 1  # one crossover layer
    single = _styles(model.nets, _context(model, style_mixing=0.0), 4)
    assert torch.equal(single, single[:, :1].expand_as(single))
    with torch.no_grad():
        a, b = (g.mapping(torch.randn(1, 8)).unsqueeze(1).expand(-1, g.num_ws, -1) for _ in range(2))
        fixed = torch.Generator().manual_seed(0)
        images = {}
        for name, ws in {"a": a, "b": b, "mix": torch.cat([a[:, :4], b[:, 4:]], dim=1)}.items():
            images[name] = g(ws=ws, generator=fixed.manual_seed(0))
    assert not torch.equal(images["mix"], images["a"]) and not torch.equal(images["mix"], images["b"])


def test_lazy_r1_runs_every_n_iterations_and_is_scaled_by_n(tmp_path):
    out = tmp_path / "run"
    config = {**TINY, "r1_every": 3, "r1_gamma": 2.0}
    Trainer("stylegan2", config, dcgan_train(steps=7, log_every=1), data="mnist-4k?n=64", out=out).fit()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "r1_penalty" in line] == [1, 4, 7]  # iterations 0, 3, 6 (0-based)
    model = ganzoo.create_model("stylegan2", resolution=32, channels=1, **config)
    images = torch.rand(4, 1, 32, 32) * 2 - 1
    loss, logs = model.plugin.r1_loss(model.nets, {"image": images}, _context(model))
    assert loss.item() == pytest.approx(0.5 * 2.0 * 3 * logs["r1_penalty"].item())
    assert [s.name for s in model.plugin.schedule(model.config)] == ["discriminator", "r1", "generator"]
    assert [s.name for s in model.plugin.schedule(ganzoo.config.replace_config(model.config, {"r1_gamma": 0}))] == [
        "discriminator",
        "generator",
    ]


def test_update_steps_that_run_every_n_iterations():
    step = UpdateStep("r1", ("discriminator",), lambda *a: None, every=4, steps=(2, None))
    assert [i for i in range(12) if step.runs_at(i)] == [2, 6, 10]
    with pytest.raises(ValueError, match="must run every 1 or more iterations"):
        UpdateStep("r1", ("discriminator",), lambda *a: None, every=0)


def test_truncation_psi_0_is_the_mean_image_and_psi_1_the_untruncated_samples(tmp_path):
    model = ganzoo.create_model("stylegan2", resolution=32, channels=1, **TINY)
    g = model.ema["generator"]
    g.mapping.w_avg.copy_(torch.randn(8))  # as training leaves it: the running mean of w
    untruncated = model.sample(4, seed=0)
    assert torch.equal(model.sample(4, seed=0, truncation=1.0), untruncated)
    mean = model.sample(4, seed=0, truncation=0.0)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        torch.randn(4, 8, generator=generator)  # (the z that psi 0 ignores)
        expected = g.eval()(ws=g.mapping.w_avg.expand(4, g.num_ws, -1), generator=generator)
    assert torch.allclose(mean, expected, atol=1e-6)
    half = model.sample(4, seed=0, truncation=0.5)
    assert (half - mean).abs().mean() < (untruncated - mean).abs().mean()  # closer to the mean image
    with pytest.raises(ganzoo.UsageError, match=r"truncation=1.5 must be in \[0, 1\]"):
        model.sample(2, truncation=1.5)


def test_the_sample_command_takes_truncation_for_stylegan2_only(tmp_path):
    from click.testing import CliRunner

    from ganzoo.cli import cli

    out = tmp_path / "run"
    Trainer("stylegan2", TINY, dcgan_train(steps=1), data="mnist-4k?n=16", out=out).fit()
    result = CliRunner().invoke(
        cli, ["sample", str(out), "--truncation", "0.7", "--n", "4", "--out", str(tmp_path / "t.png")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t.png").is_file()
    dcgan = tmp_path / "dcgan"
    Trainer("dcgan", {"g_width": 4, "d_width": 4, "latent_dim": 8}, dcgan_train(steps=1), out=dcgan).fit()
    result = CliRunner().invoke(cli, ["sample", str(dcgan), "--truncation", "0.7"])
    assert result.exit_code == 2
    assert result.output.strip() == "Error: dcgan does not support --truncation (stylegan2 and biggan do)"


def test_demodulation_normalises_every_sample_and_output_channel_whatever_the_style_scale():
    """Each (sample, output channel) of a demodulated convolution has unit variance for i.i.d. unit-variance input,
    however far the random styles spread; scaling a sample's style leaves its demodulated output unchanged."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(32, 16, 3, 8)
    with torch.no_grad():
        conv.affine.weight.mul_(3.0)  # styles ~ N(1, 9): some channels strongly up-weighted, some near 0
    x, w = torch.randn(8, 32, 32, 32), torch.randn(8, 8)
    with torch.no_grad():
        variances = conv(x, w)[:, :, 1:-1, 1:-1].var(dim=(2, 3))  # (8, 16), away from the zero padding
        assert variances.mean().item() == pytest.approx(1.0, abs=0.05)
        assert variances.min().item() > 0.75 and variances.max().item() < 1.25
        scaled = ModulatedConv2d(32, 16, 3, 8)
        scaled.load_state_dict(conv.state_dict())
        scaled.affine.weight.mul_(5.0)
        scaled.affine.bias.mul_(5.0)  # every style x 5
        assert torch.allclose(scaled(x, w), conv(x, w), atol=1e-5)
        plain, plain_scaled = ModulatedConv2d(32, 16, 3, 8, demodulate=False), ModulatedConv2d(32, 16, 3, 8, False)
        plain.load_state_dict(conv.state_dict())
        plain_scaled.load_state_dict(scaled.state_dict())
        assert torch.allclose(plain_scaled(x, w), 5 * plain(x, w), atol=1e-4)  # without it, the output scales


def test_the_r1_update_of_the_schedule_runs_at_multiples_of_r1_every():
    model = ganzoo.create_model("stylegan2", resolution=32, channels=1, **TINY, r1_every=4)
    schedule = {s.name: s for s in model.plugin.schedule(model.config)}
    assert schedule["r1"].every == 4 and schedule["r1"].networks == ("discriminator",)
    assert [i for i in range(13) if schedule["r1"].runs_at(i)] == [0, 4, 8, 12]
    assert all(schedule[name].runs_at(i) for name in ("discriminator", "generator") for i in range(13))


def test_minibatch_stddev_appends_the_mean_feature_std_over_strided_groups():
    from ganzoo_plugins.stylegan2.networks import MinibatchStdDev

    layer = MinibatchStdDev(group=4)
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4, requires_grad=True)
    out = layer(x)
    assert out.shape == (8, 4, 4, 4) and torch.equal(out[:, :3], x)
    for m in range(2):  # 8 samples in groups of 4, strided as in StyleGAN2: samples m, m + 2, m + 4, m + 6
        expected = (x[m::2].var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(out[m::2, 3], expected.expand(4, 4, 4), atol=1e-6)
    assert not torch.allclose(out[0, 3], out[1, 3])
    out[:, 3].sum().backward()  # D's gradient reaches every sample through the statistic
    assert (x.grad.abs().flatten(1).sum(dim=1) > 0).all()
    with torch.no_grad():
        collapsed = layer(x[:2].repeat(4, 1, 1, 1))  # every group holds one image four times: no variety
        assert collapsed[:, 3].max().item() < 1e-3
        six = torch.randn(6, 3, 4, 4)  # the group shrinks to a divisor of the batch: 3, so groups m, m + 2, m + 4
        expected = torch.stack([(six[m::2].var(dim=0, unbiased=False) + 1e-8).sqrt().mean() for m in range(2)])
        assert torch.allclose(layer(six)[:, 3, 0, 0], expected.repeat(3), atol=1e-6)
        assert torch.allclose(layer(torch.randn(5, 3, 4, 4))[:, 3], torch.tensor(1e-4))  # groups of 1: no spread
        assert layer(torch.randn(8, 3, 4, 4).bfloat16()).dtype == torch.bfloat16


def test_equalised_learning_rate_scales_weights_at_run_time():
    """Weights are stored N(0, 1) / lr_mul and scaled by lr_mul / sqrt(fan_in) in the forward pass: unit-variance
    outputs at initialisation for any fan-in, and one Adam step changes every layer's effective weights by the
    same fraction of their scale, lr * lr_mul, whatever the fan-in (a plain layer's fraction grows with it)."""
    from torch import nn

    from ganzoo_plugins.stylegan2.networks import EqualConv2d, EqualLinear

    torch.manual_seed(0)
    lr = 1e-3
    for fan_in, lr_mul in [(16, 1.0), (1024, 1.0), (256, 0.01)]:
        layer = EqualLinear(fan_in, 64, lr_mul=lr_mul, bias_init=0.5)
        assert layer.weight.std().item() == pytest.approx(1 / lr_mul, rel=0.1)
        assert torch.allclose(layer.bias * layer.lr_mul, torch.full((64,), 0.5))
        x = torch.randn(2048, fan_in)
        y = layer(x)
        assert torch.allclose(y, x @ (layer.weight * lr_mul / fan_in**0.5).t() + 0.5, atol=1e-4)
        assert (y - 0.5).var().item() == pytest.approx(1.0, rel=0.1)
        before = (layer.weight * layer.scale).detach().clone()
        optimizer = torch.optim.Adam(layer.parameters(), lr=lr)
        y.square().mean().backward()
        optimizer.step()
        change = ((layer.weight * layer.scale).detach() - before).abs().mean() / before.std()
        assert change.item() == pytest.approx(lr * lr_mul, rel=0.1)
    plain = [nn.Linear(fan_in, 64) for fan_in in (16, 1024)]  # PyTorch's init: std ~ 1 / sqrt(3 fan_in)
    changes = []
    for layer in plain:
        before = layer.weight.detach().clone()
        optimizer = torch.optim.Adam(layer.parameters(), lr=lr)
        layer(torch.randn(2048, layer.in_features)).square().mean().backward()
        optimizer.step()
        changes.append(((layer.weight.detach() - before).abs().mean() / before.std()).item())
    assert changes[1] > 5 * changes[0]  # sqrt(1024 / 16) = 8 times as fast for the wide layer
    conv = EqualConv2d(32, 16, 3)
    assert conv.scale == pytest.approx(1 / (32 * 9) ** 0.5)
    x = torch.randn(4, 32, 16, 16)
    assert torch.allclose(conv(x), torch.nn.functional.conv2d(x, conv.weight * conv.scale, conv.bias, padding=1))
    assert conv(x)[:, :, 1:-1, 1:-1].var().item() == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [False, True])
def test_the_fused_and_non_fused_modulated_convolutions_are_the_same_map(demodulate, up):
    """One grouped convolution with per-sample weights, or the input scaled by the style and the output by the
    demodulation coefficients: the same outputs and gradients in fp32, and close under bf16 autocast."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, 3, 4, demodulate=demodulate, up=up)
    x, w = torch.randn(3, 6, 8, 8, requires_grad=True), torch.randn(3, 4)
    results = {}
    for fused in (True, False):
        conv.fused = fused
        conv.zero_grad()
        x.grad = None
        out = conv(x, w)
        out.square().mean().backward()
        results[fused] = (out.detach(), x.grad.clone(), conv.weight.grad.clone(), conv.affine.weight.grad.clone())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            results[fused, "bf16"] = conv(x, w).float().detach()
    for fused_value, plain_value in zip(results[True], results[False], strict=True):
        assert torch.allclose(fused_value, plain_value, rtol=1e-4, atol=1e-5)
    assert torch.allclose(results[True, "bf16"], results[False, "bf16"], rtol=0.05, atol=0.05)


def test_path_length_regularisation_is_a_lazy_generator_update_that_tracks_the_mean_length(tmp_path):
    """pl_weight > 0 adds a generator update every pl_every iterations (none at 0); in training it logs its
    penalty and moves the generator's running mean of the path lengths away from 0."""
    plugin = ganzoo.get_plugin("stylegan2")
    config = plugin.resolve_config(
        plugin.Config(**TINY, pl_weight=2.0, pl_every=3), DataInfo(channels=1, resolution=32)
    )
    (update,) = [u for u in plugin.schedule(config) if u.name == "path_length"]
    assert update.networks == ("generator",) and update.every == 3 and not update.needs_data
    assert [s for s in range(7) if update.runs_at(s)] == [0, 3, 6]
    assert "path_length" not in [u.name for u in plugin.schedule(dataclasses.replace(config, pl_weight=0.0))]
    train = dcgan_train(steps=4, log_every=1)
    result = Trainer(
        "stylegan2", {**TINY, "pl_weight": 2.0, "pl_every": 3}, train, "mnist-4k?n=64", tmp_path / "r"
    ).fit()
    lines = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [("pl_penalty" in line) for line in lines] == [True, False, False, True]
    assert result.model.nets["generator"].pl_mean > 0
