"""Engine overhead: the same DCGAN modules trained by the ganzoo engine and by a plain hand-written loop.

Both run in this process, in alternating rounds, on the embedded digits at 28x28 with batch 64, in fp32 and
bf16. The hand loop does what the engine's DCGAN schedule does (a D step on a fresh no-grad fake, then a G
step on a fresh fake), with Adam and the same data indexing, and nothing else; the engine runs with EMA
off and the health diagnostics off for the like-for-like ratio (a column with EMA on shows what the EMA costs,
one with the health diagnostics at their defaults what they cost: every 50th iteration D's separation and
diversity, gradient norms, update sizes and the 256-sample recall). A third loop reuses the D step's fake in the
G step, as pytorch/examples' dcgan does: one generator forward fewer per iteration.

    python benchmarks/engine_overhead.py [--rounds 5] [--window 100] [--precisions fp32,bf16] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ganzoo import Trainer
from ganzoo.data import resolve_data
from ganzoo_plugins.dcgan.networks import Discriminator, Generator

BATCH = 64
LATENT = 100
WARMUP = 5


def hand_loop(images: torch.Tensor, steps: int, precision: str, reuse_fake: bool) -> float:
    """Images/s (real images through D) of a plain loop over `steps` iterations after a warm-up."""
    g, d = Generator(28, 1, LATENT, 64), Discriminator(28, 1, 64, "batch")
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    order = torch.randperm(len(images))
    position = 0
    start = 0.0
    for step in range(WARMUP + steps):
        if step == WARMUP:
            start = time.perf_counter()
        if position + BATCH > len(order):
            order, position = torch.randperm(len(images)), 0
        real = images[order[position : position + BATCH]].float().div_(127.5).sub_(1.0)
        position += BATCH
        z = torch.randn(BATCH, LATENT)
        with cast:
            if reuse_fake:
                fake = g(z)
                d_fake = d(fake.detach())
            else:
                with torch.no_grad():
                    fake = g(z)
                d_fake = d(fake)
            d_real = d(real)
            loss_d = F.softplus(-d_real.float()).mean() + F.softplus(d_fake.float()).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with cast:
            if not reuse_fake:
                fake = g(torch.randn(BATCH, LATENT))
            loss_g = F.softplus(-d(fake).float()).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return steps * BATCH / (time.perf_counter() - start)


def engine_loop(steps: int, precision: str, ema: bool, health: bool = False) -> float:
    stamps: dict[int, float] = {}

    def clock(trainer: Trainer, step: int) -> None:
        stamps[step] = time.perf_counter()

    train = {
        "steps": WARMUP + steps,
        "batch_size": BATCH,
        "precision": precision,
        "progress": False,
        "tensorboard": False,
        "ema_decay": 0.999 if ema else 0.0,
        "sample_every": 10**6,
        "checkpoint_every": 10**6,
        "log_every": 50,
        "device": "cpu",
        "health_every": 50 if health else 0,
    }
    with tempfile.TemporaryDirectory() as tmp:
        Trainer("dcgan", {}, train, out=Path(tmp) / "run", callbacks=[clock]).fit()
    return steps * BATCH / (stamps[WARMUP + steps] - stamps[WARMUP])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=int, default=100, help="timed iterations per round (health: every 50th)")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    parser.add_argument("--write", action="store_true", help="update the section in benchmarks/RESULTS.md")
    args = parser.parse_args()
    images = resolve_data("mnist-4k").load().images
    lines = []
    header = (
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}; batch {BATCH}, 28x28 DCGAN (g_width = d_width = 64), "
        f"{args.rounds} rounds x {args.window} timed iterations, median images/s"
    )
    print(header)
    lines.append(header)
    lines.append(
        "The engine can beat the plain loop: it freezes the networks a step does not update, so its G step "
        "computes no discriminator weight gradients, which the plain loop computes and discards."
    )
    lines.append("")
    lines.append(
        "| precision | hand loop | engine (EMA, health off) | ratio | engine (EMA on) | engine (health on) | health "
        "ratio | reuse-fake loop |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for precision in args.precisions.split(","):
        runs: dict[str, list[float]] = {"hand": [], "engine": [], "engine_ema": [], "engine_health": [], "reuse": []}
        for _ in range(args.rounds):
            runs["hand"].append(hand_loop(images, args.window, precision, reuse_fake=False))
            runs["engine"].append(engine_loop(args.window, precision, ema=False))
            runs["engine_ema"].append(engine_loop(args.window, precision, ema=True))
            runs["engine_health"].append(engine_loop(args.window, precision, ema=False, health=True))
            runs["reuse"].append(hand_loop(images, args.window, precision, reuse_fake=True))
        med = {k: statistics.median(v) for k, v in runs.items()}
        ratio = med["engine"] / med["hand"]
        row = (
            f"| {precision} | {med['hand']:.0f} | {med['engine']:.0f} | {ratio:.3f} | {med['engine_ema']:.0f} | "
            f"{med['engine_health']:.0f} | {med['engine_health'] / med['engine']:.3f} | {med['reuse']:.0f} |"
        )
        print(row, {k: [round(x) for x in v] for k, v in runs.items()}, flush=True)
        lines.append(row)
    if args.write:
        from results import write_section

        command = (
            f"python benchmarks/engine_overhead.py --rounds {args.rounds} --window {args.window} "
            f"--precisions {args.precisions} --write"
        )
        write_section("engine overhead", command, "\n".join(lines))


if __name__ == "__main__":
    main()
