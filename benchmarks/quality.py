"""Sample quality of every image plugin on the embedded digits, with the `digits` features: FID, KID, PR.

Each plugin trains on `mnist-4k?split=train` (3,000 digits) for a fixed budget with several seeds; its EMA
generator then draws `--n` samples that are scored against the 1,000 held-out digits of `mnist-4k?split=test`.
Next to the medians stand the floor (the 3,000 real training digits scored the same way) and the ceiling (each
plugin's untrained generator). Writes the "quality" section of benchmarks/RESULTS.md with --write.

    python benchmarks/quality.py [--plugins dcgan] [--steps 2000,wgan-gp=600] [--seeds 0,1,2] [--n 5000] [--write]

`--steps`: iterations for every plugin, optionally per plugin (`plugin=N`; a wgan-gp iteration is 5 critic steps).
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
from image_plugins import parse_steps

import ganzoo
from ganzoo.data import resolve_data
from ganzoo.metrics import stats
from ganzoo.metrics.evaluation import evaluate
from ganzoo.metrics.features import get_features
from ganzoo.metrics.reference import reference_features

TRAIN = "mnist-4k?split=train"
HELD_OUT = "mnist-4k?split=test"
METRICS = ("fid", "kid_mean", "precision", "recall")


def image_plugins() -> list[str]:
    return [name for name in ganzoo.list_models() if ganzoo.get_plugin(name).modality == "image"]


def floor(extractor) -> dict[str, float]:
    """Real training digits scored against the held-out ones, exactly as generated samples are."""
    real = reference_features(TRAIN, extractor, 28, 1)
    held_out = reference_features(HELD_OUT, extractor, 28, 1)
    kid, _ = stats.kernel_distance(real, held_out)
    precision, recall = stats.precision_recall(real, held_out)
    return {"fid": stats.frechet_distance_of(real, held_out), "kid_mean": kid, "precision": precision, "recall": recall}


def train_and_score(plugin: str, steps: int, seed: int, n: int, extractor, precision: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        train = {
            "steps": steps,
            "seed": seed,
            "precision": precision,
            "progress": False,
            "tensorboard": False,
            "checkpoint_every": steps,
            "sample_every": steps,
        }
        start = time.perf_counter()
        result = ganzoo.Trainer(plugin, train=train, data=TRAIN, out=Path(tmp) / plugin).fit()
        seconds = time.perf_counter() - start
        batch = ganzoo.Trainer(plugin, train=train).train_config.batch_size
        metrics = "fid,kid,pr,accuracy" if result.model.plugin.conditional else "fid,kid,pr"
        scores = evaluate(result.model, HELD_OUT, metrics, extractor, n=n, seed=seed)
    return {"plugin": plugin, "seed": seed, "steps": steps, "train_s": round(seconds, 1), "batch": batch, **scores}


def ceiling(plugin: str, n: int, extractor) -> dict:
    torch.manual_seed(0)  # the untrained weights
    model = ganzoo.create_model(plugin, data_info=resolve_data(TRAIN).info())
    return evaluate(model, HELD_OUT, "fid,kid,pr", extractor, n=n, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", default=None, help="comma-separated (default: every installed image plugin)")
    parser.add_argument("--steps", default="2000", help="N, or N,plugin=M,... (per-plugin iterations)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n", type=int, default=5000, help="generated samples per score")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--write", action="store_true", help="update the section in benchmarks/RESULTS.md")
    args = parser.parse_args()
    plugins = args.plugins.split(",") if args.plugins else image_plugins()
    seeds = [int(s) for s in args.seeds.split(",")]
    steps = parse_steps(args.steps, plugins)
    extractor = get_features("digits")
    base = floor(extractor)
    print(json.dumps({"floor": base}), flush=True)
    rows, ceilings = [], {}
    for plugin in plugins:
        ceilings[plugin] = ceiling(plugin, args.n, extractor)
        print(json.dumps({"ceiling": plugin, **ceilings[plugin]}), flush=True)
        for seed in seeds:
            rows.append(train_and_score(plugin, steps[plugin], seed, args.n, extractor, args.precision))
            print(json.dumps(rows[-1]), flush=True)
    if args.write:
        write_results(args, plugins, rows, base, ceilings)


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def write_results(args: argparse.Namespace, plugins: list[str], rows: list[dict], base: dict, ceilings: dict) -> None:
    """One section per plugin, so that a run for some plugins keeps the others' sections."""
    from results import write_section

    def cells(scores: dict) -> str:
        return f"{1e3 * scores['kid_mean']:.2f} | {scores['precision']:.3f} | {scores['recall']:.3f}"

    for plugin in plugins:
        mine = [row for row in rows if row["plugin"] == plugin]
        medians = {key: _median(mine, key) for key in ("fid", "kid_mean", "precision", "recall", "train_s")}
        conditional = "accuracy" in mine[0]
        extra_head, extra_rule, extra_blank = (" conditional accuracy |", "---|", " |") if conditional else ("", "", "")
        per_seed = ", ".join(f"{row['fid']:.2f}" for row in mine)
        trained = f"| {plugin}, {mine[0]['steps']} it, batch {mine[0]['batch']} | {medians['fid']:.3f} ({per_seed}) | "
        trained += f"{cells(medians)} | {medians['train_s']:.0f} |"
        if conditional:
            per_seed_accuracy = ", ".join(f"{row['accuracy']:.1%}" for row in mine)
            trained += f" {_median(mine, 'accuracy'):.1%} ({per_seed_accuracy}) |"
        top = ceilings[plugin]
        lines = [
            f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}. Budget: "
            f"{mine[0]['steps']} iterations at batch {mine[0]['batch']}, precision `{args.precision}` (bf16 "
            f"autocast on this CPU), trained on `{TRAIN}` (3,000 digits); {args.n} samples of the EMA generator "
            f"scored against the 1,000 held-out digits of `{HELD_OUT}` with the `digits` features (128-d, the "
            f"shipped classifier). Medians over seeds {args.seeds}; per-seed values in brackets. KID x 1e3. "
            + (
                "Conditional accuracy: the classes asked for cycle through the samples; the fraction the `digits` "
                "classifier labels as asked. "
                if conditional
                else ""
            )
            + "Published anchors (Inception features, full MNIST, so not comparable in scale): Lucic et al. 2018 "
            "best MNIST FID 6.7 (WGAN), 6.8 (NS-GAN).",
            "",
            f"| model | FID | KID x1e3 | precision | recall | train wall time (s) |{extra_head}",
            f"|---|---|---|---|---|---|{extra_rule}",
            f"| floor: real training digits | {base['fid']:.3f} | {cells(base)} | |{extra_blank}",
            trained,
            f"| ceiling: untrained {plugin} | {top['fid']:.3f} | {cells(top)} | |{extra_blank}",
        ]
        command = f"python benchmarks/quality.py --plugins {plugin} --steps {mine[0]['steps']} --seeds {args.seeds} "
        command += f"--n {args.n} --write"
        write_section(f"quality (digits features): {plugin}", command, "\n".join(lines))


if __name__ == "__main__":
    main()
