"""DiffAugment (ganzoo/augment.py): each op keeps shape and dtype, is differentiable (checked by gradcheck and
through the R1 and gradient penalties), draws independently per image and reproducibly per seed, does what its
name says; the policy parser rejects unknown names; the hook augments the discriminators' inputs in training,
and `ganzoo train --diffaugment` runs with dcgan, wgan-gp and cgan.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from helpers_engine import ToyGAN, toy_data, toy_train
from torch import nn

import ganzoo
from ganzoo import augment
from ganzoo.cli import cli
from ganzoo.errors import UsageError
from ganzoo.losses import gradient_penalty

POLICY = "color,translation,cutout"


def _images(n: int = 4, channels: int = 3, size: int = 16, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(7)) * 2 - 1).to(dtype)


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", [*augment.OPS, POLICY])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (2, 3, 32, 32)])
def test_ops_keep_shape_and_dtype(name, dtype, shape):
    x = _images(shape[0], shape[1], shape[2], dtype)
    y = augment.diff_augment(x, name, _seeded())
    assert y.shape == x.shape and y.dtype == dtype and torch.isfinite(y.float()).all()
    assert not torch.equal(y, x)


@pytest.mark.parametrize("name", list(augment.OPS))
def test_gradients_flow_through_each_op(name):
    x = _images(2, 2, 8, torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: augment.OPS[name](t, _seeded(3)), (x,))
    y = augment.OPS[name](x, _seeded(3))
    (grad,) = torch.autograd.grad((y * torch.randn_like(y)).sum(), x)
    assert grad.abs().sum() > 0


def test_penalties_differentiate_through_the_augmentation():
    """R1 and WGAN-GP take input gradients of D(augment(x)): finite, and different from D(x)'s."""
    torch.manual_seed(0)
    d = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * 8 * 8, 1))
    real, fake = _images(4, 1, 8), _images(4, 1, 8).flip(0)
    plain_r1 = gradient_penalty(d, real, "r1")
    plain_gp = gradient_penalty(d, real, "wgan-gp", fake=fake, generator=_seeded(1))
    handles = augment.install([d], POLICY)
    torch.manual_seed(0)
    r1, gp = gradient_penalty(d, real, "r1"), gradient_penalty(d, real, "wgan-gp", fake=fake, generator=_seeded(1))
    for penalty, plain in ((r1, plain_r1), (gp, plain_gp)):
        assert torch.isfinite(penalty) and penalty != plain
        grads = torch.autograd.grad(penalty, list(d.parameters()), retain_graph=True, allow_unused=True)
        grads = [g for g in grads if g is not None]  # (the last bias does not change input gradients)
        assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    for handle in handles:
        handle.remove()


def test_seeded_draws_are_reproducible_and_independent_per_image():
    x = _images(6, 3, 16)
    first = augment.diff_augment(x, POLICY, _seeded(5))
    assert torch.equal(first, augment.diff_augment(x, POLICY, _seeded(5)))
    assert not torch.equal(first, augment.diff_augment(x, POLICY, _seeded(6)))
    same = _images(1, 3, 16).expand(6, -1, -1, -1)
    out = augment.diff_augment(same, POLICY, _seeded(5))
    assert len({tuple(o.flatten().tolist()) for o in out}) == 6  # every image its own draw
    torch.manual_seed(11)  # without a generator: torch's global stream, so a seeded run repeats
    a = augment.diff_augment(x, POLICY)
    torch.manual_seed(11)
    assert torch.equal(a, augment.diff_augment(x, POLICY))


def test_translation_shifts_by_at_most_an_eighth_with_zero_fill():
    x = _images(16, 1, 16) + 3.0  # no zeros in the input
    y = augment.translation(x, _seeded(2))
    limit = 2  # 16 / 8
    shifts = set()
    for source, moved in zip(x, y, strict=True):
        matches = []
        for dy in range(-limit, limit + 1):
            for dx in range(-limit, limit + 1):
                expected = torch.zeros_like(source)
                h, w = source.shape[1:]
                expected[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = source[
                    :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
                ]
                if torch.equal(moved, expected):
                    matches.append((dy, dx))
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > 4


def test_cutout_zeroes_one_half_size_square():
    x = _images(16, 2, 16) + 3.0
    y = augment.cutout(x, _seeded(4))
    for source, cut in zip(x, y, strict=True):
        zero = (cut == 0).all(dim=0)
        rows, cols = zero.any(dim=1).nonzero().flatten(), zero.any(dim=0).nonzero().flatten()
        assert 0 < len(rows) <= 8 and 0 < len(cols) <= 8  # half of 16, clipped at the borders
        box = torch.zeros_like(zero)
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        assert torch.equal(zero, box)  # one rectangle
        assert torch.equal(cut[:, ~zero], source[:, ~zero])  # the rest untouched
        assert len(rows) == 8 or rows.min() == 0 or rows.max() == 15


def test_color_is_an_affine_change_per_image():
    x = _images(8, 1, 8)  # one channel: saturation is the identity
    y = augment.color(x, _seeded(1))
    for source, changed in zip(x, y, strict=True):
        centred_x, centred_y = source - source.mean(), changed - changed.mean()
        ratio = (centred_y.flatten() @ centred_x.flatten()) / centred_x.square().sum()
        torch.testing.assert_close(centred_y, ratio * centred_x)
        assert 0.5 <= ratio < 1.5  # contrast factor
    shifts = (y.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))).abs()
    assert shifts.max() < 0.5 and shifts.std() > 0  # brightness, drawn per image


def test_policy_parser():
    assert augment.parse_policy(" color, cutout ,") == ("color", "cutout")
    assert augment.parse_policy("") == () and augment.parse_policy(None) == ()
    assert augment.parse_policy(["translation", "translation"]) == ("translation",)
    with pytest.raises(UsageError) as info:
        augment.parse_policy("color,flip")
    message = str(info.value)
    assert "'flip'" in message and "color, translation, cutout" in message and "\n" not in message
    with pytest.raises(UsageError, match="float images"):
        augment.diff_augment(torch.zeros(2, 8, dtype=torch.long), "color")


def test_cli_rejects_an_unknown_op_in_one_line():
    result = CliRunner().invoke(cli, ["train", "dcgan", "--diffaugment", "colour"], prog_name="ganzoo")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: unknown DiffAugment op 'colour'"), result.stderr
    assert "color, translation, cutout" in lines[0]


def test_hook_augments_in_training_mode_only_and_comes_off():
    d = nn.Identity()
    x = _images(4, 1, 8)
    handles = augment.install([d], "cutout")
    assert not torch.equal(d(x), x)
    d.eval()
    assert torch.equal(d(x), x)
    d.train()
    handles[0].remove()
    assert torch.equal(d(x), x)
    assert augment.install([d], "") == []


# --------------------------------------------------------------------------------------------- in training

TINY = {
    "dcgan": {"g_width": 4, "d_width": 4, "latent_dim": 8},
    "wgan-gp": {"g_width": 4, "d_width": 4, "latent_dim": 8, "n_critic": 2},
    "cgan": {"g_width": 4, "d_width": 4, "latent_dim": 8},
}
QUIET = {"batch_size": 8, "progress": False, "tensorboard": False, "device": "cpu", "sample_grid": 4}


def _first_block_inputs(plugin: str, model_nets: dict[str, nn.Module]) -> list[torch.Tensor]:
    """Record every input of the discriminator's first block (what D's layers actually see)."""
    seen: list[torch.Tensor] = []
    block = ganzoo.get_plugin(plugin).frozen_d_blocks(model_nets)[0]
    block.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    return seen


@pytest.mark.parametrize("plugin", ["dcgan", "wgan-gp", "cgan"])
def test_train_with_diffaugment_augments_every_discriminator_input(plugin, tmp_path, monkeypatch):
    """Two iterations with `diffaugment`: every image reaching D's first layer went through the augmentation,
    the policy is kept in config.json (so a resume keeps it), and the hook is gone after training."""
    augmented: list[torch.Tensor] = []
    original = augment.diff_augment

    def recording(x, policy, generator=None):
        augmented.append(original(x, policy, generator))
        return augmented[-1]

    monkeypatch.setattr(augment, "diff_augment", recording)
    watched: dict[str, list[torch.Tensor]] = {}

    def watch(trainer, step):  # the first callback comes after iteration 1: record iteration 2
        if "inputs" not in watched:
            watched["inputs"] = _first_block_inputs(plugin, trainer.model.nets)
            augmented.clear()

    train = {**QUIET, "steps": 2, "diffaugment": POLICY}
    trainer = ganzoo.Trainer(plugin, TINY[plugin], train, data="mnist-4k?n=32", out=tmp_path / "run", callbacks=[watch])
    result = trainer.fit()
    inputs = watched["inputs"]
    assert inputs, "the discriminator saw no input"
    assert all(any(x is a for a in augmented) for x in inputs)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["diffaugment"] == POLICY
    d = next(net for role, net in result.model.nets.items() if role != "generator").train()
    assert not d._forward_pre_hooks  # taken off when training ends


def test_a_resumed_run_draws_the_same_augmentations(tmp_path):
    """The augmentations come from torch's checkpointed generator: 2 + 2 resumed iterations equal 4 in one go."""

    def run(out, steps, resume=False):
        train = toy_train(steps=steps, diffaugment=POLICY, checkpoint_every=2)
        return ganzoo.Trainer(ToyGAN(snapshot=False), train=train, data=toy_data(), out=out, resume=resume).fit()

    straight = run(tmp_path / "straight", 4).model.weights()
    run(tmp_path / "resumed", 2)
    resumed = run(tmp_path / "resumed", 4, resume=True).model.weights()
    plain = ganzoo.Trainer(ToyGAN(snapshot=False), train=toy_train(steps=4), data=toy_data(), out=tmp_path / "plain")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert not all(torch.equal(straight[k], v) for k, v in plain.fit().model.weights().items())
