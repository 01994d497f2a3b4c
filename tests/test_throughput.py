"""benchmarks/throughput.py's table: images/s per mode with the ratio against fp32 of the same process, the
largest data share, and a size a plugin refuses shown as not run."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def throughput(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    import throughput

    return throughput


def test_table_gives_each_mode_against_fp32_and_the_largest_data_share(throughput) -> None:
    common = {"plugin": "dcgan", "px": 64, "batch": 8}
    speeds = {("fp32", False): 40.0, ("bf16", False): 60.0, ("fp32", True): 44.0, ("bf16", True): 80.0}
    rows = [
        {**common, "precision": p, "channels_last": cl, "images_per_s": v, "data_share": 0.01 * i}
        for i, ((p, cl), v) in enumerate(speeds.items())
    ]
    rows.append(
        {
            "plugin": "biggan",
            "px": 256,
            "batch": 8,
            "precision": "fp32",
            "channels_last": False,
            "error": "resolution=256 is not supported",
        }
    )
    lines = throughput.table(rows).splitlines()
    assert lines[2] == "| dcgan | 64 | 8 | 40.0 | 60.0 (1.50x) | 44.0 (1.10x) | 80.0 (2.00x) | 3.0% |"
    assert lines[3] == "| biggan | 256 | 8 | - | - | - | - | not run: resolution=256 is not supported |"
