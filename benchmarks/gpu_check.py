"""The GPU path, checked on a CUDA machine: every plugin trained a few hundred iterations under fp16 (GradScaler,
penalties included), bf16 and fp32; no NaN and no storm of skipped fp16 steps; the first iterations' losses
against a CPU fp32 run of the same seed; images/s at 64, 128 and 256 px; and DDP over NCCL with 2+ GPUs. It
prints one table (`--write`: the "GPU check" section of benchmarks/RESULTS.md).

Without CUDA it says so and exits 0. `--device cpu` runs the same checks on the CPU (the tests do, tiny):

    python benchmarks/gpu_check.py [--steps 300] [--plugins dcgan,wgan-gp,...] [--sizes 64,128,256] [--write]
    python benchmarks/gpu_check.py --device cpu --steps 3 --plugins dcgan --sizes 32 --tiny
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

import ganzoo
from ganzoo.engine.logging import read_metrics
from ganzoo.errors import GanzooError, UsageError

PRECISIONS = ("fp16", "bf16", "fp32")
COMPARED_STEPS = 5
CALIBRATION_SKIPS = 16
"""fp16 steps the GradScaler may skip while it lowers its initial scale (2^16) to fit: not a storm."""
TOLERANCE = {"fp32": 0.05, "bf16": 0.25, "fp16": 0.25}
"""How far the first iterations' losses may be from the CPU fp32 run's (relative) before the row says so."""
THROUGHPUT_PLUGINS = ("dcgan", "wgan-gp", "cyclegan", "stylegan2", "biggan", "pix2pix", "srgan")
TINY = {
    "dcgan": {"g_width": 4, "d_width": 4, "latent_dim": 8},
    "wgan-gp": {"g_width": 4, "d_width": 4, "latent_dim": 8},
}
"""`--tiny` widths (the tests' CPU run); other plugins train at their defaults."""


def quiet(steps: int, precision: str, device: str, **extra: Any) -> dict[str, Any]:
    return {
        "steps": steps,
        "precision": precision,
        "device": device,
        "progress": False,
        "tensorboard": False,
        "log_every": 1,
        "checkpoint_every": steps,
        "sample_every": steps,
        "sample_grid": 4,
        **extra,
    }


def losses(run_dir: Path, steps: int) -> list[dict[str, float]]:
    """The loss values of the first `steps` metrics lines."""
    return [{k: v for k, v in line.items() if k.startswith("loss/")} for line in read_metrics(run_dir)[:steps]]


def relative_gap(found: Sequence[Mapping[str, float]], reference: Sequence[Mapping[str, float]]) -> float:
    """The largest relative difference between two runs' losses, line by line and key by key."""
    gaps = [
        abs(a[key] - b[key]) / (abs(b[key]) + 1e-3)
        for a, b in zip(found, reference, strict=False)
        for key in b
        if key in a and math.isfinite(a[key])
    ]
    return max(gaps, default=float("nan"))


def train(plugin: str, config: Mapping[str, Any], settings: Mapping[str, Any], out: Path) -> tuple[str, Path]:
    """Train; the outcome (ok, or the one-line error) and the run directory."""
    try:
        ganzoo.Trainer(plugin, dict(config), dict(settings), out=out).fit()
    except GanzooError as exc:
        return str(exc).splitlines()[0], out
    return "ok", out


def check_plugin(plugin: str, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """One row per precision: outcome, fp16 skips, distance of the first losses to the CPU fp32 run."""
    config = TINY.get(plugin, {}) if args.tiny else {}
    cpu = quiet(COMPARED_STEPS, "fp32", "cpu", batch_size=args.batch_size)
    _, reference_dir = train(plugin, config, cpu, work / f"{plugin}-cpu")
    reference = losses(reference_dir, COMPARED_STEPS)
    rows = []
    for precision in PRECISIONS:
        settings = quiet(args.steps, precision, args.device, batch_size=args.batch_size)
        outcome, run_dir = train(plugin, config, settings, work / f"{plugin}-{precision}")
        lines = read_metrics(run_dir)
        skipped = sum(v for line in lines for k, v in line.items() if k.startswith("amp/skipped/"))
        gap = relative_gap(losses(run_dir, COMPARED_STEPS), reference)
        verdict = outcome if outcome != "ok" else ("ok" if not gap > TOLERANCE[precision] else "losses differ")
        if outcome == "ok" and skipped > 0.1 * args.steps + CALIBRATION_SKIPS:
            verdict = "skip storm"
        rows.append({"plugin": plugin, "precision": precision, "result": verdict, "skipped": skipped, "gap": gap})
    return rows


def throughput(plugin: str, size: int, args: argparse.Namespace, work: Path) -> float | str:
    """Images per second of the last logged iterations at `size` px (precision auto), or why it did not run."""
    steps = max(args.throughput_steps, 2)
    settings = quiet(steps, "auto", args.device, batch_size=args.batch_size)
    config = {**(TINY.get(plugin, {}) if args.tiny else {}), "resolution": size}
    try:
        ganzoo.Trainer(plugin, config, settings, out=work / f"{plugin}-{size}px").fit()
    except UsageError as exc:
        return f"n/a ({str(exc).splitlines()[0][:60]})"
    except GanzooError as exc:
        return f"failed ({str(exc).splitlines()[0][:60]})"
    speeds = [line["images_per_s"] for line in read_metrics(work / f"{plugin}-{size}px")[steps // 2 :]]
    return sum(speeds) / len(speeds)


def check_ddp(args: argparse.Namespace, work: Path) -> str:
    """dcgan over NCCL on 2 GPUs through torchrun: ok, or the tail of what it printed."""
    out = work / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "ganzoo.cli", "train"]
    command += ["dcgan", "--steps", str(args.steps), "--device", "cuda", "--out", str(out), "--set", "progress=false"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        return "failed: " + " ".join((done.stderr or done.stdout).split()[-30:])
    lines = read_metrics(out)
    finite = all(math.isfinite(v) for line in lines for k, v in line.items() if k.startswith("loss/"))
    return "ok" if lines and finite else "non-finite losses"


def table(rows: list[dict[str, Any]], speeds: dict[str, dict[int, float | str]], sizes: list[int], ddp: str) -> str:
    lines = ["| plugin | precision | result | fp16 steps skipped | first losses vs CPU fp32 |", "|---" * 5 + "|"]
    for row in rows:
        gap = "" if math.isnan(row["gap"]) else f"{100 * row['gap']:.1f}%"
        lines.append(f"| {row['plugin']} | {row['precision']} | {row['result']} | {row['skipped']:g} | {gap} |")
    if speeds:
        lines += [
            "",
            "| plugin | " + " | ".join(f"{s} px images/s" for s in sizes) + " |",
            "|---" * (len(sizes) + 1) + "|",
        ]
        for plugin, by_size in speeds.items():
            cells = [f"{v:.0f}" if isinstance(v, float) else v for v in (by_size[s] for s in sizes)]
            lines.append(f"| {plugin} | " + " | ".join(cells) + " |")
    lines += ["", f"DDP (2 GPUs, NCCL, dcgan): {ddp}"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (the check), or cpu (the same checks, for tests)")
    parser.add_argument("--steps", type=int, default=300, help="iterations of each precision run")
    parser.add_argument("--throughput-steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--plugins", default="", help="comma-separated (default: every installed plugin)")
    parser.add_argument("--sizes", default="64,128,256", help="resolutions of the throughput table ('' for none)")
    parser.add_argument("--tiny", action="store_true", help="tiny widths for dcgan and wgan-gp (the tests' run)")
    parser.add_argument("--write", action="store_true", help="write the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here, nothing to check (run it on a machine with a GPU)")
        return 0
    plugins = [p for p in args.plugins.split(",") if p] or ganzoo.list_models()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ganzoo-gpu-check-") as tmp:
        work = Path(tmp)
        rows = [row for plugin in plugins for row in check_plugin(plugin, args, work)]
        speeds = {
            plugin: {size: throughput(plugin, size, args, work) for size in sizes}
            for plugin in plugins
            if plugin in THROUGHPUT_PLUGINS and sizes
        }
        gpus = torch.cuda.device_count() if args.device.startswith("cuda") else 0
        ddp = check_ddp(args, work) if gpus >= 2 else f"not run ({gpus} GPU{'s' if gpus != 1 else ''})"
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    body = f"device: {device}, torch {torch.__version__}, {args.steps} iterations per precision"
    body += f", batch {args.batch_size}, {time.perf_counter() - started:.0f} s in all.\n\n"
    body += table(rows, speeds, sizes, ddp)
    print(body)
    if args.write:
        sys.path.insert(0, str(Path(__file__).parent))
        from results import write_section

        write_section("GPU check", "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:]), body)
    failed = [row for row in rows if row["result"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
