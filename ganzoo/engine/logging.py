"""What a run leaves for people to read: metrics.jsonl, TensorBoard events, a progress bar, sample grids."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm


class RunLogger:
    """Writes one JSON line per logged step, mirrors scalars to TensorBoard when available, drives the bar."""

    def __init__(self, run_dir: Path, total_steps: int, start_step: int, progress: bool, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.jsonl"
        if start_step > 0 and self.path.is_file():  # resumed: forget what was logged after the checkpoint
            lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
            self.path.write_text("".join(x for x in lines if json.loads(x)["step"] <= start_step), encoding="utf-8")
        self._file = self.path.open("a", encoding="utf-8")
        self._bar = tqdm(total=total_steps, initial=start_step, disable=not progress, unit="it", dynamic_ncols=True)
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the [tensorboard] extra is not installed
                SummaryWriter = None
            if SummaryWriter is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    # purge_step drops events logged after the checkpoint a resumed run restarts from
                    purge = start_step + 1 if start_step > 0 else None
                    self._writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge)

    @property
    def tensorboard_dir(self) -> Path | None:
        return Path(self._writer.log_dir) if self._writer is not None else None

    def advance(self) -> None:
        """One iteration done."""
        self._bar.update(1)

    def show(self, values: Mapping[str, float]) -> None:
        """Show the latest logged values next to the bar."""
        self._bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()}, refresh=False)

    def log(self, step: int, values: Mapping[str, Any]) -> None:
        record = {"step": step, **values}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self._writer.add_scalar(key, value, step)

    def add_image(self, tag: str, grid: torch.Tensor, step: int) -> None:
        if self._writer is not None:
            self._writer.add_image(tag, grid, step)

    def write(self, message: str) -> None:
        """Print a line without breaking the progress bar."""
        self._bar.write(message)

    def close(self) -> None:
        self._bar.close()
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def image_grid(images: torch.Tensor, nrow: int | None = None) -> torch.Tensor:
    """Images in [-1, 1] tiled into one (C, H, W) grid in [0, 1]: `nrow` per row, else as square as possible."""
    from torchvision.utils import make_grid

    nrow = nrow or max(1, math.ceil(math.sqrt(len(images))))
    return make_grid(images.float().clamp(-1, 1).add(1).div(2), nrow=nrow, padding=2, pad_value=1.0)


def save_samples(samples: torch.Tensor | list[str], path: Path, nrow: int | None = None) -> Path:
    """Write images as a grid (PNG unless `path` ends in .jpg, .jpeg or .webp; `nrow` images per row), or text
    samples one per line (.txt)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(samples, torch.Tensor):
        from torchvision.utils import save_image

        if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
            path = path.with_name(path.name + ".png")
        save_image(image_grid(samples, nrow), path)
    else:
        path = path.with_name(path.stem + ".txt") if path.suffix else path.with_name(path.name + ".txt")
        path.write_text("\n".join(samples) + "\n", encoding="utf-8")
    return path
