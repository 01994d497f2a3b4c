"""benchmarks/speedrun.py and the budget runner under it: the marks, the time to a threshold, the best FID within
a window (a finished schedule counts for later windows, an interrupted one does not), the table, and a clocked run
end to end (a mark per clock time, the finished row when the schedule ends first)."""

from __future__ import annotations

import pytest

from ganzoo.metrics.features import get_features


@pytest.fixture
def speedrun(monkeypatch: pytest.MonkeyPatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import speedrun

    return speedrun


def _row(seconds: float, fid: float, **extra) -> dict:
    return {"seconds": seconds, "fid": fid, "steps": int(seconds * 10), "images_per_s": 640.0, **extra}


def test_marks_are_dense_first_then_every_minute(speedrun) -> None:
    assert speedrun.marks(3) == [15, 30, 45, 60, 75, 90, 105, 120, 180]
    assert speedrun.marks(0.5) == [15, 30]


def test_seconds_to_a_threshold_is_the_first_mark_at_or_below_it(speedrun) -> None:
    rows = [_row(15, 6.0), _row(30, 1.9), _row(45, 2.5), _row(60, 1.4)]
    assert speedrun.seconds_to(rows, 2.0) == 30
    assert speedrun.seconds_to(rows, 1.4) == 60
    assert speedrun.seconds_to(rows, 1.0) is None


def test_best_within_a_window_needs_the_run_to_last_or_to_have_finished(speedrun) -> None:
    rows = [_row(60, 3.0), _row(300, 1.5), _row(600, 1.2)]
    assert speedrun.best_within(rows, 5) == 1.5
    assert speedrun.best_within(rows, 10) == 1.2
    assert speedrun.best_within(rows, 15) is None  # stopped at 10 minutes: unknown
    finished = [*rows[:-1], _row(600, 1.2, finished=True)]
    assert speedrun.best_within(finished, 15) == 1.2  # its schedule ended: the model stays as it was


def test_table_orders_recipes_by_their_best_fid(speedrun) -> None:
    common = {"plugin": "dcgan", "seed": 0, "clock": "cpu", "threads": 1}
    records = [{**common, **_row(60, 2.0), "recipe": "slow", "settings": "dcgan"}]
    records += [{**common, **_row(60, 1.1), "recipe": "fast", "settings": "dcgan --set batch_size=128"}]
    text = speedrun.table(records)
    lines = text.splitlines()
    assert lines[2].startswith("| fast | 0 | cpu, 1 | 60 | 60 | 60 | 60 | - |")
    assert lines[3].startswith("| slow | 0 | cpu, 1 | 60 | 60 | - |")
    assert "- `fast`: dcgan --set batch_size=128" in text


@pytest.mark.slow
def test_a_clocked_run_scores_each_mark_and_the_end_of_a_short_schedule(speedrun) -> None:
    import budget

    seen = []
    overrides = {"g_width": "4", "d_width": "4", "latent_dim": "8", "batch_size": "16", "steps": "40"}
    rows = budget.scored_run("dcgan", [0.0, 1e6], 0, 64, get_features("digits"), "wall", overrides, on_row=seen.append)
    assert seen == rows and len(rows) == 2
    assert rows[0]["steps"] == 1 and rows[0]["clock"] == "wall" and rows[0]["batch"] == 16
    assert rows[1] == {**rows[1], "steps": 40, "finished": True}  # the schedule ended before the second mark
    assert all(row["fid"] > 0 and row["images_per_s"] > 0 for row in rows)
