"""lstm-gan on the embedded surnames: BLEU-4 against held-out names and self-BLEU-4 of the samples, after MLE
pre-training and after adversarial training, with 20 sample names.

lstm-gan trains with its defaults on `surnames?split=train` (79,920 names; `--set KEY=VALUE` overrides its config,
`--train-set KEY=VALUE` the engine's) for `--steps` iterations, the first `--mle-steps` of them MLE pre-training. At
the end of pre-training and of training, for the generator and its EMA copy (what `ganzoo sample` draws from), `--n`
names drawn at temperature 1 are scored with the Texygen definitions (`ganzoo.metrics.text`, characters as tokens):

* BLEU-4 against the 8,879 held-out names of `surnames?split=test` (higher: more name-like character 4-grams);
* self-BLEU-4 of the samples against each other (higher: less diverse; 500 scored, each against all the others);
* NLL_test: the generator's negative log-likelihood per character of the held-out names, end marker included;
* novel: the share of samples that are not training names; length: their mean length in characters.

A reference row scores `--n` real training names the same way (the values a perfect generator would reach). The
median over `--seeds` is reported; `--write` puts the table and 20 names of the first seed's final EMA generator
into benchmarks/RESULTS.md.

    python benchmarks/text_surnames.py [--seeds 0,1,2] [--write]
    python benchmarks/text_surnames.py --smoke        # a seconds-long run that checks the script end to end
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

import ganzoo
import ganzoo.text.corpus  # registers surnames
from ganzoo.config import parse_set_options
from ganzoo.data import resolve_data
from ganzoo.metrics.text import bleu, self_bleu
from ganzoo.text.corpus import encode_samples
from ganzoo_plugins.lstm_gan import plugin

TRAIN, TEST = "surnames?split=train", "surnames?split=test"
METRICS = ("bleu4", "self_bleu4", "nll_test", "novel", "length")


def score_names(names: list[str], test: list[str], train: set[str], self_bleu_sample: int) -> dict[str, float]:
    """The text metrics of `names` (no NLL: that needs a model)."""
    return {
        "bleu4": bleu([list(n) for n in names], [list(t) for t in test]),
        "self_bleu4": self_bleu([list(n) for n in names], sample=self_bleu_sample),
        "novel": sum(n not in train for n in names) / len(names),
        "length": statistics.fmean(len(n) for n in names),
    }


def held_out_nll(nets: Any, test: list[str], temperature: float = 1.0) -> float:
    """The generator's NLL per scored position (characters and the end marker) of the held-out names, under its
    distribution at `temperature`."""
    generator = nets["generator"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # held-out names longer than the longest training name are cut
        encoded = encode_samples(test, generator.vocab, generator.max_length)
    device = next(generator.parameters()).device
    return plugin.nll(nets, encoded.tokens.to(device), encoded.lengths.to(device), temperature=temperature)


def train_and_score(args: argparse.Namespace, seed: int, test: list[str], train: set[str]) -> list[dict[str, Any]]:
    config: dict[str, Any] = {**parse_set_options(args.set), "pretrain_steps": args.mle_steps}
    rows: list[dict[str, Any]] = []
    start, evaluating = time.perf_counter(), 0.0

    def evaluate(trainer: ganzoo.Trainer, step: int) -> None:
        nonlocal evaluating
        if step not in (args.mle_steps, args.steps):
            return
        began = time.perf_counter()
        model = trainer.model
        for which, use_ema in (("generator", False), ("ema", True)):
            if use_ema and not model.ema:
                continue
            names = model.sample(args.n, seed=seed, use_ema=use_ema)
            row = {"seed": seed, "step": step, "phase": "mle" if step == args.mle_steps else "adversarial"}
            row.update(net=which, **score_names(names, test, train, args.self_bleu_sample))
            row["nll_test"] = held_out_nll(model.sampling_nets(use_ema=use_ema), test)
            row["train_s"] = round(began - start - evaluating, 1)
            row["names"] = names[:20]
            rows.append(row)
            shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items() if k != "names"}
            print(json.dumps({**shown, "first_names": names[:5]}), flush=True)
        evaluating += time.perf_counter() - began

    train_config = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seed": seed,
        "progress": False,
        "tensorboard": False,
        "checkpoint_every": args.steps,
        "sample_every": args.steps,
        **parse_set_options(args.train_set),
    }
    with tempfile.TemporaryDirectory() as tmp:
        ganzoo.Trainer(plugin, config, train_config, data=TRAIN, out=Path(tmp) / "run", callbacks=[evaluate]).fit()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = plugin.default_config()
    parser.add_argument("--steps", type=int, default=plugin.train_defaults["steps"])
    parser.add_argument("--mle-steps", type=int, default=defaults.pretrain_steps)
    parser.add_argument("--batch-size", type=int, default=plugin.train_defaults["batch_size"])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--n", type=int, default=2000, help="names generated per evaluation")
    parser.add_argument("--self-bleu-sample", type=int, default=500)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="lstm-gan config override")
    parser.add_argument(
        "--train-set", action="append", default=[], metavar="KEY=VALUE", help="engine option override, e.g. ema_start"
    )
    parser.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.mle_steps, args.n, args.self_bleu_sample, args.seeds = 6, 3, 50, 20, "0"
        args.set += ["hidden_dim=8", "embed_dim=8", "d_hidden_dim=8"]
    seeds = [int(s) for s in args.seeds.split(",")]

    test = resolve_data(TEST).load().decode()
    train_names = resolve_data(TRAIN).load().decode()
    real = random.Random(0).sample(train_names, args.n)
    reference = score_names(real, test, set(), args.self_bleu_sample)  # (novel: not meaningful here)
    print(json.dumps({"reference": reference}), flush=True)
    rows = [row for seed in seeds for row in train_and_score(args, seed, test, set(train_names))]
    if args.write and not args.smoke:
        write_results(args, rows, reference)


def write_results(args: argparse.Namespace, rows: list[dict[str, Any]], reference: dict[str, float]) -> None:
    from results import write_section

    def median(phase: str, net: str, key: str) -> float:
        return statistics.median(r[key] for r in rows if r["phase"] == phase and r["net"] == net)

    seeds = sorted({r["seed"] for r in rows})
    overrides = [*args.set, *args.train_set]
    lines = [
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; lstm-gan "
        f"{plugin.version} defaults{' with ' + ', '.join(overrides) if overrides else ''}, batch {args.batch_size}, "
        f"data `{TRAIN}`; {args.n} names per evaluation at temperature 1; medians over seeds {seeds}. "
        "BLEU-4 / self-BLEU-4: Texygen's definitions over characters, against the 8,879 held-out names / among the "
        "samples (500 scored); NLL_test: nats per character of the held-out names (end marker included); novel: "
        "samples that are not training names. train_s excludes the evaluations.",
        "",
        "| model | BLEU-4 | self-BLEU-4 | NLL_test | novel | mean length | train_s |",
        "|---|---|---|---|---|---|---|",
        f"| real training names (reference) | {reference['bleu4']:.3f} | {reference['self_bleu4']:.3f} | | | "
        f"{reference['length']:.2f} | |",
    ]
    for phase, label in (
        ("mle", f"after MLE ({args.mle_steps} it)"),
        ("adversarial", f"after adversarial ({args.steps} it)"),
    ):
        for net in ("generator", "ema"):
            if not any(r["phase"] == phase and r["net"] == net for r in rows):
                continue
            values = {key: median(phase, net, key) for key in (*METRICS, "train_s")}
            lines.append(
                f"| {label}, {net} | {values['bleu4']:.3f} | {values['self_bleu4']:.3f} | {values['nll_test']:.3f} | "
                f"{values['novel']:.1%} | {values['length']:.2f} | {values['train_s']:.0f} s |"
            )
    final = next(r for r in rows if r["seed"] == seeds[0] and r["phase"] == "adversarial" and r["net"] == "ema")
    lines += [
        "",
        f"20 names from the final EMA generator (seed {seeds[0]}, temperature 1):",
        "",
        ", ".join(final["names"]),
    ]
    command = (
        f"python benchmarks/text_surnames.py --seeds {args.seeds}"
        + "".join(f" --set {s}" for s in args.set)
        + "".join(f" --train-set {s}" for s in args.train_set)
    )
    name = "lstm-gan on surnames" + (f" ({', '.join(overrides)})" if overrides else "")
    write_section(name, command + " --write", "\n".join(lines))


if __name__ == "__main__":
    main()
