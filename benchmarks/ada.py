"""Limited data: adaptive augmentation (`--augment ada`) against none and DiffAugment on 100 and 500 digits.

The ADA paper's claim (Karras et al. 2020: with little data the discriminator overfits, and augmenting everything it
sees at a strength p that follows its overfitting keeps training useful), measured here: one plugin (dcgan by
default, its defaults) trains on `n` digits of `mnist-4k?split=train` (a seeded subset) for the same iterations
with no augmentation, with DiffAugment (color,translation,cutout) and with ADA; its EMA generator is scored every
`--every` iterations against the 1,000 held-out digits of `mnist-4k?split=test` (FID, KID, precision, recall with
the `digits` features), and ADA's p at the end is shown. Rows are appended to benchmarks/data/ada.jsonl; `--write`
renders the "limited data: ADA vs DiffAugment" section of RESULTS.md from them.

    python benchmarks/ada.py [--plugin dcgan] [--sizes 100,500] [--steps 1500] [--every 500] [--seeds 0] [--write]
    python benchmarks/ada.py --sizes "" --write     # the table from the recorded rows, no training
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

import torch

import ganzoo
from ganzoo.metrics.evaluation import evaluate
from ganzoo.metrics.features import get_features

HERE = Path(__file__).parent
RECORD = HERE / "data" / "ada.jsonl"
HELD_OUT = "mnist-4k?split=test"
METHODS = {"none": {}, "diffaugment": {"diffaugment": "color,translation,cutout"}, "ada": {"augment": "ada"}}


def run(plugin: str, size: int, method: str, steps: int, every: int, seed: int, n: int, extractor) -> list[dict]:
    """One training run; a scored row every `every` iterations (and at the end)."""
    rows: list[dict] = []

    def score(trainer: ganzoo.Trainer, step: int) -> None:
        if step % every and step != steps:
            return
        scores = evaluate(trainer.model, HELD_OUT, "fid,kid,pr", extractor, n=n, seed=seed)
        row = {"plugin": plugin, "images": size, "method": method, "seed": seed, "step": step, "n": n}
        row.update({k: v for k, v in scores.items() if isinstance(v, float) and k != "seconds"})
        lines = (trainer.run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        if method == "ada" and lines:
            row["p"] = json.loads(lines[-1])["augment/p"]
        rows.append(row)
        print(json.dumps(row), flush=True)

    train = {"steps": steps, "seed": seed, "progress": False, "tensorboard": False, "log_every": 50}
    train.update(checkpoint_every=steps, sample_every=steps, **METHODS[method])
    data = f"mnist-4k?split=train&n={size}&seed={seed}"
    with tempfile.TemporaryDirectory() as tmp:
        ganzoo.Trainer(plugin, train=train, data=data, out=Path(tmp) / "run", callbacks=[score]).fit()
    return rows


def write_results() -> None:
    from results import write_section

    rows = [json.loads(line) for line in RECORD.read_text(encoding="utf-8").splitlines() if line.strip()]
    steps = sorted({row["step"] for row in rows})
    lines = [
        f"machine: {platform.machine()}, one torch thread per run, torch {torch.__version__}. Each plugin with its "
        "defaults on a seeded subset of `mnist-4k?split=train`, the same iterations for every method; its EMA "
        f"generator scored with {rows[0]['n']} samples against the 1,000 held-out digits of `{HELD_OUT}` (`digits` "
        "features). FID at each step (median over seeds when several ran); at the last step also KID x 1e3, "
        "precision, recall and ADA's final p. DiffAugment: color,translation,cutout. ADA: target 0.6, p adjusted "
        "every 4 iterations, ada_kimg 100.",
        "",
        "| plugin | images | method | " + " | ".join(f"FID @{s}" for s in steps) + " | KID | precision | recall | p |",
        "|---|---|---|" + "---|" * len(steps) + "---|---|---|---|",
    ]
    keys = sorted(
        {(r["plugin"], r["images"], r["method"]) for r in rows}, key=lambda k: (k[0], k[1], list(METHODS).index(k[2]))
    )
    for plugin, size, method in keys:
        mine = [r for r in rows if (r["plugin"], r["images"], r["method"]) == (plugin, size, method)]

        def med(key: str, step: int, mine: list[dict] = mine) -> float | None:
            values = [r[key] for r in mine if r["step"] == step and key in r]
            return statistics.median(values) if values else None

        fids = [med("fid", s) for s in steps]
        last = steps[-1]
        p = med("p", last)
        lines.append(
            f"| {plugin} | {size} | {method} | "
            + " | ".join("-" if f is None else f"{f:.2f}" for f in fids)
            + f" | {1e3 * med('kid_mean', last):.2f} | {med('precision', last):.3f} | {med('recall', last):.3f} | "
            + ("-" if p is None else f"{p:.3f}")
            + " |"
        )
    write_section("limited data: ADA vs DiffAugment", "python benchmarks/ada.py --sizes 100,500", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugin", default="dcgan")
    parser.add_argument("--sizes", default="100,500", help="training images, comma-separated")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--n", type=int, default=2000, help="generated samples per score")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="render the RESULTS.md section from the record")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    extractor = get_features("digits")
    for seed in (int(s) for s in args.seeds.split(",") if s):
        for size in (int(s) for s in args.sizes.split(",") if s):
            for method in filter(None, args.methods.split(",")):
                for row in run(args.plugin, size, method, args.steps, args.every, seed, args.n, extractor):
                    RECORD.parent.mkdir(exist_ok=True)
                    with RECORD.open("a", encoding="utf-8") as record:
                        record.write(json.dumps(row) + "\n")
    if args.write:
        write_results()


if __name__ == "__main__":
    main()
