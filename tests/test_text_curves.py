"""benchmarks/text_curves.py: the gap of a point to a temperature-swept curve (interpolated, folded, out of range),
the seed noise, and the --smoke run end to end (both data sets, an MLE, a relational and a REINFORCE recipe) with its
JSON cache, tables and plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def curves(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import text_curves

    return text_curves


def test_curve_quality_interpolates_and_takes_the_better_branch(curves) -> None:
    # NLL_test falls then rises again with the temperature: two branches over x in [7.7, 7.8]
    curve = [(8.0, 9.0), (7.8, 9.4), (7.7, 9.7), (7.9, 9.9)]
    assert curves.curve_quality(curve, 7.9, higher_is_better=False) == pytest.approx(9.2)  # not 9.9
    assert curves.curve_quality(curve, 7.75, higher_is_better=False) == pytest.approx(9.55)
    assert curves.curve_quality(curve, 7.6, higher_is_better=False) is None
    assert curves.curve_quality(curve, 8.1, higher_is_better=False) is None


def test_gap_sign_follows_the_quality_direction(curves) -> None:
    oracle = [(8.0, 9.0), (7.7, 9.7)]  # lower NLL_oracle is better
    assert curves.gap_to_curve((7.85, 9.25), oracle, higher_is_better=False) == pytest.approx(0.1)
    assert curves.gap_to_curve((7.85, 9.45), oracle, higher_is_better=False) == pytest.approx(-0.1)
    surnames = [(0.9, 0.9), (0.6, 0.8)]  # self-BLEU (x) and BLEU (y): higher BLEU is better
    assert curves.gap_to_curve((0.75, 0.87), surnames, higher_is_better=True) == pytest.approx(0.02)
    assert curves.gap_to_curve((0.5, 0.99), surnames, higher_is_better=True) is None


def _rows(recipe: str, seed: int, shift: float) -> list[dict]:
    return [
        {"data": "oracle", "recipe": recipe, "seed": seed, "temperature": t, "nll_test": x, "nll_oracle": y + shift}
        for t, x, y in ((0.8, 8.0, 9.0), (0.9, 7.8, 9.4), (1.0, 7.7, 9.7))
    ]


def test_summary_and_seed_noise(curves) -> None:
    rows = _rows("MLE", 0, 0.0) + _rows("MLE", 1, 0.05) + _rows("reinforce", 0, -0.2)
    axes = curves.AXES["oracle"]
    assert curves.seed_noise(rows, axes) == pytest.approx(0.05)
    found = curves.summary(rows, axes, "reinforce", ["MLE"])
    assert found["compared"] == 3 and found["above"] == 3
    assert found["best"] == pytest.approx(0.2) and found["median"] == pytest.approx(0.2)
    text = curves.verdict([("reinforce", found)], 0.05, "nats", rows)
    assert "reinforce by up to +0.200" in text
    assert "no adversarial recipe" in curves.verdict([("reinforce", {**found, "best": 0.01})], 0.05, "nats", rows)
    # against the frontier of two curves, the better one at each diversity counts
    rows += _rows("MLE, EMA", 0, -0.15)
    assert curves.summary(rows, axes, "reinforce", curves.frontier("MLE"))["best"] == pytest.approx(0.05)


@pytest.mark.slow
def test_smoke_runs_end_to_end(tmp_path: Path) -> None:
    cache = tmp_path / "rows.json"
    command = [sys.executable, str(BENCHMARKS / "text_curves.py"), "--smoke", "--recipes", "mle,relational,reinforce"]
    command += ["--json", str(cache), "--plot-dir", str(tmp_path)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(cache.read_text())["rows"]
    for data in ("oracle", "surnames"):
        got = {(r["recipe"], r["temperature"]) for r in rows if r["data"] == data}
        names = {"MLE", "MLE, EMA", "RelGAN: relational memory, soft + R1", "reinforce"}
        assert got == {(name, t) for name in names for t in (0.8, 1.0, 1.2)} | {("MLE", 0.5), ("MLE, EMA", 0.5)}
        assert (tmp_path / f"text-curves-{data}.png").stat().st_size > 10_000
    assert {r["net"] for r in rows if r["recipe"] == "MLE"} == {"generator"}
    assert {r["net"] for r in rows if r["recipe"] == "MLE, EMA"} == {"ema"}
    assert all(r["adv_steps"] == 0 for r in rows if r["recipe"].startswith("MLE"))
    reinforce = [r for r in rows if r["recipe"] == "reinforce"]
    assert {r["net"] for r in reinforce} == {"ema"} and all(r["d_pretrain_steps"] == 2 for r in reinforce)
    assert all(r["config"]["g_kind"] == "relational" for r in rows if r["recipe"].startswith("RelGAN"))
    assert "Gaps at equal" in done.stdout and "Finding:" in done.stdout
    # a second invocation on the same cache re-renders without training and keeps the rows
    again = subprocess.run(
        [*command[:2], "--json", str(cache), "--no-train", "--data", "oracle"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(cache.read_text())["rows"] == rows
