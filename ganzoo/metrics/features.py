"""Feature extractors for the image metrics, chosen by name: `digits`, `inception`, `timm:<model>`.

An extractor takes generated-style images (float, [-1, 1], (N, C, H, W), any size and 1 or 3 channels), brings
them to its own input format, and returns pooled features (and class logits when it is a classifier, for the
Inception Score and conditional accuracy). Its `key` names the exact network and weights, so cached reference
statistics are never reused across extractors.

- `digits`: the small digit classifier shipped with ganzoo (offline; for 28x28 digit models).
- `inception`: the FID Inception-v3 (TF-ported weights, as pytorch-fid, torch-fidelity and clean-fid use),
  built by torch-fidelity; its weights come from `--weights FILE` or torch's hub cache, downloaded when online.
- `timm:<model>`: any timm model's pooled features with its pretrained weights (e.g. `timm:vit_small_patch14_dinov2`
  for FD_DINOv2), through the Hugging Face cache, so HF_HUB_OFFLINE=1 works once cached; or from `--weights FILE`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ganzoo.errors import GanzooError, UsageError

INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)


def file_digest(path: Path | str, length: int = 16) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def _to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1)
    if images.shape[1] in (3, 4) and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        return (images[:, :3] * weights).sum(1, keepdim=True)
    if images.shape[1] == 4 and channels == 3:
        return images[:, :3]
    raise UsageError(f"cannot feed {images.shape[1]}-channel images to an extractor that takes {channels} channels")


class FeatureExtractor:
    """Base class: `extract(images)` -> (features (N, D) float32, logits (N, K) or None)."""

    name: str
    key: str
    """Identifies the network and its weights (part of the reference-statistics cache key)."""
    num_classes: int | None = None
    """Number of classes when the extractor is a classifier (logits available), else None."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def network(self, prepared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if images.ndim != 4:
            raise ValueError(f"expected images (N, C, H, W), got shape {tuple(images.shape)}")
        features, logits = self.network(self.prepare(images.to(self.device, torch.float32)))
        return features.float().cpu(), None if logits is None else logits.float().cpu()


class DigitsFeatures(FeatureExtractor):
    """The shipped digit classifier: 28x28 grey inputs, 128 features, 10 classes."""

    name = "digits"
    num_classes = 10

    def __init__(self, device: torch.device | str = "cpu", weights: str | None = None) -> None:
        super().__init__(device)
        from importlib import resources

        from ganzoo.metrics.digits import WEIGHTS_FILE, load_digits_classifier

        if weights is not None:
            raise UsageError("the digits extractor uses the weights shipped with ganzoo; --weights is not accepted")
        self.net = load_digits_classifier(self.device)
        asset = resources.files("ganzoo.metrics").joinpath(WEIGHTS_FILE)
        self.key = "digits-" + hashlib.sha256(asset.read_bytes()).hexdigest()[:16]

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        images = _to_channels(images, 1)
        if images.shape[-2:] != (28, 28):
            images = F.interpolate(images, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
        return images.clamp(-1, 1)

    def network(self, prepared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net.features(prepared)
        return features, self.net.head(features)


def _safe_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or from a torch file read with weights_only=True (no pickled code)."""
    if not path.is_file():
        raise UsageError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files and pickles that hold more than tensors
        raise GanzooError(f"cannot read weights from {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GanzooError(f"{path} does not hold a plain state dict of tensors")
    return state


def inception_weights_path(weights: str | None) -> Path:
    """The Inception weights file: `weights`, else torch's hub cache, downloading it there when online."""
    if weights is not None:
        return Path(weights).expanduser()
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[1]
    if cached.is_file():
        return cached
    from ganzoo.data.sources import offline

    how = f"download {INCEPTION_URL} and pass --weights FILE (or put it at {cached})"
    if offline():
        raise GanzooError(f"the inception extractor's weights are not cached and downloads are off; {how}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(INCEPTION_URL, str(cached), progress=False)
    except Exception as exc:  # any network failure means the same to the user
        raise GanzooError(f"could not download the inception weights: {type(exc).__name__}: {exc}; {how}") from None
    return cached


class InceptionFeatures(FeatureExtractor):
    """torch-fidelity's FID Inception-v3: uint8 RGB in, resized to 299 as TF did; 2048 pool features."""

    name = "inception"
    num_classes = 1008

    def __init__(self, device: torch.device | str = "cpu", weights: str | None = None) -> None:
        super().__init__(device)
        import tempfile

        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = inception_weights_path(weights)
        state = _safe_state_dict(path)
        # torch-fidelity reads its file with weights_only=False; hand it only tensors we have just checked.
        with tempfile.TemporaryDirectory() as tmp:
            checked = Path(tmp) / "inception.pth"
            torch.save(state, checked)
            try:
                self.net = FeatureExtractorInceptionV3(
                    "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(checked)
                )
            except RuntimeError as exc:
                raise GanzooError(
                    f"{path} is not the FID Inception-v3 weights: {' '.join(str(exc).split())[:300]}"
                ) from None
        self.net.to(self.device)
        self.key = "inception-" + file_digest(path)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        images = _to_channels(images, 3)
        return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

    def network(self, prepared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, logits = self.net(prepared)
        return features, logits


class TimmFeatures(FeatureExtractor):
    """A timm model with its pretrained weights and no classifier: pooled features at its own input size."""

    def __init__(self, model_name: str, device: torch.device | str = "cpu", weights: str | None = None) -> None:
        super().__init__(device)
        import timm
        import timm.data

        if not model_name or not timm.is_model(model_name.split(".")[0]):
            raise UsageError(
                f'unknown timm model {model_name!r}; list them with python -c "import timm; '
                "print(timm.list_pretrained('*dinov2*'))\""
            )
        overlay = {}
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise UsageError(f"weights file not found: {path}")
            overlay = {"file": str(path)}
        try:
            net = timm.create_model(model_name, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
        except Exception as exc:  # hub, network and file errors all end here
            hint = (
                "downloads are off and the weights are not in the Hugging Face cache"
                if _hf_offline()
                else "could not fetch its pretrained weights"
            )
            raise GanzooError(
                f"timm model {model_name!r}: {hint} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                "run once online or pass --weights FILE"
            ) from None
        self.net = net.eval().requires_grad_(False).to(self.device)
        config = timm.data.resolve_data_config({}, model=net)
        self.input_size = tuple(config["input_size"][1:])
        self.mean = torch.tensor(config["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(config["std"], device=self.device).view(1, 3, 1, 1)
        self.interpolation = "bicubic" if config.get("interpolation") == "bicubic" else "bilinear"
        self.name = f"timm:{model_name}"
        source = file_digest(weights) if weights else net.pretrained_cfg.get("hf_hub_id") or model_name
        self.key = f"timm-{model_name}-{source}".replace("/", "_")

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        images = (_to_channels(images, 3).clamp(-1, 1) + 1) / 2
        if tuple(images.shape[-2:]) != self.input_size:
            images = F.interpolate(
                images, size=self.input_size, mode=self.interpolation, antialias=True, align_corners=False
            ).clamp(0, 1)
        return (images - self.mean) / self.std

    def network(self, prepared: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.net(prepared), None


def _hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


_EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {
    "digits": DigitsFeatures,
    "inception": InceptionFeatures,
}


def register_features(name: str, factory: Callable[..., FeatureExtractor]) -> None:
    """Add an extractor: `factory(device=..., weights=...)` returns a FeatureExtractor."""
    _EXTRACTORS[name] = factory


def accepted_features() -> str:
    return ", ".join([*sorted(_EXTRACTORS), "timm:<model>"])


def get_features(name: str, device: torch.device | str = "cpu", weights: str | None = None) -> FeatureExtractor:
    """The feature extractor called `name` (see the module docstring), on `device`."""
    if name.startswith("timm:"):
        return TimmFeatures(name[len("timm:") :], device=device, weights=weights)
    if name not in _EXTRACTORS:
        raise UsageError(f"unknown feature extractor {name!r}; accepted: {accepted_features()}")
    return _EXTRACTORS[name](device=device, weights=weights)
