"""pix2pix colorization and denoising on the embedded photos: PSNR and SSIM on held-out photos beside the input.

Each (task, seed) trains `pix2pix` with its defaults (or `--steps`, `--set`) on 64 px crops of the 7 training
photos (`photos?task=colorize`, `photos?task=denoise`: Gaussian noise of sigma 25), then scores the EMA
generator's outputs for the fixed grid of 64 px crops of the 2 held-out photos (`photos?split=test&task=...`:
chelsea.png and gravel.png, 104 crops) against their targets with `ganzoo.metrics.paired` (PSNR and SSIM on
[0, 1], RGB as it is), beside the trivial baseline: the input itself (the grey luma replicated to RGB for
colorize, the noisy image for denoise).

One torch thread by default (`--threads`), so that the figures do not depend on what else the machine runs;
time is wall-clock training time. Rows go to benchmarks/data/pix2pix.jsonl (one per task and seed), and `--write`
renders the "pix2pix" section of benchmarks/RESULTS.md (medians over the seeds recorded) and saves a grid of
held-out crops per task (rows of input, output, target) as benchmarks/pix2pix-TASK.png. `--smoke` trains a tiny
model for a few iterations on 32 px crops and scores 8 crops (seconds; nothing is recorded unless `--record`).

    python benchmarks/pix2pix.py [--tasks colorize,denoise] [--seeds 0] [--steps N] [--set key=value] [--write]
    python benchmarks/pix2pix.py --write-only    # the section from the recorded rows, no training
    python benchmarks/pix2pix.py --smoke
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import ganzoo
from ganzoo.config import parse_set_options
from ganzoo.data import resolve_data
from ganzoo.data.paired import PHOTOS_TEST, photo
from ganzoo.kit.pairs import shown_at
from ganzoo.metrics.paired import psnr, ssim

HERE = Path(__file__).parent
RECORD = HERE / "data" / "pix2pix.jsonl"
TASKS = ("colorize", "denoise")
FIRST_VERSION = "1.0.0"
"""The plugin version of rows recorded before rows named their version."""
SMOKE_CONFIG = {"g_width": 4, "d_width": 4, "resolution": 32}
SECTION = "pix2pix: colorization and denoising of held-out photos"


def train_spec(task: str) -> str:
    return f"photos?task={task}"


def test_spec(task: str) -> str:
    return f"photos?split=test&task={task}"


def crop_photos(crop: int) -> list[str]:
    """The held-out photo of each test crop, in order: the grid of ceil(H/N) x ceil(W/N) crops of side N = `crop`
    (the model's resolution) of each test photo in turn (`ganzoo.data.paired`)."""
    names = []
    for name in PHOTOS_TEST:
        height, width = photo(name).shape[-2:]
        names += [name.rsplit(".", 1)[0]] * (math.ceil(height / crop) * math.ceil(width / crop))
    return names


def held_out(task: str, resolution: int, channels: int, n: int | None) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The held-out pairs as the evaluation reads them (all, or n evenly spaced over both photos) and the photo
    each comes from."""
    dataset = resolve_data(test_spec(task)).load(resolution=resolution, channels=channels)
    names = crop_photos(resolution)
    assert len(names) == len(dataset), (len(names), len(dataset))
    count = len(dataset) if n is None else min(n, len(dataset))
    chosen = torch.linspace(0, len(dataset) - 1, count).round().long().tolist()
    return dataset.__getitems__(chosen), [names[i] for i in chosen]


def scores(outputs: torch.Tensor, targets: torch.Tensor, photos: Sequence[str]) -> dict[str, float]:
    """Mean PSNR (identical pairs: 100 dB) and SSIM over all crops and over each photo's crops."""
    values = {"psnr": psnr(outputs, targets).clamp(max=100), "ssim": ssim(outputs, targets)}
    result = {key: float(value.mean()) for key, value in values.items()}
    for name in dict.fromkeys(photos):
        chosen = torch.tensor([p == name for p in photos])
        result.update({f"{key}_{name}": float(value[chosen].mean()) for key, value in values.items()})
    return result


def run(task: str, seed: int, config: dict[str, Any], steps: int | None, n: int | None, smoke: bool) -> dict:
    """Train on the task's training photos, score on the held-out ones; one row."""
    train = {"seed": seed, "progress": False, "tensorboard": False, "log_every": 100}
    train.update(sample_every=10**7, checkpoint_every=10**7)
    if steps is not None:
        train["steps"] = steps
    with tempfile.TemporaryDirectory() as tmp:
        trainer = ganzoo.Trainer("pix2pix", config, train, data=train_spec(task), out=Path(tmp) / task)
        began, cpu = time.perf_counter(), time.process_time()
        result = trainer.fit()
        train_s, cpu_s = time.perf_counter() - began, time.process_time() - cpu
        model = result.model
        lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        precision = json.loads((result.run_dir / "config.json").read_text(encoding="utf-8"))["precision"]
    pairs, photos = held_out(task, model.config.resolution, model.config.channels, n)
    outputs = torch.cat([model.enhance(chunk) for chunk in pairs["source"].split(64)])
    baseline = shown_at(pairs["source"], model.config.resolution, model.config.channels)
    row = {"task": task, "seed": seed, "steps": result.step, "batch": trainer.train_config.batch_size}
    row.update(resolution=model.config.resolution, g_width=model.config.g_width, d_width=model.config.d_width)
    row.update(threads=torch.get_num_threads(), amp=precision, train_s=round(train_s, 1), cpu_s=round(cpu_s, 1))
    row.update(n=len(outputs), l1_last=round(lines[-1]["l1"], 4), smoke=smoke)
    row.update({k: round(v, 4) for k, v in scores(outputs, pairs["target"], photos).items()})
    row.update({f"input_{k}": round(v, 4) for k, v in scores(baseline, pairs["target"], photos).items()})
    row.update(config=config, version=ganzoo.get_plugin("pix2pix").version)
    row.update(torch=torch.__version__, machine=platform.machine())
    shown = torch.linspace(0, len(outputs) - 1, min(8, len(outputs))).round().long()
    row["_grid"] = torch.stack([baseline[shown], outputs[shown], pairs["target"][shown]], dim=1).flatten(0, 1)
    return row


def render(rows: Sequence[dict]) -> str:
    """The RESULTS.md section's body: one line per task and setting, medians over the seeds recorded."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        version = row.get("version", FIRST_VERSION)
        key = (row["task"], version, json.dumps(row.get("config", {})), row["steps"], row["batch"], row["resolution"])
        groups.setdefault(key, []).append(row)
    first = rows[0]
    lines = [
        f"machine: {first['machine']}, 2 cores shared with other jobs (other benchmarks and test runs ran beside "
        f"these, so the times are indicative only), torch {first['torch']}, {first['threads']} torch thread(s), "
        f"{first['amp']} autocast. Training: `pix2pix` on {first['resolution']} px random crops of the 7 training "
        "photos (`photos?task=TASK`; denoise: Gaussian noise of sigma 25); scores: the EMA generator's outputs for "
        f"the fixed grid of {first['resolution']} px crops of the 2 held-out photos (`photos?split=test&task=TASK`: "
        "chelsea.png, a colour photograph of a cat, 40 crops; gravel.png, a grey texture, 64 crops), mean PSNR (dB) "
        "and SSIM over each photo's crops on [0, 1], RGB as it is (`ganzoo.metrics.paired`). Each cell is the model "
        "(the input): the trivial baseline is the model's input itself, the grey luma replicated to RGB for "
        "colorize (exact on the grey gravel, so 100 dB there: a colorizer must leave grey grey) and the noisy image "
        "for denoise. Medians over the seeds run.",
        "",
        "| task | plugin version | config | iterations x batch | seeds | train min | PSNR chelsea | PSNR gravel | "
        "SSIM chelsea | SSIM gravel |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (task, version, config, steps, batch, _), mine in sorted(groups.items()):

        def med(key: str, mine: list[dict] = mine) -> float:
            return statistics.median(row[key] for row in mine)

        def cell(key: str, digits: int) -> str:
            return f"{med(key):.{digits}f} ({med('input_' + key):.{digits}f})"

        settings = ", ".join(f"{k}={v}" for k, v in json.loads(config).items()) or "defaults"
        seeds = ",".join(str(row["seed"]) for row in mine)
        lines.append(
            f"| {task} | {version} | {settings} | {steps} x {batch} | {seeds} | {med('train_s') / 60:.1f} | "
            f"{cell('psnr_chelsea', 2)} | {cell('psnr_gravel', 2)} | {cell('ssim_chelsea', 3)} | "
            f"{cell('ssim_gravel', 3)} |"
        )
    lines += [
        "",
        "Held-out crops (rows of input, output, target; 8 crops evenly spaced over both photos), from the last run "
        "with `--write`: `benchmarks/pix2pix-colorize.png`, `benchmarks/pix2pix-denoise.png`.",
    ]
    return "\n".join(lines)


def write_results(command: str) -> None:
    sys.path.insert(0, str(HERE))
    from results import write_section

    rows = [json.loads(line) for line in RECORD.read_text(encoding="utf-8").splitlines() if line.strip()]
    write_section(SECTION, command, render([row for row in rows if not row.get("smoke")]))


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: colorize, denoise")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--steps", type=int, default=None, help="iterations (default: the plugin's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="model config key=value")
    parser.add_argument("--n", type=int, default=None, help="held-out crops to score (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="a tiny model, a few iterations, 8 crops: seconds")
    parser.add_argument("--record", type=Path, default=None, help=f"JSON lines to append to (default: {RECORD})")
    parser.add_argument("--write", action="store_true", help="also render the RESULTS.md section and the grids")
    parser.add_argument("--write-only", action="store_true", help="only render the section from the record")
    args = parser.parse_args(argv)
    command = "python benchmarks/pix2pix.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    if args.write_only:
        write_results(command.replace(" --write-only", ""))
        return []
    torch.set_num_threads(args.threads)
    config = parse_set_options(args.overrides)
    steps, n, record = args.steps, args.n, args.record
    if args.smoke:
        config, steps, n = {**SMOKE_CONFIG, **config}, steps or 3, n or 8
    elif record is None:
        record = RECORD
    rows = []
    for task in filter(None, args.tasks.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            row = run(task, seed, config, steps, n, args.smoke)
            grid = row.pop("_grid")
            if args.write and not args.smoke:
                from ganzoo.engine.logging import save_samples

                save_samples(grid, HERE / f"pix2pix-{task}.png", 3)
            print(json.dumps(row), flush=True)
            rows.append(row)
            if record is not None:
                record.parent.mkdir(parents=True, exist_ok=True)
                with record.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({**row, "command": command}) + "\n")
    if args.write and not args.smoke:
        write_results(command)
    return rows


if __name__ == "__main__":
    main()
