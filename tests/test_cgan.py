"""The conditional GAN plugin: conditioning variants, classes from the data, labels in sampling and grids, and
the conditional accuracy that `ganzoo eval` reports."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from helpers_engine import dcgan_train
from PIL import Image

import ganzoo
from ganzoo import DataInfo, Trainer, UsageError
from ganzoo.cli import cli

TINY = {"g_width": 8, "d_width": 8, "latent_dim": 16}
DIGITS = DataInfo("image", channels=1, resolution=28, num_classes=10)


@pytest.mark.parametrize("g_conditioning", ["cbn", "concat"])
@pytest.mark.parametrize("d_conditioning", ["projection", "concat"])
@pytest.mark.parametrize("resolution", [28, 32, 64, 256])
def test_shapes_for_every_conditioning(g_conditioning, d_conditioning, resolution):
    model = ganzoo.create_model(
        "cgan",
        data_info=DIGITS,
        resolution=resolution,
        g_conditioning=g_conditioning,
        d_conditioning=d_conditioning,
        class_weight=1.0 if d_conditioning == "projection" else 0.0,
        **TINY,
    )
    labels = torch.tensor([0, 3, 9])
    images = model.sample(3, seed=0, condition=labels)
    assert images.shape == (3, 1, resolution, resolution)
    assert model.nets["discriminator"](images, labels).shape == (3,)


def test_the_label_changes_the_image_and_the_logit():
    model = ganzoo.create_model("cgan", data_info=DIGITS, **TINY)
    with torch.no_grad():  # class scales start at 1 and shifts at 0 (all classes alike): perturb as training would
        for module in model.ema["generator"].modules():
            if isinstance(module, torch.nn.Embedding):
                module.weight.add_(0.3 * torch.randn_like(module.weight))
    three = model.sample(4, seed=0, condition=torch.full((4,), 3))
    seven = model.sample(4, seed=0, condition=torch.full((4,), 7))
    assert not torch.allclose(three, seven)  # same noise, other class
    d = model.nets["discriminator"].eval()
    with torch.no_grad():
        assert not torch.allclose(d(three, torch.full((4,), 3)), d(three, torch.full((4,), 7)))


def test_classes_come_from_the_data_and_are_saved(tmp_path):
    out = tmp_path / "run"
    Trainer("cgan", TINY, dcgan_train(steps=2), data="mnist-4k?classes=5-9", out=out).fit()
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["num_classes"] == 5
    assert saved["data_info"]["extras"]["class_names"] == ["5", "6", "7", "8", "9"]
    model = ganzoo.load_pretrained(out)
    assert model.data_info.num_classes == 5 and model.plugin.conditional


def test_unlabelled_data_is_a_clear_error_before_anything_is_written(tmp_path):
    Image.new("L", (28, 28), 7).save(tmp_path / "a.png")
    with pytest.raises(UsageError, match=r"cgan is a class-conditional model and this data has no labels; use"):
        Trainer("cgan", TINY, dcgan_train(steps=1), data=f"folder:{tmp_path}", out=tmp_path / "run").fit()
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cgan") / "run"
    Trainer("cgan", TINY, dcgan_train(steps=2, sample_every=2, sample_grid=20), out=out).fit()
    return out


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="ganzoo")


def test_training_grid_has_one_column_per_class(cgan_run):
    with Image.open(cgan_run / "samples" / "step-000002.png") as grid:
        # 20 samples for 10 classes: 10 per row (one column per class), 2 rows of 28 px with 2 px padding
        assert grid.size == (10 * 30 + 2, 2 * 30 + 2)


def test_sample_with_a_label_and_without(cgan_run, tmp_path):
    result = invoke("sample", cgan_run, "--label", 3, "--n", 16, "--out", tmp_path / "three.png")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "three.png") as grid:
        assert grid.size == (4 * 30 + 2, 4 * 30 + 2)
    model = ganzoo.load_pretrained(cgan_run)
    samples, per_row = model.sample_grid(16, seed=0, label=3)
    assert per_row is None
    assert torch.equal(samples, model.sample(16, seed=0, condition=torch.full((16,), 3)))
    result = invoke("sample", cgan_run, "--n", 30, "--out", tmp_path / "rows.png")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "rows.png") as grid:
        assert grid.size == (10 * 30 + 2, 3 * 30 + 2)


def test_a_grid_of_n_holds_n_samples_whatever_the_classes(cgan_run):
    """`ganzoo sample --n 16` of a 10-class model: 16 images, classes 0-9 then 0-5 (it once gave 10)."""
    model = ganzoo.load_pretrained(cgan_run)
    samples, per_row = model.sample_grid(16, seed=0)
    assert len(samples) == 16 and per_row == 10
    labels = torch.arange(16) % 10
    assert torch.equal(samples, model.sample(16, seed=0, condition=labels))


@pytest.mark.parametrize("label", [-1, 10])
def test_a_label_outside_the_classes_is_one_line(cgan_run, tmp_path, label):
    result = invoke("sample", cgan_run, "--label", label, "--out", tmp_path / "x.png")
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: label {label} is not one of the model's classes 0-9"


def test_label_for_an_unconditional_model_is_an_error(tmp_path):
    out = tmp_path / "run"
    Trainer("dcgan", TINY, dcgan_train(steps=1), out=out).fit()
    result = invoke("sample", out, "--label", 3, "--out", tmp_path / "x.png")
    assert result.exit_code == 2 and "dcgan is not a conditional model" in result.output


def test_eval_reports_conditional_accuracy(cgan_run):
    result = invoke("eval", cgan_run, "--metrics", "fid", "--n", 100, "--data", "mnist-4k?split=test")
    assert result.exit_code == 0, result.output
    rows = dict(line.split(maxsplit=1) for line in result.output.splitlines() if line.strip())
    assert 0.0 <= float(rows["accuracy"]) <= 1.0 and "fid" in rows


def test_r1_penalty_and_mismatch_term_by_config(tmp_path):
    out = tmp_path / "run"
    config = {**TINY, "r1_gamma": 1.0, "d_mismatch": False}
    Trainer("cgan", config, dcgan_train(steps=2, log_every=1), out=out).fit()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(line["r1_penalty"] > 0 for line in lines)
    assert json.loads((out / "config.json").read_text())["config"]["d_mismatch"] is False


def test_class_scores_are_the_projection_of_every_class():
    model = ganzoo.create_model("cgan", data_info=DIGITS, **TINY)
    d = model.nets["discriminator"].eval()
    images, labels = model.sample(4, seed=0), torch.tensor([0, 3, 3, 9])
    with torch.no_grad():
        logits, classes = d.scores(images, labels)
        assert classes.shape == (4, 10)
        for k in (0, 5):  # changing the label moves the logit by the difference of the two classes' scores
            moved = d(images, torch.full((4,), k)) - logits
            assert torch.allclose(moved, classes[:, k] - classes[torch.arange(4), labels], atol=1e-5)


def test_class_weight_trains_a_classifier_on_the_projection(tmp_path):
    out = tmp_path / "run"
    Trainer("cgan", TINY, dcgan_train(steps=2, log_every=1), out=out).fit()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < line["d_class"] < 100 and 0 < line["g_class"] < 100 for line in lines)  # cross-entropies
    with pytest.raises(UsageError, match=r"class_weight=1.0 needs d_conditioning=projection.*set class_weight=0"):
        ganzoo.create_model("cgan", data_info=DIGITS, d_conditioning="concat", **TINY)
