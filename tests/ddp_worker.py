"""Run by tests/test_ddp.py under `torchrun --nproc_per_node=2`: train a tiny GAN on the CPU for 4 steps.

Usage: ddp_worker.py OUT_DIR [PLUGIN] (dcgan by default; cyclegan on its two-domain digits; lstm-gan on 256
surnames, two iterations of MLE then two adversarial ones). The run goes to
OUT_DIR/run; every rank then writes its final networks (and EMA copies) to OUT_DIR/rank{R}.safetensors so the
test can compare the ranks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from ganzoo import Trainer

TINY = {
    "dcgan": {"g_width": 8, "d_width": 8, "latent_dim": 16},
    "cyclegan": {"g_width": 4, "d_width": 4, "residual_blocks": 1, "examples": 4, "pool_size": 6},
    "lstm-gan": {"embed_dim": 8, "hidden_dim": 8, "d_hidden_dim": 8, "pretrain_steps": 2},
}
DATA = {"dcgan": "mnist-4k", "cyclegan": "digits-8x8-to-mnist", "lstm-gan": "surnames?split=train&n=256"}


def main() -> None:
    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    plugin = sys.argv[2] if len(sys.argv) > 2 else "dcgan"
    result = Trainer(
        plugin,
        config=TINY[plugin],
        train={
            "steps": 4,
            "batch_size": 16,
            "device": "cpu",
            "precision": "fp32",
            "checkpoint_every": 4,
            "log_every": 2,
            "sample_every": 1000,
            "sample_grid": 4,
            "progress": False,
            "tensorboard": False,
        },
        data=DATA[plugin],
        out=out / "run",
    ).fit()
    tensors = {}
    for role, net in result.model.nets.items():
        for key, value in net.state_dict().items():
            tensors[f"{role}.{key}"] = value.detach().cpu().contiguous()
    for role, net in result.model.ema.items():
        for key, value in net.state_dict().items():
            tensors[f"{role}_ema.{key}"] = value.detach().cpu().contiguous()
    save_file(tensors, out / f"rank{rank}.safetensors", {"step": str(result.step), "rank": str(rank)})


if __name__ == "__main__":
    main()
