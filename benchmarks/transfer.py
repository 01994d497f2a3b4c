"""Does fine-tuning pay off? Held-out FID/KID against iterations, fine-tuning versus training from scratch.

Target sets (`dcgan` at 28 px by default):

- `5-9x10`, `5-9x100`, `5-9x1000`: 10, 100 or 1,000 training digits 5-9
  (`mnist-4k?split=train&classes=5-9&n=N&seed=SEED`), fine-tuned from a model pre-trained on digits 0-4
  (`mnist-4k?classes=0-4`); held out: the 500 digits of `mnist-4k?split=test&classes=5-9`;
- `uci-100`: a cross-domain case, 100 of the 8x8 UCI digits upscaled to 28 px (`uci-digits-8x8?split=train&n=100`),
  fine-tuned from a model pre-trained on all the MNIST digits (`mnist-4k`); held out: the 500 UCI digits of
  `uci-digits-8x8?split=test`.

Methods: scratch, scratch + DiffAugment, fine-tune, fine-tune + DiffAugment, fine-tune + FreezeD (first
discriminator block), fine-tune + ADA (`augment=ada`), and fine-tune with `RECIPE` (found by `--search`). Each run
is one training run whose EMA generator is scored (`--n` samples, `digits` features, FID and KID) at every
iteration of `--evals`; fine-tuning runs also score the source itself (iteration 0). The subset of training images
follows the seed, so the spread over seeds covers both. From the median curves: the iterations each method needs to
reach scratch's best FID (the speed-up) and each method's best FID. `--search` also runs the candidate recipes of
`SEARCH` (all, or those named) on the targets.

Each source is pre-trained once and kept under `--work` (default: a folder in the system's temp directory), and so
is every run's curve (keyed by its settings), so a rerun or a run with more seeds reuses them. `--write` renders
every run cached under `--work` with the current `--plugin`, `--evals`, `--n`, `--pretrain-steps` and
`--precision` (runs of separate invocations combine) into the "transfer" sections of benchmarks/RESULTS.md.

    python benchmarks/transfer.py [--targets 5-9x10,5-9x100,5-9x1000,uci-100] [--methods all] [--seeds 0,1,2]
                                  [--evals 50,100,250,500,1000,2000] [--pretrain-steps 2000] [--n 2000]
                                  [--search [NAMES]] [--work DIR] [--threads 1] [--write]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

import ganzoo
from ganzoo.engine.trainer import split_overrides
from ganzoo.metrics import stats
from ganzoo.metrics.evaluation import evaluate
from ganzoo.metrics.features import FeatureExtractor, get_features
from ganzoo.metrics.reference import reference_features
from ganzoo.registry import get_plugin
from ganzoo.transfer import prepare_finetune

UCI = "uci-digits-8x8"
RESOLUTION = 28
POLICY = "color,translation,cutout"
FREEZE_D = 1


@dataclasses.dataclass(frozen=True)
class Target:
    """A target set: its training spec (`{seed}` is the run's seed), held-out spec, the source's spec and the
    batch size (None: the plugin's; a batch cannot hold more images than the set has)."""

    name: str
    train: str
    held_out: str
    source: str
    batch: int | None = None

    def data(self, seed: int) -> str:
        return self.train.format(seed=seed)


DIGITS_0_4, DIGITS_5_9 = "mnist-4k?classes=0-4", "mnist-4k?split=test&classes=5-9"
TARGETS = {
    target.name: target
    for target in (
        *(
            Target(f"5-9x{n}", f"mnist-4k?split=train&classes=5-9&n={n}&seed={{seed}}", DIGITS_5_9, DIGITS_0_4, batch)
            for n, batch in ((10, 10), (100, None), (1000, None))
        ),
        Target("uci-100", f"{UCI}?split=train&n=100&seed={{seed}}", f"{UCI}?split=test", "mnist-4k"),
    )
}
RECIPE: dict[str, Any] = {"freeze_d": 1}  # the most robust of the search (RESULTS.md, "transfer")
Method = tuple[bool, dict[str, Any]]
METHODS: dict[str, Method] = {  # name: (start from the source, overrides)
    "scratch": (False, {}),
    "scratch + DiffAugment": (False, {"diffaugment": POLICY}),
    "fine-tune": (True, {}),
    "fine-tune + DiffAugment": (True, {"diffaugment": POLICY}),
    "fine-tune + FreezeD": (True, {"freeze_d": FREEZE_D}),
    "fine-tune + ADA": (True, {"augment": "ada"}),
    "fine-tune, recipe": (True, RECIPE),
}
SEARCH: dict[str, dict[str, Any]] = {  # candidate fine-tuning recipes (dcgan's defaults: lr 1.6e-3, EMA 0.999)
    "lr 4e-4": {"lr_g": 4e-4, "lr_d": 4e-4},
    "lr 2e-4": {"lr_g": 2e-4, "lr_d": 2e-4},
    "lr 1e-4": {"lr_g": 1e-4, "lr_d": 1e-4},
    "lr 3.2e-3": {"lr_g": 3.2e-3, "lr_d": 3.2e-3},
    "lr_d 4e-4": {"lr_d": 4e-4},
    "FreezeD 2": {"freeze_d": 2},
    "EMA 0.99": {"ema_decay": 0.99},
    "EMA carried from the source (no warm-up)": {"ema_warmup_power": 0},
    "lr 3.2e-3 + DiffAugment": {"lr_g": 3.2e-3, "lr_d": 3.2e-3, "diffaugment": POLICY},
    "lr 3.2e-3 + linear decay": {"lr_g": 3.2e-3, "lr_d": 3.2e-3, "lr_schedule": "linear-decay"},
    "FreezeD 1 + EMA 0.99": {"freeze_d": 1, "ema_decay": 0.99},
    "FreezeD 1 + ADA": {"freeze_d": 1, "augment": "ada"},
}


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What makes two runs comparable (and their cached curves reusable)."""
    return {
        "plugin": args.plugin,
        "evals": args.evals,
        "n": args.n,
        "pretrain_steps": args.pretrain_steps,
        "precision": args.precision,
    }


def quiet(steps: int, seed: int, precision: str) -> dict[str, Any]:
    return {
        "steps": steps,
        "seed": seed,
        "precision": precision,
        "progress": False,
        "tensorboard": False,
        "log_every": steps,
        "checkpoint_every": steps,
        "sample_every": steps,
    }


def pretrained(args: argparse.Namespace, spec: str) -> Path:
    """The run directory of `spec`'s source model under --work, trained there first if it is not yet."""
    slug = hashlib.sha256(json.dumps([args.plugin, spec, args.pretrain_steps, args.precision]).encode()).hexdigest()
    run_dir = args.work / "sources" / slug[:16]
    done = run_dir / "done.json"
    if not done.is_file():
        shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted pre-training starts over
        start = time.perf_counter()
        train = quiet(args.pretrain_steps, 0, args.precision)
        ganzoo.Trainer(args.plugin, {"resolution": RESOLUTION}, train, data=spec, out=run_dir).fit()
        record = {"spec": spec, "steps": args.pretrain_steps, "train_s": round(time.perf_counter() - start, 1)}
        done.write_text(json.dumps(record), encoding="utf-8")
        print(json.dumps({"pre-trained": record}), flush=True)
    return run_dir


def score(
    model: ganzoo.GANModel, target: Target, args: argparse.Namespace, seed: int, extractor: FeatureExtractor
) -> dict[str, float]:
    scores = evaluate(model, target.held_out, "fid,kid", extractor, n=args.n, seed=seed)
    return {"fid": scores["fid"], "kid": scores["kid_mean"]}


def memorised(target: Target, seed: int, extractor: FeatureExtractor) -> float:
    """FID of the training images themselves against the held-out ones (what memorising them scores)."""
    few = reference_features(target.data(seed), extractor, RESOLUTION, 1)
    return stats.frechet_distance_of(few, reference_features(target.held_out, extractor, RESOLUTION, 1))


def run_path(work: Path, key: Mapping[str, Any]) -> Path:
    """Where the run of these settings is cached under `work`."""
    return work / "runs" / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]}.json"


def save_run(path: Path, record: dict[str, Any], script: str) -> dict[str, Any]:
    """`record` with the command line and threads of this process, written to `path`."""
    record = {**record, "command": shlex.join(["python", script, *sys.argv[1:]]), "threads": torch.get_num_threads()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record), encoding="utf-8")
    return record


def run(
    args: argparse.Namespace,
    target: Target,
    method: str,
    finetune: bool,
    overrides: Mapping[str, Any],
    seed: int,
    extractor: FeatureExtractor,
) -> dict[str, Any]:
    """One training run scored at every --evals iteration; cached under --work by its settings."""
    key = {**settings(args), "data": target.data(seed), "held_out": target.held_out, "seed": seed}
    key.update(source=target.source if finetune else None, overrides=dict(overrides))
    path = run_path(args.work, key)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    steps = max(args.evals)
    curve: list[dict[str, float]] = []

    def at_step(trainer: ganzoo.Trainer, step: int) -> None:
        if step in args.evals:
            curve.append({"step": step, **score(trainer.model, target, args, seed, extractor)})

    model_overrides, train_overrides = split_overrides(get_plugin(args.plugin), overrides)
    train = {**quiet(steps, seed, args.precision), **train_overrides}
    if target.batch is not None:
        train["batch_size"] = target.batch
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if finetune:
            source = ganzoo.load_pretrained(pretrained(args, target.source))
            curve.append({"step": 0, **score(source, target, args, seed, extractor)})
            start = time.perf_counter()
            overrides = {**model_overrides, **train}
            prepare_finetune(source, target.data(seed), overrides, Path(tmp), [at_step]).trainer.fit()
        else:
            config = {"resolution": RESOLUTION, **model_overrides}
            ganzoo.Trainer(args.plugin, config, train, data=target.data(seed), out=tmp, callbacks=[at_step]).fit()
    record = {
        **key,
        "target": target.name,
        "method": method,
        "train_s": round(time.perf_counter() - start, 1),  # evaluations included
        "memorised": memorised(target, seed, extractor),
        "curve": curve,
    }
    return save_run(path, record, "benchmarks/transfer.py")


# ------------------------------------------------------------------------------------------------ reading


def cached(work: Path, wanted: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run cached under `work` whose record has the `wanted` settings."""
    records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((work / "runs").glob("*.json"))]
    return [r for r in records if all(r[k] == v for k, v in wanted.items())]


@dataclasses.dataclass
class Curve:
    """A method's runs on one target: the per-step median of every score of the runs' curves, the per-seed values
    of the score `key` (the one `best` and `reaches` read; lower is better), the seeds and the median wall time."""

    medians: dict[str, dict[int, float]]
    per_seed: dict[int, list[float]]
    seeds: list[int]
    train_s: float
    key: str = "fid"

    @classmethod
    def of(cls, runs: list[dict[str, Any]], key: str = "fid") -> Curve:
        steps = sorted({point["step"] for run in runs for point in run["curve"]})
        names = sorted({name for run in runs for point in run["curve"] for name in point if name != "step"})
        values = {
            name: {s: [p[name] for run in runs for p in run["curve"] if p["step"] == s and name in p] for s in steps}
            for name in names
        }
        return cls(
            medians={
                name: {s: statistics.median(v) for s, v in by_step.items() if v} for name, by_step in values.items()
            },
            per_seed=values[key],
            seeds=sorted(run["seed"] for run in runs),
            train_s=statistics.median(run["train_s"] for run in runs),
            key=key,
        )

    @property
    def values(self) -> dict[int, float]:
        """The median of the score `key` at each iteration."""
        return self.medians[self.key]

    def best(self) -> tuple[int, float]:
        """The iteration of the lowest median score (the source itself, iteration 0, excluded) and that score."""
        step = min((s for s in self.values if s > 0), key=lambda s: self.values[s])
        return step, self.values[step]

    def reaches(self, value: float) -> int | None:
        """The first evaluated iteration (after 0) whose median score is at most `value`; None if none is."""
        return next((s for s in sorted(self.values) if s > 0 and self.values[s] <= value), None)


def curves(records: list[dict[str, Any]], methods: Mapping[str, Method]) -> dict[tuple[str, str], Curve]:
    """The curve of every method (matched by its settings, not its name, the first name of the same settings) on
    every target with runs."""
    found, seen = {}, set()
    for target in TARGETS:
        for method, (finetune, overrides) in methods.items():
            if (target, finetune, json.dumps(overrides, sort_keys=True)) in seen:
                continue  # e.g. the recipe when it is one of the methods: one row
            seen.add((target, finetune, json.dumps(overrides, sort_keys=True)))
            runs = [
                r
                for r in records
                if r["target"] == target and (r["source"] is not None) == finetune and r["overrides"] == overrides
            ]
            if runs:
                found[target, method] = Curve.of(runs)
    return found


def curve_table(found: dict[tuple[str, str], Curve], evals: list[int], kid: bool = False) -> list[str]:
    """Rows of target, method, seeds and the median FID (or KID x 1e3) at each iteration, with the seeds' range."""
    columns = [0, *evals]
    lines = [
        "| target | method | seeds | " + " | ".join(f"@{s}" for s in columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for (target, method), curve in found.items():
        cells = []
        for step in columns:
            if step not in curve.values:
                cells.append("-")
            elif kid:
                cells.append(f"{1e3 * curve.medians['kid'][step]:.1f}")
            else:
                spread = curve.per_seed[step]
                cells.append(
                    f"{curve.values[step]:.2f}" + (f" ({min(spread):.2f}-{max(spread):.2f})" if len(spread) > 1 else "")
                )
        seeds = ",".join(map(str, curve.seeds))
        lines.append(f"| {target} | {method} | {seeds} | " + " | ".join(cells) + " |")
    return lines


@dataclasses.dataclass
class Speedup:
    """One method on one target against scratch: the first iteration at which its median score reaches scratch's
    best (None: never), that as a fraction of scratch's iterations to its best, and the method's own best."""

    target: str
    method: str
    curve: Curve
    reach: int | None
    fraction: str
    step: int
    best: float
    scratch_best: float

    @property
    def reached(self) -> str:
        return "not reached" if self.reach is None else str(self.reach)


def speedups(found: Mapping[tuple[str, str], Curve], targets: Sequence[str]) -> list[Speedup]:
    """Every method of each target that has a scratch curve, against it."""
    rows = []
    for target in targets:
        if (target, "scratch") not in found:
            continue
        scratch_step, scratch_best = found[target, "scratch"].best()
        for (name, method), curve in found.items():
            if name == target:
                step, best = curve.best()
                reach = curve.reaches(scratch_best)
                fraction = "-" if reach is None else f"{reach / scratch_step:.2f}"
                rows.append(Speedup(target, method, curve, reach, fraction, step, best, scratch_best))
    return rows


def speedup_table(found: dict[tuple[str, str], Curve], records: list[dict[str, Any]]) -> list[str]:
    """Per target and method: the iterations to reach scratch's best FID, that as a fraction of scratch's, and
    the method's best FID against scratch's."""
    lines = [
        "| target | memorised FID | method | iterations to scratch's best | fraction of scratch's | best FID (at) "
        "| vs scratch's best | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in speedups(found, list(TARGETS)):
        memo = statistics.median(r["memorised"] for r in records if r["target"] == row.target)
        lines.append(
            f"| {row.target} | {memo:.2f} | {row.method} | {row.reached} | {row.fraction} | {row.best:.2f} "
            f"({row.step}) | {row.best / row.scratch_best - 1:+.0%} | {row.curve.train_s:.0f} |"
        )
    return lines


def write_results(args: argparse.Namespace) -> None:
    from results import write_section

    records = cached(args.work, settings(args))
    commands = sorted({r["command"] for r in records})
    threads = sorted({r["threads"] for r in records})
    intro = (
        f"machine: {platform.machine()}, 2 cores shared with other jobs, "
        f"{'/'.join(map(str, threads))} torch thread(s), one benchmark process at a time, torch {torch.__version__}. "
        f"`{args.plugin}` at {RESOLUTION} px with its defaults, precision `{args.precision}`; batch 10 (all the "
        "images) on `5-9x10`, the default elsewhere; "
        f"sources pre-trained {args.pretrain_steps} iterations (`{DIGITS_0_4}` for the 5-9 "
        f"targets, `mnist-4k` for `uci-100`). FID and KID of {args.n} EMA samples against the held-out images "
        f"(`{DIGITS_5_9}`: 500 digits; `{UCI}?split=test`: 500 UCI digits at {RESOLUTION} px), `digits` features, "
        "at each iteration of one run per method and seed; @0 is the source itself. The training subset follows "
        f"the seed. DiffAugment `{POLICY}`; FreezeD freezes the first {FREEZE_D} discriminator "
        f"block(s); ADA at its defaults; recipe `{json.dumps(RECIPE)}` (a row of its own unless it is one of the "
        "methods). Medians over the seeds listed, the seeds' range in "
        "brackets. The commands above ran these runs; `--write` rendered them from the cache."
    )
    found = curves(records, METHODS)
    body = [
        intro,
        "",
        "Held-out FID against iterations:",
        "",
        *curve_table(found, args.evals),
        "",
        "Held-out KID x 1e3 against iterations (medians):",
        "",
        *curve_table(found, args.evals, kid=True),
        "",
        "The speed-up: the first evaluated iteration at which each method's median FID is at most scratch's best "
        "(median curve), and that as a fraction of the iterations scratch took to its best; memorised FID: the "
        "training images themselves against the held-out ones; train s: median wall time of a run, evaluations "
        "included (the machine's load varies):",
        "",
        *speedup_table(found, records),
    ]
    write_section("transfer: does fine-tuning pay off? (dcgan, digits)", "`, `".join(commands), "\n".join(body))
    candidates = {name: (True, overrides) for name, overrides in SEARCH.items()}
    references = {name: METHODS[name] for name in ("scratch", "fine-tune", "fine-tune, recipe")}
    searched = curves(records, {**references, **candidates})
    if any(method in SEARCH for _, method in searched):
        body = [
            "Candidate fine-tuning recipes (`SEARCH` in benchmarks/transfer.py: overrides of dcgan's config and "
            "TrainConfig on top of `ganzoo finetune`'s defaults), run with the settings above; scratch, plain "
            "fine-tune and the recipe for reference. "
            + "; ".join(f"{name}: `{json.dumps(overrides)}`" for name, overrides in SEARCH.items())
            + ".",
            "",
            *curve_table(searched, args.evals),
            "",
            *speedup_table(searched, records),
        ]
        write_section("transfer: fine-tuning recipe search (dcgan, digits)", "`, `".join(commands), "\n".join(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugin", default="dcgan")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated: {', '.join(TARGETS)}")
    parser.add_argument("--methods", default="all", help=f"comma-separated: {', '.join(METHODS)}; or all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--evals", default="50,100,250,500,1000,2000", help="iterations to score; the last ends")
    parser.add_argument("--pretrain-steps", type=int, default=2000)
    parser.add_argument("--n", type=int, default=2000, help="generated samples per score")
    parser.add_argument("--precision", default="auto")
    parser.add_argument(
        "--search", nargs="?", const="all", help=f"also run candidate recipes, comma-separated: {', '.join(SEARCH)}"
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ganzoo-transfer")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="render the RESULTS.md sections from the cache")
    args = parser.parse_args()
    args.evals = sorted(int(s) for s in args.evals.split(","))
    torch.set_num_threads(args.threads)
    extractor = get_features("digits")
    methods = {k: v for k, v in METHODS.items() if args.methods == "all" or k in args.methods.split(",")}
    if args.search:
        chosen = SEARCH if args.search == "all" else {name: SEARCH[name] for name in args.search.split(",")}
        methods.update({name: (True, dict(overrides)) for name, overrides in chosen.items()})
    for seed in (int(s) for s in args.seeds.split(",") if s):
        for target in (TARGETS[t] for t in args.targets.split(",") if t):
            for method, (finetune, overrides) in methods.items():
                record = run(args, target, method, finetune, overrides, seed, extractor)
                best = min(record["curve"][1 if finetune else 0 :], key=lambda p: p["fid"])
                print(json.dumps({"target": target.name, "method": method, "seed": seed, "best": best}), flush=True)
    if args.write:
        write_results(args)


if __name__ == "__main__":
    main()
