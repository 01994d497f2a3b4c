"""Checkpoints without pickle: weights and every piece of training state in safetensors, written atomically.

A checkpoint is a directory `checkpoints/step-NNNNNN/` holding `model.safetensors` (every network by role, EMA
included), `state.safetensors` (optimizer, GradScaler and RNG state: tensors as safetensors tensors, the rest
as a JSON skeleton in the file's metadata) and `trainer.json` (position in training). It is written under a
temporary name and renamed into place, and `checkpoints/latest` names the newest complete one, so a crash
mid-write never leaves a half checkpoint behind. Every file's mode follows the process umask, the safetensors
files' too (`save_safetensors`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ganzoo.errors import GanzooError

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.safetensors"
TRAINER_FILE = "trainer.json"
LATEST = "latest"
_PREFIX = "step-"


def step_dir_name(step: int) -> str:
    return f"{_PREFIX}{step:06d}"


def flatten_state(obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state (dicts, lists, tuples, tensors, numpy arrays, scalars) into tensors and a
    JSON-serialisable skeleton that names them; `unflatten_state` reverses it exactly."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = value.detach().cpu().contiguous().clone()
            return {"__tensor__": key}
        if isinstance(value, np.ndarray):
            key = f"t{len(tensors)}"
            tensors[key] = torch.from_numpy(value.astype(np.int64 if value.dtype.kind in "iu" else value.dtype))
            return {"__ndarray__": key, "dtype": value.dtype.str}
        if isinstance(value, dict):
            return {"__dict__": [[walk(k), walk(v)] for k, v in value.items()]}
        if isinstance(value, tuple):
            return {"__tuple__": [walk(v) for v in value]}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint")

    return tensors, walk(obj)


def unflatten_state(tensors: Mapping[str, torch.Tensor], skeleton: Any) -> Any:
    """Rebuild what `flatten_state` split."""

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            if "__tensor__" in value:
                return tensors[value["__tensor__"]]
            if "__ndarray__" in value:
                return tensors[value["__ndarray__"]].numpy().astype(np.dtype(value["dtype"]))
            if "__tuple__" in value:
                return tuple(walk(v) for v in value["__tuple__"])
            if "__dict__" in value:
                return {walk(k): walk(v) for k, v in value["__dict__"]}
        return value

    return walk(skeleton)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not every platform can open a directory
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _umask() -> int:
    """The process umask, read from /proc where it can be (setting it to read it races with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:  # not Linux
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_safetensors(tensors: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str]) -> None:
    """`safetensors.torch.save_file`, with the file's mode following the umask like any other file's (0644 under
    umask 022): save_file writes a private temporary file and renames it, which would leave it 0600."""
    save_file(dict(tensors), path, dict(metadata))
    os.chmod(path, 0o666 & ~_umask())


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    _fsync_file(tmp)
    os.replace(tmp, path)


def save_checkpoint(
    directory: Path,
    step: int,
    weights: Mapping[str, torch.Tensor],
    state: Any,
    trainer_info: Mapping[str, Any],
    metadata: Mapping[str, str],
    keep: int,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write checkpoint `step` under `directory` atomically, point `latest` at it, keep the newest `keep`."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / step_dir_name(step)
    tmp = directory / f".tmp-{step_dir_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        save_safetensors({k: v.detach().cpu().contiguous() for k, v in weights.items()}, tmp / MODEL_FILE, metadata)
        tensors, skeleton = flatten_state(state)
        save_safetensors(tensors, tmp / STATE_FILE, {"skeleton": json.dumps(skeleton)})
        (tmp / TRAINER_FILE).write_text(json.dumps(dict(trainer_info), indent=2), encoding="utf-8")
        for name, text in (extra_files or {}).items():  # e.g. a text model's vocab.json
            (tmp / name).write_text(text, encoding="utf-8")
        for name in (MODEL_FILE, STATE_FILE, TRAINER_FILE, *(extra_files or {})):
            _fsync_file(tmp / name)
        if final.exists():  # the same step written again (e.g. a resumed run): swap, never leave a gap
            old = directory / f".old-{step_dir_name(step)}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text_atomic(directory / LATEST, final.name + "\n")
    for old in list_checkpoints(directory)[:-keep]:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_weights_dir(
    final: Path, weights: Mapping[str, torch.Tensor], info: Mapping[str, Any], metadata: Mapping[str, str]
) -> Path:
    """Write a weights-only checkpoint (model.safetensors + trainer.json, e.g. `checkpoints/best`) atomically."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_safetensors({k: v.detach().cpu().contiguous() for k, v in weights.items()}, tmp / MODEL_FILE, metadata)
        (tmp / TRAINER_FILE).write_text(json.dumps(dict(info), indent=2), encoding="utf-8")
        for name in (MODEL_FILE, TRAINER_FILE):
            _fsync_file(tmp / name)
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def list_checkpoints(directory: Path) -> list[Path]:
    """The complete checkpoints under `directory`, oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and p.name.startswith(_PREFIX)]
    return sorted(p for p in found if all((p / f).is_file() for f in (MODEL_FILE, STATE_FILE, TRAINER_FILE)))


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint `latest` names, falling back to the newest complete one."""
    pointer = directory / LATEST
    if pointer.is_file():
        candidate = directory / pointer.read_text(encoding="utf-8").strip()
        if (candidate / MODEL_FILE).is_file():
            return candidate
    found = list_checkpoints(directory)
    return found[-1] if found else None


def find_checkpoint(source: str | Path) -> Path:
    """A checkpoint directory from a run directory, its `checkpoints/` directory or the checkpoint itself."""
    path = Path(source)
    if (path / MODEL_FILE).is_file():
        return path
    for directory in (path / "checkpoints", path):
        found = latest_checkpoint(directory)
        if found is not None:
            return found
    if not path.exists():
        raise GanzooError(f"{path} does not exist; expected a run directory or a checkpoint directory")
    raise GanzooError(f"no checkpoint found in {path}; expected a run directory or a checkpoint directory")


def load_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(checkpoint / MODEL_FILE)
    except (SafetensorError, OSError) as exc:
        raise GanzooError(f"cannot read {checkpoint / MODEL_FILE}: {exc}") from None


def load_training_state(checkpoint: Path) -> tuple[Any, dict[str, Any]]:
    """The training state and trainer info saved by `save_checkpoint`."""
    from safetensors import safe_open

    try:
        with safe_open(checkpoint / STATE_FILE, framework="pt") as handle:
            skeleton = json.loads(handle.metadata()["skeleton"])
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - safe_open has no iterator
        info = json.loads((checkpoint / TRAINER_FILE).read_text(encoding="utf-8"))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise GanzooError(f"cannot read the training state in {checkpoint}: {exc}") from None
    return unflatten_state(tensors, skeleton), info


def split_roles(weights: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """`{"generator.net.0.weight": t}` -> `{"generator": {"net.0.weight": t}}`."""
    roles: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in weights.items():
        role, _, name = key.partition(".")
        roles.setdefault(role, {})[name] = tensor
    return roles
