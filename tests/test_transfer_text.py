"""benchmarks/transfer_text.py: the common / rare surname corpora it writes, the curve summary on NLL_test, and its
--smoke run end to end (scratch in the source's vocabulary, fine-tuning scored from the source itself)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ganzoo.text.corpus import read_surnames

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def benchmark(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import transfer_text

    return transfer_text


def test_corpora_split_the_list_at_the_tail_rank(benchmark, tmp_path: Path) -> None:
    paths = benchmark.write_corpora(tmp_path)
    parts = {name: path.read_text(encoding="utf-8").split() for name, path in paths.items()}
    names = read_surnames()
    rank = {name: i for i, name in enumerate(names)}
    assert len(parts["source"]) == 72_000 and len(parts["tail-test"]) == 879
    assert len(parts["tail-train"]) + len(parts["tail-test"]) == len(names) - benchmark.TAIL_RANK
    assert max(rank[n] for n in parts["source"]) < benchmark.TAIL_RANK
    assert min(rank[n] for n in parts["tail-train"] + parts["tail-test"]) >= benchmark.TAIL_RANK
    assert not set(parts["tail-train"]) & set(parts["tail-test"])
    # the held-out tail is the surnames?split=test names of the tail, so no model trained here has seen them
    assert all(rank[n] % 10 == 9 for n in parts["tail-test"])
    # written once: a second call keeps the files
    stamp = paths["source"].stat().st_mtime_ns
    assert benchmark.write_corpora(tmp_path)["source"].stat().st_mtime_ns == stamp


def test_curve_reads_the_score_it_is_given(benchmark) -> None:
    points = [
        [{"step": 0, "nll_test": 3.0, "bleu4": 0.1}, {"step": 50, "nll_test": 2.5 + s, "bleu4": 0.9}] for s in (0, 1, 2)
    ]
    runs = [{"seed": seed, "train_s": 1.0, "curve": curve} for seed, curve in enumerate(points)]
    curve = benchmark.Curve.of(runs, key="nll_test")
    assert curve.values == {0: 3.0, 50: 3.5} and curve.per_seed[50] == [2.5, 3.5, 4.5]
    assert curve.best() == (50, 3.5)  # iteration 0 (the source) is never the best
    assert curve.reaches(3.5) == 50 and curve.reaches(3.4) is None
    assert curve.medians["bleu4"] == {0: 0.1, 50: 0.9}


@pytest.mark.slow
def test_smoke_runs_end_to_end(benchmark) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "transfer_text.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith("| tail-100 |")]
    nll = {row[1]: row[4:] for row in rows if len(row) > 4 and row[3] == "nll_test"}
    assert set(nll) == set(benchmark.METHODS) and len(nll) == 5
    assert nll["scratch"][0] == "-"  # scratch has no source to score at iteration 0
    sources = {cells[0] for method, cells in nll.items() if method != "scratch"}
    assert len(sources) == 1 and "-" not in sources  # every fine-tuning starts from the same source
    # scratch reads the source's vocabulary: a held-out character its 100 names lack is not impossible
    assert all(math.isfinite(float(cell.split()[0].strip(" |"))) for cell in nll["scratch"][1:])
    assert "iterations to scratch's best NLL_test" in done.stdout
