"""Quality-diversity curves of lstm-gan's text recipes, as Caccia et al. 2020 measure them ("Language GANs falling
short", ICLR 2020).

A text GAN is usually compared with its MLE starting point at sampling temperature 1, but lowering the temperature
of the MLE model alone also trades diversity for quality. Caccia et al. therefore sweep the temperature of every
model and compare curves: a GAN helps only if its curve lies beyond the temperature-tuned MLE curve. Here each
recipe trains once per seed; its generator (the EMA copy where the engine kept one, else the generator; the rows say
which) is then sampled at each `--temperatures`:

* SeqGAN oracle (`benchmarks/text_oracle.py`'s set-up: 10k training / 10k held-out sequences, embedding and hidden
  32, 750 MLE + 400 adversarial iterations, batch 64): quality NLL_oracle of `--n` samples (lower: better),
  diversity NLL_test, the generator's NLL of the held-out sequences at that temperature (lower: more coverage);
* surnames (`benchmarks/text_surnames.py`'s scoring, the plugin's defaults: 1000 MLE + 1000 adversarial
  iterations): quality BLEU-4 against the held-out names (higher: better), diversity self-BLEU-4 (lower: more
  diverse), and NLL_test at that temperature.

The position of a recipe against MLE: each of its points is compared with the MLE curve of the same seed at the same
diversity (piecewise linear between the MLE temperatures; where the curve folds back, as NLL_test does above
temperature 1, its best quality there). The gap is the quality gained at equal diversity, positive when the point
lies beyond the MLE curve (in nats of NLL_oracle on the oracle, in BLEU-4 on surnames); points outside the MLE
curve's diversity range are not compared. With several seeds, the seed noise is the largest gap between one seed's
MLE points and another seed's MLE curve.

`--json FILE` keeps every row; later invocations add theirs (a recipe, data set and seed run again replaces its
rows), and `--write` renders all of them into benchmarks/RESULTS.md and benchmarks/text-curves-*.png.

    python benchmarks/text_curves.py --data surnames --recipes mle,defaults --json curves.json --write
    python benchmarks/text_curves.py --json curves.json --no-train --write    # re-render from the cache
    python benchmarks/text_curves.py --smoke        # a seconds-long run that checks the script end to end
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from text_oracle import ORACLE, ORACLE_SIZE, PUBLISHED, draw_data, oracle_scores, write_tokens
from text_surnames import TEST, TRAIN, held_out_nll, score_names

import ganzoo
import ganzoo.text.corpus  # registers tokens:PATH and surnames
from ganzoo.data import resolve_data
from ganzoo.text.oracle import Oracle
from ganzoo_plugins.lstm_gan import plugin

HERE = Path(__file__).resolve().parent
DATASETS = ("oracle", "surnames")
SECTIONS = {
    "oracle": "text: quality-diversity curves (SeqGAN oracle)",
    "surnames": "text: quality-diversity curves (surnames)",
}
TEMPERATURES = "0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.4"
MLE_EXTRA = "0.3,0.4,0.5"  # the MLE curves reach the sharpened adversarial models' low diversity
SOFT_R1: dict[str, Any] = {"straight_through": False, "beta_max": 2, "lr_g": 1e-3, "r1_gamma": 10}
Row = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Axes:
    """A data set's quality and diversity coordinates (row keys) and their directions."""

    quality: str
    diversity: str
    quality_label: str
    diversity_label: str
    higher_quality_is_better: bool


AXES = {
    "oracle": Axes("nll_oracle", "nll_test", "NLL_oracle", "NLL_test", higher_quality_is_better=False),
    "surnames": Axes("bleu4", "self_bleu4", "BLEU-4", "self-BLEU-4", higher_quality_is_better=True),
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named training recipe: lstm-gan config overrides; `adversarial` False stops at the end of MLE (and gives two
    curves, the generator's and, named with EMA_SUFFIX, that of the engine's EMA of pre-training);
    `ema_from_adversarial` starts the engine's EMA with the adversarial phase; `mle` names the MLE recipe whose
    pre-training it shares."""

    name: str
    sets: dict[str, Any]
    adversarial: bool = True
    ema_from_adversarial: bool = False
    d_pretrain: int = 0
    mle: str = "MLE"


RECIPES = {
    "mle": Recipe("MLE", {}, adversarial=False),
    "mle-relational": Recipe(
        "MLE (relational memory)", {"g_kind": "relational"}, adversarial=False, mle="MLE (relational memory)"
    ),
    "defaults": Recipe("gumbel straight-through (defaults)", {}),
    "soft-r1": Recipe("gumbel soft + R1 (oracle recipe)", SOFT_R1, ema_from_adversarial=True),
    "relational": Recipe(
        "RelGAN: relational memory, soft + R1",
        {**SOFT_R1, "g_kind": "relational"},
        ema_from_adversarial=True,
        mle="MLE (relational memory)",
    ),
    "reinforce": Recipe(
        "reinforce", {"adversarial": "reinforce", "lr_g": 1e-3, "lr_d": 1e-3, "d_steps": 3}, d_pretrain=300
    ),
}
DEFAULT_RECIPES = "mle,mle-relational,defaults,soft-r1,relational"
EMA_SUFFIX = ", EMA"
# every curve: the recipes, each MLE one followed by its EMA's
CURVES = {
    curve.name: curve
    for recipe in RECIPES.values()
    for curve in (recipe, *([] if recipe.adversarial else [dataclasses.replace(recipe, name=recipe.name + EMA_SUFFIX)]))
}


def frontier(mle: str) -> list[str]:
    """The curves of an MLE recipe: its generator's and its EMA's (the better of the two at each diversity)."""
    return [mle, mle + EMA_SUFFIX]


@dataclasses.dataclass
class Setup:
    """The sizes of one data set's runs."""

    mle_steps: int
    adv_steps: int
    batch_size: int
    n: int
    sets: dict[str, Any]
    max_d_pretrain: int = 10**9  # caps a recipe's D pre-training (smoke)
    train: int = 0  # oracle only: training / held-out sequences
    test: int = 0
    self_bleu_sample: int = 0  # surnames only


def setups(args: argparse.Namespace) -> dict[str, Setup]:
    defaults = plugin.default_config()
    batch = plugin.train_defaults["batch_size"]
    if args.smoke:
        tiny = {"embed_dim": 8, "hidden_dim": 8, "d_hidden_dim": 8, "rollouts": 2}
        return {
            "oracle": Setup(20, 6, 32, 256, tiny, max_d_pretrain=2, train=256, test=256),
            "surnames": Setup(3, 3, 32, 50, tiny, max_d_pretrain=2, self_bleu_sample=20),
        }
    adv = plugin.train_defaults["steps"] - defaults.pretrain_steps
    return {
        "oracle": Setup(750, args.adv_steps or 400, batch, 10_000, dict(ORACLE_SIZE), train=10_000, test=10_000),
        "surnames": Setup(defaults.pretrain_steps, args.adv_steps or adv, batch, 2000, {}, self_bleu_sample=500),
    }


# --- training and scoring ---------------------------------------------------------------------------------------


Scorer = Callable[[ganzoo.GANModel, bool, float, int], dict[str, Any]]


@dataclasses.dataclass
class Task:
    """One data set and seed: the training data spec (written into a temporary folder), the scorer of a model at
    a temperature, and the scores of the real data."""

    data: str
    spec: Callable[[Path], str]
    score: Scorer
    reference: dict[str, float]


def oracle_task(setup: Setup, seed: int, oracle: Any) -> Task:
    """The seed's oracle data, drawn as text_oracle.py draws it, and text_oracle.py's scores."""
    train_set, test_set = draw_data(oracle, seed, setup.train, setup.test)

    def spec(folder: Path) -> str:
        write_tokens(folder / "oracle-train.txt", train_set)
        return f"tokens:{folder / 'oracle-train.txt'}"

    def score(model: ganzoo.GANModel, use_ema: bool, temperature: float, sample_seed: int) -> dict[str, Any]:
        return oracle_scores(model.sampling_nets(use_ema), oracle, test_set, setup.n, sample_seed, temperature)

    return Task("oracle", spec, score, {"nll_oracle": round(oracle.nll(test_set), 4)})


def surnames_task(setup: Setup) -> Task:
    """text_surnames.py's scores at a temperature (and 8 of the names), and the same scores of real names."""
    test = resolve_data(TEST).load().decode()
    train = resolve_data(TRAIN).load().decode()
    known = set(train)

    def score(model: ganzoo.GANModel, use_ema: bool, temperature: float, sample_seed: int) -> dict[str, Any]:
        names = model.sample(setup.n, seed=sample_seed, use_ema=use_ema, temperature=temperature)
        values = score_names(names, test, known, setup.self_bleu_sample)
        values["nll_test"] = held_out_nll(model.sampling_nets(use_ema), test, temperature)
        return {**{k: round(v, 4) for k, v in values.items()}, "names": names[:8]}

    real = score_names(random.Random(0).sample(train, setup.n), test, set(), setup.self_bleu_sample)
    return Task("surnames", lambda _: TRAIN, score, {k: round(real[k], 4) for k in ("bleu4", "self_bleu4", "length")})


def train_recipe(
    recipe: Recipe, setup: Setup, seed: int, task: Task, temperatures: Sequence[float], device: str
) -> list[Row]:
    """Trains `recipe` once on the task's data and scores its final generator at every temperature; a row each."""
    d_pretrain = min(recipe.d_pretrain, setup.max_d_pretrain) if recipe.adversarial else 0
    adv = setup.adv_steps if recipe.adversarial else 0
    mle_end, adv_start = setup.mle_steps, setup.mle_steps + d_pretrain
    total = adv_start + adv
    config = {**setup.sets, **recipe.sets, "pretrain_steps": mle_end, "pretrain_d_steps": d_pretrain}
    train: dict[str, Any] = {
        "steps": total,
        "batch_size": setup.batch_size,
        "seed": seed,
        "device": device,
        "progress": False,
        "tensorboard": False,
        "checkpoint_every": total,
        "sample_every": total,
    }
    if recipe.ema_from_adversarial:
        train["ema_start"] = adv_start
    marks: dict[int, float] = {0: time.perf_counter()}  # then the ends of iterations 1, MLE, D pre-training, all
    rows: list[Row] = []

    def evaluate(trainer: ganzoo.Trainer, step: int) -> None:
        if step in (1, mle_end, adv_start, total):
            marks[step] = time.perf_counter()
        if step != total:
            return
        model = trainer.model
        curves = [(recipe.name, bool(model.ema))]  # the EMA generator where the engine kept one
        if not recipe.adversarial:
            curves = [(recipe.name, False), *([(recipe.name + EMA_SUFFIX, True)] if model.ema else [])]
        run = {
            "mle_steps": mle_end,
            "d_pretrain_steps": d_pretrain,
            "adv_steps": adv,
            "mle_s_per_it": round((marks[mle_end] - marks[1]) / max(1, mle_end - 1), 4),
            "adv_s_per_it": round((marks[total] - marks[adv_start]) / adv, 4) if adv else None,
            "train_s": round(marks[total] - marks[0], 1),
            "threads": torch.get_num_threads(),
            "config": {**config, **{k: v for k, v in train.items() if k.startswith("ema")}},
        }
        for name, use_ema in curves:
            for temperature in temperatures:
                row: Row = {"data": task.data, "recipe": name, "seed": seed, "net": "ema" if use_ema else "generator"}
                row.update(temperature=temperature, **task.score(model, use_ema, temperature, seed), **run)
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k not in ("config", "names")}), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        spec = task.spec(Path(tmp))
        ganzoo.Trainer(plugin, config, train, data=spec, out=Path(tmp) / "run", callbacks=[evaluate]).fit()
    return rows


# --- the curves ---------------------------------------------------------------------------------------------------


def curve_quality(curve: Sequence[tuple[float, float]], x: float, higher_is_better: bool) -> float | None:
    """The quality of a (temperature-ordered) curve of (diversity, quality) points at diversity `x`: linear between
    neighbouring points, the best over the segments that span `x` (a curve may fold back); None outside its range."""
    best = max if higher_is_better else min
    values = []
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        if min(x0, x1) <= x <= max(x0, x1):
            values.append(best(y0, y1) if x0 == x1 else y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    if len(curve) == 1 and curve[0][0] == x:
        values.append(curve[0][1])
    return best(values) if values else None


def gap_to_curve(
    point: tuple[float, float], curve: Sequence[tuple[float, float]], higher_is_better: bool
) -> float | None:
    """Quality gained over the curve at the point's diversity: positive when the point lies beyond it."""
    reference = curve_quality(curve, point[0], higher_is_better)
    if reference is None:
        return None
    return point[1] - reference if higher_is_better else reference - point[1]


def points(rows: Sequence[Row], axes: Axes, recipe: str, seed: int) -> list[tuple[float, float, float]]:
    """(temperature, diversity, quality) of one recipe and seed, in temperature order."""
    chosen = sorted((r for r in rows if r["recipe"] == recipe and r["seed"] == seed), key=lambda r: r["temperature"])
    return [(r["temperature"], r[axes.diversity], r[axes.quality]) for r in chosen]


def gaps(
    rows: Sequence[Row], axes: Axes, recipe: str, baselines: Sequence[str]
) -> list[tuple[int, float, float | None]]:
    """(seed, temperature, gap) of each point of `recipe` against the best of the `baselines` curves of the same
    seed at its diversity (the smallest of its gaps to those curves that span it)."""
    out = []
    for seed in sorted({r["seed"] for r in rows if r["recipe"] == recipe}):
        curves = [[(x, y) for _, x, y in points(rows, axes, b, seed)] for b in baselines]
        curves = [c for c in curves if c]
        if not curves:
            continue
        for t, x, y in points(rows, axes, recipe, seed):
            found = [gap_to_curve((x, y), c, axes.higher_quality_is_better) for c in curves]
            found = [g for g in found if g is not None]
            out.append((seed, t, min(found) if found else None))
    return out


def seed_noise(rows: Sequence[Row], axes: Axes, recipe: str = "MLE") -> float | None:
    """The largest |gap| of one seed's `recipe` points to another seed's `recipe` curve; None with one seed."""
    seeds = sorted({r["seed"] for r in rows if r["recipe"] == recipe})
    found = []
    for a in seeds:
        for b in seeds:
            if a != b:
                curve = [(x, y) for _, x, y in points(rows, axes, recipe, b)]
                found += [
                    gap_to_curve((x, y), curve, axes.higher_quality_is_better)
                    for _, x, y in points(rows, axes, recipe, a)
                ]
    found = [abs(g) for g in found if g is not None]
    return max(found) if found else None


def summary(rows: Sequence[Row], axes: Axes, recipe: str, baselines: Sequence[str]) -> dict[str, Any]:
    """Best and median gap of a recipe's points to the baseline curves, where the best lies, and how many points were
    compared (not outside the curves' diversity range)."""
    found = gaps(rows, axes, recipe, baselines)
    compared = [(s, t, g) for s, t, g in found if g is not None]
    if not compared:
        return {"points": len(found), "compared": 0}
    seed, temperature, best = max(compared, key=lambda item: item[2])
    median = statistics.median(g for _, _, g in compared)
    return {
        "points": len(found),
        "compared": len(compared),
        "best": best,
        "best_at": (seed, temperature),
        "median": median,
        "above": sum(g > 0 for _, _, g in compared),
    }


# --- the cache, the tables and the plots --------------------------------------------------------------------------


def load_cache(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {"rows": [], "reference": {}, "commands": []}
    return json.loads(path.read_text(encoding="utf-8"))


def merge(cache: dict[str, Any], rows: Sequence[Row]) -> None:
    """Adds `rows` to the cache, replacing the rows of the same data set, recipe and seed."""
    keys = {(r["data"], r["recipe"], r["seed"]) for r in rows}
    cache["rows"] = [r for r in cache["rows"] if (r["data"], r["recipe"], r["seed"]) not in keys] + list(rows)


def ordered_recipes(rows: Sequence[Row]) -> list[Recipe]:
    """The curves present in `rows`, in the order of RECIPES (each MLE one followed by its EMA's)."""
    present = {r["recipe"] for r in rows}
    return [curve for curve in CURVES.values() if curve.name in present]


def _fmt(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}"


def tables(cache: dict[str, Any], data: str) -> str:
    """The section body of one data set: the points per recipe and temperature, then the gaps to the MLE curve."""
    axes = AXES[data]
    rows = [r for r in cache["rows"] if r["data"] == data]
    temperatures = sorted({r["temperature"] for r in rows})
    recipes = ordered_recipes(rows)
    digits = 3
    lines = [
        f"{axes.quality_label} / {axes.diversity_label} per sampling temperature (medians over the recipe's seeds); "
        + (
            "lower NLL_oracle: better samples, lower NLL_test: more of the held-out data covered."
            if data == "oracle"
            else "higher BLEU-4: more name-like samples, lower self-BLEU-4: more diverse ones."
        ),
        "",
        "| recipe | net | seeds | " + " | ".join(f"T={t:g}" for t in temperatures) + " |",
        "|---|---|---|" + "---|" * len(temperatures),
    ]
    reference = cache.get("reference", {}).get(data)
    if data == "surnames" and reference:
        lines[0] += (
            f" Real training names score {reference['bleu4']:.3f} / {reference['self_bleu4']:.3f} (mean length "
            f"{reference['length']:.2f})."
        )

    def cell(recipe: Recipe, t: float, key: str) -> float | None:
        values = [r[key] for r in rows if r["recipe"] == recipe.name and r["temperature"] == t]
        return statistics.median(values) if values else None

    for recipe in recipes:
        chosen = [r for r in rows if r["recipe"] == recipe.name]
        seeds = ",".join(str(s) for s in sorted({r["seed"] for r in chosen}))
        cells = []
        for t in temperatures:
            q, d = cell(recipe, t, axes.quality), cell(recipe, t, axes.diversity)
            cells.append("" if q is None or d is None else f"{q:.{digits}f} / {d:.{digits}f}")
        lines.append(f"| {recipe.name} | {chosen[0]['net']} | {seeds} | " + " | ".join(cells) + " |")
    if data == "surnames":
        lines += ["", "NLL_test (nats per character of the held-out names) at each temperature:", ""]
        lines += ["| recipe | " + " | ".join(f"T={t:g}" for t in temperatures) + " |"]
        lines += ["|---|" + "---|" * len(temperatures)]
        for recipe in recipes:
            values = [cell(recipe, t, "nll_test") for t in temperatures]
            lines.append(f"| {recipe.name} | " + " | ".join("" if v is None else f"{v:.3f}" for v in values) + " |")

    unit = "nats of NLL_oracle" if data == "oracle" else "BLEU-4"
    noise = seed_noise(rows, axes)
    lines += [
        "",
        f"Gaps at equal {axes.diversity_label} to the temperature-swept MLE curves of the same seed ({unit}; positive: "
        "the point lies beyond the curve, better quality at the same diversity; the MLE frontier is the better of the "
        "MLE generator's and its EMA's curves at each diversity); points outside a curve's "
        f"{axes.diversity_label} range are not compared. s/it: seconds per iteration of MLE / of the adversarial "
        "phase (evaluations excluded).",
        "",
        "| curve | iterations (MLE + D + adv) | s/it MLE / adv | vs MLE generator: compared, best (seed, T), "
        "median, above | vs MLE frontier: compared, best (seed, T), median, above | vs its own MLE frontier |",
        "|---|---|---|---|---|---|",
    ]

    def described(found: dict[str, Any]) -> str:
        if not found["compared"]:
            return f"0 of {found['points']}"
        seed, t = found["best_at"]
        return (
            f"{found['compared']} of {found['points']}, {_fmt(found['best'], digits)} ({seed}, {t:g}), "
            f"{_fmt(found['median'], digits)}, {found['above']}"
        )

    verdicts = []
    for recipe in recipes:
        if recipe.name == "MLE":
            continue
        chosen = [r for r in rows if r["recipe"] == recipe.name]
        iterations = f"{chosen[0]['mle_steps']} + {chosen[0]['d_pretrain_steps']} + {chosen[0]['adv_steps']}"
        adv_speeds = [r["adv_s_per_it"] for r in chosen if r["adv_s_per_it"]]
        speeds = f"{statistics.median(r['mle_s_per_it'] for r in chosen):.3f} / " + (
            f"{statistics.median(adv_speeds):.3f}" if adv_speeds else "-"
        )
        to_mle, to_frontier = (summary(rows, axes, recipe.name, b) for b in (["MLE"], frontier("MLE")))
        if recipe.adversarial and to_frontier["compared"]:
            verdicts.append((recipe.name, to_frontier))
        own = "same"
        if recipe.mle != "MLE":
            own = described(summary(rows, axes, recipe.name, frontier(recipe.mle))) if recipe.adversarial else "-"
        cells = [recipe.name, iterations, speeds, described(to_mle), described(to_frontier), own]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", verdict(verdicts, noise, unit, rows)]
    return "\n".join(lines)


def verdict(found: Sequence[tuple[str, dict[str, Any]]], noise: float | None, unit: str, rows: Sequence[Row]) -> str:
    """The plain finding: does any adversarial point lie beyond the MLE frontier by more than the seed noise."""
    if not found:
        return "No adversarial recipe compared yet."
    mle_seeds = sorted({r["seed"] for r in rows if r["recipe"] == "MLE"})
    if noise is None:
        noise_text = f"one MLE seed ({mle_seeds}), so the seed noise is not measured"
        threshold = 0.0
    else:
        noise_text = (
            f"seed noise: one seed's MLE points lie up to {noise:.3f} {unit} off another's curve, seeds {mle_seeds}"
        )
        threshold = noise
    beyond = [(name, s) for name, s in found if s["best"] > threshold]
    if not beyond:
        name, best = max(found, key=lambda item: item[1]["best"])
        return (
            f"Finding: no adversarial recipe has a point beyond the temperature-swept MLE frontier by more than "
            f"{threshold:.3f} {unit} ({noise_text}); the largest gap is {best['best']:+.3f} ({name})."
        )
    parts = ", ".join(
        f"{name} by up to {s['best']:+.3f} (seed {s['best_at'][0]}, T={s['best_at'][1]:g}; {s['above']} of "
        f"{s['compared']} points beyond the frontier)"
        for name, s in beyond
    )
    if noise is None:
        return (
            f"Finding: {noise_text}, so no point is shown to lie beyond the MLE frontier by more than seed noise; "
            f"points with a positive gap: {parts}."
        )
    return f"Finding: beyond the MLE frontier by more than {threshold:.3f} {unit} ({noise_text}): {parts}."


def plot(cache: dict[str, Any], data: str, path: Path) -> None:
    """The curves of one data set (means over seeds per temperature): MLE curves as lines, the adversarial
    recipes as lines with markers, temperatures annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = AXES[data]
    rows = [r for r in cache["rows"] if r["data"] == data]
    panels = [(axes.diversity, axes.diversity_label)]
    if data == "surnames":
        panels.append(("nll_test", "NLL_test (nats per character)"))
    figure, subplots = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5.5), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for panel, (x_key, x_label) in zip(subplots[0], panels, strict=True):
        for index, recipe in enumerate(ordered_recipes(rows)):
            temperatures = sorted({r["temperature"] for r in rows if r["recipe"] == recipe.name})
            xs, ys = [], []
            for t in temperatures:
                chosen = [r for r in rows if r["recipe"] == recipe.name and r["temperature"] == t]
                xs.append(statistics.fmean(r[x_key] for r in chosen))
                ys.append(statistics.fmean(r[axes.quality] for r in chosen))
            relational = recipe.mle != "MLE"
            if recipe.name.endswith(EMA_SUFFIX):
                style = {"linestyle": "-." if relational else ":", "linewidth": 2.0}
            else:
                style = {"linestyle": "--" if relational else "-", "linewidth": 2.5}
            if recipe.adversarial:
                style = {"marker": "o", "linewidth": 1.2, "markersize": 4}
            panel.plot(xs, ys, color=colours[index % len(colours)], label=recipe.name, **style)
            for x, y, t in zip(xs, ys, temperatures, strict=True):
                panel.annotate(f"{t:g}", (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
        reference = cache.get("reference", {}).get(data)
        if data == "surnames" and reference and x_key == axes.diversity:
            panel.plot([reference["self_bleu4"]], [reference["bleu4"]], "k*", markersize=10, label="real names")
        panel.set_xlabel(x_label)
        panel.set_ylabel(axes.quality_label)
        panel.grid(alpha=0.3)
        panel.legend(fontsize=7)
    seeds = sorted({r["seed"] for r in rows})
    title = "SeqGAN oracle" if data == "oracle" else "surnames"
    figure.suptitle(f"lstm-gan on the {title}: quality against diversity over sampling temperatures (seeds {seeds})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(cache: dict[str, Any], data: str) -> None:
    from results import write_section

    rows = [r for r in cache["rows"] if r["data"] == data]
    threads = sorted({r["threads"] for r in rows})
    commands = [c["command"] for c in cache.get("commands", []) if data in c["data"]]
    reference = cache.get("reference", {}).get(data, {})
    if data == "oracle":
        setting = (
            f"lstm-gan {plugin.version} at the oracle's size (embedding and hidden 32), batch 64, 10,000 training / "
            "10,000 held-out oracle sequences and 10,000 samples per point (the seed's data and sampling seed, as "
            f"benchmarks/text_oracle.py); ground-truth NLL_oracle of the held-out data {reference.get('nll_oracle')}; "
            f"published: {PUBLISHED}."
        )
    else:
        setting = (
            f"lstm-gan {plugin.version} defaults, batch 64, data `{TRAIN}`, 2,000 names per point scored as "
            "benchmarks/text_surnames.py does (BLEU-4 against the 8,879 held-out names, self-BLEU-4 over 500)."
        )
    recipes = "; ".join(
        f"{r.name}: "
        + (", ".join(f"{k}={v}" for k, v in r.sets.items()) or "plugin defaults")
        + (", engine ema_start = end of pre-training" if r.ema_from_adversarial else "")
        + (f", pretrain_d_steps={r.d_pretrain}" if r.d_pretrain else "")
        + (
            ""
            if r.adversarial
            else " (MLE only: at the end of pre-training, "
            + ("the engine's EMA" if r.name.endswith(EMA_SUFFIX) else "the generator")
            + ")"
        )
        for r in ordered_recipes(rows)
    )
    body = [
        f"machine: {platform.machine()}, {', '.join(map(str, threads))} thread(s) (torch.set_num_threads; another "
        f"benchmark used the other core throughout), torch {torch.__version__}. {setting} Recipes: {recipes}. "
        "Each trained model is sampled through the temperature sweep from its EMA generator where the engine kept "
        "one (the `net` column), else the generator. Method: Caccia et al. 2020, 'Language GANs falling short'. "
        f"Plot: benchmarks/text-curves-{data}.png.",
        "",
        "Commands (each adds its rows to the JSON cache; the last re-renders this section):",
        "",
        *[f"- `{c}`" for c in commands],
        "",
        tables(cache, data),
    ]
    write_section(SECTIONS[data], commands[-1] if commands else "python benchmarks/text_curves.py", "\n".join(body))


# --- main ---------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=(*DATASETS, "both"), default="both")
    parser.add_argument(
        "--recipes",
        default=DEFAULT_RECIPES,
        help=f"comma-separated, of: {', '.join(RECIPES)} (default: all but reinforce)",
    )
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--temperatures", default=TEMPERATURES)
    parser.add_argument(
        "--mle-extra-temperatures", default=MLE_EXTRA, help="also these for the MLE recipes (the curves to beat)"
    )
    parser.add_argument(
        "--adv-steps", type=int, default=0, help="adversarial iterations (default: 400 oracle, 1000 surnames)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="the row cache: read, extended and written back")
    parser.add_argument("--no-train", action="store_true", help="train nothing: render the --json cache only")
    parser.add_argument("--write", action="store_true", help="write the RESULTS.md sections and the PNG plots")
    parser.add_argument("--plot-dir", type=Path, help="also write the PNG plots here")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds: checks the script end to end")
    args = parser.parse_args(argv)
    unknown = [r for r in args.recipes.split(",") if r and r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; accepted: {', '.join(RECIPES)}")
    if args.smoke and args.recipes == DEFAULT_RECIPES:
        args.recipes = ",".join(RECIPES)
    if args.smoke and args.temperatures == TEMPERATURES:
        args.temperatures = "0.8,1.0,1.2"
    if args.smoke and args.mle_extra_temperatures == MLE_EXTRA:
        args.mle_extra_temperatures = "0.5"
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cache = load_cache(args.json)
    datasets = DATASETS if args.data == "both" else (args.data,)
    temperatures = [float(t) for t in args.temperatures.split(",") if t]
    mle_temperatures = sorted({*temperatures, *(float(t) for t in args.mle_extra_temperatures.split(",") if t)})
    if not args.no_train:
        command = "python benchmarks/text_curves.py " + shlex.join(sys.argv[1:] if argv is None else list(argv))
        cache["commands"] = [*cache.get("commands", []), {"command": command, "data": list(datasets)}]
        oracle = Oracle.load(ORACLE) if "oracle" in datasets else None
        for data in datasets:
            setup = setups(args)[data]
            for seed in [int(s) for s in args.seeds.split(",")]:
                task = oracle_task(setup, seed, oracle) if data == "oracle" else surnames_task(setup)
                cache.setdefault("reference", {})[data] = task.reference
                for key in [r for r in args.recipes.split(",") if r]:
                    recipe = RECIPES[key]
                    swept = temperatures if recipe.adversarial else mle_temperatures
                    rows = train_recipe(recipe, setup, seed, task, swept, args.device)
                    merge(cache, rows)
                    if args.json:  # after every run, so an interrupted invocation keeps what it finished
                        args.json.write_text(json.dumps(cache, indent=1) + "\n", encoding="utf-8")
    for data in datasets:
        if not any(r["data"] == data for r in cache["rows"]):
            continue
        print(f"\n{SECTIONS[data]}\n\n{tables(cache, data)}", flush=True)
        if args.plot_dir:
            plot(cache, data, args.plot_dir / f"text-curves-{data}.png")
        if args.write and not args.smoke:
            plot(cache, data, HERE / f"text-curves-{data}.png")
            write(cache, data)
    return cache


if __name__ == "__main__":
    main()
