"""What a run leaves for people to read: metrics.jsonl, TensorBoard events, progress, sample grids.

Progress is a tqdm bar on a terminal (or in a notebook); when stderr is not a terminal (CI logs, `nohup`, a file)
it is one plain line per logged step on stderr instead, since a bar's carriage returns make such logs unreadable.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from tqdm.autonotebook import tqdm as auto_tqdm
from tqdm.std import tqdm as terminal_tqdm

from ganzoo.engine.checkpoint import atomic_path, write_text_atomic


def bar_is_readable() -> bool:
    """True on a terminal or in a notebook (tqdm's widget), where a progress bar redraws in place."""
    return sys.stderr.isatty() or auto_tqdm is not terminal_tqdm


def _format_value(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


class RunLogger:
    """Writes one JSON line per logged step, mirrors scalars to TensorBoard when available, shows progress: a bar,
    or (stderr not a terminal) one line per logged step; `progress=False` shows neither."""

    def __init__(self, run_dir: Path, total_steps: int, start_step: int, progress: bool, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.jsonl"
        if start_step > 0 and self.path.is_file():  # resumed: forget what was logged after the checkpoint
            self._truncate(start_step)
        self._file = self.path.open("a", encoding="utf-8")
        bar = progress and bar_is_readable()
        self._lines = progress and not bar
        self._total = total_steps
        self._step = start_step  # the step of the latest `log`, which the values given to `show` belong to
        self._bar = tqdm(total=total_steps, initial=start_step, disable=not bar, unit="it", dynamic_ncols=True)
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
        """Show the latest logged values next to the bar, or print them on one line when there is no bar."""
        if self._lines:
            shown = "  ".join(f"{k} {_format_value(v)}" for k, v in values.items())
            print(f"step {self._step}/{self._total}  {shown}", file=sys.stderr, flush=True)
        else:
            self._bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()}, refresh=False)

    def log(self, step: int, values: Mapping[str, Any]) -> None:
        self._step = step
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

    def _truncate(self, step: int) -> None:
        kept = "".join(line + "\n" for line in _logged_lines(self.path) if json.loads(line)["step"] <= step)
        write_text_atomic(self.path, kept)

    def rewind(self, step: int) -> None:
        """Training went back to `step` (a rollback): forget the metrics lines after it, move the bar back.
        TensorBoard keeps its events (its later ones are overwritten step by step as training goes on)."""
        self._file.close()
        self._truncate(step)
        self._file = self.path.open("a", encoding="utf-8")
        self._step = step
        self._bar.n = step
        self._bar.refresh()

    def write(self, message: str) -> None:
        """Print a line without breaking the progress bar."""
        self._bar.write(message)

    def close(self) -> None:
        self._bar.close()
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def _logged_lines(path: Path) -> list[str]:
    """The complete lines of a metrics.jsonl: a line a kill cut short (or any garbled line) is dropped."""
    lines = []
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        try:
            if isinstance(json.loads(line).get("step"), int):
                lines.append(line)
        except (ValueError, AttributeError):
            continue
    return lines


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The lines of a run's metrics.jsonl (none when it has no such file; a line a kill cut short is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in _logged_lines(path)] if path.is_file() else []


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
        if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
            path = path.with_name(path.name + ".png")
    else:
        path = path.with_name(path.stem + ".txt") if path.suffix else path.with_name(path.name + ".txt")
    with atomic_path(path) as tmp:  # a full disk never leaves a truncated file under the target's name
        if isinstance(samples, torch.Tensor):
            from torchvision.utils import save_image

            save_image(image_grid(samples, nrow), tmp)
        else:
            tmp.write_text("\n".join(samples) + "\n", encoding="utf-8")
    return path
