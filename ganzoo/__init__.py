"""ganzoo: a plugin-based GAN model zoo with one shared training engine.

The public API is imported lazily so that `ganzoo --help` and `ganzoo list` do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "GANPlugin": "ganzoo.plugin",
    "UpdateStep": "ganzoo.plugin",
    "OptimizerSpec": "ganzoo.plugin",
    "DataInfo": "ganzoo.plugin",
    "StepContext": "ganzoo.plugin",
    "Recipe": "ganzoo.plugin",
    "option": "ganzoo.plugin",
    "register": "ganzoo.registry",
    "unregister": "ganzoo.registry",
    "list_models": "ganzoo.registry",
    "get_plugin": "ganzoo.registry",
    "GanzooError": "ganzoo.errors",
    "UsageError": "ganzoo.errors",
    "TrainConfig": "ganzoo.engine.config",
    "Trainer": "ganzoo.engine.trainer",
    "GANModel": "ganzoo.model",
    "create_model": "ganzoo.model",
    "load_pretrained": "ganzoo.hub",
    "save_pretrained": "ganzoo.hub",
    "push_to_hub": "ganzoo.hub",
    "prepare_finetune": "ganzoo.transfer",
    "losses": "ganzoo.losses",
    "metrics": "ganzoo.metrics",
    "evaluate": "ganzoo.metrics.evaluation",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from ganzoo import losses, metrics
    from ganzoo.engine.config import TrainConfig
    from ganzoo.engine.trainer import Trainer
    from ganzoo.errors import GanzooError, UsageError
    from ganzoo.hub import load_pretrained, push_to_hub, save_pretrained
    from ganzoo.metrics.evaluation import evaluate
    from ganzoo.model import GANModel, create_model
    from ganzoo.plugin import DataInfo, GANPlugin, OptimizerSpec, Recipe, StepContext, UpdateStep, option
    from ganzoo.registry import get_plugin, list_models, register, unregister
    from ganzoo.transfer import prepare_finetune


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'ganzoo' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
