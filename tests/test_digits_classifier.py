"""The shipped `digits` feature extractor: weights load, meet their recorded held-out accuracy, are small."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import torch

from ganzoo.data import resolve_data
from ganzoo.metrics.digits import (
    FEATURE_DIM,
    WEIGHTS_FILE,
    DigitsClassifier,
    digits_classifier_info,
    load_digits_classifier,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def test_split() -> tuple[torch.Tensor, torch.Tensor]:
    dataset = resolve_data("mnist-4k?split=test").load(resolution=28, channels=1)
    assert dataset.labels is not None
    return dataset.images.float() / 127.5 - 1, dataset.labels


def test_held_out_accuracy_matches_metadata(test_split: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = test_split
    model = load_digits_classifier()
    assert isinstance(model, DigitsClassifier)
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        predictions = torch.cat([model(batch).argmax(1) for batch in images.split(500)])
    accuracy = (predictions == labels).float().mean().item()
    recorded = float(digits_classifier_info()["test_accuracy"])
    assert accuracy >= recorded - 0.002
    assert accuracy >= 0.98


def test_features_shape_and_determinism(test_split: tuple[torch.Tensor, torch.Tensor]) -> None:
    images = test_split[0][:64]
    model = load_digits_classifier()
    with torch.no_grad():
        first, second = model.features(images), model.features(images)
        alone = model.features(images[:1])
        logits = model(images)
    assert first.shape == (64, FEATURE_DIM)
    assert first.dtype == torch.float32
    assert torch.equal(first, second)
    torch.testing.assert_close(alone, first[:1])  # eval batch norm: independent of the batch
    assert logits.shape == (64, 10)
    with pytest.raises(ValueError, match="28, 28"):
        model.features(torch.zeros(2, 3, 32, 32))


def test_loaded_modules_are_independent() -> None:
    first, second = load_digits_classifier(), load_digits_classifier()
    assert first is not second
    first.train()
    with torch.no_grad():
        next(first.parameters()).zero_()
    assert not second.training
    assert next(second.parameters()).abs().sum() > 0


def test_weights_file_is_small() -> None:
    weights = resources.files("ganzoo.metrics").joinpath(WEIGHTS_FILE)
    with resources.as_file(weights) as path:
        assert path.stat().st_size < 1_000_000


def test_metadata_records_provenance() -> None:
    info = digits_classifier_info()
    for key in ("seed", "train_data", "test_data", "test_accuracy", "epochs", "script", "torch_version"):
        assert info.get(key), key
    assert info["train_data"] == "mnist-4k?split=train"
    assert info["test_data"] == "mnist-4k?split=test"
    int(info["seed"])
    assert 0.98 <= float(info["test_accuracy"]) <= 1.0
    assert (REPO / info["script"]).is_file()


@pytest.mark.slow
def test_the_training_tool_writes_a_timm_classifier_that_loads_back(tmp_path: Path, monkeypatch) -> None:
    """tools/train_digits_classifier.py --architecture timm:NAME: the file's metadata is what
    `ganzoo.metrics.classifiers` needs, and the loaded classifier scores what the tool reported."""
    from safetensors import safe_open

    from ganzoo.metrics.classifiers import load_classifier

    monkeypatch.syspath_prepend(str(REPO / "tools"))
    import train_digits_classifier

    out = tmp_path / "clf.safetensors"
    argv = ["--epochs", "1", "--threads", "1", "--architecture", "timm:test_resnet", "--out", str(out)]
    train_digits_classifier.main(argv)
    with safe_open(str(out), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["architecture"] == "timm:test_resnet" and metadata["train_data"] == "mnist-4k?split=train"
    dataset = resolve_data("mnist-4k?split=test").load(resolution=28, channels=1)
    images, labels = dataset.images.float() / 127.5 - 1, dataset.labels
    with torch.no_grad():
        accuracy = (load_classifier(str(out))(images).argmax(1) == labels).float().mean().item()
    assert accuracy == pytest.approx(float(metadata["test_accuracy"]), abs=1e-3)
    assert accuracy > 0.5  # one epoch learns digits
    with pytest.raises(SystemExit, match="unknown architecture"):
        train_digits_classifier.main(["--epochs", "1", "--architecture", "resnet", "--out", str(out)])
