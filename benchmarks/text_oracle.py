"""The SeqGAN synthetic-oracle benchmark for lstm-gan: NLL_oracle and NLL_test after MLE and after adversarial
training, with wall time.

The oracle LSTM (`benchmarks/data/seqgan-oracle.npz`, defined in `ganzoo.text.oracle`) draws `--train` training and
`--test` held-out sequences of 20 tokens over 5,000 ids (seeded). lstm-gan trains on the training set in token-id
mode (`tokens:PATH`) with its defaults at the oracle's size (embedding and hidden 32, as SeqGAN): `--mle-steps`
iterations of MLE pre-training, `--d-steps` of discriminator pre-training, then `--adv-steps` adversarial iterations.
At the end of pre-training and at the end of training it reports, for the generator and for its EMA copy:

* NLL_oracle: the oracle's mean negative log-likelihood per token, in nats, of `--n` generated sequences (lower:
  the samples look more like the oracle's; published: ground truth 5.75, MLE 9.04, SeqGAN 8.74, LeakGAN 7.04);
* NLL_test: the generator's own NLL per token of the held-out oracle sequences (a generator that collapses onto a
  few likely sequences lowers NLL_oracle but raises NLL_test).

`--set KEY=VALUE` overrides lstm-gan's config, `--train-set KEY=VALUE` the engine's (e.g. `ema_start`, so that the
EMA averages only the adversarial phase).

`--every N` also evaluates every N adversarial iterations (at temperature 1) and lists each seed's course in
RESULTS.md: an adversarial phase that oscillates shows here, where its end point alone would not.

A baseline that needs no adversary: the MLE generator sampled at a lower temperature (`--temperatures`), its
NLL_test that of the temperature-scaled distribution. train_s excludes the evaluations. One JSON line per
evaluation; `--write` puts the medians over `--seeds` into benchmarks/RESULTS.md, `--json FILE` every row.

    python benchmarks/text_oracle.py [--seeds 0,1,2] [--set adversarial=reinforce ...] [--write]
    python benchmarks/text_oracle.py --smoke        # a seconds-long run that checks the script end to end
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import ganzoo
import ganzoo.text.corpus  # registers tokens:PATH
from ganzoo.config import parse_set_options
from ganzoo.text.oracle import Oracle
from ganzoo_plugins.lstm_gan import plugin

ORACLE = Path(__file__).resolve().parent / "data" / "seqgan-oracle.npz"
LENGTH = 20
ORACLE_SIZE = {"embed_dim": 32, "hidden_dim": 32}
PUBLISHED = "ground truth 5.75, MLE 9.04, SeqGAN 8.74, RankGAN 8.25, LeakGAN 7.04 (NLL_oracle)"


def write_tokens(path: Path, sequences: torch.Tensor) -> None:
    path.write_text("\n".join(" ".join(map(str, row)) for row in sequences.tolist()) + "\n", encoding="utf-8")


def draw_data(oracle: Oracle, seed: int, train: int, test: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`train` training and `test` held-out oracle sequences of LENGTH tokens, drawn from the run's seed."""
    data_seed = torch.Generator().manual_seed(seed)
    return oracle.sample(train, LENGTH, data_seed), oracle.sample(test, LENGTH, data_seed)


def _nll_test(nets: Any, test: torch.Tensor, temperature: float = 1.0) -> float:
    """The generator's NLL per token (at `temperature`) of the held-out sequences whose ids it knows."""
    generator = nets["generator"]
    test = test[test.max(dim=1).values < generator.vocab.pad].to(generator.banned.device)
    return plugin.nll(nets, test, temperature=temperature)


def oracle_scores(
    nets: Any, oracle: Oracle, test: torch.Tensor, n: int, seed: int, temperature: float
) -> dict[str, Any]:
    """NLL_oracle of `n` samples drawn at `temperature` (seeded by `seed`) and NLL_test at that temperature."""
    generator = torch.Generator(device=nets["generator"].banned.device).manual_seed(seed)
    samples = plugin.sample_tokens(nets, n, generator=generator, temperature=temperature)
    return {
        "nll_oracle": round(oracle.nll(samples.cpu()), 4),
        "nll_test": round(_nll_test(nets, test, temperature), 4),
    }


def run(args: argparse.Namespace, seed: int, oracle: Oracle) -> list[dict[str, Any]]:
    """One training run on freshly drawn oracle data; its evaluation rows."""
    config: dict[str, Any] = {**ORACLE_SIZE, **parse_set_options(args.set)}
    config.update(pretrain_steps=args.mle_steps, pretrain_d_steps=args.d_steps)
    pretrained_at = args.mle_steps + args.d_steps
    total = pretrained_at + args.adv_steps
    train_set, test_set = draw_data(oracle, seed, args.train, args.test)
    rows: list[dict[str, Any]] = []
    start, evaluating = time.perf_counter(), 0.0

    def evaluate(trainer: ganzoo.Trainer, step: int) -> None:
        nonlocal evaluating
        traced = args.every and step > pretrained_at and (step - pretrained_at) % args.every == 0
        if step not in (pretrained_at, total) and not traced:
            return
        began = time.perf_counter()
        model = trainer.model
        temperatures = (1.0, *args.temperatures) if step == pretrained_at else (1.0,)
        for which, nets in (("generator", model.sampling_nets(use_ema=False)), ("ema", model.sampling_nets())):
            if which == "ema" and not model.ema:
                continue
            for temperature in temperatures:
                phase = "mle" if step == pretrained_at else "adversarial"
                row = {"seed": seed, "step": step, "phase": phase, "net": which, "temperature": temperature}
                row.update(oracle_scores(nets, oracle, test_set, args.n, seed, temperature))
                row["train_s"] = round(began - start - evaluating, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
        evaluating += time.perf_counter() - began

    train = {
        "steps": total,
        "batch_size": args.batch_size,
        "seed": seed,
        "device": args.device,
        "precision": args.precision,
        "progress": False,
        "tensorboard": False,
        "checkpoint_every": total,
        "sample_every": total,
        **parse_set_options(args.train_set),
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "oracle-train.txt"
        write_tokens(data, train_set)
        truth = {"seed": seed, "ground_truth_nll_oracle": round(oracle.nll(test_set), 4), "config": config}
        print(json.dumps(truth), flush=True)
        ganzoo.Trainer(plugin, config, train, data=f"tokens:{data}", out=Path(tmp) / "run", callbacks=[evaluate]).fit()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = plugin.default_config()
    parser.add_argument("--train", type=int, default=10_000, help="oracle training sequences")
    parser.add_argument("--test", type=int, default=10_000, help="held-out oracle sequences (NLL_test)")
    parser.add_argument("--n", type=int, default=10_000, help="generated sequences scored by the oracle")
    parser.add_argument("--mle-steps", type=int, default=defaults.pretrain_steps)
    parser.add_argument("--d-steps", type=int, default=defaults.pretrain_d_steps, help="D pre-training iterations")
    parser.add_argument("--adv-steps", type=int, default=plugin.train_defaults["steps"] - defaults.pretrain_steps)
    parser.add_argument("--batch-size", type=int, default=plugin.train_defaults["batch_size"])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--temperatures", default="0.9,0.8", help="the MLE generator's baseline temperatures")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="lstm-gan config override")
    parser.add_argument(
        "--train-set", action="append", default=[], metavar="KEY=VALUE", help="engine option override, e.g. ema_start"
    )
    parser.add_argument("--every", type=int, default=0, help="also evaluate every N adversarial iterations")
    parser.add_argument("--json", type=Path, help="also write every row here")
    parser.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    args = parser.parse_args()
    if args.smoke:
        args.train = args.test = args.n = 256
        args.mle_steps, args.d_steps, args.adv_steps, args.batch_size, args.seeds = 20, 2, 6, 32, "0"
    args.temperatures = [float(t) for t in args.temperatures.split(",") if t]
    oracle = Oracle.load(ORACLE)
    rows = [row for seed in args.seeds.split(",") for row in run(args, int(seed), oracle)]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    if args.write and not args.smoke:
        write_results(args, rows)


def write_results(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    from results import write_section

    total = args.mle_steps + args.d_steps + args.adv_steps
    final = [r for r in rows if r["phase"] == "mle" or r["step"] == total]

    def median(key: str, **where: Any) -> float:
        return statistics.median(r[key] for r in final if all(r[k] == v for k, v in where.items()))

    seeds = sorted({r["seed"] for r in rows})
    overrides = [*args.set, *args.train_set]
    lines = [
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; lstm-gan "
        f"{plugin.version} defaults at the oracle's size (embedding and hidden 32)"
        f"{''.join(', ' + s for s in overrides)}, batch {args.batch_size}; {args.train:,} training / {args.test:,} "
        f"held-out oracle sequences and {args.n:,} "
        f"generated ones per evaluation (seeded by the run's seed); medians over seeds {seeds}. NLL_oracle: nats per "
        "token of the samples under the oracle; NLL_test: the generator's nats per token of the held-out sequences. "
        f"Published: {PUBLISHED}. train_s excludes the evaluations.",
        "",
        "| model | NLL_oracle | NLL_test | vs MLE: NLL_oracle | vs MLE: NLL_test | train_s |",
        "|---|---|---|---|---|---|",
    ]
    for net in ("generator", "ema"):
        if not any(r["net"] == net for r in rows):
            continue
        mle = {k: median(k, phase="mle", net=net, temperature=1.0) for k in ("nll_oracle", "nll_test", "train_s")}
        entries = [(f"MLE ({args.mle_steps} it), {net}", "mle", 1.0)]
        entries += [(f"MLE, {net}, sampled at temperature {t:g} (no adversary)", "mle", t) for t in args.temperatures]
        after = f"MLE and {args.d_steps} it of D pre-training" if args.d_steps else "MLE"
        entries.append((f"adversarial ({args.adv_steps} it after {after}), {net}", "adversarial", 1.0))
        for label, phase, temperature in entries:
            where = {"phase": phase, "net": net, "temperature": temperature}
            values = {k: median(k, **where) for k in ("nll_oracle", "nll_test", "train_s")}
            change = {k: values[k] / mle[k] - 1 for k in ("nll_oracle", "nll_test")}
            lines.append(
                f"| {label} | {values['nll_oracle']:.3f} | {values['nll_test']:.3f} | {change['nll_oracle']:+.1%} | "
                f"{change['nll_test']:+.1%} | {values['train_s']:.0f} s |"
            )
    lines += ["", "The adversarial generator against its own MLE result, per seed (NLL_oracle / NLL_test):", ""]
    scores = ("nll_oracle", "nll_test")
    for seed in seeds:
        mle = {k: median(k, seed=seed, phase="mle", net="generator", temperature=1.0) for k in scores}
        adv = {k: median(k, seed=seed, phase="adversarial", net="generator") for k in scores}
        lines.append(
            f"- seed {seed}: {mle['nll_oracle']:.3f} -> {adv['nll_oracle']:.3f} "
            f"({adv['nll_oracle'] / mle['nll_oracle'] - 1:+.1%}) / {mle['nll_test']:.3f} -> {adv['nll_test']:.3f} "
            f"({adv['nll_test'] / mle['nll_test'] - 1:+.1%})"
        )
    if args.every:
        heading = f"after MLE, then every {args.every} adversarial iterations"
        lines += ["", f"NLL_oracle / NLL_test {heading}:", ""]
        for seed in seeds:
            for net in sorted({r["net"] for r in rows}, reverse=True):
                course = [r for r in rows if r["seed"] == seed and r["net"] == net and r["temperature"] == 1.0]
                points = ", ".join(f"{r['nll_oracle']:.2f} / {r['nll_test']:.2f}" for r in course)
                lines.append(f"- seed {seed}, {net}: {points}")
    command = (
        f"python benchmarks/text_oracle.py --seeds {args.seeds} --mle-steps {args.mle_steps} "
        f"--adv-steps {args.adv_steps}"
        + (f" --d-steps {args.d_steps}" if args.d_steps else "")
        + (f" --every {args.every}" if args.every else "")
        + "".join(f" --set {s}" for s in args.set)
        + "".join(f" --train-set {s}" for s in args.train_set)
        + " --write"
    )
    name = "lstm-gan on the SeqGAN oracle" + (f" ({', '.join(overrides)})" if overrides else "")
    write_section(name, command, "\n".join(lines))


if __name__ == "__main__":
    main()
