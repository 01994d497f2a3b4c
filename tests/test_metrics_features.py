"""Feature extractors by name: timm models from a file or the Hugging Face cache, the FID Inception-v3 from a
local file (weights fabricated here: the real ones need a download), and their offline and bad-input errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import timm
import torch
import torch_fidelity.feature_extractor_inceptionv3 as fidelity_inception
from safetensors.torch import save_file

from ganzoo.errors import GanzooError, UsageError
from ganzoo.metrics import features as features_module
from ganzoo.metrics.features import get_features


@pytest.fixture(scope="module")
def test_vit_weights(tmp_path_factory):
    """A small timm model's full state dict (with its 1000-class head), as safetensors."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("timm") / "test_vit.safetensors"
    save_file(timm.create_model("test_vit", pretrained=False).state_dict(), str(path))
    return path


def test_timm_extractor_from_a_weights_file(test_vit_weights):
    extractor = get_features("timm:test_vit", weights=str(test_vit_weights))
    images = torch.rand(3, 1, 28, 28) * 2 - 1  # grey, small: brought to RGB at the model's 160 px
    features, logits = extractor.extract(images)
    assert features.shape == (3, extractor.net.num_features) and logits is None
    assert extractor.input_size == (160, 160)
    assert torch.equal(features, extractor.extract(images)[0])
    again = get_features("timm:test_vit", weights=str(test_vit_weights))
    assert again.key == extractor.key and "test_vit" in extractor.key


def _hf_cache_with(weights_path, cache_dir) -> None:
    """The layout huggingface_hub's cache uses for timm/test_vit.r160_in1k at one commit."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = cache_dir / "models--timm--test_vit.r160_in1k"
    (repo / "snapshots" / sha).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    (repo / "snapshots" / sha / "model.safetensors").write_bytes(weights_path.read_bytes())


def _run_offline(code: str, cache_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache_dir)}  # read when the hub is imported
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True)


def test_timm_extractor_offline_from_the_hf_cache(test_vit_weights, tmp_path):
    _hf_cache_with(test_vit_weights, tmp_path / "hub")
    code = """
        import torch
        from ganzoo.metrics.features import get_features
        extractor = get_features("timm:test_vit")
        print(tuple(extractor.extract(torch.zeros(2, 3, 32, 32))[0].shape), extractor.key)
    """
    result = _run_offline(code, tmp_path / "hub")
    assert result.returncode == 0, result.stderr
    assert "(2, 64) timm-test_vit-timm_test_vit.r160_in1k" in result.stdout


def test_timm_extractor_offline_without_cache_is_a_clear_error(tmp_path):
    code = """
        from ganzoo.errors import GanzooError
        from ganzoo.metrics.features import get_features
        try:
            get_features("timm:test_vit")
        except GanzooError as exc:
            print(exc)
    """
    result = _run_offline(code, tmp_path / "empty-hub")
    assert result.returncode == 0, result.stderr
    assert "not in the Hugging Face cache" in result.stdout and "--weights FILE" in result.stdout


def test_unknown_timm_model_and_unknown_extractor():
    with pytest.raises(UsageError, match="unknown timm model 'no_such_net'"):
        get_features("timm:no_such_net")
    with pytest.raises(UsageError, match="accepted: digits, inception, timm:<model>"):
        get_features("clip")


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """Random weights with the exact keys and shapes of the FID Inception-v3 (saved as torch and safetensors)."""
    patch = pytest.MonkeyPatch()
    patch.setattr(fidelity_inception, "load_state_dict_from_url", lambda *a, **k: {})
    patch.setattr(fidelity_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
    torch.manual_seed(0)
    net = fidelity_inception.FeatureExtractorInceptionV3("fabricated", ["2048"])
    patch.undo()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    folder = tmp_path_factory.mktemp("inception")
    torch.save(state, folder / "inception.pth")
    save_file(state, str(folder / "inception.safetensors"))
    return folder


@pytest.mark.parametrize("name", ["inception.pth", "inception.safetensors"])
def test_inception_extractor_from_a_local_file(inception_weights, name):
    extractor = get_features("inception", weights=str(inception_weights / name))
    features, logits = extractor.extract(torch.rand(2, 1, 28, 28) * 2 - 1)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    assert extractor.num_classes == 1008 and extractor.key.startswith("inception-")


def test_inception_offline_without_weights_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    monkeypatch.setenv("GANZOO_OFFLINE", "1")
    with pytest.raises(GanzooError) as info:
        get_features("inception")
    message = str(info.value)
    assert "downloads are off" in message and features_module.INCEPTION_URL in message and "--weights" in message


def test_inception_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    monkeypatch.delenv("GANZOO_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refuse(url, dst, progress=True):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    with pytest.raises(GanzooError, match="could not download the inception weights: OSError: network"):
        get_features("inception")


class NotATensor:
    pass


def test_weights_files_with_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "payload": NotATensor()}, path)
    with pytest.raises(GanzooError, match="cannot read weights from"):
        get_features("inception", weights=str(path))
    with pytest.raises(UsageError, match="weights file not found"):
        get_features("inception", weights=str(tmp_path / "missing.pth"))


def test_wrong_weights_for_inception(tmp_path):
    path = tmp_path / "small.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(GanzooError, match="is not the FID Inception-v3 weights"):
        get_features("inception", weights=str(path))
