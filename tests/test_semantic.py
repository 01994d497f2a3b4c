"""Content preservation in CycleGAN: the frozen classifiers (`ganzoo.metrics.classifiers`: shipped names and
safetensors files of ganzoo's digit CNN or a timm model), the semantic consistency loss (zero for a mapping the
classifier cannot tell from the identity, positive when the class flips, frozen through training), the cycle
noise and the feature-space cycle loss."""

from __future__ import annotations

import json
import types

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import ganzoo
from ganzoo import Trainer, UsageError
from ganzoo.data import resolve_data
from ganzoo.losses import semantic_consistency
from ganzoo.metrics.classifiers import classifier_metadata, load_classifier
from ganzoo_plugins.cyclegan import CycleGANConfig, generators_loss, semantic_loss
from ganzoo_plugins.cyclegan.networks import CycleMemory, PatchDiscriminator

TINY = {"g_width": 4, "d_width": 4, "residual_blocks": 1, "examples": 4, "pool_size": 6}
PAIR = "digits-8x8-to-mnist?split=train"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def uci_test() -> tuple[torch.Tensor, torch.Tensor]:
    data = resolve_data("uci-digits-8x8?split=test").load(resolution=28, channels=1)
    return data.images.float() / 127.5 - 1, data.labels


def quiet(**settings):
    base = {
        "steps": 2,
        "batch_size": 4,
        "device": "cpu",
        "precision": "fp32",
        "progress": False,
        "tensorboard": False,
        "log_every": 1,
        "sample_every": 1000,
        "sample_grid": 12,
        "checkpoint_every": 1000,
    }
    return {**base, **settings}


# ------------------------------------------------------------------------------------------------ classifiers


def test_the_shipped_uci_classifier_reads_its_domain(uci_test):
    images, labels = uci_test
    classifier = load_classifier("uci-digits")
    with torch.no_grad():
        accuracy = float((classifier(images).argmax(1) == labels).float().mean())
    metadata = classifier_metadata("uci-digits")
    assert accuracy == pytest.approx(float(metadata["test_accuracy"]), abs=0.002) and accuracy > 0.97
    assert metadata["train_data"] == "uci-digits-8x8?split=train"  # never the test split
    assert not any(p.requires_grad for p in classifier.parameters())


def test_classifiers_stay_in_eval_mode_and_are_shared():
    classifier = load_classifier("digits")
    classifier.train()
    assert not classifier.training and not classifier.net.training
    assert load_classifier("digits") is classifier


def test_a_timm_classifier_from_a_safetensors_file(tmp_path):
    import timm

    net = timm.create_model("test_resnet", pretrained=False, num_classes=4, in_chans=1)
    path = tmp_path / "clf.safetensors"
    metadata = {"architecture": "timm:test_resnet", "num_classes": "4", "in_chans": "1", "input_size": "32,32"}
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=metadata)
    classifier = load_classifier(str(path))
    logits = classifier(torch.rand(3, 1, 28, 28) * 2 - 1)  # resized to 32 px, normalised as timm's config says
    assert logits.shape == (3, 4) and logits.dtype == torch.float32
    net.eval()
    x = torch.nn.functional.interpolate(torch.full((1, 1, 28, 28), 0.5), size=(32, 32), mode="bilinear", antialias=True)
    mean, std = net.pretrained_cfg["mean"][0], net.pretrained_cfg["std"][0]
    with torch.no_grad():
        expected = net(((x + 1) / 2 - mean) / std)
    assert torch.allclose(classifier(torch.full((1, 1, 28, 28), 0.5)), expected, atol=1e-5)


def test_unusable_classifiers_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="neither a shipped one nor a file; accepted: digits, uci-digits"):
        load_classifier(str(tmp_path / "missing.safetensors"))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not safetensors")
    with pytest.raises(UsageError, match="not a readable safetensors file"):
        load_classifier(str(garbage))
    unlabelled = tmp_path / "unlabelled.safetensors"
    save_file({"w": torch.zeros(2)}, str(unlabelled))
    with pytest.raises(UsageError, match="architecture='' is not known; accepted: DigitsClassifier or timm:NAME"):
        load_classifier(str(unlabelled))
    wrong = tmp_path / "wrong.safetensors"
    save_file({"w": torch.zeros(2)}, str(wrong), metadata={"architecture": "DigitsClassifier"})
    with pytest.raises(UsageError, match="do not fit DigitsClassifier"):
        load_classifier(str(wrong))


# ------------------------------------------------------------------------------------------------ the loss


def test_semantic_loss_is_zero_for_the_identity_and_positive_when_labels_flip(uci_test):
    images, labels = uci_test
    config = CycleGANConfig(semantic="uci-digits")
    threes, eights = images[labels == 3][:16], images[labels == 8][:16]
    # the identity mapping (and any mapping the classifier cannot tell from it): exactly zero
    assert float(semantic_loss(config, "cpu", threes, threes, eights, eights)) == 0.0
    flipped = float(semantic_loss(config, "cpu", threes, eights, eights, threes))
    assert flipped > 1.0  # nats: the classifier is confident on both sets
    both = CycleGANConfig(semantic="uci-digits", semantic_b="uci-digits")
    assert float(semantic_loss(both, "cpu", threes, eights, eights, threes)) > 1.5 * flipped  # two directions


def test_semantic_consistency_is_a_kl_divergence():
    source, translated = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    p, q = torch.softmax(source, 1), torch.softmax(translated, 1)
    expected = (p * (p.log() - q.log())).sum(1).mean()
    assert float(semantic_consistency(source, translated)) == pytest.approx(float(expected))
    translated.requires_grad_(True)
    semantic_consistency(source, translated).backward()
    assert translated.grad.abs().sum() > 0  # the translation gets the gradient; the source side is a constant


class Affine(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _nets(scale_ab: float = 1.0, scale_ba: float = 1.0) -> dict:
    return {
        "generator_ab": Affine(scale_ab),
        "generator_ba": Affine(scale_ba),
        "discriminator_a": PatchDiscriminator(1, 4, 2),
        "discriminator_b": PatchDiscriminator(1, 4, 2),
        "memory": CycleMemory(0, 2, 1, 28),
    }


def _ctx(**config):
    return types.SimpleNamespace(config=CycleGANConfig(**config), device=torch.device("cpu"))


def test_feature_cycle_and_noise_terms(uci_test):
    images = uci_test[0][:4]
    batch = {"image_a": images, "image_b": images.flip(2)}
    _, logs = generators_loss(_nets(), batch, _ctx(lambda_feature_cycle=1.0, lambda_identity=0))
    assert float(logs["feature_cycle"]) == 0.0 and float(logs["cycle_a"]) == 0.0  # exact cycles
    _, logs = generators_loss(_nets(0.5, 1.5), batch, _ctx(lambda_feature_cycle=1.0, lambda_identity=0))
    assert float(logs["feature_cycle"]) > 0.0
    torch.manual_seed(0)
    _, noisy = generators_loss(_nets(), batch, _ctx(cycle_noise=0.2, lambda_identity=0))
    assert float(noisy["cycle_a"]) == pytest.approx(0.2 * (2 / torch.pi) ** 0.5, rel=0.05)  # E|N(0, 0.2^2)|
    assert "feature_cycle" not in noisy and "semantic" not in noisy


def test_semantic_term_in_the_generators_loss(uci_test):
    images = uci_test[0][:4]
    batch = {"image_a": images, "image_b": images}
    _, logs = generators_loss(_nets(), batch, _ctx(semantic="uci-digits", lambda_identity=0))
    assert float(logs["semantic"]) == 0.0
    torch.manual_seed(0)  # the same discriminators for both losses
    with_semantic, logs = generators_loss(_nets(-1.0, 1.0), batch, _ctx(semantic="uci-digits", lambda_semantic=2.0))
    torch.manual_seed(0)
    without, _ = generators_loss(_nets(-1.0, 1.0), batch, _ctx())
    assert float(logs["semantic"]) > 0
    assert float(with_semantic.detach()) == pytest.approx(float(without.detach()) + 2.0 * float(logs["semantic"]))


# ------------------------------------------------------------------------------------------------ training


def test_training_with_the_semantic_loss_keeps_the_classifier_frozen(tmp_path):
    classifier = load_classifier("uci-digits")
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    config = {**TINY, "semantic": "uci-digits", "semantic_b": "digits", "cycle_noise": 0.1, "lambda_feature_cycle": 1}
    Trainer("cyclegan", config, quiet(steps=3), data=PAIR, out=tmp_path / "run").fit()
    after = classifier.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and batch-norm statistics
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(line["semantic"] > 0 and line["feature_cycle"] > 0 for line in lines)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["config"]["semantic"] == "uci-digits"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"semantic": "no-such-classifier"}, "neither a shipped one nor a file"),
        ({"semantic_b": "digits"}, "semantic_b needs semantic"),
    ],
)
def test_bad_semantic_settings_fail_before_the_run_starts(tmp_path, config, message):
    with pytest.raises(UsageError, match=message):
        Trainer("cyclegan", {**TINY, **config}, quiet(), data=PAIR, out=tmp_path / "run").fit()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_classifier_of_other_channels_is_refused(tmp_path):
    model = ganzoo.create_model("cyclegan", data_info=resolve_data(PAIR).info(), channels=3, semantic="digits", **TINY)
    with pytest.raises(UsageError, match="reads 1-channel images; this model's have 3"):
        model.plugin.optimizers(model.config)
