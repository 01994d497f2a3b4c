"""`evaluate`, `ganzoo eval` and `--eval-every`: generators that copy real digits score near the floor, noise scores
far above it, conditional accuracy follows the labels, results are recorded and the best checkpoint is kept."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from helpers_engine import DCGAN_TINY, dcgan_train
from torch import nn

import ganzoo
from ganzoo import DataInfo, GANPlugin, Trainer, UsageError
from ganzoo.cli import cli
from ganzoo.data import resolve_data
from ganzoo.metrics import evaluation
from ganzoo.metrics.reference import metrics_cache_dir, reference_key

HELD_OUT = "mnist-4k?split=test"


class Replay(nn.Module):
    """A 'generator' that returns stored real images (optionally of a requested class), or uniform noise."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, noise: bool = False) -> None:
        super().__init__()
        self.register_buffer("images", images.float() / 127.5 - 1)
        self.register_buffer("labels", labels)
        self.anchor = nn.Parameter(torch.zeros(1))
        self.noise = noise

    def draw(self, n: int, generator: torch.Generator, labels: torch.Tensor | None) -> torch.Tensor:
        if self.noise:
            return torch.rand(n, 1, 28, 28, generator=generator) * 2 - 1
        if labels is None:
            return self.images[torch.randint(len(self.images), (n,), generator=generator)]
        picks = []
        for label in labels.tolist():
            members = torch.nonzero(self.labels == label).flatten()
            picks.append(members[torch.randint(len(members), (1,), generator=generator)])
        return self.images[torch.cat(picks)]


@dataclasses.dataclass
class ReplayConfig:
    resolution: int = 28
    channels: int = 1


class ReplayPlugin(GANPlugin):
    name = "replay"
    Config = ReplayConfig

    def __init__(self, conditional: bool = False, label_shift: int = 0) -> None:
        self.conditional = conditional
        self.label_shift = label_shift

    def data_options(self, config: Any) -> dict[str, Any]:
        return {"resolution": 28, "channels": 1}

    def sample(self, nets: Any, n: int, condition: Any = None, generator: Any = None) -> torch.Tensor:
        labels = None if condition is None else (condition + self.label_shift) % 10
        return nets["generator"].draw(n, generator, labels)


def replay_model(data: str = "mnist-4k?split=train", noise: bool = False, **plugin: Any) -> ganzoo.GANModel:
    dataset = resolve_data(data).load()
    net = Replay(dataset.images, dataset.labels, noise=noise)
    info = DataInfo("image", channels=1, resolution=28, num_classes=10)
    return ganzoo.GANModel(ReplayPlugin(**plugin), ReplayConfig(), info, {"generator": net}, info={"data": data})


def test_real_digits_score_near_the_floor_and_noise_far_above():
    real = evaluation.evaluate(replay_model(), HELD_OUT, ["fid", "kid", "pr", "is"], n=1000)
    noise = evaluation.evaluate(replay_model(noise=True), HELD_OUT, ["fid", "kid", "pr", "is"], n=1000)
    assert real["fid"] < 0.05 * noise["fid"]
    assert real["kid_mean"] < 0.05 * noise["kid_mean"]
    assert real["precision"] > 0.8 and real["recall"] > 0.8
    assert noise["precision"] < 0.1
    # ten balanced classes, recognised (the classifier was trained with label smoothing 0.1, so p(y|x) stays
    # soft and IS stays well below 10); noise lands in few classes
    assert real["is_mean"] > 5.0 and real["is_mean"] > 2 * noise["is_mean"]
    assert (real["n"], real["reference_n"], real["features"], real["data"]) == (1000, 1000, "digits", HELD_OUT)


def test_defaults_compare_with_the_training_data_the_model_records():
    result = evaluation.evaluate(replay_model(HELD_OUT), metrics="fid", n=100)
    assert result["data"] == HELD_OUT and set(result) >= {"fid", "seconds"} and "kid_mean" not in result


def test_conditional_accuracy_follows_the_requested_labels():
    right = evaluation.evaluate(replay_model(conditional=True), HELD_OUT, ["accuracy"], n=500)
    wrong = evaluation.evaluate(replay_model(conditional=True, label_shift=1), HELD_OUT, ["accuracy"], n=500)
    assert right["accuracy"] > 0.97
    assert wrong["accuracy"] < 0.05


def test_conditional_accuracy_maps_selected_classes_by_name():
    model = replay_model(conditional=True)
    model.data_info = DataInfo("image", 1, 28, num_classes=5, extras={"class_names": ["5", "6", "7", "8", "9"]})
    model.plugin.label_shift = 5  # model class i draws digit i + 5
    assert evaluation.evaluate(model, HELD_OUT, ["accuracy"], n=250)["accuracy"] > 0.97


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": "fid,sharpness"}, "unknown metric(s) sharpness; accepted: fid, kid, pr, is, accuracy"),
        ({"metrics": "accuracy"}, "accuracy metric is for conditional models"),
        ({"features": "nope"}, "unknown feature extractor 'nope'"),
        ({"n": 1}, "at least 2 samples"),
    ],
)
def test_bad_requests(kwargs, message):
    with pytest.raises(UsageError) as info:
        evaluation.evaluate(replay_model(), HELD_OUT, **kwargs)
    assert message in str(info.value)


def test_reference_features_are_cached_per_data_and_extractor(monkeypatch):
    from ganzoo.metrics.features import get_features
    from ganzoo.metrics.reference import reference_features

    extractor = get_features("digits")
    images = resolve_data(HELD_OUT).load().images
    key = reference_key(images, extractor)
    assert key != reference_key(resolve_data("mnist-4k?split=train").load().images, extractor)
    first = reference_features(HELD_OUT, extractor, 28, 1)
    assert (metrics_cache_dir() / f"{key}.safetensors").is_file()

    def no_extraction(images):
        raise AssertionError("the cached features should have been used")

    monkeypatch.setattr(extractor, "extract", no_extraction)
    assert torch.equal(reference_features(HELD_OUT, extractor, 28, 1), first)
    monkeypatch.setattr(extractor, "key", "another-network")  # another extractor: another key, no reuse
    assert reference_key(images, extractor) != key
    with pytest.raises(AssertionError, match="cached features should have been used"):
        reference_features(HELD_OUT, extractor, 28, 1)


def test_a_damaged_cache_file_is_recomputed():
    from ganzoo.metrics.features import get_features
    from ganzoo.metrics.reference import reference_features

    extractor = get_features("digits")
    data = "mnist-4k?split=test&n=64"
    first = reference_features(data, extractor, 28, 1)
    path = metrics_cache_dir() / f"{reference_key(resolve_data(data).load().images, extractor)}.safetensors"
    path.write_bytes(b"not a safetensors file")
    assert torch.equal(reference_features(data, extractor, 28, 1), first)
    assert path.stat().st_size > 100


# ------------------------------------------------------------------------------------------ ganzoo eval


def invoke(*args: Any):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="ganzoo")


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    Trainer("dcgan", DCGAN_TINY, dcgan_train(steps=2), out=out).fit()
    return out


def test_eval_cli_prints_a_table_writes_json_and_records_the_run(dcgan_run, tmp_path):
    json_out = tmp_path / "scores.json"
    result = invoke("eval", dcgan_run, "--data", HELD_OUT, "--n", 200, "--json", json_out)
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output and "generating" not in result.output  # no bars when stderr is no terminal
    for name in ("fid", "kid_mean", "kid_std", "precision", "recall", "reference_n"):
        assert any(line.split()[:1] == [name] for line in result.output.splitlines()), result.output
    scores = json.loads(json_out.read_text())
    assert scores["n"] == 200 and scores["fid"] > 0 and scores["data"] == HELD_OUT
    record = json.loads((dcgan_run / "eval.json").read_text())["evaluations"][-1]
    assert record["fid"] == scores["fid"] and record["step"] == 2 and record["checkpoint"].endswith("step-000002")


def test_eval_is_reproducible(dcgan_run):
    model = ganzoo.load_pretrained(dcgan_run)
    first = evaluation.evaluate(model, HELD_OUT, "fid,kid", n=100)
    again = evaluation.evaluate(model, HELD_OUT, "fid,kid", n=100)
    assert (first["fid"], first["kid_mean"]) == (again["fid"], again["kid_mean"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--metrics", "fid,bogus"], "unknown metric(s) bogus"),
        (["--features", "timm:no_such_net"], "unknown timm model 'no_such_net'"),
        (["--data", "mnist-4k?n=0"], "n='0'"),
        (["--n", "1"], "Invalid value for '--n'"),
        (
            ["--metrics", "fid,bleu"],
            "bleu: not a metric for dcgan's image samples; accepted: fid, kid, pr, is, accuracy",
        ),
    ],
)
def test_eval_cli_errors_are_one_line(dcgan_run, args, needle):
    result = invoke("eval", dcgan_run, *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], result.output


# ----------------------------------------------------------------------------------------- --eval-every


def test_eval_every_logs_metrics_and_keeps_the_best_checkpoint(tmp_path):
    out = tmp_path / "run"
    train = dcgan_train(steps=4, eval_every=2, eval_metrics="fid,kid", eval_n=64, eval_data=HELD_OUT)
    trainer = Trainer("dcgan", DCGAN_TINY, train, out=out)
    trainer.fit()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [line for line in lines if "eval/fid" in line]
    assert [line["step"] for line in evals] == [2, 4]
    assert all("eval/kid_mean" in line for line in evals)
    recorded = json.loads((out / "eval.json").read_text())["evaluations"]
    assert [r["step"] for r in recorded] == [2, 4]
    best = min(recorded, key=lambda r: r["fid"])
    assert trainer.best == {"step": best["step"], "metric": "fid", "value": best["fid"]}
    best_dir = out / "checkpoints" / "best"
    assert json.loads((best_dir / "trainer.json").read_text())["step"] == best["step"]
    model = ganzoo.load_pretrained(best_dir)  # the best weights load like any checkpoint
    assert model.info["step"] == best["step"]
    assert evaluation.evaluate(model, HELD_OUT, "fid", n=64)["fid"] == pytest.approx(best["fid"])


def test_eval_settings_are_checked_before_training(tmp_path):
    with pytest.raises(UsageError, match="unknown metric"):
        Trainer("dcgan", DCGAN_TINY, dcgan_train(eval_every=2, eval_metrics="fdi"), out=tmp_path / "r").fit()
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_resume_keeps_the_best_and_drops_evaluations_past_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    first = dcgan_train(steps=2, eval_every=2, eval_n=32, eval_data=HELD_OUT, checkpoint_every=2)
    Trainer("dcgan", DCGAN_TINY, first, out=out).fit()
    records = evaluation.read_evaluations(out)
    # as if the run had gone on, evaluated step 3 and died before its next checkpoint
    evaluation.record_evaluation(out, {**records[0], "fid": 1e-9}, step=3, checkpoint=None)
    trainer = Trainer("dcgan", train={"steps": 4}, out=out, resume=True)
    assert trainer.best is None
    trainer.fit()
    assert [r["step"] for r in evaluation.read_evaluations(out)] == [2, 4]
    assert trainer.best["step"] in (2, 4) and trainer.best["value"] > 1e-9
