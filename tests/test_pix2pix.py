"""The pix2pix plugin: U-Net and PatchGAN shapes for every task and size, the skip connections carrying the
source's fine detail, dropout in training only, the discriminator scoring (source, image) pairs, the losses by hand,
the conformance kit, and a short training run through the engine (L1 falls, `ganzoo sample` grids of input, output
and target, `ganzoo translate` one way only)."""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from torch import nn

import ganzoo
from ganzoo import DataInfo, Trainer, UsageError
from ganzoo.cli import cli
from ganzoo.data.degrade import luma
from ganzoo.errors import PluginError
from ganzoo.testing import CHECKS, conformance_tests
from ganzoo_plugins.pix2pix import Pix2PixConfig, plugin
from ganzoo_plugins.pix2pix.networks import (
    PatchDiscriminator,
    UNetGenerator,
    default_depth,
    patch_output_size,
    receptive_field,
)

TINY = {"g_width": 4, "d_width": 4, "resolution": 32}
SOURCE_CHANNELS = {"denoise": 3, "colorize": 1, "paired": 3}
TARGET_CHANNELS = {"denoise": 3, "colorize": 3, "paired": 1}  # pairs from disk: an RGB source of a grey target


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: the networks are tiny, and on a shared 2-core machine two threads that wait on each
    other make every convolution many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def paired_info(task: str, resolution: int | None = None) -> DataInfo:
    extras = {"paired": True, "task": task, "scale": 1, "source_channels": SOURCE_CHANNELS[task]}
    return DataInfo("image-to-image", channels=TARGET_CHANNELS[task], resolution=resolution, extras=extras)


def quiet(**settings):
    base = {
        "steps": 2,
        "batch_size": 4,
        "device": "cpu",
        "precision": "fp32",
        "progress": False,
        "tensorboard": False,
        "log_every": 1,
        "sample_every": 1000,
        "checkpoint_every": 1000,
    }
    return {**base, **settings}


# ------------------------------------------------------------------------------------------------ networks


@pytest.mark.parametrize("task", ["denoise", "colorize", "paired"])
@pytest.mark.parametrize("resolution", [32, 64, 256])
def test_shapes_for_every_task_and_size(task, resolution):
    model = ganzoo.create_model("pix2pix", data_info=paired_info(task, resolution), g_width=2, d_width=2)
    config = model.config
    assert (config.source_channels, config.channels) == (SOURCE_CHANNELS[task], TARGET_CHANNELS[task])
    assert config.d_layers == (3 if resolution >= 128 else 2)
    g, d = model.nets["generator"], model.nets["discriminator"]
    levels = int(math.log2(resolution))  # down to 1x1: 8 levels at 256 px, 6 at 64, 5 at 32
    assert len(g.encoder) == levels and len(g.decoder) == levels - 1
    innermost = []
    g.encoder[-1].register_forward_hook(lambda module, args, out: innermost.append(out.shape[-2:]))
    source = torch.rand(2, config.source_channels, resolution, resolution) * 2 - 1
    with torch.no_grad():
        output = g.eval()(source)
        logits = d(torch.cat([source, output], dim=1))
    assert innermost == [(1, 1)]
    assert output.shape == (2, config.channels, resolution, resolution) and output.abs().max() <= 1
    side = patch_output_size(resolution, config.d_layers)
    assert logits.shape == (2, 1, side, side) and side > 1
    assert d.blocks[0][0].in_channels == config.source_channels + config.channels


def test_depth_and_patch_size_follow_the_resolution():
    assert [default_depth(r) for r in (256, 128, 64, 32, 28)] == [8, 7, 6, 5, 2]
    assert [receptive_field(layers) for layers in (1, 2, 3)] == [16, 34, 70]
    for resolution, layers in ((32, 2), (64, 2), (128, 3), (256, 3)):
        config = plugin.resolve_config(Pix2PixConfig(resolution=resolution), paired_info("colorize"))
        assert config.d_layers == layers
    config = plugin.resolve_config(Pix2PixConfig(), paired_info("colorize"))
    assert (config.resolution, config.channels, config.source_channels) == (64, 3, 1)
    model = ganzoo.create_model("pix2pix", data_info=paired_info("denoise", 28), g_width=2, d_width=2)
    assert model.config.resolution == 28 and len(model.nets["generator"].encoder) == 2  # a 7x7 bottleneck


@pytest.mark.parametrize("layers", [2, 3])
def test_patchgan_receptive_field(layers):
    d = PatchDiscriminator(2, 2, layers, norm="none")  # a norm's statistics span the image
    x = torch.randn(1, 2, 160, 160, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    seen = x.grad[0].abs().sum(dim=0)
    rows, cols = seen.sum(dim=1).nonzero().flatten(), seen.sum(dim=0).nonzero().flatten()
    expected = receptive_field(layers)
    assert int(rows.max() - rows.min()) + 1 == int(cols.max() - cols.min()) + 1 == expected == (34, 70)[layers - 2]


def test_generator_follows_the_paper():
    g = UNetGenerator(1, 3, 256, 8)
    convs = [block[0] for block in g.encoder]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 64, 64, 64, 64]  # C64-C128-C256-C512-C512-...
    assert all(isinstance(block[2], nn.LeakyReLU) and block[2].negative_slope == 0.2 for block in g.encoder)
    assert all(isinstance(block[-1], nn.ReLU) for block in g.decoder)
    assert isinstance(g.output[-1], nn.Tanh) and g.output[0].out_channels == 3
    # U-Net decoder inputs: each level's output concatenated with the encoder's map of its size
    assert [block[0].in_channels for block in g.decoder] == [64, 128, 128, 128, 128, 64, 32]
    assert g.output[0].in_channels == 16
    plain = UNetGenerator(1, 3, 256, 8, skips=False)  # the paper's encoder-decoder baseline
    assert [block[0].in_channels for block in plain.decoder] == [64, 64, 64, 64, 64, 32, 16]


def _one_pixel_change(g: nn.Module) -> torch.Tensor:
    """|G(x') - G(x)| summed over channels and a batch of two, where x' is x with one pixel (13, 18) brighter."""
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    changed = x.clone()
    changed[:, :, 13, 18] += 0.5
    with torch.no_grad():
        return (g(changed) - g(x)).abs().sum(dim=(0, 1))


def _zero_output(module: nn.Module) -> None:
    module.register_forward_hook(lambda m, args, out: torch.zeros_like(out))


@pytest.mark.parametrize("skips", [True, False])
def test_skip_connections_carry_the_source_fine_detail(skips):
    torch.manual_seed(0)
    # with nothing passing through the bottleneck, only the skips carry the source to the output
    g = UNetGenerator(1, 1, 32, 4, skips=skips).eval()
    _zero_output(g.encoder[-1])
    change = _one_pixel_change(g)
    assert (change.sum() > 1e-3) if skips else torch.equal(change, torch.zeros_like(change))
    # and the outermost skip alone (every decoder level's own output cut) is a full-resolution path: a change of
    # one source pixel moves exactly the output pixels within the two 4x4 convolutions' reach of it
    g = UNetGenerator(1, 1, 32, 4, skips=skips).eval()
    _zero_output(g.decoder[-1])
    change = _one_pixel_change(g)
    if not skips:
        assert torch.equal(change, torch.zeros_like(change))
        return
    window = torch.zeros(32, 32, dtype=torch.bool)
    window[11:17, 15:21] = True
    assert bool((change[window] > 0).all()) and torch.equal(change[~window], torch.zeros_like(change[~window]))


def test_keep_luma_keeps_the_source_luma_and_trains_the_colour():
    torch.manual_seed(0)
    g = UNetGenerator(1, 3, 32, 4, keep_luma=True).eval()  # eval: no dropout, so two networks can be compared
    source = torch.rand(2, 1, 32, 32) * 1.6 - 0.8
    image = g(source)
    inside = (image.abs() < 1).all(1)  # pixels the final clamp to [-1, 1] left alone: nearly all
    assert inside.float().mean() > 0.99 and image.abs().max() <= 1
    torch.testing.assert_close(luma(image)[:, 0][inside], source[:, 0][inside], atol=1e-6, rtol=0)
    free = UNetGenerator(1, 3, 32, 4).eval()
    free.load_state_dict(g.state_dict())  # no parameters of its own: the same network, colour differences kept
    plain = free(source)
    colour = torch.tensor([[-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])  # ITU-R 601 Cb, Cr

    def chroma(images: torch.Tensor) -> torch.Tensor:
        return torch.einsum("kc,nchw->nhwk", colour, images)[inside]

    torch.testing.assert_close(chroma(image), chroma(plain), atol=1e-6, rtol=0)
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    (image - target).abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters() if p.dim() > 1)
    # on by default for colorization only, and refused where the source is not a luma
    assert plugin.resolve_config(Pix2PixConfig(), paired_info("colorize")).keep_luma is True
    assert plugin.resolve_config(Pix2PixConfig(), paired_info("denoise")).keep_luma is False
    assert plugin.resolve_config(Pix2PixConfig(keep_luma=False), paired_info("colorize")).keep_luma is False
    model = ganzoo.create_model("pix2pix", data_info=paired_info("colorize", 32), g_width=4, d_width=4)
    assert model.nets["generator"].keep_luma
    with pytest.raises(UsageError, match=r"keep_luma colours a one-channel luma source in RGB; .* 3 to 3 channels"):
        ganzoo.create_model("pix2pix", data_info=paired_info("denoise", 32), keep_luma=True)


def test_dropout_is_active_in_training_and_off_in_eval():
    g = UNetGenerator(1, 3, 64, 4)
    dropouts = [m for m in g.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 3 and all(m.p == 0.5 for m in dropouts)
    assert all(isinstance(block[2], nn.Dropout) for block in g.decoder[:3])  # the innermost three levels
    assert not any(isinstance(m, nn.Dropout) for block in g.decoder[3:] for m in block)
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        assert not torch.equal(g.train()(x), g(x))  # the paper's noise: two draws differ
        assert torch.equal(g.eval()(x), g(x))
    assert not any(isinstance(m, nn.Dropout) for m in UNetGenerator(1, 3, 64, 4, dropout=0).modules())
    assert len([m for m in UNetGenerator(1, 3, 32, 4, dropout_layers=1).modules() if isinstance(m, nn.Dropout)]) == 1
    model = ganzoo.create_model("pix2pix", data_info=paired_info("colorize", 32), g_width=4, d_width=4)
    model.nets["generator"].train()
    source = torch.rand(3, 1, 32, 32) * 2 - 1
    assert torch.equal(model.enhance(source), model.enhance(source))  # enhance runs in eval mode
    assert model.nets["generator"].training  # and puts the mode back


# ------------------------------------------------------------------------------------------------ losses


class Affine(nn.Module):
    def __init__(self, scale: float, shift: float) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class RecordingD(nn.Module):
    """Logit 1.0 for every pair, recording the pairs it is called on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[torch.Tensor] = []

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        self.calls.append(pair.detach().clone())
        return torch.ones(len(pair), 1, 2, 2) + 0 * pair.mean()


def _nets_and_batch():
    nets = {"generator": Affine(0.5, 0.1), "discriminator": RecordingD()}
    batch = {"source": torch.full((2, 1, 4, 4), 0.4), "target": torch.full((2, 1, 4, 4), -0.2)}
    return nets, batch


def _ctx(**config):
    return types.SimpleNamespace(config=Pix2PixConfig(**config))


def test_the_discriminator_scores_source_and_image_together():
    nets, batch = _nets_and_batch()
    plugin.d_loss(nets, batch, _ctx())
    real, fake = nets["discriminator"].calls
    assert torch.equal(real, torch.cat([batch["source"], batch["target"]], dim=1))
    assert torch.equal(fake, torch.cat([batch["source"], batch["source"] * 0.5 + 0.1], dim=1))
    plugin.g_loss(nets, batch, _ctx())
    assert torch.equal(nets["discriminator"].calls[-1], fake)
    # a PatchGAN's score of one image depends on the source it is paired with
    d = PatchDiscriminator(2, 4, 2).eval()
    image, sources = torch.rand(1, 1, 32, 32), torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        scores = d(torch.cat([sources, image.expand(2, -1, -1, -1)], dim=1))
    assert not torch.allclose(scores[0], scores[1])


@pytest.mark.parametrize("loss", ["non-saturating", "least-squares"])
def test_losses_by_hand(loss):
    nets, batch = _nets_and_batch()
    d_value, d_logs = plugin.d_loss(nets, batch, _ctx(loss=loss))
    g_value, g_logs = plugin.g_loss(nets, batch, _ctx(loss=loss))
    # D's logits are 1 on real and fake pairs; G(0.4) = 0.3, |0.3 - (-0.2)| = 0.5
    if loss == "non-saturating":  # D: half of -log sigmoid(1) - log(1 - sigmoid(1)); G: -log sigmoid(1)
        expected_d = 0.5 * (F.softplus(torch.tensor(-1.0)) + F.softplus(torch.tensor(1.0)))
        expected_adversarial = F.softplus(torch.tensor(-1.0))
    else:  # D: half of (1 - 1)^2 + 1^2; G: (1 - 1)^2
        expected_d, expected_adversarial = torch.tensor(0.5), torch.tensor(0.0)
    assert float(d_value) == pytest.approx(float(expected_d))
    assert float(d_logs["d_real"]) == float(d_logs["d_fake"]) == 1.0
    assert float(g_logs["l1"]) == pytest.approx(0.5)
    assert float(g_logs["g_adversarial"]) == pytest.approx(float(expected_adversarial))
    assert float(g_value) == pytest.approx(float(expected_adversarial) + 100 * 0.5)
    g_value, g_logs = plugin.g_loss(nets, batch, _ctx(loss=loss, l1_weight=10))
    assert float(g_value) == pytest.approx(float(expected_adversarial) + 10 * 0.5)


# ------------------------------------------------------------------------------------------------ config and data


def test_plugin_facts():
    p = ganzoo.get_plugin("pix2pix")
    assert p is plugin and p.tasks == ("paired", "denoise", "colorize") and p.default_data == "photos?task=colorize"
    defaults = Pix2PixConfig()
    assert (defaults.l1_weight, defaults.lr_g, defaults.lr_d, defaults.betas) == (100.0, 1e-3, 1e-3, (0.5, 0.999))
    assert plugin.optimizers(defaults)["discriminator"].lr == 1e-3
    result = CliRunner().invoke(cli, ["info", "pix2pix"])
    assert result.exit_code == 0, result.output
    assert "Denoising and colorization are pix2pix on the denoise and colorize tasks" in result.output
    assert "l1_weight" in result.output


def test_other_data_and_bad_configs_are_refused_in_one_line(tmp_path):
    for spec, expected in (("photos?task=sr4x", "not task=sr4x"), ("mnist-4k", "not image data")):
        with pytest.raises(UsageError, match=expected) as error:
            Trainer("pix2pix", TINY, quiet(steps=1), data=spec, out=tmp_path / "r").fit()
        assert "pix2pix learns pairs of paired, denoise, colorize" in str(error.value)
        assert "\n" not in str(error.value)
    info = paired_info("denoise", 28)
    with pytest.raises(UsageError, match=r"resolution=28 does not halve evenly 3 times .*use depth=2 or less"):
        ganzoo.create_model("pix2pix", data_info=info, depth=3)
    with pytest.raises(UsageError, match=r"resolution=27 .* use an even resolution"):
        ganzoo.create_model("pix2pix", data_info=info, resolution=27)
    with pytest.raises(UsageError, match="d_layers=5 is too deep for 28 px"):
        ganzoo.create_model("pix2pix", data_info=info, d_layers=5)
    with pytest.raises(UsageError, match=r"dropout=1\.0 must be below 1"):
        ganzoo.create_model("pix2pix", data_info=info, dropout=1.0)


def test_ada_refuses_in_one_line_and_diffaugment_trains(tmp_path):
    data = "mnist-4k?n=16&task=denoise"
    with pytest.raises(PluginError, match=r"no discriminator was called on the real batch itself") as error:
        Trainer("pix2pix", TINY, quiet(augment="ada", ada_interval=1), data=data, out=tmp_path / "ada").fit()
    assert "\n" not in str(error.value)
    result = Trainer("pix2pix", TINY, quiet(diffaugment="translation,cutout"), data=data, out=tmp_path / "d").fit()
    assert result.step == 2


# ------------------------------------------------------------------------------------------------ conformance

CONFORMANCE_DATA = "mnist-4k?n=64&task=denoise"
test_conformance = conformance_tests("pix2pix", CONFORMANCE_DATA, TINY, checks=[c for c in CHECKS if c != "ddp"])
test_conformance_ddp = pytest.mark.slow(
    conformance_tests("pix2pix", CONFORMANCE_DATA, TINY, checks=["ddp"])
)  # torchrun


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def colorize_run(tmp_path_factory):
    """A short colorization run on the embedded photos at 32 px (the plugin's default data), at 10x the paper's
    learning rate (2x the default) so that 60 iterations show L1 falling; the generator predicts all three channels
    (keep_luma off), since one that keeps the luma starts near its final L1."""
    out = tmp_path_factory.mktemp("pix2pix") / "run"
    config = {"g_width": 8, "d_width": 8, "resolution": 32, "lr_g": 2e-3, "lr_d": 2e-3, "keep_luma": False}
    train = quiet(steps=60, batch_size=8, log_every=10, sample_every=60, checkpoint_every=60, sample_grid=12)
    Trainer("pix2pix", config, train, out=out).fit()
    return out


def test_training_lowers_the_l1_loss(colorize_run):
    saved = json.loads((colorize_run / "config.json").read_text())
    assert saved["data"] == "photos?task=colorize"
    lines = [json.loads(line) for line in (colorize_run / "metrics.jsonl").read_text().splitlines()]
    l1 = [line["l1"] for line in lines]
    assert len(l1) == 6 and l1[-1] < 0.6 * l1[0], l1
    assert {"loss/discriminator", "loss/generator", "d_real", "d_fake", "g_adversarial"} <= set(lines[-1])


def test_samples_are_rows_of_input_output_target(colorize_run, tmp_path):
    model = ganzoo.load_pretrained(colorize_run)
    pairs = model.nets["examples"].pairs()
    samples = model.sample(9, seed=0)
    assert samples.shape == (9, 3, 32, 32)
    for shown, output, target in samples.view(3, 3, 3, 32, 32):
        index = next(i for i, t in enumerate(pairs["target"]) if torch.equal(t, target))
        assert torch.equal(shown, pairs["source"][index].expand(3, -1, -1))  # grey input shown as RGB
        assert torch.allclose(output, model.enhance(pairs["source"][index : index + 1])[0], atol=1e-6)
    result = CliRunner().invoke(cli, ["sample", str(colorize_run), "--n", "12", "--out", str(tmp_path / "g.png")])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "g.png") as grid:
        assert grid.size == (3 * 34 + 2, 4 * 34 + 2)  # four rows of input, output, target with 2 px padding
    with Image.open(colorize_run / "samples" / "step-000060.png") as grid:
        assert grid.size == (3 * 34 + 2, 4 * 34 + 2)


def test_translate_a2b_colorizes_files_and_refuses_b2a(colorize_run, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(inputs / "colour.png")
    Image.fromarray(pixels[:, :, 0], "L").resize((48, 40)).save(inputs / "grey.png")
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["translate", str(colorize_run), "--input", str(inputs), "--direction", "a2b", "--out", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "translated 2 image(s)" in result.output
    with Image.open(out / "colour.png") as colour, Image.open(out / "grey.png") as grey:
        assert (colour.mode, colour.size, grey.mode, grey.size) == ("RGB", (32, 32), "RGB", (48, 40))
        got = torch.from_numpy(np.asarray(colour, dtype=np.float32))
    model = ganzoo.load_pretrained(colorize_run)
    source = luma(torch.from_numpy(pixels).permute(2, 0, 1)[None].float().div(127.5).sub(1))
    expected = model.enhance(source)[0].add(1).mul(127.5).round().permute(1, 2, 0)
    assert (got - expected).abs().max() <= 1  # the file's luma, colorized (same size: the resizes are no-ops)
    refused = runner.invoke(cli, [*args[:-4], "--direction", "b2a", "--out", str(tmp_path / "b2a")])
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert refused.output.strip() == "Error: pix2pix translates one way (a2b, source to target), not b2a"
    # ganzoo enhance: images of any size by tiles, read as the source's channels (luma, as PIL's "L" computes it)
    enhanced = runner.invoke(cli, ["enhance", str(colorize_run), "--input", str(inputs), "--out", str(tmp_path / "e")])
    assert enhanced.exit_code == 0, enhanced.output
    with Image.open(tmp_path / "e" / "grey.png") as grey:
        assert (grey.mode, grey.size) == ("RGB", (48, 40))


# ------------------------------------------------------------------------------------------------ benchmark


def test_benchmark_smoke_mode(tmp_path):
    """benchmarks/pix2pix.py --smoke: a tiny model trains a few iterations per task and is scored beside the input;
    the rows are recorded and render as a RESULTS.md table."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "pix2pix.py"
    spec = importlib.util.spec_from_file_location("pix2pix_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    record = tmp_path / "rows.jsonl"
    rows = benchmark.main(["--smoke", "--record", str(record)])
    assert [(row["task"], row["steps"], row["n"], row["smoke"]) for row in rows] == [
        ("colorize", 3, 8, True),
        ("denoise", 3, 8, True),
    ]
    for row in rows:
        assert all(math.isfinite(row[key]) for key in ("psnr", "ssim", "input_psnr", "input_ssim"))
    assert rows[0]["input_ssim"] > rows[1]["input_ssim"]  # grey keeps the structure; noise does not
    assert [json.loads(line)["task"] for line in record.read_text().splitlines()] == ["colorize", "denoise"]
    table = benchmark.render(rows)
    assert f"| colorize | {plugin.version} | g_width=4, d_width=4, resolution=32 | 3 x 16 | 0 |" in table
    assert "| PSNR chelsea | PSNR gravel |" in table
    assert rows[0]["input_psnr_gravel"] == 100  # the grey texture's luma is the target itself
