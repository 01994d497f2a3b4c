"""Run by the conformance kit's ddp check under `torchrun --nproc_per_node=2 -m ganzoo.testing.ddp_worker SPEC`.

SPEC is JSON: `plugin` (a registered name), `target` (`module:attribute` of the plugin object, imported and
registered when the name is not installed), `config`, `data`, `train` and `out`. The run goes to OUT/run; each
rank then writes its networks, EMA copies and buffers to OUT/rank{R}.safetensors (metadata: step, rank) for the
check to compare.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from ganzoo import Trainer
from ganzoo.errors import PluginError
from ganzoo.registry import get_plugin, register


def _plugin(spec: dict) -> object:
    try:
        return get_plugin(spec["plugin"])
    except PluginError:
        if not spec.get("target"):
            raise
        module, _, attribute = spec["target"].partition(":")
        return register(getattr(importlib.import_module(module), attribute), replace=True)


def main() -> None:
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    out = Path(spec["out"])
    result = Trainer(_plugin(spec), spec["config"], spec["train"], data=spec["data"], out=out / "run").fit()
    tensors = {key: value.detach().cpu().contiguous() for key, value in result.model.weights().items()}
    rank = os.environ["RANK"]
    save_file(tensors, out / f"rank{rank}.safetensors", {"step": str(result.step), "rank": rank})


if __name__ == "__main__":
    main()
