"""Inpainting digits: does the filled digit read as the digit it was? The inpaint plugin beside the trivial fill.

The plugin trains with its defaults on `mnist-4k?split=train&task=inpaint` (3,000 digits, random rectangles and
strokes) for `--steps` iterations; then each of the 1,000 held-out digits of `mnist-4k?split=test` gets one 14 x 14
square hole at a seeded random position, and is filled (a) by the model (its EMA generator, known pixels kept) and
(b) by the mean training digit's pixels (the trivial baseline), (c) left as it is (holes mid-grey). Scores: the
shipped `digits` classifier's accuracy on the filled digits against their labels, FID and KID of the filled digits
against the intact held-out digits (`digits` features), and PSNR inside the holes. Rows go to
benchmarks/data/inpaint.jsonl (with the plugin's version and the `--set` overrides); `--write` renders the
"inpaint (digits, 14 x 14 holes)" section of RESULTS.md from every recorded row, one block per plugin version,
iterations and overrides, and draws 8 held-out digits of the last run (rows of the holed input, the model's fill,
the intact digit) as benchmarks/inpaint-digits.png.

    python benchmarks/inpaint.py [--steps 1500] [--seeds 0] [--set key=value ...] [--threads 1] [--write]
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
from ganzoo.config import parse_set_options
from ganzoo.data import resolve_data
from ganzoo.metrics import stats
from ganzoo.metrics.features import get_features
from ganzoo.metrics.reference import extract_all

HERE = Path(__file__).parent
RECORD = HERE / "data" / "inpaint.jsonl"
TRAIN = "mnist-4k?split=train&task=inpaint"
HOLE = 14
PICTURE = HERE / "inpaint-digits.png"
SHOWN = 8  # held-out digits in the picture


def square_holes(n: int, size: int, seed: int) -> torch.Tensor:
    """One HOLE x HOLE square per image at a seeded random position: masks (n, 1, size, size), 1 = missing."""
    generator = torch.Generator().manual_seed(seed)
    top = torch.randint(0, size - HOLE + 1, (n,), generator=generator)
    left = torch.randint(0, size - HOLE + 1, (n,), generator=generator)
    rows, cols = torch.arange(size), torch.arange(size)
    inside_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + HOLE)
    inside_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + HOLE)
    return (inside_rows[:, :, None] & inside_cols[:, None, :]).float()[:, None]


def score(filled: torch.Tensor, intact: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, extractor) -> dict:
    fake, logits = extract_all(extractor, filled)
    real, _ = extract_all(extractor, intact)
    hole_error = ((filled - intact) / 2).square().mul(masks).flatten(1).sum(1) / masks.flatten(1).sum(1)
    kid, _ = stats.kernel_distance(fake, real)
    return {
        "accuracy": float((logits.argmax(1) == labels).double().mean()),
        "fid": stats.frechet_distance_of(fake, real),
        "kid": kid,
        "hole_psnr": float((10 * torch.log10(1 / hole_error.clamp(min=1e-10))).mean()),
    }


def run(steps: int, seed: int, overrides: dict[str, str], extractor) -> tuple[list[dict], torch.Tensor]:
    """The rows of one training run (one per fill) and its picture: SHOWN rows of (holed, filled, intact)."""
    train = {"steps": steps, "seed": seed, "progress": False, "tensorboard": False, "log_every": 100}
    train.update(checkpoint_every=steps, sample_every=steps)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.process_time()
        trainer = ganzoo.Trainer("inpaint", config=overrides, train=train, data=TRAIN, out=Path(tmp) / "run")
        model = trainer.fit().model
        cpu_s = time.process_time() - started
    test = resolve_data("mnist-4k?split=test").load(resolution=28, channels=1)
    intact = test.images.float() / 127.5 - 1
    labels = test.labels
    masks = square_holes(len(intact), 28, seed)
    holed = intact * (1 - masks)
    mean_digit = resolve_data("mnist-4k?split=train").load(resolution=28, channels=1).images.float().mean(0) / 127.5 - 1
    fills = {
        "inpaint": torch.cat(
            [model.enhance(holed[i : i + 250], masks[i : i + 250]) for i in range(0, len(holed), 250)]
        ),
        "mean digit": holed * (1 - masks) + mean_digit * masks,
        "unfilled (mid-grey)": holed,
        "intact (ceiling)": intact,
    }
    config = " ".join(f"{key}={value}" for key, value in overrides.items()) or "defaults"
    rows = []
    for method, filled in fills.items():
        row = {"method": method, "seed": seed, "steps": steps, "cpu_s": round(cpu_s, 1)}
        row.update(plugin_version=model.plugin.version, config=config)
        row.update(score(filled, intact, labels, masks, extractor))
        rows.append(row)
        print(json.dumps(row), flush=True)
    shown = torch.linspace(0, len(intact) - 1, SHOWN).round().long()
    picture = torch.stack([holed[shown], fills["inpaint"][shown], intact[shown]], dim=1).flatten(0, 1)
    return rows, picture


def write_results() -> None:
    from results import write_section

    rows = [json.loads(line) for line in RECORD.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:  # the first rows predate these fields: version 0.1.0, its defaults
        row.setdefault("plugin_version", "0.1.0")
        row.setdefault("config", "defaults")

    def setting(row: dict) -> tuple[str, int, str]:
        return row["plugin_version"], row["steps"], row["config"]

    settings = list(dict.fromkeys(setting(row) for row in rows))
    lines = [
        f"machine: {platform.machine()}, one torch thread, torch {torch.__version__}, run beside other jobs. inpaint "
        f"(the plugin version and overrides named per block), trained on `{TRAIN}`, then each of the 1,000 "
        f"held-out digits gets one {HOLE} x {HOLE} hole at a seeded position (a quarter of the digit). Accuracy: the "
        "shipped `digits` classifier on the filled digits against their labels; FID / KID x 1e3 of the filled "
        "digits against the intact ones (`digits` features); PSNR inside the holes. Medians over the seeds run "
        "(the hole positions are seeded by the training seed); CPU-s: training's process CPU time.",
        "",
        "| plugin version | config | iterations | seeds | CPU-s | fill | accuracy | FID | KID | hole PSNR (dB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for version, steps, config in settings:
        block = [row for row in rows if setting(row) == (version, steps, config)]
        seeds = ",".join(str(seed) for seed in sorted({row["seed"] for row in block}))
        for method in dict.fromkeys(row["method"] for row in block):
            mine = [row for row in block if row["method"] == method]

            def med(key: str, mine: list[dict] = mine) -> float:
                return statistics.median(row[key] for row in mine)

            lines.append(
                f"| {version} | {config} | {steps} | {seeds} | {med('cpu_s'):.0f} | {method} | {med('accuracy'):.1%} "
                f"| {med('fid'):.2f} | {1e3 * med('kid'):.2f} | {med('hole_psnr'):.2f} |"
            )
    lines += [
        "",
        f"`benchmarks/{PICTURE.name}`: {SHOWN} held-out digits of the last run written, rows of the holed input "
        "(the hole mid-grey, as the model sees it), the model's fill and the intact digit.",
    ]
    write_section("inpaint (digits, 14 x 14 holes)", "python benchmarks/inpaint.py --write", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--set", dest="set_options", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = parse_set_options(args.set_options)
    extractor = get_features("digits")
    picture = None
    for seed in (int(s) for s in args.seeds.split(",") if s):
        rows, picture = run(args.steps, seed, overrides, extractor)
        RECORD.parent.mkdir(exist_ok=True)
        with RECORD.open("a", encoding="utf-8") as record:
            for row in rows:
                record.write(json.dumps(row) + "\n")
    if args.write:
        if picture is not None:
            from ganzoo.engine.logging import save_samples

            save_samples(picture, PICTURE, 3)
        write_results()


if __name__ == "__main__":
    main()
