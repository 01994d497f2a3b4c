"""CycleGAN on the embedded digit pair `digits-8x8-to-mnist`: label preservation, cycle L1 and target-domain FID.

Each seed trains `cyclegan` on `digits-8x8-to-mnist?split=train` (1,297 UCI 8x8 digits upscaled to 28 px as
domain A, 3,000 MNIST digits as domain B) for a fixed budget, then translates the held-out digits of
`?split=test` (500 UCI, 1,000 MNIST) both ways and reports:
- label preservation: the shipped `digits` classifier's accuracy on the translations, against the labels of the
  source images (training never sees labels). The classifier was trained on MNIST, so A->B is the CyCADA-style
  number (published anchor, MNIST->USPS: CyCADA 95.6%, source-only 82.2%); B->A asks the same classifier to
  read translations into the UCI style, which is harder for it;
- cycle reconstruction L1 (mean absolute error in [-1, 1] units) of A->B->A and B->A->B;
- FID with the `digits` features between the translations and the real held-out images of the target domain.
Baselines: the identity mapping (the source images themselves) and an untrained CycleGAN of the same config.

    python benchmarks/cyclegan.py [--steps 1500] [--seeds 0,1,2] [--set key=value ...] [--train key=value ...]
                                  [--threads 1] [--write] [--variant NAME] [--json FILE]
    python benchmarks/cyclegan.py --table FILE [--write]

`--set` overrides the plugin's config (e.g. `--set g_width=16`), `--train` the training config (e.g. `--train
lr_schedule=constant`); `--write` updates the "cyclegan" section of
benchmarks/RESULTS.md and saves a triplet grid of the first seed as benchmarks/cyclegan-stepN.png.
`--json FILE` appends each finished seed's row (with `--variant`, a name for this invocation's `--set` overrides,
the config, the steps and the command) to FILE as one JSON line, so the runs of separate invocations accumulate.
`--table FILE` trains nothing: it prints a table of FILE's rows, one row per variant with medians over its seeds
(the last row of each variant and seed counts), beside the identity mapping; with `--write` it updates the
"cyclegan: content preservation" section (or `--section TITLE`) with the commands that produced the rows.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import ganzoo
from ganzoo.config import parse_set_options
from ganzoo.data import resolve_data
from ganzoo.engine.logging import save_samples
from ganzoo.metrics import stats
from ganzoo.metrics.features import get_features

TRAIN = "digits-8x8-to-mnist?split=train"
HELD_OUT = "digits-8x8-to-mnist?split=test"
KEYS = ("acc_a2b", "acc_b2a", "cycle_a", "cycle_b", "fid_a2b", "fid_b2a")
SWEEP_SECTION = "cyclegan: content preservation (digits-8x8-to-mnist)"


def held_out(resolution: int) -> dict[str, torch.Tensor]:
    """The test images of both domains in [-1, 1] and their labels."""
    data = resolve_data(HELD_OUT).load(resolution=resolution, channels=1)
    return {
        "a": data.a.images.float().div(127.5).sub(1.0),
        "b": data.b.images.float().div(127.5).sub(1.0),
        "label_a": data.a.labels,
        "label_b": data.b.labels,
    }


@torch.no_grad()
def translate_all(model: Any, images: torch.Tensor, direction: str, batch: int = 250) -> torch.Tensor:
    nets = model.sampling_nets(use_ema=True)
    for net in nets.values():
        net.eval()
    parts = [
        model.plugin.translate(nets, images[i : i + batch], direction).float().cpu()
        for i in range(0, len(images), batch)
    ]
    return torch.cat(parts)


def score(translations: dict[str, torch.Tensor], test: dict[str, torch.Tensor], extractor: Any) -> dict[str, Any]:
    """Accuracy against the source labels (for A->B also per source class) and FID against the target domain for
    the two translated sets (`a2b`, `b2a`), plus cycle L1 when reconstructions (`a2b2a`, `b2a2b`) are given."""
    real = {domain: extractor.extract(test[domain])[0] for domain in ("a", "b")}
    result = {}
    for direction, source, target in (("a2b", "a", "b"), ("b2a", "b", "a")):
        features, logits = extractor.extract(translations[direction])
        labels = test[f"label_{source}"]
        kept = logits.argmax(1) == labels
        result[f"acc_{direction}"] = float(kept.float().mean())
        if direction == "a2b":  # which classes change, and into what: rows source class, columns the judge's
            result["acc_a2b_per_class"] = [round(float(kept[labels == c].float().mean()), 4) for c in range(10)]
            pairs = labels * 10 + logits.argmax(1)
            result["confusion_a2b"] = torch.bincount(pairs, minlength=100).reshape(10, 10).tolist()
        result[f"fid_{direction}"] = stats.frechet_distance_of(features, real[target])
        cycle = translations.get(f"{direction}2{source}")
        result[f"cycle_{source}"] = float((cycle - test[source]).abs().mean()) if cycle is not None else 0.0
    return result


def evaluate_model(model: Any, test: dict[str, torch.Tensor], extractor: Any) -> dict[str, float]:
    a2b, b2a = translate_all(model, test["a"], "a2b"), translate_all(model, test["b"], "b2a")
    translations = {
        "a2b": a2b,
        "b2a": b2a,
        "a2b2a": translate_all(model, a2b, "b2a"),
        "b2a2b": translate_all(model, b2a, "a2b"),
    }
    return score(translations, test, extractor)


def train_and_score(args: argparse.Namespace, config: dict, seed: int, test: dict, extractor: Any) -> dict:
    train = {
        "steps": args.steps,
        "seed": seed,
        "precision": args.precision,
        "progress": False,
        "tensorboard": False,
        "checkpoint_every": args.steps,
        "sample_every": args.steps,
        **parse_set_options(args.train_options),
    }
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = ganzoo.Trainer("cyclegan", config, train, data=TRAIN, out=Path(tmp) / "run").fit()
        seconds = time.perf_counter() - start
        row = {"seed": seed, "train_s": round(seconds, 1), **evaluate_model(result.model, test, extractor)}
        if args.write and seed == int(args.seeds.split(",")[0]):
            samples = result.model.sample(48, seed=0)
            save_samples(samples, Path(__file__).with_name(f"cyclegan-step{args.steps}"), 6)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="iterations (default: the plugin's)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", dest="set_options", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--train", dest="train_options", action="append", default=[], metavar="KEY=VALUE", help="training config"
    )
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 avoids contention)")
    parser.add_argument("--write", action="store_true", help="update the section in benchmarks/RESULTS.md")
    parser.add_argument("--variant", default=None, help="name of this invocation's overrides (default: them)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="append each seed's row to FILE")
    parser.add_argument("--table", type=Path, default=None, metavar="FILE", help="tabulate FILE's rows; no training")
    parser.add_argument("--section", default=SWEEP_SECTION, help="the RESULTS.md section --table --write writes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.table is not None:
        write_table(args.table, args.write, args.section)
        return
    plugin = ganzoo.get_plugin("cyclegan")
    args.steps = args.steps or plugin.train_defaults["steps"]
    config = parse_set_options(args.set_options)
    train_overrides = parse_set_options(args.train_options)
    variant = args.variant or ", ".join(f"{k}={v}" for k, v in {**config, **train_overrides}.items()) or "defaults"
    command = shlex.join(["python", "benchmarks/cyclegan.py", *sys.argv[1:]])
    extractor = get_features("digits")
    test = held_out(28)
    baselines = {"identity": score({"a2b": test["a"], "b2a": test["b"]}, test, extractor)}
    untrained = ganzoo.create_model("cyclegan", data_info=resolve_data(TRAIN).info(), **config)
    baselines["untrained"] = evaluate_model(untrained, test, extractor)
    for name, row in baselines.items():
        print(json.dumps({"baseline": name, **row}), flush=True)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rows.append(train_and_score(args, config, seed, test, extractor))
        print(json.dumps({"config": config, "steps": args.steps, **rows[-1]}), flush=True)
        if args.json is not None:
            line = {"variant": variant, "config": config, "steps": args.steps, **rows[-1], "command": command}
            line |= {"train_overrides": train_overrides} if train_overrides else {}
            with args.json.open("a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
    if args.write:
        write_results(args, config, rows, baselines)


def write_results(args: argparse.Namespace, config: dict, rows: list[dict], baselines: dict) -> None:
    from results import write_section

    def cells(row: dict) -> str:
        return (
            f"{100 * row['acc_a2b']:.1f}% | {100 * row['acc_b2a']:.1f}% | {row['cycle_a']:.3f} | {row['cycle_b']:.3f} "
            f"| {row['fid_a2b']:.2f} | {row['fid_b2a']:.2f}"
        )

    median = {key: statistics.median(row[key] for row in rows) for key in (*KEYS, "train_s")}
    batch = ganzoo.get_plugin("cyclegan").train_defaults["batch_size"]
    overrides = ", ".join(f"{k}={v}" for k, v in config.items()) or "none"
    lines = [
        f"machine: {platform.machine()}, {args.threads} thread(s), torch {torch.__version__}. Budget: {args.steps} "
        f"iterations at batch {batch}, precision `{args.precision}`, config overrides: {overrides}; trained on "
        f"`{TRAIN}`, scored on `{HELD_OUT}` (500 UCI / 1,000 MNIST digits) with the shipped `digits` classifier "
        f"(accuracy, and FID on its 128-d features). Medians over seeds {args.seeds}; per seed below. Accuracy is "
        "measured against the source image's label. Published anchor for label preservation in digit "
        "translation (MNIST->USPS): CyCADA 95.6%, source-only 82.2%.",
        "",
        "| model | acc A->B | acc B->A | cycle L1 A | cycle L1 B | FID A->B (vs MNIST) | FID B->A (vs UCI) |",
        "|---|---|---|---|---|---|---|",
        f"| identity mapping (source images as they are) | {cells(baselines['identity'])} |",
        f"| cyclegan, median, {args.steps} it ({median['train_s']:.0f} s) | {cells(median)} |",
        *(f"| cyclegan, seed {row['seed']} ({row['train_s']:.0f} s) | {cells(row)} |" for row in rows),
        f"| untrained cyclegan | {cells(baselines['untrained'])} |",
    ]
    sets = " ".join(f"--set {k}={v}" for k, v in config.items())
    command = f"python benchmarks/cyclegan.py --steps {args.steps} --seeds {args.seeds} {sets} --write".replace(
        "  ", " "
    )
    write_section("cyclegan (digits-8x8-to-mnist)", command, "\n".join(lines))


def read_sweep(path: Path) -> dict[str, list[dict]]:
    """The JSON lines of `path` by variant, in the order variants first appear; a later row of the same variant
    and seed replaces an earlier one. A variant whose rows disagree on config or steps is an error."""
    variants: dict[str, dict[int, dict]] = {}
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        row = json.loads(text)
        seeds = variants.setdefault(row["variant"], {})
        first = next(iter(seeds.values()), row)
        setting = ("config", "steps", "train_overrides")
        if any(first.get(key) != row.get(key) for key in setting):
            raise SystemExit(f"{path}:{number}: variant {row['variant']!r} ran with another {'/'.join(setting)}")
        seeds[row["seed"]] = row
    return {name: sorted(seeds.values(), key=lambda row: row["seed"]) for name, seeds in variants.items()}


def write_table(path: Path, write: bool, section: str = SWEEP_SECTION) -> None:
    """Prints (and with `write`, writes as `section`) the content-preservation table of the sweep rows in `path`."""
    variants = read_sweep(path)
    if not variants:
        raise SystemExit(f"{path} has no rows")
    test = held_out(28)
    identity = score({"a2b": test["a"], "b2a": test["b"]}, test, get_features("digits"))

    def cells(row: dict, per_seed: list[dict] | None = None) -> str:
        def by_seed(key: str, fmt: str) -> str:
            values = ", ".join(format(r[key] * (100 if key.startswith("acc") else 1), fmt) for r in per_seed or [])
            return f" ({values})" if per_seed and len(per_seed) > 1 else ""

        return (
            f"{100 * row['acc_a2b']:.1f}%{by_seed('acc_a2b', '.1f')} | {100 * row['acc_b2a']:.1f}% "
            f"| {row['cycle_a']:.3f} | {row['cycle_b']:.3f} | {row['fid_a2b']:.2f}{by_seed('fid_a2b', '.2f')} "
            f"| {row['fid_b2a']:.2f}"
        )

    lines = [
        "| variant | overrides | seeds | steps | acc A->B (per seed) | acc B->A | cycle L1 A | cycle L1 B "
        "| FID A->B (per seed) | FID B->A | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| identity mapping | | | | {cells(identity)} | |",
    ]
    commands: list[str] = []
    for name, rows in variants.items():
        median = {key: statistics.median(row[key] for row in rows) for key in (*KEYS, "train_s")}
        settings = {**rows[0]["config"], **rows[0].get("train_overrides", {})}
        overrides = ", ".join(f"`{k}={v}`" for k, v in settings.items()) or "none"
        seeds = ",".join(str(row["seed"]) for row in rows)
        lines.append(
            f"| {name} | {overrides} | {seeds} | {rows[0]['steps']} | {cells(median, rows)} | {median['train_s']:.0f} |"
        )
        commands += [row["command"] for row in rows if row.get("command")]
    intro = (
        f"machine: {platform.machine()}, torch {torch.__version__}. Trained on `{TRAIN}`, scored on `{HELD_OUT}` "
        '(500 UCI / 1,000 MNIST digits) with the shipped `digits` classifier, as in the "cyclegan '
        '(digits-8x8-to-mnist)" section. One row per variant: medians over its seeds, per-seed values in brackets '
        "where there are several; train s is the median wall time of one training run."
    )
    body = "\n".join([intro, "", *lines])
    print(body)
    if write:
        from results import write_section

        # write_section puts the command in backticks: the table's command, then the ones that made the rows
        argv = ["python", "benchmarks/cyclegan.py", "--table", str(path), "--write"]
        table = shlex.join(argv + (["--section", section] if section != SWEEP_SECTION else []))
        commands = list(dict.fromkeys(commands))  # in order, each once
        write_section(section, "` from `".join([table, "`, `".join(commands)]) if commands else table, body)


if __name__ == "__main__":
    main()
