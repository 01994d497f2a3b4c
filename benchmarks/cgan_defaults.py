"""Evidence for the cgan defaults: train one variant on the embedded digits and print, every `every` iterations,
the FID, precision and recall of 2,000 samples (EMA generator, `digits` features, against
`mnist-4k?split=test`) and the conditional accuracy (the `digits` classifier's agreement with the requested
class). Recall exposes a generator that draws one image per class. train_s excludes the evaluations.

    python benchmarks/cgan_defaults.py '{"g_conditioning": "cbn"}' [--steps 1000] [--every 500]

The variant is a JSON object of cgan config overrides ('{}' = the shipped defaults).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import ganzoo
from ganzoo.engine.logging import save_samples
from ganzoo.metrics.evaluation import evaluate
from ganzoo.metrics.features import get_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", help="JSON object of cgan config overrides")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--grid", default=None, help="write the final sample grid (one row per class) here")
    args = parser.parse_args()
    variant = json.loads(args.variant)
    extractor = get_features("digits")
    start, evaluating = time.perf_counter(), 0.0

    def score(trainer: ganzoo.Trainer, step: int) -> None:
        nonlocal evaluating
        if step % args.every:
            return
        began = time.perf_counter()
        scores = evaluate(trainer.model, "mnist-4k?split=test", "fid,pr,accuracy", extractor, n=2000)
        row = {"variant": variant, "step": step, "train_s": round(began - start - evaluating, 1)}
        row.update({k: round(scores[k], 4) for k in ("fid", "accuracy", "precision", "recall")})
        if args.grid and step == args.steps:
            samples, per_row = trainer.model.sample_grid(100, seed=0)
            save_samples(samples, Path(args.grid), per_row)
        print(json.dumps(row), flush=True)
        evaluating += time.perf_counter() - began

    train = {"steps": args.steps, "progress": False, "tensorboard": False}
    train.update(checkpoint_every=args.steps, sample_every=args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        ganzoo.Trainer("cgan", variant, train, out=Path(tmp) / "run", callbacks=[score]).fit()


if __name__ == "__main__":
    main()
