"""benchmarks/gpu_check.py: without CUDA it says so and exits 0; on the CPU (`--device cpu`) the same checks run
and print their table (the CUDA run itself needs a GPU: its table goes to benchmarks/RESULTS.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, env=environment, check=False
    )


def test_without_cuda_it_says_so_and_exits_0():
    done = run(CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "gpu_check: no CUDA device here, nothing to check (run it on a machine with a GPU)"


def test_the_checks_run_on_the_cpu_and_print_one_table(tmp_path):
    done = run("--device", "cpu", "--steps", "3", "--plugins", "dcgan", "--sizes", "32", "--tiny", "--batch-size", "8")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| dcgan |")]
    assert [row.split(" | ")[1:3] for row in rows[:3]] == [["fp16", "ok"], ["bf16", "ok"], ["fp32", "ok"]]
    assert rows[2].endswith("| 0 | 0.0% |")  # fp32 on the CPU is the reference itself
    assert float(rows[3].split(" | ")[1].rstrip(" |")) > 0  # images/s at 32 px
    assert "DDP (2 GPUs, NCCL, dcgan): not run (0 GPUs)" in done.stdout
