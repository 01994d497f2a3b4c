"""Peak memory of training on an image folder through the on-disk cache, against holding it in memory.

Writes `--images` generated 64 px PNGs (smooth random colour fields, so they compress like photos) into a
folder once, then in fresh subprocesses trains dcgan at 64 px for `--steps` iterations on `folder:PATH`: with the
cache (`GANZOO_IN_MEMORY_MB=0`; first the cold run that builds it, then a warm run that reuses it) and held in
memory (`GANZOO_IN_MEMORY_MB` large). Each row: the child's peak resident memory (ru_maxrss), its wall time, and
the time before the first iteration (listing, hashing, decoding or opening). `--write` writes the "data cache"
section of benchmarks/RESULTS.md.

    python benchmarks/data_cache.py [--images 200000] [--steps 100] [--threads 2] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CHILD = """
import json, resource, sys, time
started = time.perf_counter()
import torch
torch.set_num_threads(int(sys.argv[3]))
import ganzoo
first = {}
def at_step(trainer, step):
    first.setdefault("step", time.perf_counter() - started)
train = {"steps": int(sys.argv[2]), "batch_size": 64, "progress": False, "tensorboard": False, "log_every": 10,
         "sample_every": 10**6, "checkpoint_every": 10**6, "health_every": 0}
ganzoo.Trainer("dcgan", {"resolution": 64}, train, data="folder:" + sys.argv[1], out=sys.argv[4],
               callbacks=[at_step]).fit()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_mb": peak, "seconds": time.perf_counter() - started, "first_step_s": first["step"]}))
"""


def write_images(folder: Path, count: int, size: int = 64) -> None:
    """`count` `size` px PNGs of smooth random colour fields (a 4x4 field of colours, upscaled), a subfolder per
    thousand."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        path = folder / f"{index // 1000:04d}" / f"{index:07d}.png"
        if path.is_file():
            continue
        path.parent.mkdir(exist_ok=True)
        field = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(field).resize((size, size), Image.Resampling.BICUBIC).save(path, compress_level=1)


def run(folder: Path, limit_mb: str, args: argparse.Namespace, cache: Path) -> dict:
    env = {**os.environ, "GANZOO_IN_MEMORY_MB": limit_mb, "GANZOO_DATA_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-c", CHILD, str(folder), str(args.steps), str(args.threads), out + "/run"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default=None, help="where the folder and the cache go (default: a temp dir)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ganzoo-data-cache-"))
    folder, cache = work / "images", work / "cache"
    began = time.perf_counter()
    write_images(folder, args.images)
    written = time.perf_counter() - began
    decoded_gb = args.images * 3 * 64 * 64 / 2**30
    rows = [
        ("cache, cold (builds it)", run(folder, "0", args, cache)),
        ("cache, warm (reuses it)", run(folder, "0", args, cache)),
        ("in memory", run(folder, "1000000", args, cache)),
    ]
    lines = ["| data path | peak RSS (MB) | wall (s) | before the first iteration (s) |", "|---|---|---|---|"]
    for name, row in rows:
        lines.append(f"| {name} | {row['peak_mb']:.0f} | {row['seconds']:.0f} | {row['first_step_s']:.1f} |")
    body = (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads, run alone. "
        f"{args.images:,} generated 64 px PNGs ({decoded_gb:.2f} GB decoded; written in {written:.0f} s), dcgan at "
        f"64 px, batch 64, {args.steps} iterations, each run a fresh process.\n\n" + "\n".join(lines)
    )
    print(body)
    if args.write:
        sys.path.insert(0, str(Path(__file__).parent))
        from results import write_section

        write_section("data cache", "python benchmarks/data_cache.py " + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
