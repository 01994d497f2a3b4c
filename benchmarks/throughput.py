"""Training throughput at 64, 128 and 256 px on the CPU, and the data path's share of a step.

Writes `--images` generated 256 px PNGs (smooth random colour fields, `data_cache.write_images`) into a folder
once; then for each plugin and size a fresh process trains it with its defaults at that resolution from the folder
through the on-disk cache (`GANZOO_IN_MEMORY_MB=0`: memory-mapped batches, the path of a large folder), batch
`--batch`, `--steps` iterations in each of four modes: fp32 and bf16 autocast, each with and without
`channels_last`, after a 2-iteration warm-up run in the same process (not recorded). A mode's figures are the
means of its metrics lines (one per iteration) after the first: images/s (real images through D per second, the
engine's `images_per_s`) and `data_share` (the share of the wall time spent fetching batches and moving them to
the device). Image-to-image plugins read the same folder as their task:
cyclegan as `unpaired:` of its two halves, pix2pix `?task=colorize`, srgan `?task=sr4x`, inpaint `?task=inpaint`.
Rows are appended to benchmarks/data/throughput.jsonl; `--write` renders the "throughput (64-256 px)" section of
benchmarks/RESULTS.md from every line there. Run it alone: it times wall-clock speed.

    python benchmarks/throughput.py [--plugins dcgan,wgan-gp,cyclegan] [--sizes 64,128,256] [--threads 2] [--write]
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

from data_cache import write_images
from results import read_jsonl, write_section

HERE = Path(__file__).parent
RECORD = HERE / "data" / "throughput.jsonl"
MODES = (("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True))
TASK_SPECS = {
    "cyclegan": "unpaired:{root}/0000,{root}/0001",
    "pix2pix": "folder:{root}?task=colorize",
    "srgan": "folder:{root}?task=sr4x",
    "inpaint": "folder:{root}?task=inpaint",
}

CHILD = """
import json, statistics, sys
import torch
plugin, size, spec, steps, batch, threads, out = sys.argv[1:8]
torch.set_num_threads(int(threads))
import ganzoo
from ganzoo.engine.logging import read_metrics
modes = json.loads(sys.argv[8])
for index, (precision, channels_last) in enumerate([modes[0], *modes]):  # the first run warms up, not recorded
    train = {"steps": int(steps) if index else 2, "batch_size": int(batch), "precision": precision,
             "channels_last": channels_last, "progress": False, "tensorboard": False, "log_every": 1,
             "sample_every": 10**6, "checkpoint_every": 10**6, "health_every": 0}
    run = f"{out}/{index}"
    try:
        ganzoo.Trainer(plugin, {"resolution": int(size)}, train, data=spec, out=run).fit()
    except ganzoo.UsageError as error:
        print(json.dumps({"precision": precision, "channels_last": channels_last, "error": str(error)}), flush=True)
        break
    if index == 0:
        continue
    lines = read_metrics(run)[1:]
    print(json.dumps({"precision": precision, "channels_last": channels_last,
                      "images_per_s": statistics.mean(line["images_per_s"] for line in lines),
                      "data_share": statistics.mean(line["data_share"] for line in lines)}), flush=True)
"""


def measure(plugin: str, size: int, root: Path, cache: Path, args: argparse.Namespace) -> list[dict]:
    """The four modes' rows for one plugin at one size (a fresh process)."""
    spec = TASK_SPECS.get(plugin, "folder:{root}").format(root=root)
    env = {**os.environ, "GANZOO_IN_MEMORY_MB": "0", "GANZOO_DATA_DIR": str(cache)}
    env["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-c", CHILD, plugin, str(size), spec, str(args.steps), str(args.batch)]
        command += [str(args.threads), out, json.dumps(MODES)]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{plugin} at {size} px failed:\n{done.stderr[-2000:]}")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    common = {"plugin": plugin, "px": size, "batch": args.batch, "steps": args.steps, "threads": args.threads}
    return [{**common, **row} for row in rows]


def table(rows: list[dict]) -> str:
    """One line per plugin and size: images/s per mode (ratio against fp32) and the largest data share."""
    names = [f"{p}{' + channels_last' if cl else ''}" for p, cl in MODES]
    lines = [
        "| plugin | px | batch | " + " | ".join(f"{name} images/s" for name in names) + " | data share (max) |",
        "|---|---|---|" + "---|" * len(MODES) + "---|",
    ]
    cells: dict[tuple[str, int, int], dict[tuple[str, bool], dict]] = {}
    for row in rows:
        cells.setdefault((row["plugin"], row["px"], row["batch"]), {})[(row["precision"], row["channels_last"])] = row
    for (plugin, px, batch), modes in cells.items():
        errors = [row["error"] for row in modes.values() if "error" in row]
        if errors:
            lines.append(
                f"| {plugin} | {px} | {batch} | " + " | ".join(["-"] * len(MODES)) + f" | not run: {errors[0]} |"
            )
            continue
        base = modes[MODES[0]]["images_per_s"]
        speeds = []
        for mode in MODES:
            speed = modes[mode]["images_per_s"]
            speeds.append(f"{speed:.1f}" if mode == MODES[0] else f"{speed:.1f} ({speed / base:.2f}x)")
        share = max(row["data_share"] for row in modes.values())
        lines.append(f"| {plugin} | {px} | {batch} | " + " | ".join(speeds) + f" | {share:.1%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", default="dcgan,wgan-gp,cyclegan")
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="iterations per mode (each logged, the first dropped)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default=None, help="where the folder and the cache go (default: a temp dir)")
    parser.add_argument("--write", action="store_true", help="render the RESULTS.md section from the record")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ganzoo-throughput-"))
    write_images(work / "images", args.images, size=256)
    RECORD.parent.mkdir(exist_ok=True)
    for plugin in filter(None, args.plugins.split(",")):
        for size in [int(s) for s in args.sizes.split(",")]:
            rows = measure(plugin, size, work / "images", work / "cache", args)
            kept = [r for r in read_jsonl(RECORD) if (r["plugin"], r["px"]) != (plugin, size)]  # a rerun replaces
            RECORD.write_text("".join(json.dumps(r) + "\n" for r in [*kept, *rows]), encoding="utf-8")
            print(table(rows), flush=True)
    if args.write:
        rows = read_jsonl(RECORD)
        body = (
            f"machine: {platform.machine()}, {os.cpu_count()} cores, {rows[0]['threads']} torch threads, run alone. "
            f"Each plugin's defaults at the given resolution and batch, {rows[0]['steps']} iterations per mode "
            "in a fresh process per plugin and size, from a folder of 256 px PNGs through the "
            "on-disk cache (memory-mapped batches). images/s: real images through D per second, mean of the "
            "metrics lines after the first; in brackets the ratio against fp32 in the same process. data share: "
            "the largest over the four modes of the wall time's share spent fetching batches (target: < 5%).\n\n"
            + table(rows)
        )
        print(body)
        write_section("throughput (64-256 px)", "python benchmarks/throughput.py " + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
