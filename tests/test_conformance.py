"""The conformance kit (`ganzoo.testing`): every built-in plugin passes it, one test item per check, and each
guarantee fails, by name, on a plugin that breaks it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from helpers_engine import ToyGAN, toy_data
from torch import nn

from ganzoo import option
from ganzoo.testing import CHECKS, ConformanceError, check_plugin, conformance_tests

# One shared check per built-in plugin, on tiny widths (these replace the plugins' own resume, precision and DDP
# tests). lstm-gan is interrupted during MLE pre-training and resumed through the switch to adversarial training;
# cyclegan's history pools are not yet full when it is interrupted.
test_dcgan = conformance_tests("dcgan", "mnist-4k?n=256", {"g_width": 8, "d_width": 8, "latent_dim": 16})
test_wgan_gp = conformance_tests(
    "wgan-gp", "mnist-4k?n=256", {"g_width": 8, "d_width": 8, "latent_dim": 16, "n_critic": 2}
)
test_wgan_gp_resnet = conformance_tests(
    "wgan-gp",
    "mnist-4k?n=256",
    {"backbone": "resnet", "g_width": 8, "d_width": 8, "latent_dim": 16, "n_critic": 1},
    checks=("build", "fp32", "fp16", "resume"),
)
test_cgan = conformance_tests("cgan", "mnist-4k?n=256", {"g_width": 8, "d_width": 8, "latent_dim": 16, "r1_gamma": 1})
test_cyclegan = conformance_tests(
    "cyclegan",
    "digits-8x8-to-mnist",
    {"g_width": 4, "d_width": 4, "residual_blocks": 1, "examples": 4, "pool_size": 20},
)
test_lstm_gan = conformance_tests(
    "lstm-gan",
    "surnames?split=train&n=256",
    {
        "embed_dim": 8,
        "hidden_dim": 16,
        "d_embed_dim": 8,
        "d_hidden_dim": 8,
        "d_kernel_sizes": (2, 3),
        "pretrain_steps": 3,
        "pretrain_d_steps": 0,
        "r1_gamma": 1.0,
    },
)


# ------------------------------------------------------------------------------ plugins that break a guarantee


class ShakySampler(ToyGAN):
    """Draws its samples from torch's global generator instead of the `generator` it is given."""

    def sample(self, nets: Any, n: int, condition: Any = None, generator: Any = None) -> torch.Tensor:
        g = nets["generator"]
        return g(torch.randn(n, g.latent_dim))


class PrivateNoise(ToyGAN):
    """Perturbs the real images with noise from its own torch.Generator, which no checkpoint saves."""

    def __init__(self) -> None:
        super().__init__("private-noise", snapshot=False)
        self.noise = torch.Generator().manual_seed(0)

    def _d_loss(self, nets: Any, batch: Any, ctx: Any) -> Any:
        image = batch["image"] + 0.1 * torch.randn(batch["image"].shape, generator=self.noise)
        return super()._d_loss(nets, {**batch, "image": image}, ctx)


class LeakyFreeze(ToyGAN):
    """Declares its first conv as a FreezeD block, then shrinks its weights in place in every D update."""

    def frozen_d_blocks(self, nets: Any) -> list[nn.Module]:
        return [nets["discriminator"].conv, nets["discriminator"].fc]

    def _d_loss(self, nets: Any, batch: Any, ctx: Any) -> Any:
        with torch.no_grad():
            nets["discriminator"].conv.weight.mul_(0.9)
        return super()._d_loss(nets, batch, ctx)


class PoisonedBuffer(ToyGAN):
    """Keeps a running statistic in the generator that becomes inf, as a diverging batch-norm variance does."""

    def build(self, config: Any, data_info: Any) -> dict[str, nn.Module]:
        nets = super().build(config, data_info)
        nets["generator"].register_buffer("running", torch.ones(1))
        return nets

    def _d_loss(self, nets: Any, batch: Any, ctx: Any) -> Any:
        nets["generator"].running.mul_(1e30)
        return super()._d_loss(nets, batch, ctx)


@dataclasses.dataclass
class UndocumentedConfig:
    latent_dim: int = option(4, "size of the noise vector", min=1)
    width: int = dataclasses.field(default=2)
    d_repeats: int = option(1, "discriminator updates per iteration", min=1)
    nan_at: int = option(0, "1-based iteration whose generator loss is NaN (0: never)", min=0)
    overflow_at: int = option(0, "1-based iteration whose generator loss is scaled by 1e8 (0: never)", min=0)
    lr: float = option(1e-2, "learning rate", min=0)
    betas: tuple[float, float] = option((0.5, 0.9), "Adam betas")


class Undocumented(ToyGAN):
    Config = UndocumentedConfig


def _check(plugin: Any, *checks: str, **config: Any) -> Any:
    return check_plugin(plugin, toy_data(), config, checks=checks, train={"batch_size": 8})


def test_the_toy_plugin_passes_what_applies_to_it():
    report = _check(ToyGAN("toy-good", snapshot=False), "config", "build", "fp32", "sample", "resume", "save-load")
    assert report.ok, str(report)
    assert [r.name for r in report.results] == ["config", "build", "fp32", "sample", "resume", "save-load"]


def test_a_sample_that_ignores_its_generator_fails_the_sample_check():
    report = _check(ShakySampler("shaky", snapshot=False), "sample", "save-load")
    assert [r.name for r in report.failures] == ["sample", "save-load"]
    assert "same seed differ" in report["sample"].detail


def test_a_private_random_generator_fails_the_resume_check():
    report = _check(PrivateNoise(), "fp32", "resume")
    assert report["fp32"].status == "passed"
    assert report["resume"].status == "failed"
    assert "other values of" in report["resume"].detail and "private torch.Generator" in report["resume"].detail


def test_a_frozen_block_that_moves_fails_the_freeze_d_check():
    report = _check(LeakyFreeze("leaky-freeze", snapshot=False), "freeze-d")
    assert report["freeze-d"].status == "failed"
    assert "of the first of 2 blocks moved" in report["freeze-d"].detail


def test_a_nan_loss_fails_the_precision_checks_by_name():
    """Under fp16 the GradScaler skips a step whose gradients are NaN (the run stops after 30 in a row), so one
    NaN loss fails fp32 and bf16 only."""
    report = _check(ToyGAN("toy-nan", snapshot=False), "fp32", "bf16", "fp16", nan_at=1)
    assert [r.name for r in report.failures] == ["fp32", "bf16"]
    assert all("diverged at step 1: the generator loss is nan" in r.detail for r in report.failures)
    with pytest.raises(ConformanceError, match=r"2 of 3 checks failed[\s\S]*failed  bf16"):
        report.raise_for_failures()


def test_a_non_finite_buffer_fails_every_precision():
    report = _check(PoisonedBuffer("poisoned", snapshot=False), "fp32", "bf16", "fp16")
    assert [r.name for r in report.failures] == ["fp32", "bf16", "fp16"]
    # the engine itself stops such a run before its checkpoint (it never saves a non-finite state)
    assert all("diverged at step 2: generator.running" in r.detail for r in report.failures)


def test_an_undocumented_field_fails_the_config_check():
    report = _check(Undocumented("undocumented", snapshot=False), "config")
    assert report["config"].status == "failed" and "without a doc line" in report["config"].detail
    assert "width" in report["config"].detail


def test_checks_that_do_not_apply_are_skipped_with_the_reason():
    report = _check(ToyGAN("toy-skips", snapshot=False), "freeze-d", "reheading", "ddp")
    assert [r.status for r in report.results] == ["skipped"] * 3
    assert "declares no FreezeD blocks" in report["freeze-d"].detail
    assert "unconditional" in report["reheading"].detail
    assert "DataSource" in report["ddp"].detail


def test_unknown_checks_are_refused():
    with pytest.raises(ValueError, match=r"unknown conformance checks \['speed'\]; accepted: config, build"):
        check_plugin("dcgan", checks=["speed"])
    assert CHECKS[0] == "config" and "ddp" in CHECKS
