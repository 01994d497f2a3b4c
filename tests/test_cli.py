"""The `ganzoo` command line through click's CliRunner: commands, outputs, and one-line errors with exit codes."""

from __future__ import annotations

import io
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from helpers_cli_dists import clean_registry, fake_dists_fixture, unique_module
from PIL import Image

import ganzoo
from ganzoo.cli import cli

FAST = ["--set", "progress=false", "--set", "tensorboard=false"]
TINY = ["--set", "g_width=4", "--set", "d_width=4", "--set", "latent_dim=8", "--data", "mnist-4k?n=16"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="ganzoo")


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Traceback" not in result.output


def assert_one_line_error(result: Result, exit_code: int, *needles: str) -> str:
    """The command failed with `exit_code` and said so in one line starting with 'Error:'; returns the line."""
    assert result.exit_code == exit_code, result.output + repr(result.exc_info)
    assert isinstance(result.exception, SystemExit), repr(result.exc_info)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: "), lines[0]
    assert result.stderr.strip() == lines[0]  # on stderr, not stdout
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def _clean(monkeypatch, tmp_path):
    clean_registry(monkeypatch)
    monkeypatch.chdir(tmp_path)  # a command that forgets --out must not write runs/ into the repository
    monkeypatch.setenv("GANZOO_DATA_DIR", str(tmp_path / "data-cache"))
    monkeypatch.setenv("GANZOO_OFFLINE", "1")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One short dcgan run made by `ganzoo train`, shared by the tests that read it."""
    out = tmp_path_factory.mktemp("cli") / "run"
    result = invoke(
        "train",
        "dcgan",
        "--steps",
        "3",
        "--batch-size",
        "16",
        "--out",
        out,
        "--set",
        "log_every=1",
        "--set",
        "sample_every=2",
        "--set",
        "checkpoint_every=2",
        "--set",
        "progress=false",
    )
    return out, result


# --------------------------------------------------------------------------------- version, help, list


def test_version():
    result = invoke("--version")
    assert_ok(result)
    assert result.output.startswith(f"ganzoo {ganzoo.__version__} (")
    assert "torch" in result.output and "click" in result.output


def test_help_lists_the_commands():
    result = invoke("--help")
    assert_ok(result)
    for command in ("list", "info", "train", "sample", "eval", "push", "save"):
        assert command in result.output


def test_list_shows_dcgan():
    result = invoke("list")
    assert_ok(result)
    (line,) = [line for line in result.output.splitlines() if line.startswith("dcgan ")]
    assert "image" in line and "ganzoo" in line and "v1.0.0" in line and "DCGAN" in line


def test_list_with_pattern():
    assert "dcgan" in invoke("list", "dc*").output
    result = invoke("list", "zz*")
    assert_ok(result)
    assert result.output.strip() == "no plugin matches 'zz*'"


def test_list_reports_a_broken_plugin_and_keeps_the_others(tmp_path, monkeypatch):
    for dists in fake_dists_fixture(tmp_path, monkeypatch):
        module = unique_module()
        dists.add("ganzoo-fake-cli-broken", {"cli-broken": f"{module}:plugin"}, {module: "import nonexistent_dep\n"})
        result = invoke("list")
    assert_ok(result)
    (broken,) = [line for line in result.output.splitlines() if line.startswith("cli-broken ")]
    assert "BROKEN" in broken and "ganzoo-fake-cli-broken" in broken and "nonexistent_dep" in broken
    assert any(line.startswith("dcgan ") and "BROKEN" not in line for line in result.output.splitlines())


# ----------------------------------------------------------------------------------------------- info


def test_info_dcgan_shows_model_and_training_fields():
    result = invoke("info", "dcgan")
    assert_ok(result)
    out = result.output
    assert out.startswith("dcgan v1.0.0 (image)")
    fields = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    for name in ("lr_g", "lr_d", "d_norm", "latent_dim", "resolution", "betas"):
        assert name in fields
    assert "generator learning rate" in fields["lr_g"]
    assert "batch" in fields["d_norm"]
    for name in ("steps", "batch_size", "precision", "ema_decay", "sample_every", "checkpoint_every"):
        assert name in fields
    # the plugin's train_defaults are what `info` shows for the training fields
    assert "2000" in fields["steps"] and "64" in fields["batch_size"]


def test_info_shows_each_fields_choices_and_bounds():
    result = invoke("info", "dcgan")
    assert_ok(result)
    fields = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("  ")}
    assert fields["d_norm"].endswith("normalisation in D after the first layer [choices: batch, spectral, none]")
    assert fields["latent_dim"].endswith("size of the noise vector z [min 1]")
    assert fields["precision"].endswith("[choices: auto, fp32, bf16, fp16]")
    assert fields["lr_decay_start"].endswith("[min 0, max 1]") and fields["ema_decay"].endswith("[min 0, max 1]")
    assert fields["betas"].endswith("Adam betas of both networks")  # nothing declared, nothing shown


def test_info_unknown_plugin():
    assert_one_line_error(invoke("info", "dcgen"), 2, "unknown plugin 'dcgen'", "dcgan")


# ---------------------------------------------------------------------------------------------- train


def test_train_writes_run_checkpoint_and_samples(trained_run):
    out, result = trained_run
    assert_ok(result)
    printed = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert set(printed) >= {"run", "checkpoint", "samples"}
    assert Path(printed["run"]) == out and out.is_dir()
    checkpoint = Path(printed["checkpoint"])
    assert checkpoint.name == "step-000003" and checkpoint.parent == out / "checkpoints"
    assert (checkpoint / "model.safetensors").is_file()
    samples = Path(printed["samples"])
    assert samples.is_file() and samples.suffix == ".png"
    assert (out / "checkpoints" / "step-000002").is_dir()  # checkpoint_every=2
    assert (out / "samples" / "step-000002.png").is_file()  # sample_every=2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss/generator" in r] == [1, 2, 3]  # log_every=1
    config = json.loads((out / "config.json").read_text())
    assert config["plugin"] == "dcgan"
    assert config["train"]["steps"] == 3 and config["train"]["batch_size"] == 16
    assert config["data"] == "mnist-4k"


def test_progress_without_a_terminal_is_one_plain_line_per_logged_step(tmp_path):
    """CliRunner's stderr is not a terminal, like a CI log or a nohup file: no bar, one line per log interval."""
    args = ["train", "dcgan", *TINY, "--steps", "4", "--batch-size", "8", "--set", "log_every=2"]
    result = invoke(*args, "--set", "tensorboard=false", "--out", tmp_path / "shown")
    assert_ok(result)
    assert "\r" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line.split("  ")[0] for line in lines] == ["step 2/4", "step 4/4"], result.stderr
    for line in lines:
        assert "loss/discriminator " in line and "loss/generator " in line and "images_per_s " in line
    quiet = invoke(*args, *FAST, "--out", tmp_path / "quiet")  # progress=false: neither bar nor lines
    assert_ok(quiet)
    assert quiet.stderr == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_the_bar(tmp_path, monkeypatch):
    from ganzoo.engine.logging import RunLogger

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    logger = RunLogger(tmp_path, total_steps=2, start_step=0, progress=True, tensorboard=False)
    for step in (1, 2):
        logger.log(step, {"loss/generator": 0.5})
        logger.show({"loss/generator": 0.5})
        logger.advance()
    logger.close()
    assert "\r" in terminal.getvalue() and "2/2" in terminal.getvalue()
    assert "step 1/2" not in terminal.getvalue()


def test_fp16_on_the_cpu_warns_once_per_process(tmp_path):
    from ganzoo.engine import precision

    precision._warn_fp16_on_cpu.cache_clear()  # an earlier test of this process may have had the warning
    args = ["train", "dcgan", *TINY, "--steps", "1", "--batch-size", "8", "--precision", "fp16", "--device", "cpu"]
    result = invoke(*args, *FAST, "--out", tmp_path / "fp16")
    assert_ok(result)
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("Warning: fp16 is slow on the CPU; bf16 is the CPU's fast path ("), line
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("fp16", "bf16", "fp32", "auto"):
            precision.resolve_precision(name, torch.device("cpu"))
        assert precision.resolve_precision("fp16", torch.device("cuda", 0)) == "fp16"
    assert caught == []  # given once per process, and only for fp16 on the CPU


def test_train_into_a_run_with_checkpoints_needs_resume(trained_run):
    out, _ = trained_run
    result = invoke("train", "dcgan", "--steps", "1", "--batch-size", "16", "--out", out, *FAST)
    assert_one_line_error(result, 2, str(out), "--resume")
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-000002", "step-000003"]


def test_train_with_config_file(tmp_path):
    config_file = tmp_path / "dcgan.toml"
    config_file.write_text(
        "[model]\n"
        "lr_g = 0.001\n"
        "lr_d = 0.003\n"
        'd_norm = "spectral"\n'
        "g_width = 8\n"
        "d_width = 8\n"
        "[train]\n"
        "seed = 7\n"
        "log_every = 1\n"
        "ema_decay = 0.9\n"
        "progress = false\n"
        "tensorboard = false\n"
    )
    out = tmp_path / "run"
    result = invoke(
        "train",
        "dcgan",
        "--config",
        config_file,
        "--set",
        "lr_d=0.002",
        "--steps",
        "1",
        "--batch-size",
        "8",
        "--out",
        out,
    )
    assert_ok(result)
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["lr_g"] == 0.001
    assert saved["config"]["lr_d"] == 0.002  # --set wins over the file
    assert saved["config"]["d_norm"] == "spectral"
    assert saved["config"]["g_width"] == 8
    assert saved["train"]["seed"] == 7 and saved["seed"] == 7
    assert saved["train"]["ema_decay"] == 0.9
    assert saved["train"]["steps"] == 1 and saved["train"]["batch_size"] == 8  # flags win too


def test_train_resume_continues_the_run(tmp_path):
    out = tmp_path / "run"
    small = ["--batch-size", "8", "--set", "g_width=8", "--set", "d_width=8", *FAST]
    assert_ok(invoke("train", "dcgan", "--steps", "1", "--out", out, *small))
    result = invoke("train", "dcgan", "--steps", "2", "--out", out, "--resume", *FAST)
    assert_ok(result)
    assert "checkpoint: " + str(out / "checkpoints" / "step-000002") in result.output


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["train", "dcgen"], ["unknown plugin 'dcgen'", "dcgan"]),
        (["train", "dcgan", "--set", "nokey=1"], ["nokey", "lr_g", "steps"]),
        (["train", "dcgan", "--set", "lr_g=abc"], ["lr_g", "'abc'", "float"]),
        (["train", "dcgan", "--set", "lr_g=nan"], ["lr_g", "nan"]),
        (["train", "dcgan", "--set", "lr_g"], ["KEY=VALUE"]),
        (["train", "dcgan", "--set", "resolution=48"], ["resolution=48", "28, 32, 64"]),
        (["train", "dcgan", "--set", "d_norm=layer"], ["d_norm", "batch, spectral, none"]),
        (["train", "dcgan", "--batch-size", "0"], ["batch_size", ">= 1"]),
        (["train", "dcgan", "--steps", "2", "--epochs", "1"], ["--steps", "--epochs"]),
        (["train", "dcgan", "--data", "imagenet"], ["imagenet", "mnist-4k", "folder:PATH"]),
        (["train", "dcgan", "--data", "folder:no/such/dir"], ["no/such/dir"]),
        (["train", "dcgan", "--config", "missing.toml"], ["missing.toml"]),
        (["train", "dcgan", "--bogus"], ["--bogus"]),
        (["train", "dcgan", "--steps", "many"], ["--steps", "many"]),
        (["train"], ["NAME"]),
        (["trian", "dcgan"], ["trian"]),
        (["sample", "x", "--n", "0"], ["--n"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0] in ("train", "trian", "sample") else "",
)
def test_usage_errors_are_one_line_with_exit_code_2(tmp_path, args, needles):
    out = tmp_path / "never-written"
    if args[0] == "train" and len(args) > 1:
        args = [*args, "--out", str(out)]
    assert_one_line_error(invoke(*args), 2, *needles)
    assert not out.exists()  # a rejected command leaves no half run behind
    assert not (tmp_path / "runs").exists()


def test_bad_config_file_content(tmp_path):
    config_file = tmp_path / "bad.toml"
    config_file.write_text("lr_g = = 1\n")
    assert_one_line_error(invoke("train", "dcgan", "--config", config_file, "--out", tmp_path / "r"), 2, "bad.toml")
    config_file.write_text("lr_q = 1\n")
    assert_one_line_error(invoke("train", "dcgan", "--config", config_file, "--out", tmp_path / "r"), 2, "lr_q")


def test_missing_torchvision_dataset_offline_is_a_runtime_error(tmp_path):
    result = invoke("train", "dcgan", "--data", "mnist", "--steps", "1", "--out", tmp_path / "r", *FAST)
    assert_one_line_error(result, 1, "'mnist'", "not in the cache")


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.delenv("GANZOO_OFFLINE")

    def fail(self):  # what torchvision's MNIST raises when every mirror fails
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\n"
            "Tried https://ossci-datasets.s3.amazonaws.com/mnist/, got:\n"
            "<urlopen error [Errno -2] Name or service not known>\n"
        )

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", fail)
    result = invoke("train", "dcgan", "--data", "mnist", "--steps", "1", "--out", tmp_path / "r", *FAST)
    assert_one_line_error(result, 1, "could not download dataset 'mnist'")


# --------------------------------------------------------------------------------------------- sample


def test_sample_writes_a_png(trained_run, tmp_path):
    run, _ = trained_run
    target = tmp_path / "x.png"
    result = invoke("sample", run, "--n", "4", "--out", target)
    assert_ok(result)
    assert result.output.strip() == f"samples: {target}"
    with Image.open(target) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width > 28 and height >= 28  # a grid of 4 digits


def test_sample_from_a_checkpoint_directory(trained_run, tmp_path):
    run, _ = trained_run
    target = tmp_path / "early.png"
    result = invoke("sample", run / "checkpoints" / "step-000002", "--n", "2", "--out", target, "--no-ema")
    assert_ok(result)
    assert target.is_file()


def test_sample_of_a_missing_run_is_one_line_exit_1(tmp_path):
    missing = tmp_path / "no-such-run"
    assert_one_line_error(invoke("sample", missing, "--out", tmp_path / "x.png"), 1, str(missing))
    assert not (tmp_path / "x.png").exists()
