"""Data-parallel training: two CPU ranks under torchrun (gloo) stay in sync and write one set of files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

TINY_DCGAN = {"g_width": 8, "d_width": 8, "latent_dim": 16}
TRAIN = {"steps": 4, "batch_size": 16, "device": "cpu", "precision": "fp32", "checkpoint_every": 4, "log_every": 2}
TRAIN.update(sample_every=1000, sample_grid=4, progress=False, tensorboard=False)
TRAIN.update(augment="ada", ada_interval=3)  # ADA's collectives too: an adjustment at step 3, sums pending at 4


def run_workers(out: Path, plugin: str, train: dict | None = None) -> Path:
    """Two ranks of the conformance kit's worker: a tiny run (TRAIN, or `train`) in OUT/run, each rank's tensors in
    OUT."""
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    spec = {"plugin": plugin, "config": TINY_DCGAN, "data": "mnist-4k", "train": train or TRAIN, "out": str(out)}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "ganzoo.testing.ddp_worker", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    return run_workers(tmp_path_factory.mktemp("ddp"), "dcgan")


def _ranks(out: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return load_file(out / "rank0.safetensors"), load_file(out / "rank1.safetensors")


def test_ranks_hold_identical_networks(ddp_run):
    rank0, rank1 = _ranks(ddp_run)
    nets = [k for k in rank0 if not k.split(".", 1)[0].endswith("_ema")]
    assert any(k.startswith("generator.") for k in nets) and any(k.startswith("discriminator.") for k in nets)
    assert rank0.keys() == rank1.keys()
    differing = [k for k in nets if not torch.equal(rank0[k], rank1[k])]
    assert not differing, f"ranks disagree on {differing[:5]}"
    for path in (ddp_run / "rank0.safetensors", ddp_run / "rank1.safetensors"):
        with safe_open(path, framework="pt") as handle:
            assert handle.metadata()["step"] == "4"
    # rank 0's checkpoint holds exactly these networks
    saved = load_file(ddp_run / "run" / "checkpoints" / "step-000004" / "model.safetensors")
    assert all(torch.equal(saved[k], rank0[k]) for k in nets)


def test_ranks_hold_identical_ema_generators(ddp_run):
    """The EMA generator (parameters and batch-norm running statistics) must agree across ranks too."""
    rank0, rank1 = _ranks(ddp_run)
    ema = [k for k in rank0 if k.startswith("generator_ema.")]
    assert ema
    differing = [k for k in ema if not torch.equal(rank0[k], rank1[k])]
    assert not differing, f"ranks disagree on {differing[:5]}"


def test_a_warning_rolls_both_ranks_back_together(tmp_path):
    """rollback_on_warning under DDP: rank 0 judges the warning, both ranks reload the same checkpoint with the
    same lower rates, and the run ends with identical networks (a rank left behind would hang or diverge)."""
    train = {**TRAIN, "steps": 8, "batch_size": 8, "log_every": 2, "checkpoint_every": 2, "augment": "none"}
    train.update(health_every=2, health_window=2, health_g_grad=1e9, health_recall=0)  # G counts as stuck at once
    train.update(health_diversity=0, health_d_auc=1, health_oscillation=2)  # and nothing else can fire
    train.update(rollback_on_warning=True, max_rollbacks=1)
    out = run_workers(tmp_path, "dcgan", train)
    rank0, rank1 = _ranks(out)
    differing = [k for k in rank0 if not torch.equal(rank0[k], rank1[k])]
    assert not differing, f"ranks disagree on {differing[:5]}"
    info = json.loads((out / "run" / "checkpoints" / "step-000008" / "trainer.json").read_text())
    assert [(r["step"], r["to"]) for r in info["rollbacks"]] == [(4, 0)]


def test_one_checkpoint_one_config_one_log(ddp_run):
    run = ddp_run / "run"
    checkpoints = run / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-000004"]
    assert not list(run.rglob(".tmp-*"))
    info = json.loads((checkpoints / "step-000004" / "trainer.json").read_text())
    assert info["step"] == 4 and info["world_size"] == 2
    assert info["images_seen"] == 4 * 16  # the global batch, summed over ranks

    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2
    assert config["device"] == "cpu"

    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]  # log_every=2, written by rank 0 only
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-000004.png"]

    # the saved RNG state has one torch generator state per rank, and the ranks drew different noise
    from ganzoo.engine.checkpoint import load_training_state

    state, _ = load_training_state(checkpoints / "step-000004")
    assert len(state["rng"]["torch"]) == 2
    assert not torch.equal(state["rng"]["torch"][0], state["rng"]["torch"][1])
    # ADA: rank 0 saved every rank's sums since the adjustment at step 3 (step 4's real logits: 8 per rank)
    assert state["ada"]["signs"][1].item() == 16
    assert lines[-1]["augment/p"] == pytest.approx(state["ada"]["p"]) and state["ada"]["p"] > 0


def test_cli_under_torchrun_trains_and_reports_once(tmp_path):
    """The README's `torchrun -m ganzoo.cli train ...` form: two ranks, one run, one report."""
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    run = tmp_path / "run"
    args = ["train", "dcgan", "--steps", "2", "--batch-size", "16", "--device", "cpu", "--out", str(run)]
    args += ["--set", "g_width=8", "--set", "d_width=8", "--set", "progress=false", "--set", "sample_grid=4"]
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "ganzoo.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.count("checkpoint: ") == 1
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert (run / "checkpoints" / "step-000002" / "model.safetensors").is_file()


def test_two_nodes_on_loopback_train_one_run_and_it_resumes_on_one_rank(tmp_path):
    """`torchrun --nnodes 2` with c10d rendezvous on 127.0.0.1: two launchers acting as two machines of one
    process each; then the run resumes in a single process with the same global batch."""
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = tmp_path / "run"
    args = ["train", "dcgan", "--steps", "4", "--batch-size", "16", "--device", "cpu", "--out", str(run)]
    args += ["--set", "g_width=8", "--set", "d_width=8", "--set", "progress=false", "--set", "sample_grid=4"]
    launch = [str(torchrun), "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d"]
    launch += [f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=ganzoo-two-nodes", "-m", "ganzoo.cli", *args]
    nodes = [subprocess.Popen(launch, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (stdout, stderr) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, f"node failed:\n{stdout[-2000:]}\n{stderr[-2000:]}"
    assert sum(stdout.count("checkpoint: ") for stdout, _ in outputs) == 1  # one report, from global rank 0
    info = json.loads((run / "checkpoints" / "step-000004" / "trainer.json").read_text())
    assert info["world_size"] == 2 and info["images_seen"] == 64

    from click.testing import CliRunner

    from ganzoo.cli import cli

    result = CliRunner().invoke(cli, ["train", "dcgan", "--out", str(run), "--resume", "--steps", "6"])
    assert result.exit_code == 0, result.output
    assert "resuming a run of 2 rank(s) on 1: the global batch and the data order carry on" in result.stderr
    info = json.loads((run / "checkpoints" / "step-000006" / "trainer.json").read_text())
    assert info["world_size"] == 1 and info["images_seen"] == 96 and info["batch_in_epoch"] == 6
