"""The paired image-to-image kit (ganzoo/kit/paired.py) on a toy plugin: it trains through the engine on pairs made
from the digits, keeps its first pairs for sample grids (input, output, target per row), refuses data of another
task in one line, and an inpainting model's outputs keep the known pixels bit-exact."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import ganzoo
from ganzoo import UsageError, option
from ganzoo.kit.paired import EXAMPLES, PairedImageGAN
from ganzoo.kit.pairs import composite
from ganzoo.losses import discriminator_loss, generator_loss

QUIET = {"steps": 2, "batch_size": 8, "progress": False, "tensorboard": False, "device": "cpu", "sample_grid": 9}


@dataclasses.dataclass
class ToyPairedConfig:
    resolution: int | None = option(None, "target size")
    channels: int | None = option(None, "target channels", min=1)
    source_channels: int | None = option(None, "source channels", min=1)
    scale: int | None = option(None, "super-resolution factor")
    lr: float = option(1e-3, "Adam learning rate", min=0)
    betas: tuple[float, float] = option((0.5, 0.999), "Adam betas")


class ToyGenerator(nn.Module):
    def __init__(self, source_channels: int, channels: int, scale: int, masked: bool) -> None:
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(source_channels + masked, channels, 3, padding=1)

    def forward(self, source: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = source if mask is None else torch.cat([source, mask], dim=1)
        return torch.tanh(nn.functional.interpolate(self.conv(x), scale_factor=self.scale))


class ToyPaired(PairedImageGAN):
    name = "toy-paired"
    Config = ToyPairedConfig
    tasks = ("denoise", "sr2x", "inpaint")

    def build_networks(self, config, data_info):
        masked = data_info.extras.get("task") == "inpaint"
        d = nn.Sequential(nn.Conv2d(config.channels, 2, 3), nn.Flatten(), nn.LazyLinear(1))
        d(torch.zeros(1, config.channels, config.resolution, config.resolution))
        return {
            "generator": ToyGenerator(config.source_channels, config.channels, config.scale, masked),
            "discriminator": d,
        }

    def d_loss(self, nets, batch, ctx):
        with torch.no_grad():
            fake = self.generate(nets, batch["source"], batch.get("mask"))
        d = nets["discriminator"]
        return discriminator_loss("non-saturating", d(batch["target"]), d(fake)), {}

    def g_loss(self, nets, batch, ctx):
        fake = self.generate(nets, batch["source"], batch.get("mask"))
        l1 = (fake - batch["target"]).abs().mean()
        return generator_loss("non-saturating", nets["discriminator"](fake)) + 10 * l1, {"l1": l1.detach()}


@pytest.mark.parametrize(("task", "source_size"), [("denoise", 28), ("sr2x", 14), ("inpaint", 28)])
def test_trains_on_pairs_and_samples_input_output_target_rows(task, source_size, tmp_path):
    result = ganzoo.Trainer(ToyPaired(), train=QUIET, data=f"mnist-4k?n=64&task={task}", out=tmp_path / "r").fit()
    model = result.model
    assert model.config.scale == (2 if task == "sr2x" else 1) and model.config.resolution == 28
    assert int(model.nets["examples"].count) == EXAMPLES
    grid, per_row = model.sample_grid(9, seed=0)
    assert per_row == 3 and grid.shape == (9, 1, 28, 28)
    pairs = model.nets["examples"].pairs()
    assert pairs["source"].shape == (EXAMPLES, 1, source_size, source_size)
    outputs = model.enhance(pairs["source"], pairs.get("mask"))
    assert outputs.shape == (EXAMPLES, 1, 28, 28) and outputs.abs().max() <= 1
    assert ("mask" in pairs) == (task == "inpaint")
    if task == "inpaint":  # the known pixels come back exactly
        known = pairs["mask"].expand_as(outputs) == 0
        assert torch.equal(outputs[known], pairs["source"].clamp(-1, 1)[known])


def test_composite_keeps_the_known_pixels_bit_exact():
    source, output = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    mixed = composite(output, source, mask)
    assert torch.equal(mixed[mask.expand_as(mixed) == 0], source[mask.expand_as(source) == 0])
    assert torch.equal(mixed[mask.expand_as(mixed) == 1], output[mask.expand_as(output) == 1])
    assert composite(output, source, None) is output


def test_data_of_another_task_or_kind_is_refused_in_one_line(tmp_path):
    for spec, expected in (("photos?task=colorize", "not task=colorize"), ("mnist-4k", "not image data")):
        with pytest.raises(UsageError, match=expected) as error:
            ganzoo.Trainer(ToyPaired(), train=QUIET, data=spec, out=tmp_path / "r").fit()
        assert "\n" not in str(error.value) and "toy-paired learns pairs of denoise, sr2x, inpaint" in str(error.value)


def test_a_model_that_is_not_paired_does_not_enhance():
    model = ganzoo.create_model("dcgan", g_width=4, d_width=4, latent_dim=4)
    with pytest.raises(UsageError, match="dcgan does not enhance images"):
        model.enhance(torch.zeros(1, 1, 28, 28))


def test_evaluate_scores_outputs_against_the_held_out_targets(tmp_path):
    """`ganzoo eval` on a paired model: PSNR and SSIM by default (the means of the per-pair values), FID and the
    digits classifier's accuracy on the outputs when asked; the CLI prints them."""
    from click.testing import CliRunner

    from ganzoo.cli import cli
    from ganzoo.data import resolve_data
    from ganzoo.metrics.evaluation import evaluate
    from ganzoo.metrics.paired import psnr

    result = ganzoo.Trainer(ToyPaired(), train=QUIET, data="mnist-4k?n=64&task=sr2x", out=tmp_path / "r").fit()
    test = "mnist-4k?split=test&task=sr2x"
    scores = evaluate(result.model, test, "psnr,ssim,fid,accuracy", "digits", n=40, batch_size=16)
    pairs = resolve_data(test).load(resolution=28, channels=1).__getitems__(list(range(40)))
    expected = psnr(result.model.enhance(pairs["source"]), pairs["target"]).mean().item()
    assert scores["psnr"] == pytest.approx(expected, rel=1e-5) and 0 < scores["ssim"] < 1
    assert scores["n"] == 40 and scores["fid"] > 0 and 0 <= scores["accuracy"] <= 1
    with pytest.raises(UsageError, match="not a metric for toy-paired"):
        evaluate(result.model, test, "bleu")
    ganzoo.register(ToyPaired(), replace=True)  # the CLI loads the run by the plugin's name
    try:
        shown = CliRunner().invoke(cli, ["eval", str(tmp_path / "r"), "--data", test, "--n", "20"])
    finally:
        ganzoo.unregister("toy-paired")
    assert shown.exit_code == 0, shown.output
    assert shown.output.split()[0] == "psnr" and "ssim" in shown.output and "fid" not in shown.output


def test_sources_follow_the_models_channels_except_for_colorization():
    """The data converts sources to the model's channels, so grey models of colour photos get grey sources; a
    colorization model's source is its one luma channel."""
    plugin = ToyPaired()
    colour = {"paired": True, "scale": 2, "source_channels": 3}
    for task, expected in (("sr2x", 1), ("colorize", 1)):
        info = ganzoo.DataInfo(modality="image-to-image", channels=3, resolution=28, extras={**colour, "task": task})
        plugin.tasks = (task,)
        config = plugin.resolve_config(ToyPairedConfig(channels=1), info)
        assert config.source_channels == expected
    config = plugin.resolve_config(ToyPairedConfig(), info)
    assert (config.channels, config.source_channels) == (3, 1)
