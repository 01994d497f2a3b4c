"""A third-party plugin distribution (examples/mlp_gan) installed with pip registers through its entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_cli_dists import clean_registry

import ganzoo
from ganzoo import registry

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mlp_gan"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """examples/mlp_gan installed with pip into a fresh target directory (once for this module)."""
    work = tmp_path_factory.mktemp("third-party")
    # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    source = work / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", target, source],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (target / "ganzoo_example_mlp" / "__init__.py").is_file()
    return target


def run_python(target: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANZOO_")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["GANZOO_DATA_DIR"] = str(cwd / "data-cache")
    env["GANZOO_OFFLINE"] = "1"
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_installed_distribution_has_the_entry_point(installed):
    (info,) = installed.glob("ganzoo_example_mlp-*.dist-info")
    assert "Name: ganzoo-example-mlp" in (info / "METADATA").read_text()
    entry_points = (info / "entry_points.txt").read_text()
    assert "[ganzoo.plugins]" in entry_points
    assert "mlp-gan = ganzoo_example_mlp:plugin" in entry_points


def test_cli_lists_the_third_party_plugin(installed, tmp_path):
    result = run_python(installed, "-m", "ganzoo.cli", "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    (line,) = [line for line in lines if line.startswith("mlp-gan ")]
    assert "ganzoo-example-mlp" in line and "image" in line and "BROKEN" not in line
    assert any(line.startswith("dcgan ") for line in lines)


def test_listing_the_third_party_plugin_does_not_import_torch(installed, tmp_path):
    code = (
        "import sys, ganzoo.registry as r; s = {x.name: x for x in r.plugin_statuses()}; "
        "print(s['mlp-gan'].ok, 'torch' in sys.modules)"
    )
    result = run_python(installed, "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]


@pytest.fixture(scope="module")
def trained(installed, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`python -m ganzoo.cli train mlp-gan ...` run once in a subprocess that sees the installed plugin."""
    cwd = tmp_path_factory.mktemp("mlp-run")
    out = cwd / "run"
    args = ["train", "mlp-gan", "--steps", "3", "--batch-size", "16", "--out", str(out), "--set", "progress=false"]
    return out, run_python(installed, "-m", "ganzoo.cli", *args, cwd=cwd)


def test_cli_trains_the_third_party_plugin(trained):
    out, result = trained
    assert result.returncode == 0, result.stdout + result.stderr
    checkpoint = out / "checkpoints" / "step-000003"
    assert (checkpoint / "model.safetensors").is_file()
    assert f"checkpoint: {checkpoint}" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["plugin"] == "mlp-gan" and config["plugin_version"] == "0.2.0"
    assert config["config"]["resolution"] == 28 and config["config"]["channels"] == 1
    assert config["data"] == "mnist-4k"
    assert len(list((out / "samples").glob("*.png"))) == 1


@pytest.fixture
def importable(installed, monkeypatch):
    """The installed example importable in this process, with fresh registry caches."""
    clean_registry(monkeypatch)
    monkeypatch.syspath_prepend(str(installed))
    yield installed
    for module in ("ganzoo_example_mlp", "ganzoo_example_mlp.networks"):
        sys.modules.pop(module, None)


def test_third_party_run_loads_and_samples(trained, importable):
    out, result = trained
    assert result.returncode == 0, result.stderr
    model = ganzoo.load_pretrained(out)
    assert model.plugin.name == "mlp-gan"
    assert model.info["step"] == 3
    samples = model.sample(4, seed=1)
    assert samples.shape == (4, 1, 28, 28)
    assert samples.min() >= -1 and samples.max() <= 1
    assert set(model.ema) == {"generator"}


def test_third_party_plugin_in_process(importable):
    """The plugin works through the public API too: config, build, schedule and samples in [-1, 1]."""
    assert "mlp-gan" in ganzoo.list_models(modality="image")
    plugin = ganzoo.get_plugin("mlp-gan")
    assert isinstance(plugin, ganzoo.GANPlugin)
    (status,) = registry.plugin_statuses("mlp-gan")
    assert status.sources[0].distribution == "ganzoo-example-mlp"
    steps = plugin.schedule(plugin.default_config())
    assert [s.networks for s in steps] == [("discriminator",), ("generator",)]
    assert [s.needs_data for s in steps] == [True, False]

    data_info = ganzoo.DataInfo(channels=3, resolution=16)
    model = ganzoo.create_model("mlp-gan", data_info, hidden="32", latent_dim=8)
    assert (model.config.resolution, model.config.channels, model.config.hidden) == (16, 3, 32)
    samples = model.sample(5, seed=0)
    assert samples.shape == (5, 3, 16, 16)
    assert samples.min() >= -1 and samples.max() <= 1
    assert ganzoo.create_model("mlp-gan").sample(2).shape == (2, 1, 28, 28)  # defaults without data


@pytest.mark.slow
def test_the_examples_own_conformance_tests_pass_with_it_installed(installed, tmp_path):
    """examples/mlp_gan/tests (the conformance kit, one item per check) as its author runs them: installed."""
    tests = EXAMPLE / "tests"
    result = run_python(installed, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tests), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "10 passed, 1 skipped" in result.stdout  # reheading does not apply: mlp-gan is unconditional
    assert "reheading: the model is unconditional here" in result.stdout
