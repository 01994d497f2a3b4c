"""torch.compile (`--set compile=true`) against eager training: images/s and the time before the first iteration.

For dcgan at each `--sizes` px (batch 64, `--threads` torch threads, the CPU), three fresh processes: eager, compiled
with an empty inductor cache (cold: the first iterations compile), and compiled again with that cache (warm).
Throughput is the mean images/s of the metrics lines after the first 20% of `--steps`. `--write` writes the
"torch.compile" section of benchmarks/RESULTS.md. Run it alone: compiling and timing are both CPU-bound.

    python benchmarks/compile.py [--sizes 32,64] [--steps 200] [--threads 2] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
started = time.perf_counter()
import torch
torch.set_num_threads(int(sys.argv[3]))
import ganzoo
from ganzoo.engine.logging import read_metrics
first = {}
def at_step(trainer, step):
    first.setdefault("step", time.perf_counter() - started)
train = {"steps": int(sys.argv[2]), "batch_size": 64, "progress": False, "tensorboard": False, "log_every": 10,
         "sample_every": 10**6, "checkpoint_every": 10**6, "health_every": 0, "compile": sys.argv[4] != "-",
         "compile_cache": None if sys.argv[4] == "-" else sys.argv[4]}
result = ganzoo.Trainer("dcgan", {"resolution": int(sys.argv[1])}, train, data="mnist-4k", out=sys.argv[5],
                        callbacks=[at_step]).fit()
lines = read_metrics(result.run_dir)
speeds = [line["images_per_s"] for line in lines[len(lines) // 5 :]]
print(json.dumps({"images_per_s": sum(speeds) / len(speeds), "first_step_s": first["step"]}))
"""


def run(size: int, args: argparse.Namespace, cache: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-c", CHILD, str(size), str(args.steps), str(args.threads), cache, out + "/run"]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="32,64")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    lines = [
        "| px | eager images/s | compiled images/s (ratio) | first iteration after (s): eager / cold / warm |",
        "|---|---|---|---|",
    ]
    for size in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as cache:
            eager, cold, warm = run(size, args, "-"), run(size, args, cache), run(size, args, cache)
        ratio = warm["images_per_s"] / eager["images_per_s"]
        lines.append(
            f"| {size} | {eager['images_per_s']:.0f} | {warm['images_per_s']:.0f} ({ratio:.2f}x) | "
            f"{eager['first_step_s']:.1f} / {cold['first_step_s']:.1f} / {warm['first_step_s']:.1f} |"
        )
    body = (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads, run alone; dcgan "
        f"defaults, batch 64, {args.steps} iterations on mnist-4k, fp32 on the CPU; each run a fresh process.\n\n"
        + "\n".join(lines)
    )
    print(body)
    if args.write:
        sys.path.insert(0, str(Path(__file__).parent))
        from results import write_section

        write_section("torch.compile", "python benchmarks/compile.py " + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
