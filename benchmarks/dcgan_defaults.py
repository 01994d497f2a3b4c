"""Evidence for the DCGAN defaults: train variants on the embedded digits and judge their samples.

Each variant trains with the ganzoo engine for a fixed number of iterations; at every checkpoint of the
evaluation schedule 2,000 samples of the EMA generator (and of the raw generator) are scored by the digit
classifier of `digits_judge.py`: Fréchet distance in its feature space (lower is better; real held-out digits
score the floor), mean top-class confidence (clean digits score high) and class coverage (the entropy of
the predicted-class histogram over log 10; 1.0 = all ten digits equally often, collapse scores low).

    python benchmarks/dcgan_defaults.py --steps 3000 --every 500 [--variants base,spectral,...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import digits_judge as judge_mod
import torch

from ganzoo import Trainer
from ganzoo.engine.logging import save_samples

VARIANTS: dict[str, tuple[dict, dict]] = {
    # name: (model overrides, training overrides)
    "base": ({}, {}),
    "fp32": ({}, {"precision": "fp32"}),
    "spectral": ({"d_norm": "spectral"}, {}),
    "ttur": ({"lr_d": 4e-4, "lr_g": 1e-4}, {}),
    "hinge": ({"loss": "hinge"}, {}),
    "batch128": ({}, {"batch_size": 128}),
    "narrow": ({"g_width": 32, "d_width": 32}, {}),
    "wide": ({"g_width": 128}, {}),
    "lr4e-4": ({"lr_g": 4e-4, "lr_d": 4e-4}, {}),
    "channels_last": ({}, {"channels_last": True}),
}


def run_variant(name: str, steps: int, every: int, net, reference, seed: int) -> list[dict]:
    model_overrides, train_overrides = VARIANTS[name]
    rows: list[dict] = []
    eval_time = 0.0
    start = time.perf_counter()

    def evaluate(trainer: Trainer, step: int) -> None:
        nonlocal eval_time
        if step % every:
            return
        t0 = time.perf_counter()
        model = trainer.model
        row = {"variant": name, "step": step, "train_s": round(t0 - start - eval_time, 1)}
        for label, use_ema in (("ema", True), ("raw", False)):
            if use_ema and not model.ema:
                continue
            samples = model.sample(2000, seed=1, use_ema=use_ema)
            for key, value in judge_mod.score(net, samples, reference).items():
                row[f"{label}_{key}"] = round(float(value), 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if step == steps:
            save_samples(model.sample(64, seed=0), judge_mod.CACHE.parent / f"dcgan-{name}.png")
        eval_time += time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        train = {
            "steps": steps,
            "progress": False,
            "tensorboard": False,
            "seed": seed,
            "checkpoint_every": steps,
            "sample_every": steps,
            **train_overrides,
        }
        Trainer("dcgan", model_overrides, train, out=Path(tmp) / name, callbacks=[evaluate]).fit()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", default=None, help="append JSON lines here")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    net, accuracy = judge_mod.judge()
    x_train, _, x_test, _ = judge_mod.split()
    reference, _ = judge_mod.features(net, judge_mod.to_float(x_train))
    floor = judge_mod.score(net, judge_mod.to_float(x_test), reference)
    print(json.dumps({"judge_accuracy": accuracy, "floor": floor}), flush=True)
    for name in args.variants.split(","):
        rows = run_variant(name, args.steps, args.every, net, reference, args.seed)
        if args.out:
            with open(args.out, "a") as handle:
                for row in rows:
                    handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
