"""Adaptive augmentation (ADA): the pipeline (`ganzoo.augment.ada_augment`) keeps shape and dtype, is the identity
at p = 0, differentiable to second order (R1 through it), seeded, and its geometric part moves pixels without
changing them; the controller (`ganzoo.engine.ada`) raises p when D is sure of the real images and lowers it
otherwise, counts only the real batch's outputs, and refuses a plugin whose D never sees the real batch itself;
in training p is logged, saved and resumed exactly, and the CLI's `--augment` is checked.
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
from ganzoo.engine import checkpoint as ckpt
from ganzoo.engine.ada import AdaptiveAugment
from ganzoo.errors import PluginError, UsageError
from ganzoo.losses import gradient_penalty


def _images(n: int = 16, channels: int = 1, size: int = 16) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(3)) * 2 - 1


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------- the pipeline


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels", [1, 3])
def test_pipeline_keeps_shape_and_dtype_and_is_the_identity_at_zero(dtype, channels):
    x = _images(channels=channels).to(dtype)
    assert augment.ada_augment(x, 0.0) is x
    y = augment.ada_augment(x, 1.0, _seeded())
    assert y.shape == x.shape and y.dtype == dtype and torch.isfinite(y.float()).all()
    assert (y - x).abs().flatten(1).amax(1).min() > 0  # at p = 1 every image changes (colour ops always draw)


def test_pipeline_is_seeded_and_applies_each_op_with_probability_p():
    x = _images(n=512)
    assert torch.equal(augment.ada_augment(x, 0.5, _seeded(1)), augment.ada_augment(x, 0.5, _seeded(1)))
    assert not torch.equal(augment.ada_augment(x, 0.5, _seeded(1)), augment.ada_augment(x, 0.5, _seeded(2)))
    changed = ((augment.ada_augment(x, 0.1, _seeded()) - x).abs().flatten(1).amax(1) > 0).float().mean()
    # 1 channel: six ops, each (nearly) always visible when drawn, except x-flip (half) and rotation (3/4)
    assert 0.35 < changed < 0.55, changed


def test_blit_ops_move_pixels_without_changing_them(monkeypatch):
    """Without scaling, the geometric part is a flip, rotation and whole-pixel shift (reflected at the borders):
    every output pixel is one of the image's own pixels; without translation too, each output is one of the eight
    flips and rotations of its input."""
    monkeypatch.setattr(augment, "ADA_SCALE_STD", 0.0)
    x = _images(n=64)
    y = augment._geometric(x, 1.0, _seeded())
    for before, after in zip(x, y, strict=True):
        distance = (after.flatten()[:, None] - before.flatten()[None, :]).abs().amin(1)
        assert distance.max() < 1e-5
    monkeypatch.setattr(augment, "ADA_TRANSLATION", 0.0)
    y = augment._geometric(x, 1.0, _seeded())
    for before, after in zip(x, y, strict=True):
        symmetries = [torch.rot90(image, k, (1, 2)) for image in (before, before.flip(2)) for k in range(4)]
        assert min((after - s).abs().max() for s in symmetries) < 1e-5


def test_scaling_resamples_and_untouched_images_stay_exact():
    x = _images(n=64)
    y = augment._geometric(x, 0.5, _seeded())
    same = (y == x).flatten(1).all(1)
    assert 0 < same.sum() < 64  # some images drew no geometric op and are bit-exact
    scaled_only = augment._geometric(x, 1.0, _seeded(5))
    assert not torch.equal(scaled_only, x)


def test_pipeline_is_differentiable_to_second_order():
    """R1 through the augmentation: the penalty's gradient reaches D's weights."""
    d = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 14 * 14, 1))
    x = _images(n=4)

    def augmented_d(images: torch.Tensor) -> torch.Tensor:
        return d(augment.ada_augment(images, 1.0, _seeded()))

    penalty = gradient_penalty(augmented_d, x, kind="r1")
    penalty.backward()
    assert penalty > 0 and d[0].weight.grad.abs().sum() > 0
    x = x.requires_grad_()
    augment.ada_augment(x, 1.0, _seeded()).square().sum().backward()
    assert x.grad.abs().sum() > 0


# -------------------------------------------------------------------------------------------- the controller


class _SureD(nn.Module):
    """A fake discriminator whose logits have a fixed sign (and which records what it saw)."""

    def __init__(self, sign: float) -> None:
        super().__init__()
        self.sign = sign
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen.append(x)
        return torch.full((x.shape[0], 1), self.sign), torch.zeros(x.shape[0], 3)  # (logits, class scores)


def _controller(d: nn.Module, images_per_iteration: int = 8) -> AdaptiveAugment:
    ada = AdaptiveAugment(target=0.6, interval=4, kimg=0.064, images_per_iteration=images_per_iteration, device="cpu")
    ada.install([d])
    return ada


def _iterations(ada: AdaptiveAugment, d: nn.Module, count: int) -> list[float]:
    """`count` iterations of D on a real and a fake batch, adjusting every `interval`; p after each adjustment."""
    real, fake, ps = _images(8), _images(8) + 0.5, []
    for step in range(count):
        ada.expect_real({"image": real, "label": torch.zeros(8, dtype=torch.long)})
        d(real)
        d(fake)
        if (step + 1) % ada.interval == 0:
            ada.adjust()
            ps.append(ada.p)
    return ps


def test_p_rises_when_d_overfits_and_falls_otherwise():
    """A D whose real outputs are all positive (r_t = 1 > 0.6) pushes p up by images/(kimg*1000) per adjustment,
    to at most 1; one whose real outputs are all negative brings it back down to 0."""
    sure = _SureD(1.0)
    ada = _controller(sure)
    assert ada.step_size == pytest.approx(8 * 4 / 64)
    assert _iterations(ada, sure, 12) == pytest.approx([0.5, 1.0, 1.0])
    doubtful = _SureD(-1.0)
    ada.install([doubtful])
    ada.p = 1.0
    assert _iterations(ada, doubtful, 12) == pytest.approx([0.5, 0.0, 0.0])


def test_only_the_real_batch_counts_and_every_input_is_augmented():
    """The fake batch (positive or not) does not enter r_t; real and fake inputs both reach D augmented."""
    d = _SureD(1.0)
    ada = _controller(d)
    ada.p = 0.5
    real, fake = _images(8), _images(8) + 0.5
    ada.expect_real({"image": real})
    d(real)
    d(fake)
    assert ada.signs.tolist() == [8.0, 8.0]  # eight real logits, all positive; the fake ones not counted
    assert all(not torch.equal(seen, original) for seen, original in zip(d.seen, (real, fake), strict=True))
    d.eval()
    d(real)
    assert d.seen[-1] is real  # not augmented outside training


def test_a_d_that_never_sees_the_real_batch_is_refused():
    d = _SureD(1.0)
    ada = _controller(d)
    real = _images(8)
    ada.expect_real({"image": real})
    d(torch.cat([real, real + 0.5]))
    with pytest.raises(PluginError, match="no discriminator was called on the real batch"):
        ada.adjust()


def test_state_round_trips_and_sums_go_to_rank_zero_only():
    d = _SureD(1.0)
    ada = _controller(d)
    _iterations(ada, d, 6)  # one adjustment, then two iterations' sums pending
    state = ada.state_dict()
    assert state["p"] == ada.p and state["signs"].tolist() == [16.0, 16.0]
    other = _controller(_SureD(1.0))
    other.load_state_dict(state)
    assert other.p == ada.p and other.signs.tolist() == [16.0, 16.0]
    other.load_state_dict(state, is_main=False)
    assert other.signs.tolist() == [0.0, 0.0]


# ------------------------------------------------------------------------------------------------ in training

ADA = {"augment": "ada", "ada_interval": 3, "ada_kimg": 0.1, "ada_target": 0.0}


def _run(out, steps: int, resume: bool = False, **overrides):
    train = toy_train(steps=steps, checkpoint_every=4, log_every=1, **{**ADA, **overrides})
    return ganzoo.Trainer(ToyGAN(snapshot=False), train=train, data=toy_data(), out=out, resume=resume).fit()


def test_p_is_logged_saved_and_resumed_exactly(tmp_path):
    """8 iterations in one go equal 4 + 4 resumed (the checkpoint at 4 falls inside an adjustment interval, so
    the pending sums matter): same weights, same p in the last checkpoint, same p logged at every step."""
    straight = _run(tmp_path / "straight", 8)
    _run(tmp_path / "resumed", 4)
    resumed = _run(tmp_path / "resumed", 8, resume=True)
    weights = straight.model.weights()
    assert all(torch.equal(weights[k], v) for k, v in resumed.model.weights().items())

    def saved_p(run) -> float:
        state, _ = ckpt.load_training_state(run.checkpoint)
        return state["ada"]["p"]

    assert saved_p(straight) == saved_p(resumed) > 0

    def logged(run) -> list[float]:
        lines = (run.run_dir / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["augment/p"] for line in lines]

    assert len(logged(straight)) == 8 and logged(straight) == logged(resumed)
    assert logged(straight)[1] == 0 and logged(straight)[2] > 0  # the first adjustment comes after iteration 3


def test_augmentation_settings_are_checked_before_training(tmp_path):
    with pytest.raises(UsageError, match="not both"):
        ganzoo.Trainer(ToyGAN(), train=toy_train(augment="ada", diffaugment="color"))
    with pytest.raises(UsageError, match="text model"):
        ganzoo.Trainer("lstm-gan", train={"augment": "ada"})
    result = CliRunner().invoke(cli, ["train", "dcgan", "--augment", "adaptive"], prog_name="ganzoo")
    assert result.exit_code == 2 and "'adaptive' is not one of 'none', 'ada'" in result.stderr


def test_an_interval_without_a_discriminator_update_keeps_p():
    """A generator-only phase (e.g. srgan's L1 pre-training) calls no discriminator: p stays, nothing is refused."""
    d = _SureD(1.0)
    ada = _controller(d)
    ada.p = 0.25
    ada.expect_real({"image": _images(8)})
    assert ada.adjust() is None and ada.p == 0.25
    _iterations(ada, d, 4)
    assert ada.p == pytest.approx(0.75)
