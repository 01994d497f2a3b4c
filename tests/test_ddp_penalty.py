"""Gradient penalties under DDP: two CPU ranks (torchrun, gloo) on half batches give the weights one process gives
on the double batch.

The toy below has no batch norm and no per-rank noise, so the two runs are the same computation: each rank's R1,
R2, WGAN-GP and lazy-R1 terms are means over its half of the global batch, the engine averages the gradients over
the ranks, and an average of two half-batch means is the mean over the whole batch. The ranks' halves are the two
halves of the batch one process draws (`EpochBatchSampler`), and the WGAN-GP interpolation weights come from a
generator seeded by the iteration, of which each rank takes its own samples' share. SGD without momentum makes
the weight change proportional to the gradient, so a wrong scaling cannot hide behind Adam's normalisation.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganzoo import DataInfo, GANPlugin, OptimizerSpec, Trainer, UpdateStep, option
from ganzoo.engine.data import EpochBatchSampler
from ganzoo.losses import gradient_penalty

DATA = "mnist-4k?n=256"
STEPS = 3  # the lazy R1 (every 2) runs at iterations 0 and 2
BATCH = 16  # global: 8 per rank under DDP
ROLES = ("d_r1", "d_r2", "d_gp", "d_lazy")
TRAIN = {
    "steps": STEPS,
    "batch_size": BATCH,
    "device": "cpu",
    "precision": "fp32",
    "ema_decay": 0.0,
    "log_every": 1,
    "checkpoint_every": 1000,
    "sample_every": 1000,
    "sample_grid": 4,
    "progress": False,
    "tensorboard": False,
}


@dataclasses.dataclass
class PenaltyToyConfig:
    resolution: int = option(8, "image size", min=4)
    channels: int = option(1, "image channels", min=1)
    width: int = option(4, "channels of the discriminators' convolutions", min=1)
    r1_gamma: float = option(4.0, "R1 weight gamma (gamma / 2 E||grad D(real)||^2)", min=0)
    r2_gamma: float = option(4.0, "R2 weight gamma (gamma / 2 E||grad D(fake)||^2)", min=0)
    gp_weight: float = option(10.0, "WGAN-GP weight lambda", min=0)
    lazy_every: int = option(2, "lazy R1: iterations between its updates (its loss scaled by this)", min=1)
    lr: float = option(0.05, "SGD learning rate (no momentum) of every discriminator", min=0)


class ToyCritic(nn.Module):
    """A small convolutional critic with smooth activations and no normalisation layer (nothing per rank)."""

    def __init__(self, channels: int, width: int, resolution: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.fc = nn.Linear(width * (resolution // 2) ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.conv2(F.silu(self.conv1(x))))
        return self.fc(x.flatten(1)).squeeze(1)


def _fake(real: torch.Tensor) -> torch.Tensor:
    """A deterministic per-sample stand-in for generated images (no generator, so no per-rank noise)."""
    return 0.5 * real.flip(-1) - 0.25


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class PenaltyToy(GANPlugin):
    """Four discriminators, one per penalty, each trained by its own update on the real batch."""

    name = "ddp-penalty-toy"
    description = "A toy of gradient-penalised discriminators for the DDP equivalence test."
    version = "0.0.1"
    Config = PenaltyToyConfig
    generator_roles = ()

    def build(self, config: PenaltyToyConfig, data_info: DataInfo) -> dict[str, nn.Module]:
        return {role: ToyCritic(config.channels, config.width, config.resolution) for role in ROLES}

    def schedule(self, config: PenaltyToyConfig) -> list[UpdateStep]:
        return [
            UpdateStep("r1", ("d_r1",), self.r1_loss),
            UpdateStep("r2", ("d_r2",), self.r2_loss),
            UpdateStep("gp", ("d_gp",), self.gp_loss),
            UpdateStep("lazy_main", ("d_lazy",), self.plain_loss),
            UpdateStep("lazy_r1", ("d_lazy",), self.lazy_r1_loss, every=config.lazy_every),
        ]

    def optimizers(self, config: PenaltyToyConfig) -> dict[str, OptimizerSpec]:
        return {role: OptimizerSpec(lr=config.lr, betas=(0.0, 0.0), kind="sgd") for role in ROLES}

    def r1_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """softplus(-D(real)) + gamma/2 R1(real), the penalty reusing the forward pass (`outputs=`)."""
        real = batch["image"].float().requires_grad_(True)
        logits = nets["d_r1"](real)
        penalty = gradient_penalty(nets["d_r1"], real, "r1", outputs=logits, scaler=ctx.scaler)
        loss = F.softplus(-logits.float()).mean() + 0.5 * ctx.config.r1_gamma * penalty
        return loss, {"r1_penalty": penalty.detach(), "batch_mean": batch["image"].mean()}

    def r2_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        real = batch["image"]
        fake = _fake(real)
        d = nets["d_r2"]
        penalty = gradient_penalty(d, fake, "r2", scaler=ctx.scaler)
        loss = F.softplus(-d(real).float()).mean() + F.softplus(d(fake).float()).mean()
        return loss + 0.5 * ctx.config.r2_gamma * penalty, {"r2_penalty": penalty.detach()}

    def gp_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """Wasserstein critic loss + lambda WGAN-GP. The interpolation weights of the global batch come from a
        generator seeded by the iteration; rank r skips the r * N weights of the ranks before it, so every
        sample is mixed by the weight one process on the whole batch gives it."""
        real = batch["image"]
        fake = _fake(real)
        rank, _ = _rank_and_world()
        generator = torch.Generator().manual_seed(1000 + ctx.step)
        if rank:
            torch.rand(rank * len(real), generator=generator)
        d = nets["d_gp"]
        penalty = gradient_penalty(d, real, "wgan-gp", fake=fake, scaler=ctx.scaler, generator=generator)
        loss = d(fake).float().mean() - d(real).float().mean() + ctx.config.gp_weight * penalty
        return loss, {"gp_penalty": penalty.detach()}

    def plain_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        return F.softplus(-nets["d_lazy"](batch["image"]).float()).mean(), {}

    def lazy_r1_loss(self, nets: Any, batch: Any, ctx: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """StyleGAN2's lazy R1: gamma/2 R1 scaled by its period."""
        penalty = gradient_penalty(nets["d_lazy"], batch["image"], "r1", scaler=ctx.scaler)
        return 0.5 * ctx.config.r1_gamma * ctx.config.lazy_every * penalty, {"lazy_r1_penalty": penalty.detach()}

    def sample(self, nets: Any, n: int, condition: Any = None, generator: Any = None) -> torch.Tensor:
        return torch.zeros(n, nets["d_r1"].conv1.in_channels, 8, 8)  # (no generator: a blank grid)


plugin = PenaltyToy()
"""`test_ddp_penalty:plugin` is what the torchrun workers import (the tests folder on their PYTHONPATH)."""


def _weights(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.weights().items()}


def _metrics(run: Path) -> list[dict[str, float]]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in ("images_per_s", "data_share")} for line in lines]


def _single(out: Path, **config: Any) -> Any:
    return Trainer(plugin, config, {**TRAIN, "batch_size": BATCH}, data=DATA, out=out).fit()


def test_each_rank_draws_its_half_of_the_batch_one_process_draws():
    """The premise of the equivalence: under DDP rank r takes the r-th half of the very global batch."""
    whole = list(EpochBatchSampler(256, BATCH, seed=0, epoch=0))
    halves = [list(EpochBatchSampler(256, BATCH, seed=0, epoch=0, rank=r, world=2)) for r in (0, 1)]
    assert len(whole) == len(halves[0]) == len(halves[1]) == 256 // BATCH
    for batch, first, second in zip(whole, *halves, strict=True):
        assert first + second == batch


def test_the_penalties_change_the_weights_of_a_single_process_run(tmp_path):
    """Without this the equivalence below could hold for penalties that never reach the weights."""
    with_penalties = _weights(_single(tmp_path / "on").model)
    without = _weights(_single(tmp_path / "off", r1_gamma=0.0, r2_gamma=0.0, gp_weight=0.0).model)
    for role in ROLES:
        keys = [k for k in with_penalties if k.startswith(role + ".")]
        moved = max((with_penalties[k] - without[k]).abs().max().item() for k in keys)
        assert moved > 1e-3, f"{role}: the penalty moved its weights by {moved:g} only"


def _torchrun(out: Path) -> Path:
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    spec = {
        "plugin": plugin.name,
        "target": "test_ddp_penalty:plugin",
        "config": {},
        "data": DATA,
        "train": TRAIN,
        "out": str(out),
    }
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "ganzoo.testing.ddp_worker", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out


@pytest.mark.slow
def test_two_ranks_on_half_batches_give_the_weights_of_one_process_on_the_whole_batch(tmp_path):
    from safetensors.torch import load_file

    out = _torchrun(tmp_path / "ddp")
    rank0, rank1 = (load_file(out / f"rank{r}.safetensors") for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # the ranks stay in sync (the conformance check)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' setting (the weights agree to float tolerance at any thread count)
    try:
        single = _weights(_single(tmp_path / "single").model)
    finally:
        torch.set_num_threads(threads)
    assert rank0.keys() == single.keys()
    for role in ROLES:
        keys = [k for k in single if k.startswith(role + ".")]
        assert keys
        error = max((rank0[k] - single[k]).abs().max().item() for k in keys)
        assert error < 1e-6, f"{role}: DDP and the single process differ by {error:g}"

    # The logged means agree too: the same images (batch_mean), the same penalties, the lazy R1 at 0 and 2 only.
    ddp_lines, single_lines = _metrics(out / "run"), _metrics(tmp_path / "single")
    assert [line["step"] for line in ddp_lines] == [line["step"] for line in single_lines] == [1, 2, 3]
    for ddp_line, single_line in zip(ddp_lines, single_lines, strict=True):
        assert ddp_line.keys() == single_line.keys()
        for key, value in single_line.items():
            assert ddp_line[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert ["lazy_r1_penalty" in line for line in single_lines] == [True, False, True]
    assert all(line["r1_penalty"] > 0 and line["gp_penalty"] > 0 for line in single_lines)
