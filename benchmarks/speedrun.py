"""The quality-per-minute record: how fast an image plugin reaches fixed FIDs on the embedded digits.

A recipe (a plugin and `--set` overrides of its or the engine's config) trains on `mnist-4k?split=train`
(3,000 digits) with one process; its EMA generator is scored (`--n` samples against the 1,000 held-out digits of
`mnist-4k?split=test`, `digits` features) at marks every 15 s for the first two minutes, then every minute, up to
`--minutes`. The clock is this process's CPU time (`--clock cpu`, the default, so that runs side by side with one
thread each are held to the same budget) or wall time (`--clock wall`, for a run alone); evaluations are not
charged to it. Each mark is appended as a JSON line to benchmarks/data/speedrun.jsonl; `--write` renders the
"speedrun" section of benchmarks/RESULTS.md from every line there: per recipe, the seconds to reach each FID
threshold and the best FID within 5, 15 and 30 minutes. Later changes must beat the table.

    python benchmarks/speedrun.py --recipe dcgan-defaults --plugin dcgan [--set KEY=VALUE ...] [--minutes 30]
    python benchmarks/speedrun.py --write        # the table from the recorded lines, no training
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch
from budget import HELD_OUT, TRAIN, parse_run_options, scored_run
from results import read_jsonl, write_section

from ganzoo.config import parse_set_options
from ganzoo.metrics.features import get_features

HERE = Path(__file__).parent
RECORD = HERE / "data" / "speedrun.jsonl"
THRESHOLDS = (5.0, 2.0, 1.5, 1.2, 1.0)
WINDOWS = (5, 15, 30)  # minutes


def marks(minutes: float) -> list[float]:
    """Every 15 s for the first two minutes, then every minute, up to `minutes` (seconds)."""
    limit = 60 * minutes
    return [float(s) for s in sorted({*range(15, 120, 15), *range(120, int(limit) + 1, 60)}) if s <= limit]


def seconds_to(rows: list[dict], fid: float) -> float | None:
    """The clock at the first mark whose FID is at most `fid` (None when no mark reaches it)."""
    return next((row["seconds"] for row in rows if row["fid"] <= fid), None)


def best_within(rows: list[dict], minutes: float) -> float | None:
    """The best FID of the marks within `minutes` (None when the run stopped before, its schedule unfinished)."""
    if not rows or (rows[-1]["seconds"] < 60 * minutes - 1 and not rows[-1].get("finished")):
        return None
    return min(row["fid"] for row in rows if row["seconds"] <= 60 * minutes + 1)


def table(records: list[dict]) -> str:
    """The markdown table of every recorded (recipe, seed) run, the run with the best FID first."""
    runs: dict[tuple[str, int], list[dict]] = {}
    for row in records:
        runs.setdefault((row["recipe"], row["seed"]), []).append(row)
    for rows in runs.values():
        rows.sort(key=lambda row: row["seconds"])
    header = " | ".join(f"s to FID {t:g}" for t in THRESHOLDS)
    windows = " | ".join(f"best FID {m} min" for m in WINDOWS)
    lines = [
        f"| recipe | seed | clock, threads | {header} | {windows} | iterations | images/s |",
        "|---|---|---|" + "---|" * (len(THRESHOLDS) + len(WINDOWS)) + "---|---|",
    ]

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    order = sorted(runs, key=lambda key: min(row["fid"] for row in runs[key]))
    for recipe, seed in order:
        rows = runs[(recipe, seed)]
        first, last = rows[0], rows[-1]
        reach = " | ".join(fmt(seconds_to(rows, t), ".0f") for t in THRESHOLDS)
        best = " | ".join(fmt(best_within(rows, m), ".2f") for m in WINDOWS)
        lines.append(
            f"| {recipe} | {seed} | {first['clock']}, {first['threads']} | {reach} | {best} | {last['steps']} | "
            f"{last['images_per_s']:.0f} |"
        )
    settings = sorted({(row["recipe"], row["settings"]) for row in records})
    lines += ["", "Recipes:", ""] + [f"- `{name}`: {plugin_and_sets}" for name, plugin_and_sets in settings]
    return "\n".join(lines)


def write_results() -> None:
    records = read_jsonl(RECORD)
    body = (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}. Each run one process "
        f"on `{TRAIN}`, its EMA generator scored with {records[0]['n']} samples against `{HELD_OUT}` (`digits` "
        "features) every 15 s of the clock for two minutes, then every minute; the clock (cpu: the process's CPU "
        "time, for runs side by side with one thread each; wall: alone) excludes the scoring. `s to FID x`: the "
        "clock at the first mark at or below x (-: never within the run). Later changes must beat this table.\n\n"
        + table(records)
    )
    print(body)
    write_section("speedrun", "python benchmarks/speedrun.py --recipe R --plugin P [--set K=V ...]", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", help="the name the run is recorded under")
    parser.add_argument("--plugin", default="dcgan")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parse_run_options(parser)
    if args.recipe:
        overrides = parse_set_options(args.sets)
        settings = " ".join([args.plugin, *(f"--set {k}={v}" for k, v in overrides.items())])
        RECORD.parent.mkdir(exist_ok=True)
        others = [row for row in read_jsonl(RECORD) if (row["recipe"], row["seed"]) != (args.recipe, args.seed)]
        RECORD.write_text("".join(json.dumps(row) + "\n" for row in others), encoding="utf-8")  # a rerun replaces

        def record(row: dict) -> None:
            with RECORD.open("a", encoding="utf-8") as out:
                out.write(json.dumps({**row, "recipe": args.recipe, "settings": settings, "n": args.n}) + "\n")

        grid = HERE / f"speedrun-{args.recipe}.png"
        features = get_features("digits")
        scored_run(args.plugin, marks(args.minutes), args.seed, args.n, features, args.clock, overrides, grid, record)
    if args.write:
        write_results()


if __name__ == "__main__":
    main()
