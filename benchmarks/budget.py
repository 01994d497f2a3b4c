"""Quality within a fixed compute budget: every image plugin trained for N CPU-minutes on the embedded digits.

Each run trains one plugin on `mnist-4k?split=train` (3,000 digits; 32 px models see them resized) with its
defaults until its budget of CPU time is spent, and at every budget mark (e.g. 10 and 30 minutes) its EMA generator
draws `--n` samples scored against the 1,000 held-out digits of `mnist-4k?split=test` with the `digits` features
(FID, KID, precision, recall; conditional accuracy for class-conditional models).

The budget is this process's CPU time spent training (`time.process_time`, evaluations excluded) with `--threads`
torch threads (1 by default), so that two runs side by side on the machine's two cores, each with one thread, are
held to the same budget as a run alone: wall-clock time would charge each run for the other's load. Results are
appended as JSON lines to benchmarks/data/budget.jsonl (so runs in separate processes combine); `--write` renders
the "quality at a fixed CPU budget" section of benchmarks/RESULTS.md from every line there.

    python benchmarks/budget.py --plugins stylegan2 --budgets 10,30 [--seed 0] [--n 2000] [--threads 1]
    python benchmarks/budget.py --write        # the table from the recorded lines, no training
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import ganzoo
from ganzoo import get_plugin
from ganzoo.engine.logging import save_samples
from ganzoo.engine.trainer import split_overrides
from ganzoo.metrics.evaluation import evaluate
from ganzoo.metrics.features import get_features

HERE = Path(__file__).parent
RECORD = HERE / "data" / "budget.jsonl"
TRAIN = "mnist-4k?split=train"
HELD_OUT = "mnist-4k?split=test"


class BudgetSpent(Exception):
    """Raised from the training callback once the last mark is scored: ends the run."""


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def scored_run(
    plugin: str,
    marks: list[float],
    seed: int,
    n: int,
    extractor,
    clock: str = "cpu",
    overrides: dict[str, str] | None = None,
    grid: Path | None = None,
    on_row: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train `plugin` on TRAIN until the last of `marks` (seconds of `clock`: this process's CPU time or wall
    time, evaluations excluded) and score its EMA generator at every mark; one row per mark. `overrides`:
    `--set`-style KEY=VALUE strings for the plugin's or the engine's config. `grid`: where to save the final
    samples. `on_row`: called with each row as it is scored. A schedule that ends before the last mark is
    scored once more at its end (that row `finished`)."""
    marks, rows = sorted(marks), []
    now = CLOCKS[clock]
    evaluating = 0.0  # seconds spent scoring, not charged to the clock
    start = now()

    def at_step(trainer: ganzoo.Trainer, step: int, finished: bool = False) -> None:
        nonlocal evaluating
        spent = now() - start - evaluating
        if spent < marks[len(rows)] and not finished:
            return
        began = now()
        model = trainer.model
        metrics = "fid,kid,pr,accuracy" if model.conditional else "fid,kid,pr"
        scores = evaluate(model, HELD_OUT, metrics, extractor, n=n, seed=seed)
        batch = trainer.train_config.batch_size
        precision = json.loads((trainer.run_dir / "config.json").read_text(encoding="utf-8"))["precision"]
        row = {"plugin": plugin, "seed": seed, "seconds": round(spent, 1), "clock": clock, "steps": step}
        row.update(batch=batch, threads=torch.get_num_threads(), amp=precision)
        row.update({k: v for k, v in scores.items() if isinstance(v, float) and k != "seconds"})
        if finished:
            row["finished"] = True  # the schedule's last iteration came before the next mark
        draws = sum(u.repeats for u in trainer.plugin.schedule(model.config) if u.needs_data and u.every == 1)
        row["images_per_s"] = round(step * batch * draws / spent, 1)  # real images through D per clock second
        rows.append(row)
        print(json.dumps(row), flush=True)
        if on_row is not None:
            on_row(row)
        if len(rows) == len(marks) or finished:
            if grid is not None:
                samples, per_row = model.sample_grid(100 if model.conditional else 64, seed=0)
                save_samples(samples, grid, per_row)
            raise BudgetSpent
        evaluating += now() - began

    train = {"steps": 10**7, "seed": seed, "progress": False, "tensorboard": False}
    train.update(checkpoint_every=10**7, sample_every=10**7, log_every=500)
    model_overrides, train_overrides = split_overrides(get_plugin(plugin), dict(overrides or {}))
    train.update(train_overrides)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = ganzoo.Trainer(
            plugin, model_overrides, train, data=TRAIN, out=Path(tmp) / plugin, callbacks=[at_step]
        )
        with contextlib.suppress(BudgetSpent):
            trainer.fit()
            at_step(trainer, trainer.step, finished=True)
    return rows


def run(plugin: str, budgets: list[float], seed: int, n: int, extractor) -> list[dict]:
    """Train `plugin` until the largest budget (CPU-minutes) is spent; a scored row at every budget mark."""
    grid = HERE / f"budget-{plugin}-{max(budgets):g}min.png"
    rows = scored_run(plugin, [60 * b for b in budgets], seed, n, extractor, grid=grid)
    for row, minutes in zip(rows, sorted(budgets), strict=True):
        row.update(minutes=minutes, cpu_s=row.pop("seconds"), images_per_cpu_s=row.pop("images_per_s"))
        del row["clock"]
    return rows


def write_results() -> None:
    from results import read_jsonl, write_section

    rows = read_jsonl(RECORD)
    minutes = sorted({row["minutes"] for row in rows})
    plugins = sorted({row["plugin"] for row in rows}, key=lambda p: min(r["fid"] for r in rows if r["plugin"] == p))
    lines = [
        f"machine: {platform.machine()}, 2 cores, torch {torch.__version__}; each run one process with one torch "
        "thread, the runs side by side and beside other jobs (up to 9 processes on the 2 cores at times): the budget "
        "is the run's own CPU time, so it is not charged for the others' load, though sharing caches slows every "
        "run somewhat, all of them alike. Budget: CPU-minutes of training (evaluations "
        f"excluded) with each plugin's defaults on `{TRAIN}` (3,000 digits), its EMA generator scored with "
        f"{rows[0].get('n', 2000)} samples against the 1,000 held-out digits of `{HELD_OUT}` (`digits` features). "
        "KID x 1e3. Median over the seeds run (per-seed FIDs in brackets). Accuracy: the `digits` classifier's "
        "agreement with the class asked for (conditional models).",
        "",
        "| plugin | CPU-minutes | iterations | images / CPU-s | FID | KID | precision | recall | accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for plugin in plugins:
        for budget in minutes:
            mine = [row for row in rows if row["plugin"] == plugin and row["minutes"] == budget]
            if not mine:
                continue

            def med(key: str, mine: list[dict] = mine) -> float:
                return statistics.median(row[key] for row in mine)

            fids = ", ".join(f"{row['fid']:.2f}" for row in mine)
            accuracy = f"{med('accuracy'):.1%}" if "accuracy" in mine[0] else "-"
            lines.append(
                f"| {plugin} | {budget:g} | {med('steps'):.0f} | {med('images_per_cpu_s'):.0f} | {med('fid'):.2f} "
                f"({fids}) | {1e3 * med('kid_mean'):.2f} | {med('precision'):.3f} | {med('recall'):.3f} | {accuracy} |"
            )
    command = "python benchmarks/budget.py --plugins P --budgets 10,30"
    write_section("quality at a fixed CPU budget", command, "\n".join(lines))


def parse_run_options(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The options every clocked benchmark shares (seed, samples per score, threads, --write), parsed; sets the
    torch threads."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=2000, help="generated samples per score")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="render the RESULTS.md section from the record")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", default="", help="comma-separated image plugins to train")
    parser.add_argument("--budgets", default="10,30", help="CPU-minutes at which to score, comma-separated")
    args = parse_run_options(parser)
    budgets = [float(b) for b in args.budgets.split(",")]
    extractor = get_features("digits")
    for plugin in filter(None, args.plugins.split(",")):
        for row in run(plugin, budgets, args.seed, args.n, extractor):
            RECORD.parent.mkdir(exist_ok=True)
            with RECORD.open("a", encoding="utf-8") as record:
                record.write(json.dumps({**row, "n": args.n}) + "\n")
    if args.write:
        write_results()


if __name__ == "__main__":
    main()
