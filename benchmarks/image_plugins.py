"""The image plugins on the embedded digits at a fixed budget: wall time, a committed sample grid, cgan's
conditional accuracy, and bf16-vs-fp32 training speed (images/s) of each plugin.

    python benchmarks/image_plugins.py [--plugins dcgan,wgan-gp,cgan] [--steps 2000,wgan-gp=600] [--write]

`--steps` is one count for every plugin, optionally followed by per-plugin counts (`plugin=N`): an iteration of
wgan-gp trains the critic on 5 batches, so it gets fewer iterations for a comparable wall time.

Conditional accuracy: the shipped `digits` classifier labels 1,000 generated digits per class; accuracy is the
fraction that matches the requested class. Speed: short runs of each precision alternate in one process
(`--speed-rounds` each); images/s is the engine's own figure over the iterations after the first window.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

import ganzoo
from ganzoo.engine.logging import save_samples
from ganzoo.metrics.evaluation import evaluate

HERE = Path(__file__).parent
DATA = "mnist-4k"
QUIET = {"progress": False, "tensorboard": False}


def train_for_quality(plugin: str, steps: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        train = {"steps": steps, "seed": seed, "checkpoint_every": steps, "sample_every": steps, **QUIET}
        start = time.perf_counter()
        result = ganzoo.Trainer(plugin, train=train, data=DATA, out=Path(tmp) / plugin).fit()
        seconds = time.perf_counter() - start
        config = json.loads((result.run_dir / "config.json").read_text())
    model = result.model
    samples, per_row = model.sample_grid(100 if model.plugin.conditional else 64, seed=0)
    grid = save_samples(samples, HERE / f"{plugin}-step{steps}.png", per_row)
    row = {
        "plugin": plugin,
        "steps": steps,
        "batch": config["train"]["batch_size"],
        "precision": config["precision"],
        "train_s": round(seconds, 1),
        "grid": grid.name,
    }
    if model.plugin.conditional:
        classes = model.data_info.num_classes
        scores = evaluate(model, "mnist-4k?split=test", "accuracy", "digits", n=1000 * classes, seed=seed)
        row["accuracy"] = scores["accuracy"]
    return row


def images_per_second(plugin: str, precision: str, iterations: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        log_every = iterations // 3
        train = {"steps": iterations, "precision": precision, "log_every": log_every, "sample_every": 10**6}
        train.update(checkpoint_every=10**6, ema_decay=0.999, **QUIET)
        ganzoo.Trainer(plugin, train=train, data=DATA, out=Path(tmp) / "run").fit()
        lines = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    return statistics.mean(line["images_per_s"] for line in lines[1:])  # the first window holds the warm-up


def parse_steps(text: str, plugins: list[str]) -> dict[str, int]:
    default, *specific = text.split(",")
    steps = dict.fromkeys(plugins, int(default))
    for item in specific:
        name, _, count = item.partition("=")
        steps[name] = int(count)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", default="dcgan,wgan-gp,cgan")
    parser.add_argument("--steps", default="2000", help="N, or N,plugin=M,... (per-plugin iterations)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-iterations", type=int, default=60)
    parser.add_argument("--speed-rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    plugins = args.plugins.split(",")
    steps = parse_steps(args.steps, plugins)
    speed: dict[str, dict[str, list[float]]] = {p: {"fp32": [], "bf16": []} for p in plugins}
    for _ in range(args.speed_rounds):
        for plugin in plugins:
            for precision in ("fp32", "bf16"):
                speed[plugin][precision].append(images_per_second(plugin, precision, args.speed_iterations))
    print(json.dumps({"speed": speed}), flush=True)
    rows = []
    for plugin in plugins:
        rows.append(train_for_quality(plugin, steps[plugin], args.seed))
        print(json.dumps(rows[-1]), flush=True)
    if args.write:
        write_results(args, rows, speed)


def write_results(args: argparse.Namespace, rows: list[dict], speed: dict) -> None:
    """One section per plugin ("image plugins at a fixed budget: <plugin>"), so a run for one plugin leaves the
    others' sections as they were."""
    from results import write_section

    for row in rows:
        plugin = row["plugin"]
        accuracy = f"{row['accuracy']:.1%} (1,000 per class)" if "accuracy" in row else "n/a (unconditional)"
        fp32, bf16 = statistics.median(speed[plugin]["fp32"]), statistics.median(speed[plugin]["bf16"])
        lines = [
            f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; data "
            f"`{DATA}` (4,000 digits), the plugin's defaults, seed {args.seed}. Wall time includes data loading, "
            "sample grids and the final checkpoint; this VM's speed varies up to 2x over minutes. Training speed: "
            f"images/s, median of {args.speed_rounds} alternating runs of {args.speed_iterations} iterations per "
            "precision, first third excluded (an iteration of wgan-gp draws 5 critic batches).",
            "",
            "| budget | wall time | grid | conditional accuracy | images/s fp32 | images/s bf16 | bf16 / fp32 |",
            "|---|---|---|---|---|---|---|",
            f"| {row['steps']} iterations, batch {row['batch']}, {row['precision']} | {row['train_s']:.0f} s | "
            f"[{row['grid']}]({row['grid']}) | {accuracy} | {fp32:.0f} | {bf16:.0f} | {bf16 / fp32:.2f}x |",
        ]
        command = (
            f"python benchmarks/image_plugins.py --plugins {args.plugins} --steps {args.steps} "
            f"--speed-iterations {args.speed_iterations} --speed-rounds {args.speed_rounds} --write"
        )
        write_section(f"image plugins at a fixed budget: {plugin}", command, "\n".join(lines))


if __name__ == "__main__":
    main()
