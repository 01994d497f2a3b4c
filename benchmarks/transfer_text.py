"""Does fine-tuning pay off for text? lstm-gan from common surnames to rare ones, held-out NLL against iterations.

The embedded surnames are sorted by frequency; their rare tail (the names ranked `TAIL_RANK` and after: 8,799
names, longer and of more origins than the common ones) is the target domain, a name list of another kind:

- source: lstm-gan trained `--pretrain-steps` iterations (its defaults: the first 1,000 MLE) on the training
  split's names ranked before `TAIL_RANK` (`surnames?split=train` minus the tail: 72,000 names);
- targets `tail-100`, `tail-1000`: 100 or 1,000 of the tail's training-split names (a seeded subset that follows
  the run's seed); held out: the tail's test-split names (every tenth name of the list: 879).

The corpora are written once as text files under `--work` and read as `text:PATH` specs. Methods: scratch (lstm-gan
with its defaults on the target, read in the source's vocabulary and length so that every model scores the same
symbols: a character the 100 names lack is then unlikely, not impossible), fine-tune (`ganzoo finetune`: the
source's vocabulary and length; the run starts at iteration 0, so its first 1,000 iterations are MLE on the target
again) at training's MLE learning rate (1e-2), a tenth and a hundredth of it, and fine-tune + FreezeD (the
discriminator's first block frozen) at 1e-2. At every iteration of `--evals` (and, for fine-tuning, the source
itself at 0) the EMA generator is scored: NLL_test (nats per character of the held-out tail names, end marker
included; lower: the model finds rare names likelier), BLEU-4 of `--n` sampled names against them and their self-
BLEU-4 (`text_surnames.py`'s definitions). From the median curves: the iterations each method needs to reach
scratch's best NLL_test and each method's best against scratch's. Runs are cached under `--work` like transfer.py's;
`--write` renders the cached runs into the "transfer: text" section of benchmarks/RESULTS.md.

    python benchmarks/transfer_text.py [--targets tail-100,tail-1000] [--methods all] [--seeds 0,1,2]
                                       [--evals 10,25,50,100,250,500,1000,2000] [--pretrain-steps 2000]
                                       [--n 500] [--work DIR] [--threads 1] [--write]
    python benchmarks/transfer_text.py --smoke   # seconds: checks the script end to end, measures nothing
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from text_surnames import held_out_nll, score_names
from transfer import Curve, cached, quiet, run_path, save_run, speedups

import ganzoo
from ganzoo.data import resolve_data
from ganzoo.engine.trainer import split_overrides
from ganzoo.registry import get_plugin
from ganzoo.text.corpus import VocabularySource, in_surnames_test, read_surnames
from ganzoo.transfer import prepare_finetune

PLUGIN = "lstm-gan"
TAIL_RANK = 80_000
TARGETS = {"tail-100": 100, "tail-1000": 1000}
METHODS: dict[str, tuple[bool, dict[str, Any]]] = {  # name: (start from the source, overrides)
    "scratch": (False, {}),
    "fine-tune at lr_mle 1e-2": (True, {"lr_mle": 1e-2}),
    "fine-tune + FreezeD at lr_mle 1e-2": (True, {"freeze_d": 1, "lr_mle": 1e-2}),
    "fine-tune at lr_mle 1e-3": (True, {"lr_mle": 1e-3}),
    "fine-tune at lr_mle 1e-4": (True, {"lr_mle": 1e-4}),
}
"""The learning rates are explicit, so that a row does not change with lstm-gan's `finetune_defaults` (chosen from
these rows: lr_mle 1e-4)."""
SELF_BLEU_SAMPLE = 200
SECTION = "transfer: text (lstm-gan, common -> rare surnames)"


def write_corpora(work: Path) -> dict[str, Path]:
    """The source, tail-train and tail-test name lists as text files under `work` (written once)."""
    folder = work / "corpora"
    paths = {part: folder / f"{part}.txt" for part in ("source", "tail-train", "tail-test")}
    if all(path.is_file() for path in paths.values()):
        return paths
    names = read_surnames()
    test = [in_surnames_test(i) for i in range(len(names))]
    parts = {
        "source": [n for i, n in enumerate(names) if i < TAIL_RANK and not test[i]],
        "tail-train": [n for i, n in enumerate(names) if i >= TAIL_RANK and not test[i]],
        "tail-test": [n for i, n in enumerate(names) if i >= TAIL_RANK and test[i]],
    }
    folder.mkdir(parents=True, exist_ok=True)
    for part, path in paths.items():
        path.write_text("\n".join(parts[part]) + "\n", encoding="utf-8")
    return paths


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What makes two runs comparable (and their cached curves reusable)."""
    return {"plugin": PLUGIN, "evals": args.evals, "n": args.n, "pretrain_steps": args.pretrain_steps}


def pretrained(args: argparse.Namespace, corpora: dict[str, Path]) -> Path:
    """The run directory of the source model under --work, trained there first if it is not yet."""
    run_dir = args.work / "sources" / f"{PLUGIN}-{args.pretrain_steps}"
    done = run_dir / "done.json"
    if not done.is_file():
        shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted pre-training starts over
        start = time.perf_counter()
        data = f"text:{corpora['source']}"
        ganzoo.Trainer(PLUGIN, {}, quiet(args.pretrain_steps, 0, "auto"), data=data, out=run_dir).fit()
        done.write_text(json.dumps({"steps": args.pretrain_steps, "train_s": round(time.perf_counter() - start, 1)}))
    return run_dir


def score(model: ganzoo.GANModel, test: list[str], train: set[str], n: int, seed: int) -> dict[str, float]:
    names = model.sample(n, seed=seed, use_ema=True)
    scores = score_names(names, test, train, min(SELF_BLEU_SAMPLE, n))
    nll = held_out_nll(model.sampling_nets(use_ema=True), test)
    return {"nll_test": nll, "bleu4": scores["bleu4"], "self_bleu4": scores["self_bleu4"]}


def run(args: argparse.Namespace, corpora: dict[str, Path], target: str, method: str, seed: int) -> dict[str, Any]:
    """One training run scored at every --evals iteration; cached under --work by its settings."""
    finetune, overrides = METHODS[method]
    data = f"text:{corpora['tail-train']}?n={TARGETS[target]}&seed={seed}"
    key = {**settings(args), "target": target, "seed": seed, "finetune": finetune, "overrides": overrides}
    path = run_path(args.work, key)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    test = corpora["tail-test"].read_text(encoding="utf-8").split()
    train = set(corpora["tail-train"].read_text(encoding="utf-8").split())
    curve: list[dict[str, float]] = []

    def at_step(trainer: ganzoo.Trainer, step: int) -> None:
        if step in args.evals:
            curve.append({"step": step, **score(trainer.model, test, train, args.n, seed)})

    model_overrides, train_overrides = split_overrides(get_plugin(PLUGIN), overrides)
    train_config = {**quiet(max(args.evals), seed, "auto"), **train_overrides}
    source = ganzoo.load_pretrained(pretrained(args, corpora))
    with tempfile.TemporaryDirectory() as tmp:
        if finetune:
            curve.append({"step": 0, **score(source, test, train, args.n, seed)})
            start = time.perf_counter()
            prepare_finetune(source, data, {**model_overrides, **train_config}, Path(tmp), [at_step]).trainer.fit()
        else:  # in the source's vocabulary and length, so that every model scores the same symbols
            in_vocabulary = VocabularySource(resolve_data(data), source.data_info)
            start = time.perf_counter()
            ganzoo.Trainer(
                PLUGIN, model_overrides, train_config, data=in_vocabulary, out=tmp, callbacks=[at_step]
            ).fit()
    record = {
        **key,
        "method": method,
        "train_s": round(time.perf_counter() - start, 1),  # evaluations included
        "curve": curve,
    }
    return save_run(path, record, "benchmarks/transfer_text.py")


def tables(records: list[dict[str, Any]], evals: list[int]) -> list[str]:
    """The curve table (median NLL_test, BLEU-4, self-BLEU-4 at each iteration) and the speed-up table."""
    columns = [0, *evals]
    lines = [
        "| target | method | seeds | score | " + " | ".join(f"@{s}" for s in columns) + " |",
        "|---|---|---|---|" + "---|" * len(columns),
    ]
    found: dict[tuple[str, str], Curve] = {}
    for target in TARGETS:
        for method in METHODS:
            runs = [r for r in records if r["target"] == target and r["method"] == method]
            if not runs:
                continue
            curve = found[target, method] = Curve.of(runs, key="nll_test")
            seeds = ",".join(map(str, curve.seeds))
            for name, fmt in (("nll_test", ".4f"), ("bleu4", ".3f"), ("self_bleu4", ".3f")):
                medians = curve.medians[name]
                cells = [format(medians[s], fmt) if s in medians else "-" for s in columns]
                if name == "nll_test" and len(curve.seeds) > 1:
                    spreads = {s: curve.per_seed[s] for s in medians}
                    cells = [
                        c if s not in spreads else f"{c} ({min(spreads[s]):.3f}-{max(spreads[s]):.3f})"
                        for s, c in zip(columns, cells, strict=True)
                    ]
                lines.append(f"| {target} | {method} | {seeds} | {name} | " + " | ".join(cells) + " |")
    rows = [
        "| target | method | iterations to scratch's best NLL_test | fraction of scratch's | best NLL_test (at) "
        "| vs scratch's best | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in speedups(found, list(TARGETS)):
        rows.append(
            f"| {row.target} | {row.method} | {row.reached} | {row.fraction} | {row.best:.4f} ({row.step}) "
            f"| {row.best - row.scratch_best:+.4f} nats | {row.curve.train_s:.0f} |"
        )
    return [*lines, "", *rows]


def write_results(args: argparse.Namespace) -> None:
    from results import write_section

    records = cached(args.work, settings(args))
    if not records:
        raise SystemExit(f"no cached runs with these settings under {args.work}")
    threads = "/".join(map(str, sorted({r["threads"] for r in records})))
    intro = (
        f"machine: {platform.machine()}, {threads} torch thread(s), torch {torch.__version__}. `{PLUGIN}` with its "
        f"defaults; source pre-trained {args.pretrain_steps} iterations on the 72,000 training-split surnames ranked "
        f"before {TAIL_RANK:,}; targets: 100 or 1,000 training-split names of the rare tail (ranked {TAIL_RANK:,} and "
        "after); scored on the tail's 879 test-split names: NLL_test (nats per character, EMA generator; lower is "
        f"better), BLEU-4 of {args.n} sampled names against them and self-BLEU-4 of {min(SELF_BLEU_SAMPLE, args.n)} "
        "of them. @0 is the source itself. Medians over the seeds listed (NLL_test: the seeds' range in brackets)."
    )
    body = [intro, "", *tables(records, args.evals)]
    commands = sorted({r["command"] for r in records})
    write_section(SECTION, "`, `".join(commands), "\n".join(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated: {', '.join(TARGETS)}")
    parser.add_argument("--methods", default="all", help=f"comma-separated: {', '.join(METHODS)}; or all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--evals", default="10,25,50,100,250,500,1000,2000", help="iterations to score; the last ends")
    parser.add_argument("--pretrain-steps", type=int, default=2000)
    parser.add_argument("--n", type=int, default=500, help="sampled names per score")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ganzoo-transfer-text")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="render the RESULTS.md section from the cache")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets in a fresh folder; writes nothing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    smoke = tempfile.TemporaryDirectory() if args.smoke else None
    if smoke is not None:
        args.work, args.evals, args.pretrain_steps, args.n, args.seeds = Path(smoke.name), "4,8", 4, 20, "0"
        args.targets, args.write = "tail-100", False
    args.evals = sorted(int(s) for s in args.evals.split(","))
    corpora = write_corpora(args.work)
    methods = list(METHODS) if args.methods == "all" else args.methods.split(",")
    if unknown := [m for m in methods if m not in METHODS]:
        parser.error(f"unknown method(s) {', '.join(unknown)}; accepted: {', '.join(METHODS)} or all")
    records = []
    for seed in (int(s) for s in args.seeds.split(",") if s):
        for target in args.targets.split(","):
            for method in methods:
                records.append(run(args, corpora, target, method, seed))
                best = min(records[-1]["curve"], key=lambda p: p["nll_test"])
                print(json.dumps({"target": target, "method": method, "seed": seed, "best": best}), flush=True)
    if smoke is not None:
        print("\n".join(tables(records, args.evals)))
        smoke.cleanup()
    if args.write:
        write_results(args)


if __name__ == "__main__":
    main()
