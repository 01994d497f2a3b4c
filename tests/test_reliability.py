"""Run directories that survive anything: the run lock, verified checkpoints with fall-back, finite state only,
full disks, garbled files and bad input as one line, clean restarts.

Corruption cases resume from the newest checkpoint that verifies and must still end bit-identical to a run that
was never damaged (training is deterministic on the CPU), so a silent wrong weight cannot pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers_engine import DCGAN_TINY, ToyGAN, dcgan_train, toy_data, toy_train
from safetensors.torch import load_file

import ganzoo
from ganzoo import Trainer
from ganzoo.cli import cli
from ganzoo.engine import checkpoint as ckpt
from ganzoo.engine.lock import RunLock
from ganzoo.errors import DivergenceError, GanzooError, UsageError

STEPS, EVERY = 8, 2
TRAIN = dcgan_train(steps=STEPS, checkpoint_every=EVERY, keep_checkpoints=10, ema_decay=0.9)


def train(out: Path, **overrides) -> ganzoo.engine.trainer.TrainResult:
    return Trainer("dcgan", DCGAN_TINY, {**TRAIN, **overrides}, data="mnist-4k?n=64", out=out).fit()


def resume(out: Path, **overrides) -> ganzoo.engine.trainer.TrainResult:
    return Trainer("dcgan", DCGAN_TINY, {**TRAIN, **overrides}, data="mnist-4k?n=64", out=out, resume=True).fit()


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="ganzoo")


def one_error_line(result, exit_code: int) -> str:
    """The command exited `exit_code` with exactly one `Error:` line and no traceback; returns the line."""
    assert result.exit_code == exit_code, result.output + repr(result.exc_info)
    assert isinstance(result.exception, SystemExit), repr(result.exc_info)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / ckpt.step_dir_name(STEPS) / "model.safetensors")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """The final weights of an undamaged run, for the bit-identity of every resumed one."""
    return final_weights(train(tmp_path_factory.mktemp("reference") / "run").run_dir)


def interrupted(out: Path, at: int = 6) -> Path:
    """A run killed (as by Ctrl-C) after iteration `at`: checkpoints 2, 4, 6 are on disk."""
    from helpers_engine import StopAfter

    with pytest.raises(KeyboardInterrupt):
        Trainer("dcgan", DCGAN_TINY, TRAIN, data="mnist-4k?n=64", out=out, callbacks=[StopAfter(at)]).fit()
    return out


def flip_byte(path: Path, offset_from_end: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def newest(out: Path) -> Path:
    return out / "checkpoints" / ckpt.step_dir_name(6)


# ------------------------------------------------------------------------------------------------ the run lock


def test_a_second_writer_is_refused_with_the_holders_pid_and_nothing_changes(tmp_path):
    run = interrupted(tmp_path / "run", at=2)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    lock = RunLock(run)
    lock.acquire()
    try:
        with pytest.raises(UsageError, match=rf"being written by another ganzoo process \(PID {os.getpid()}\)"):
            resume(run)
        with pytest.raises(UsageError, match="already holds checkpoints"):
            train(run)
    finally:
        lock.release()
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before


def test_a_fresh_run_racing_another_into_one_folder_is_refused(tmp_path):
    """Two fresh runs into a folder with no checkpoint yet: the one that does not hold the lock writes nothing."""
    run = tmp_path / "run"
    run.mkdir()
    lock = RunLock(run)
    lock.acquire()
    try:
        with pytest.raises(UsageError, match="being written by another ganzoo process"):
            train(run)
    finally:
        lock.release()
    assert sorted(p.name for p in run.iterdir()) == [".lock"]


@pytest.mark.slow
def test_a_killed_holders_lock_never_blocks(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    code = f"from pathlib import Path; from ganzoo.engine.lock import RunLock; lock = RunLock(Path({str(run)!r}))"
    code += "; lock.acquire()"
    holder = subprocess.Popen(
        [sys.executable, "-c", code + "; print('held', flush=True); input()"],
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(UsageError, match=f"PID {holder.pid}"):
        train(run)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert train(run).step == STEPS


# ---------------------------------------------------------------------------------------- verified checkpoints


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


CORRUPTIONS = {
    "model-bytes-flipped": lambda c: flip_byte(c / "model.safetensors"),
    "state-bytes-flipped": lambda c: flip_byte(c / "state.safetensors"),
    "model-truncated": lambda c: _truncate(c / "model.safetensors"),
    "state-truncated": lambda c: _truncate(c / "state.safetensors"),
    "model-deleted": lambda c: (c / "model.safetensors").unlink(),
    "model-header-garbled": lambda c: flip_byte(
        c / "model.safetensors", offset_from_end=len((c / "model.safetensors").read_bytes()) - 10
    ),
    "model-emptied": lambda c: (c / "model.safetensors").write_bytes(b""),
    "trainer-json-not-utf8": lambda c: (c / "trainer.json").write_bytes(b"\xff\xfe{\x00"),
    "trainer-json-a-list": lambda c: (c / "trainer.json").write_text("[]"),
    "trainer-json-empty-object": lambda c: (c / "trainer.json").write_text("{}"),
    "trainer-json-truncated": lambda c: _truncate(c / "trainer.json"),
    "trainer-json-deleted": lambda c: (c / "trainer.json").unlink(),
    "state-deleted": lambda c: (c / "state.safetensors").unlink(),
    "model-from-another-step": lambda c: shutil.copy(c.parent / "step-000004" / "model.safetensors", c),
}


@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_resume_falls_back_to_the_newest_checkpoint_that_verifies(tmp_path, reference, damage):
    run = interrupted(tmp_path / "run")
    CORRUPTIONS[damage](newest(run))
    with pytest.warns(UserWarning, match=r"skipping the checkpoint .*step-000006") as caught:
        result = resume(run)
    assert any("resuming from the newest usable checkpoint, " in str(w.message) for w in caught)
    assert any(str(newest(run).parent / "step-000004") in str(w.message) for w in caught)
    assert result.step == STEPS
    weights = final_weights(run)
    assert not [k for k in reference if not torch.equal(reference[k], weights[k])]  # no silent wrong weights
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(2, STEPS + 1, 2))  # log_every 2, no step twice


@pytest.mark.parametrize("pointer", [b"\xff\xfe\x00garbage", b"step-999999\n", b"../../elsewhere\n", b""])
def test_a_garbled_latest_pointer_falls_back_to_the_newest_checkpoint(tmp_path, reference, pointer):
    run = interrupted(tmp_path / "run")
    (run / "checkpoints" / "latest").write_bytes(pointer)
    assert resume(run).step == STEPS
    weights = final_weights(run)
    assert not [k for k in reference if not torch.equal(reference[k], weights[k])]


def test_no_checkpoint_verifies_is_one_line_listing_what_was_tried(tmp_path):
    run = interrupted(tmp_path / "run")
    for step in (2, 4, 6):
        flip_byte(run / "checkpoints" / ckpt.step_dir_name(step) / "model.safetensors")
    with pytest.raises(GanzooError) as caught, pytest.warns(UserWarning):
        resume(run)
    message = str(caught.value)
    assert message.startswith(f"cannot resume: no checkpoint in {run / 'checkpoints'} is usable (step-000006: ")
    assert all(ckpt.step_dir_name(s) in message for s in (2, 4, 6)) and "\n" not in message


def test_sampling_a_run_skips_a_corrupted_newest_checkpoint_and_an_explicit_one_is_refused(tmp_path):
    run = interrupted(tmp_path / "run")
    flip_byte(newest(run) / "model.safetensors")
    with pytest.warns(UserWarning, match="skipping the checkpoint .*step-000006.*does not match its SHA-256"):
        model = ganzoo.load_pretrained(run)
    assert model.info["step"] == 4
    with pytest.raises(GanzooError, match=r"the checkpoint .*step-000006 is unusable: model.safetensors does not"):
        ganzoo.load_pretrained(newest(run))


def test_verify_prints_a_table_and_exits_1_when_a_checkpoint_is_unusable(tmp_path):
    run = interrupted(tmp_path / "run")
    result = invoke("verify", run)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"step-{s:06d}  step {s}  ok" for s in (6, 4, 2)]
    _truncate(run / "checkpoints" / "step-000004" / "state.safetensors")
    result = invoke("verify", run)
    assert result.exit_code == 1
    assert "step-000004  step ?  UNUSABLE: state.safetensors does not match its SHA-256" in result.output
    assert result.output.splitlines()[-1] == f"Error: 1 of 3 checkpoints in {run / 'checkpoints'} are unusable"


def test_checkpoints_record_the_sha256_of_every_file(tmp_path):
    run = interrupted(tmp_path / "run", at=2)
    checkpoint = run / "checkpoints" / "step-000002"
    files = json.loads((checkpoint / "trainer.json").read_text())["files"]
    assert set(files) == {"model.safetensors", "state.safetensors"}
    for name, digest in files.items():
        assert hashlib.sha256((checkpoint / name).read_bytes()).hexdigest() == digest


def test_a_garbled_run_config_is_one_line_naming_the_file(tmp_path):
    run = interrupted(tmp_path / "run", at=2)
    for content in (b"\xff\xfe", b"[]", b"{}", b'{"plugin": "dcgan", "config": []}'):
        (run / "config.json").write_bytes(content)
        result = invoke("train", "dcgan", "--out", run, "--resume")
        line = one_error_line(result, 1)
        assert str(run / "config.json") in line
        line = one_error_line(invoke("sample", run, "--out", tmp_path / "x.png"), 1)
        assert str(run / "config.json") in line
        assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------------------------------- finite state only


class PoisonedNorm(ToyGAN):
    """A toy whose generator keeps a running statistic that becomes inf at iteration 5 (as a batch-norm
    variance does when its inputs blow up), while every loss stays finite."""

    def build(self, config, data_info):
        nets = super().build(config, data_info)
        nets["generator"].register_buffer("running_var", torch.ones(3))
        return nets

    def _d_loss(self, nets, batch, ctx):
        if ctx.step == 4:
            nets["generator"].running_var.fill_(float("inf"))
        return super()._d_loss(nets, batch, ctx)


def test_non_finite_state_is_never_saved_and_the_run_names_the_tensor(tmp_path):
    run = tmp_path / "run"
    plugin = ganzoo.register(PoisonedNorm("poisoned-norm", snapshot=False), replace=True)
    try:
        with pytest.raises(DivergenceError) as caught:
            Trainer(
                plugin, train=toy_train(steps=10, checkpoint_every=2, ema_decay=0.9), data=toy_data(), out=run
            ).fit()
        message = str(caught.value)
        assert message.startswith("training diverged at step 6: generator.running_var, generator_ema.running_var")
        assert f"not saved; the last good checkpoint is {run / 'checkpoints' / 'step-000004'}" in message
        assert [p.name for p in ckpt.list_checkpoints(run / "checkpoints")] == ["step-000002", "step-000004"]
        for checkpoint in ckpt.list_checkpoints(run / "checkpoints"):
            assert all(torch.isfinite(t).all() for t in load_file(checkpoint / "model.safetensors").values())
        assert ganzoo.load_pretrained(run).info["step"] == 4
    finally:
        ganzoo.unregister(plugin.name)


def test_a_model_with_non_finite_weights_is_refused_naming_them(tmp_path):
    run = interrupted(tmp_path / "run", at=2)
    saved = ganzoo.save_pretrained(run, tmp_path / "saved")
    weights = load_file(saved / "model.safetensors")
    key = next(k for k, t in weights.items() if k.startswith("generator.") and t.is_floating_point())
    weights[key] = weights[key].clone().fill_(float("nan"))
    ckpt.save_safetensors(weights, saved / "model.safetensors", {"plugin": "dcgan"})
    with pytest.raises(GanzooError, match=rf"are not finite \(inf or NaN\) in {key.replace('.', '[.]')}"):
        ganzoo.load_pretrained(saved)


class OverflowingToy(ToyGAN):
    """Every fp16 generator update overflows from iteration 3 on: the GradScaler skips each one."""

    def _g_loss(self, nets, batch, ctx):
        loss, logs = super()._g_loss(nets, batch, ctx)
        return (loss * 1e30 if ctx.step >= 2 else loss), logs


def test_the_fp16_skip_counter_survives_a_resume(tmp_path):
    """25 skips, a checkpoint, a resume, 5 more: the storm stops the run at 30 in a row, as without the resume."""
    from helpers_engine import StopAfter

    run = tmp_path / "run"
    plugin = ganzoo.register(OverflowingToy("overflowing", snapshot=False), replace=True)
    settings = toy_train(steps=100, checkpoint_every=27, precision="fp16", ema_decay=0.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            Trainer(plugin, train=settings, data=toy_data(), out=run, callbacks=[StopAfter(27)]).fit()
        state, _ = ckpt.load_training_state(run / "checkpoints" / "step-000027")
        assert state["skips"]["generator"] == 25
        with pytest.raises(DivergenceError, match=r"at step 32: fp16 gradients of the generator update were inf"):
            Trainer(plugin, train=settings, data=toy_data(), out=run, resume=True).fit()
    finally:
        ganzoo.unregister(plugin.name)


# ------------------------------------------------------------------------------------------- full disks


def _limited(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _cli_under_a_file_size_limit(limit: int, *args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GANZOO_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ganzoo.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limited(limit),
        check=False,
    )


def _one_line(proc: subprocess.CompletedProcess, exit_code: int) -> str:
    assert proc.returncode == exit_code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous_one(tmp_path):
    run = interrupted(tmp_path / "run", at=2)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints" / "step-000002").iterdir()}
    args = ["train", "dcgan", "--out", run, "--resume"]
    line = _one_line(_cli_under_a_file_size_limit(60_000, *args, cwd=tmp_path), 1)
    assert "cannot read or write a file" in line and "step-000004" in line and "File too large" in line
    assert ckpt.latest_checkpoint(run / "checkpoints") == run / "checkpoints" / "step-000002"
    assert {p.name: p.read_bytes() for p in (run / "checkpoints" / "step-000002").iterdir()} == before
    assert not list((run / "checkpoints").glob(".tmp-*"))
    assert resume(run).step == STEPS  # and the run goes on once there is room


@pytest.mark.slow
def test_a_full_disk_during_save_and_sample_is_one_line_and_leaves_nothing(tmp_path):
    run = interrupted(tmp_path / "run", at=2)
    line = _one_line(_cli_under_a_file_size_limit(60_000, "save", run, tmp_path / "export", cwd=tmp_path), 1)
    assert "cannot read or write a file" in line
    assert not (tmp_path / "export").exists() and not list(tmp_path.glob(".export.tmp-*"))
    line = _one_line(
        _cli_under_a_file_size_limit(2_000, "sample", run, "--out", tmp_path / "grid.png", cwd=tmp_path), 1
    )
    assert "cannot read or write a file" in line
    assert not (tmp_path / "grid.png").exists() and not list(tmp_path.glob(".grid.tmp-*"))


# ------------------------------------------------------------------------------------------- clean restarts


def test_stale_temporaries_of_dead_writers_are_removed_at_start(tmp_path, reference):
    run = interrupted(tmp_path / "run")
    stale = run / "checkpoints" / ".tmp-step-000008-4000000"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    (run / "checkpoints" / ".old-step-000006-4000001").mkdir()
    resume(run)
    assert not list((run / "checkpoints").glob(".tmp-*")) and not list((run / "checkpoints").glob(".old-*"))


def test_a_half_written_metrics_line_does_not_break_resume(tmp_path):
    run = interrupted(tmp_path / "run")
    with (run / "metrics.jsonl").open("a") as metrics:
        metrics.write('{"step": 7, "loss/gen')  # a kill in the middle of a line
    assert resume(run).step == STEPS
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(2, STEPS + 1, 2))  # log_every 2, no step twice


def test_a_fresh_run_into_a_folder_without_a_complete_checkpoint_starts_clean(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    (run / "config.json").write_text("{}")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / ".tmp-step-000002-4000000").mkdir()
    with pytest.warns(UserWarning, match="held files of an earlier run with no complete checkpoint; moved to"):
        train(run, steps=2)
    (aside,) = run.glob("previous-*")
    assert (aside / "metrics.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n'
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2]


# ----------------------------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad-input") / "run"
    train(out, steps=2)
    return out


BAD_INPUT = [
    # (arguments, exit code, a phrase of the one-line error); RUN is the small run, TMP a scratch folder
    (["train", "no-such-plugin"], 2, "unknown plugin 'no-such-plugin'"),
    (["train", "dcgn"], 2, "did you mean dcgan"),
    (["train", "dcgan", "--set", "lr_d=inf"], 2, "bad value for lr_d: 'inf' is not a float"),
    (["train", "dcgan", "--set", "lr_d=-inf"], 2, "bad value for lr_d"),
    (["train", "dcgan", "--set", "lr_d=nan"], 2, "bad value for lr_d"),
    (["train", "dcgan", "--set", "lr_d=-1"], 2, "lr_d=-1.0 is too small"),
    (["train", "dcgan", "--set", "g_width=0"], 2, "g_width=0 is too small"),
    (["train", "dcgan", "--set", "g_width=wide"], 2, "bad value for g_width"),
    (["train", "dcgan", "--set", "d_norm=layer"], 2, "d_norm='layer' is not accepted"),
    (["train", "dcgan", "--set", "resolution=48"], 2, "dcgan resolution=48 is not supported"),
    (["train", "dcgan", "--set", "no_such_key=1"], 2, "unknown config key 'no_such_key'"),
    (["train", "dcgan", "--set", "novalue"], 2, "--set expects KEY=VALUE"),
    (["train", "dcgan", "--set", "=1"], 2, "--set expects KEY=VALUE"),
    (["train", "dcgan", "--set", "betas=0.5"], 2, "bad value for betas"),
    (["train", "dcgan", "--set", "ema_decay=2"], 2, "ema_decay=2.0 is too large"),
    (["train", "dcgan", "--set", "precision=fp8"], 2, "precision='fp8' is not accepted"),
    (["train", "dcgan", "--steps", "0"], 2, "steps=0 is too small; it must be >= 1"),
    (["train", "dcgan", "--batch-size", "-3"], 2, "batch_size=-3 is too small"),
    (["train", "dcgan", "--data", "no-such-data"], 2, "no-such-data"),
    (["train", "dcgan", "--data", "folder:TMP/missing"], 2, "missing"),
    (["train", "dcgan", "--data", "mnist-4k?classes=11"], 2, "classes"),
    (["train", "dcgan", "--data", "mnist-4k?n=0"], 2, "n="),
    (["train", "dcgan", "--data", "mnist-4k?split=val"], 2, "split"),
    (["train", "dcgan", "--data", "mnist-4k?bogus=1"], 2, "bogus"),
    (["train", "dcgan", "--config", "TMP/missing.toml"], 2, "config file not found"),
    (["train", "dcgan", "--diffaugment", "rotate"], 2, "rotate"),
    (["train", "cgan", "--data", "folder:TMP/unlabelled"], 2, "class-conditional model and this data has no labels"),
    (["train", "dcgan", "--out", "RUN"], 2, "already holds checkpoints; pass --resume"),
    (["train", "wgan-gp", "--out", "RUN", "--resume"], 2, "is a dcgan run, not wgan-gp"),
    (["train", "dcgan", "--out", "RUN", "--resume", "--set", "g_width=16"], 2, "cannot change g_width when resuming"),
    (["train", "dcgan", "--out", "TMP/empty", "--resume"], 2, "does not exist"),
    (["sample", "TMP/missing"], 1, "does not exist"),
    (["sample", "RUN", "--out", "TMP/grid.gif"], 2, "accepted file types are"),
    (["sample", "RUN", "--label", "3", "--out", "TMP/x.png"], 2, "dcgan is not a conditional model"),
    (["sample", "RUN", "--n", "0"], 2, "0 is not in the range"),
    (["sample", "RUN", "--temperature", "0.5"], 2, "are for text models"),
    (["eval", "RUN", "--metrics", "bogus"], 2, "bogus"),
    (["eval", "RUN", "--features", "resnet"], 2, "resnet"),
    (["finetune", "--from", "RUN", "--data", "mnist-4k", "--set", "g_width=16"], 2, "g_width is part of the dcgan"),
    (["finetune", "--from", "RUN", "--data", "mnist-4k", "--freeze-d", "9"], 2, "freeze_d=9"),
    (["translate", "RUN", "--input", "TMP", "--out", "TMP/out"], 2, "dcgan is not an image-to-image model"),
    (["info", "no-such-plugin"], 2, "unknown plugin"),
    (["verify", "TMP/empty-run"], 2, "holds no checkpoints"),
    (["push", "RUN", "--repo-id", "not a repo id"], 2, "repo"),
]


def _snapshot(*roots: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("args", "exit_code", "phrase"), BAD_INPUT, ids=[" ".join(a[:4]) for a, _, _ in BAD_INPUT])
def test_bad_input_is_one_line_with_the_right_exit_code_and_changes_nothing(
    small_run, tmp_path, monkeypatch, args, exit_code, phrase
):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANZOO_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "unlabelled").mkdir()
    Image.new("L", (28, 28), 7).save(tmp_path / "unlabelled" / "a.png")
    (tmp_path / "empty-run").mkdir()
    resolved = [a.replace("RUN", str(small_run)).replace("TMP", str(tmp_path)) for a in args]
    before = _snapshot(small_run, tmp_path)
    line = one_error_line(invoke(*resolved), exit_code)
    assert phrase in line, line
    assert _snapshot(small_run, tmp_path) == before
    assert not (tmp_path / "runs").exists()
