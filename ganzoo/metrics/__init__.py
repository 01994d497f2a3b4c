"""Metrics: FID, KID, precision/recall, IS and conditional accuracy with pluggable feature extractors; text BLEU.

`evaluate(model, data, metrics, features)` scores a generator; `get_features(name)` gives an extractor
(`digits`, `inception`, `timm:<model>`); `ganzoo.metrics.stats` holds the statistics on feature matrices and
`ganzoo.metrics.text` the BLEU scores. Submodules import torch lazily through this package's attributes.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate": "ganzoo.metrics.evaluation",
    "parse_metrics": "ganzoo.metrics.evaluation",
    "METRICS": "ganzoo.metrics.evaluation",
    "FeatureExtractor": "ganzoo.metrics.features",
    "get_features": "ganzoo.metrics.features",
    "register_features": "ganzoo.metrics.features",
    "reference_features": "ganzoo.metrics.reference",
    "frechet_distance": "ganzoo.metrics.stats",
    "kernel_distance": "ganzoo.metrics.stats",
    "precision_recall": "ganzoo.metrics.stats",
    "inception_score": "ganzoo.metrics.stats",
    "load_digits_classifier": "ganzoo.metrics.digits",
    "bleu": "ganzoo.metrics.text",
    "self_bleu": "ganzoo.metrics.text",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ganzoo.metrics' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
