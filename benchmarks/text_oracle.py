"""The SeqGAN synthetic-oracle benchmark for lstm-gan: NLL_oracle and NLL_test after MLE and after adversarial
training, with wall time.

The oracle LSTM (`benchmarks/data/seqgan-oracle.npz`, defined in `ganzoo.text.oracle`) draws `--train` training and
`--test` held-out sequences of 20 tokens over 5,000 ids (seeded). lstm-gan trains on the training set in token-id
mode (`tokens:PATH`): `--mle-steps` iterations of MLE pre-training, `--d-steps` of discriminator pre-training, then
`--adv-steps` adversarial iterations. At the end of pre-training and at the end of training it reports, for the
generator and for its EMA copy:

* NLL_oracle: the oracle's mean negative log-likelihood per token, in nats, of `--n` generated sequences (lower:
  the samples look more like the oracle's; published: ground truth 5.75, MLE 9.04, SeqGAN 8.74, LeakGAN 7.04);
* NLL_test: the generator's own NLL per token of the held-out oracle sequences (a generator that collapses onto a
  few likely sequences lowers NLL_oracle but raises NLL_test).

train_s excludes the evaluations. One JSON line per evaluation; `--json FILE` also writes them all.

    python benchmarks/text_oracle.py [--mle-steps 3000] [--adv-steps 1000] [--set adversarial=reinforce ...]
    python benchmarks/text_oracle.py --smoke        # a seconds-long run that checks the script end to end
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import ganzoo
import ganzoo.text.corpus  # registers tokens:PATH
from ganzoo.text.oracle import Oracle
from ganzoo_plugins.lstm_gan import plugin

ORACLE = Path(__file__).resolve().parent / "data" / "seqgan-oracle.npz"
LENGTH = 20


def _write_tokens(path: Path, sequences: torch.Tensor) -> None:
    path.write_text("\n".join(" ".join(map(str, row)) for row in sequences.tolist()) + "\n", encoding="utf-8")


def _scores(nets: Any, oracle: Oracle, test: torch.Tensor, n: int, seed: int) -> dict[str, float]:
    """NLL_oracle of n generated sequences and NLL_test of the held-out ones (those whose ids the model knows)."""
    generator = torch.Generator(device=next(nets["generator"].parameters()).device).manual_seed(seed)
    samples = plugin.sample_tokens(nets, n, generator=generator)
    known = test.max(dim=1).values < nets["generator"].vocab.pad  # ids the training data never showed are unknown
    return {
        "nll_oracle": round(oracle.nll(samples.cpu()), 4),
        "nll_test": round(plugin.nll(nets, test[known].to(samples.device)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=10_000, help="oracle training sequences")
    parser.add_argument("--test", type=int, default=10_000, help="held-out oracle sequences (NLL_test)")
    parser.add_argument("--n", type=int, default=10_000, help="generated sequences scored by the oracle")
    parser.add_argument("--mle-steps", type=int, default=3000)
    parser.add_argument("--d-steps", type=int, default=0, help="discriminator pre-training iterations")
    parser.add_argument("--adv-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="lstm-gan config override")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    args = parser.parse_args()
    if args.smoke:
        args.train = args.test = args.n = 256
        args.mle_steps, args.d_steps, args.adv_steps, args.batch_size = 20, 2, 6, 32
    config: dict[str, Any] = {"embed_dim": 32, "hidden_dim": 32, **dict(s.split("=", 1) for s in args.set)}
    config.update(pretrain_steps=args.mle_steps, pretrain_d_steps=args.d_steps)
    pretrained_at = args.mle_steps + args.d_steps
    total = pretrained_at + args.adv_steps

    oracle = Oracle.load(ORACLE)
    data_seed = torch.Generator().manual_seed(args.seed)
    train_set, test_set = oracle.sample(args.train, LENGTH, data_seed), oracle.sample(args.test, LENGTH, data_seed)
    rows: list[dict[str, Any]] = []
    start, evaluating = time.perf_counter(), 0.0

    def evaluate(trainer: ganzoo.Trainer, step: int) -> None:
        nonlocal evaluating
        if step not in (pretrained_at, total):
            return
        began = time.perf_counter()
        model = trainer.model
        for which, nets in (("generator", model.sampling_nets(use_ema=False)), ("ema", model.sampling_nets())):
            if which == "ema" and not model.ema:
                continue
            row = {"step": step, "phase": "mle" if step == pretrained_at else "adversarial", "net": which}
            row.update(_scores(nets, oracle, test_set, args.n, args.seed))
            row["train_s"] = round(began - start - evaluating, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
        evaluating += time.perf_counter() - began

    train = {
        "steps": total,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "device": args.device,
        "precision": args.precision,
        "progress": False,
        "tensorboard": False,
        "checkpoint_every": total,
        "sample_every": total,
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "oracle-train.txt"
        _write_tokens(data, train_set)
        print(json.dumps({"ground_truth_nll_oracle": round(oracle.nll(test_set), 4), "config": config}), flush=True)
        ganzoo.Trainer(plugin, config, train, data=f"tokens:{data}", out=Path(tmp) / "run", callbacks=[evaluate]).fit()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
