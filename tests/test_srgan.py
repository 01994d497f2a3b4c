"""srgan (ESRGAN-style super-resolution on the paired kit): network shapes at x2 and x4, the RRDB's residual
scaling, the two-phase schedule (L1 only, then RaGAN + L1 + feature matching), feature matching, the optional VGG
perceptual loss from a local safetensors file, and the conformance kit."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import ganzoo
from ganzoo import UsageError
from ganzoo.data import resolve_data
from ganzoo.kit.pairs import clamp_straight_through
from ganzoo.losses import feature_matching
from ganzoo.testing import conformance_tests
from ganzoo_plugins.srgan import SRGANConfig, plugin
from ganzoo_plugins.srgan.networks import (
    RRDB,
    VGG_LAYERS,
    DenseBlock,
    RRDBGenerator,
    VGGDiscriminator,
    vgg19_features,
)

TINY = {"blocks": 1, "features": 8, "growth": 4, "d_width": 4, "d_max_width": 8, "pretrain_steps": 1}
DATA = "mnist-4k?n=64&task=sr4x"
QUIET = {"batch_size": 4, "progress": False, "tensorboard": False, "device": "cpu", "precision": "fp32"}
QUIET.update(checkpoint_every=10**6, sample_every=10**6, log_every=1, sample_grid=3)

test_conformance = conformance_tests("srgan", DATA, TINY)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these networks are tiny, and on a shared 2-core machine two threads that wait on
    each other make every convolution many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("scale", [2, 4])
def test_generator_and_discriminator_shapes(resolution, scale):
    generator = RRDBGenerator(3, 3, scale, blocks=1, features=8, growth=4)
    assert len(generator.upsample) == {2: 1, 4: 2}[scale]  # one x2 pixel-shuffle stage per factor of 2
    source = torch.rand(2, 3, resolution // scale, resolution // scale) * 2 - 1
    output = generator(source)
    assert output.shape == (2, 3, resolution, resolution) and output.abs().max() <= 1
    d = VGGDiscriminator(3, resolution, width=4, max_width=8)
    logits, features = d(output, features=True)
    assert logits.shape == (2, 1) and len(features) == len(d.blocks) == {32: 3, 64: 4}[resolution]
    assert features[-1].shape[-1] == 4 and torch.equal(d(output), logits)


def test_the_untrained_generator_with_the_bicubic_skip_is_bicubic():
    source = torch.rand(2, 3, 8, 8) * 2 - 1
    bicubic = F.interpolate(source, scale_factor=4, mode="bicubic", align_corners=False).clamp(-1, 1)
    generator = RRDBGenerator(3, 3, 4, blocks=1, features=8, growth=4, bicubic_skip=True)
    torch.testing.assert_close(generator(source), bicubic)
    with pytest.raises(ValueError, match="bicubic_skip adds the input to the output"):
        RRDBGenerator(1, 3, 4, blocks=1, features=8, growth=4, bicubic_skip=True)


def test_rrdb_scales_each_residual_branch():
    """With the last conv of every dense block giving a constant b (zero weights), a dense block adds
    0.2 b, and an RRDB gives x + 0.2 (x + 3 * 0.2 b) = 1.2 x + 0.12 b: both residual scalings of 0.2."""
    torch.manual_seed(0)
    block = RRDB(features=4, growth=2, residual_scale=0.2)
    bias = torch.tensor([1.0, -2.0, 0.5, 3.0])
    for dense in block.dense:
        assert isinstance(dense, DenseBlock)
        torch.nn.init.zeros_(dense.convs[4].weight)
        with torch.no_grad():
            dense.convs[4].bias.copy_(bias)
    x = torch.randn(2, 4, 5, 5)
    b = bias.view(1, 4, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(block.dense[0](x), x + 0.2 * b)
        torch.testing.assert_close(block(x), 1.2 * x + 0.12 * b)
    # the dense connections: the fifth conv sees the input and the four growths
    assert [c.in_channels for c in block.dense[0].convs] == [4, 6, 8, 10, 12]


def test_output_clamp_passes_gradients_through():
    x = torch.tensor([-3.0, -0.5, 0.5, 2.0], requires_grad=True)
    y = clamp_straight_through(x)
    assert y.tolist() == [-1.0, -0.5, 0.5, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_feature_matching_is_zero_for_identical_inputs_only():
    torch.manual_seed(0)
    d = VGGDiscriminator(1, 28, width=4, max_width=8)
    real, other = torch.rand(3, 1, 28, 28) * 2 - 1, torch.rand(3, 1, 28, 28) * 2 - 1
    _, real_features = d(real, features=True)
    _, same_features = d(real.clone(), features=True)
    _, other_features = d(other, features=True)
    assert feature_matching(real_features, same_features).item() == 0.0
    assert feature_matching(real_features, other_features).item() > 0


def test_schedule_is_l1_only_then_adversarial(tmp_path):
    plugin = ganzoo.get_plugin("srgan")
    config = plugin.default_config()
    assert config.loss == "relativistic-average" and plugin.tasks == ("sr2x", "sr4x")
    updates = {u.name: u for u in plugin.schedule(type(config)(pretrain_steps=2))}
    assert updates["pretrain"].steps == (0, 2) and updates["pretrain"].optimizer == "pretrain"
    assert updates["discriminator"].steps == (2, None) and updates["generator"].steps == (2, None)
    assert [u.name for u in plugin.schedule(type(config)(pretrain_steps=0))] == ["discriminator", "generator"]

    snapshots = {}

    def snapshot(trainer, step):
        snapshots[step] = {k: v.clone() for k, v in trainer.model.nets["discriminator"].state_dict().items()}

    run = tmp_path / "run"
    config = {**TINY, "pretrain_steps": 2}
    trainer = ganzoo.Trainer("srgan", config, {**QUIET, "steps": 3}, data=DATA, out=run, callbacks=[snapshot])
    trainer.init = lambda model: snapshots.update(
        {0: {k: v.clone() for k, v in model.nets["discriminator"].state_dict().items()}}
    )
    trainer.fit()
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for line in lines[:2]:  # L1 only: D neither trains nor is asked
        assert "loss/pretrain" in line and "l1" in line
        assert not {"loss/discriminator", "loss/generator", "adversarial", "feature_matching"} & set(line)
    assert "loss/pretrain" not in lines[2]
    assert {"loss/discriminator", "loss/generator", "adversarial", "feature_matching", "l1"} <= set(lines[2])
    assert all(torch.equal(snapshots[0][k], snapshots[2][k]) for k in snapshots[0])
    assert not all(torch.equal(snapshots[2][k], snapshots[3][k]) for k in snapshots[2])


@pytest.mark.slow  # a few CPU seconds, but more wall-clock time than that on a busy machine
def test_a_short_l1_training_beats_bicubic_on_digits(tmp_path):
    """20 iterations of the L1 phase (tiny widths) already beat bicubic up-sampling x2 of held-out digits by more
    than 1 dB (PSNR): the residual over bicubic learns the digits' flat black background and sharp strokes."""
    from ganzoo.metrics.paired import psnr

    config = {**TINY, "pretrain_steps": 20, "lr_pretrain": 2e-3}
    train = {**QUIET, "steps": 20, "batch_size": 16, "ema_decay": 0, "log_every": 20}
    model = (
        ganzoo.Trainer("srgan", config, train, data="mnist-4k?split=train&n=256&task=sr2x", out=tmp_path).fit().model
    )
    test = resolve_data("mnist-4k?split=test&n=200&task=sr2x").load(resolution=28)
    pairs = test.__getitems__(list(range(len(test))))
    bicubic = F.interpolate(pairs["source"], scale_factor=2, mode="bicubic", align_corners=False).clamp(-1, 1)
    gain = psnr(model.enhance(pairs["source"]), pairs["target"]).mean() - psnr(bicubic, pairs["target"]).mean()
    assert gain > 1.0, f"{gain:.2f} dB"


def test_grey_models_of_colour_photos_get_grey_inputs():
    """`--set channels=1` on the colour photos: the degraded inputs are grey too (the kit would take the data's 3)."""
    model = ganzoo.create_model("srgan", data_info=resolve_data("photos?task=sr4x").info(), channels=1, **TINY)
    assert model.config.source_channels == 1 and model.nets["generator"].first.in_channels == 1


def test_other_tasks_are_refused_in_one_line(tmp_path):
    with pytest.raises(UsageError, match="srgan learns pairs of sr2x, sr4x, not task=denoise") as error:
        ganzoo.Trainer("srgan", TINY, {**QUIET, "steps": 1}, data="mnist-4k?task=denoise", out=tmp_path / "r").fit()
    assert "\n" not in str(error.value)


def _vgg_file(path, layer="conv2_2", corrupt=None):
    """A vgg19 `features` state dict up to `layer`, randomly initialised (torchvision's shapes), as safetensors."""
    state = vgg19_features(layer).state_dict()
    if corrupt:
        state[corrupt] = torch.zeros(3)
    save_file({f"features.{k}": v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_our_vgg19_features_are_torchvisions():
    from torchvision.models import vgg19

    with torch.device("meta"):
        theirs = vgg19(weights=None).features.state_dict()
    for layer, index in VGG_LAYERS.items():
        ours = vgg19_features(layer, device="meta")
        assert len(ours) == index + 1 and isinstance(ours[-1], torch.nn.Conv2d)
        mine = ours.state_dict()
        assert all(tuple(mine[k].shape) == tuple(theirs[k].shape) for k in mine)
    assert set(vgg19_features("conv5_4", device="meta").state_dict()) == set(theirs)


def test_perceptual_loss_reads_local_vgg_weights(tmp_path):
    weights = _vgg_file(tmp_path / "vgg.safetensors")
    config = {**TINY, "perceptual_weights": str(weights), "perceptual_layer": "conv2_2"}
    run = tmp_path / "run"
    result = ganzoo.Trainer("srgan", config, {**QUIET, "steps": 2}, data=DATA, out=run).fit()
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["perceptual"] > 0
    # the VGG is a loss, not part of the model: a saved model loads without the file
    assert not any(k.startswith("perceptual") or "vgg" in k for k in result.model.weights())
    weights.unlink()
    loaded = ganzoo.load_pretrained(ganzoo.save_pretrained(result.model, tmp_path / "saved"))
    assert loaded.enhance(torch.zeros(1, 1, 7, 7)).shape == (1, 1, 28, 28)


def test_a_missing_or_incompatible_vgg_file_is_one_line(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x80\x04 not safetensors at all")
    cases = [
        (tmp_path / "absent.safetensors", "conv2_2", "perceptual_weights file not found"),
        (garbage, "conv2_2", "is not a readable safetensors file"),
        (_vgg_file(tmp_path / "short.safetensors"), "conv5_4", "up to conv5_4: lacks 10.weight"),
        (_vgg_file(tmp_path / "bad.safetensors", corrupt="5.weight"), "conv2_2", r"5.weight is \(3,\), vgg19 has"),
    ]
    for path, layer, message in cases:
        out = tmp_path / f"run-{path.stem}"
        config = {**TINY, "perceptual_weights": str(path), "perceptual_layer": layer}
        with pytest.raises(UsageError, match=message) as error:
            ganzoo.Trainer("srgan", config, {**QUIET, "steps": 1}, data=DATA, out=out).fit()
        assert "\n" not in str(error.value) and not out.exists()  # refused before the run wrote anything


def test_training_pairs_are_flipped_and_turned_unless_switched_off():
    config = SRGANConfig()
    options = plugin.data_options(config)
    assert options["flip"] is True and options["rotate"] is True
    assert (config.flip, config.rotate, config.lr_pretrain, config.adv_weight) == (True, True, 1e-3, 1e-3)
    off = dataclasses.replace(config, flip=False, rotate=False)
    assert not plugin.data_options(off)["flip"] and not plugin.data_options(off)["rotate"]
    dataset = resolve_data("photos?task=sr4x").load(**plugin.data_options(dataclasses.replace(config, resolution=32)))
    assert dataset.flip and dataset.rotate
