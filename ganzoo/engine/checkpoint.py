"""Checkpoints without pickle: weights and every piece of training state in safetensors, written atomically.

A checkpoint is a directory `checkpoints/step-NNNNNN/` holding `model.safetensors` (every network by role, EMA
included), `state.safetensors` (optimizer, GradScaler and RNG state: tensors as safetensors tensors, the rest
as a JSON skeleton in the file's metadata) and `trainer.json` (position in training). It is written under a
temporary name and renamed into place, and `checkpoints/latest` names the newest complete one, so a crash
mid-write never leaves a half checkpoint behind. Every file's mode follows the process umask, the safetensors
files' too (`save_safetensors`).

`trainer.json`, written last, records the SHA-256 of every other file of the checkpoint (safetensors has no
checksum: flipped bytes in tensor data load silently). `verify_checkpoint` checks them, and `usable_checkpoints`
lists a run's checkpoints newest first with the reason each one that does not verify is unusable, for the
fall-back of `--resume` and of loading a run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
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
    umask 022): save_file writes a private temporary file and renames it, which would leave it 0600. Its write
    errors (a full disk) are raised as `OSError` naming the path, like every other file error."""
    try:
        save_file(dict(tensors), path, dict(metadata))
    except SafetensorError as exc:
        raise OSError(f"cannot write {path}: {exc}") from None
    os.chmod(path, 0o666 & ~_umask())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file, streamed (hashlib releases the GIL; about 1 GB/s here)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` (with its suffix, so image writers see the format) to write to: renamed onto
    `path` when the block succeeds, removed when it fails, so `path` is never left half-written (a full disk)."""
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        _fsync_file(tmp)


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
        for name, text in (extra_files or {}).items():  # e.g. a text model's vocab.json
            (tmp / name).write_text(text, encoding="utf-8")
        files = {name: sha256_file(tmp / name) for name in (MODEL_FILE, STATE_FILE, *(extra_files or {}))}
        (tmp / TRAINER_FILE).write_text(json.dumps({**trainer_info, "files": files}, indent=2), encoding="utf-8")
        for name in (*files, TRAINER_FILE):
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


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove the `.tmp-*` and `.old-*` checkpoint folders that other processes left (killed mid-write); call it
    holding the run's lock, so no live writer owns them. Returns what was removed."""
    if not directory.is_dir():
        return []
    mine = f"-{os.getpid()}"
    stale = [p for p in directory.iterdir() if p.name.startswith((".tmp-", ".old-")) and not p.name.endswith(mine)]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


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


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint directory's name says (`step-NNNNNN`), or None for another name."""
    digits = path.name.removeprefix(_PREFIX)
    return int(digits) if path.name.startswith(_PREFIX) and digits.isdigit() else None


def discard_after(directory: Path, step: int) -> Path | None:
    """Roll a run's checkpoints back to the newest complete one at or before `step`: `latest` names it, then the
    newer ones (an abandoned stretch of the run) are deleted. Returns it; None, changing nothing, when none is."""
    found = list_checkpoints(directory)
    kept = [p for p in found if (checkpoint_step(p) or 0) <= step]
    if not kept:
        return None
    write_text_atomic(directory / LATEST, kept[-1].name + "\n")  # first: a crash between leaves a usable run
    for path in found:
        if (checkpoint_step(path) or 0) > step:
            shutil.rmtree(path)
    return kept[-1]


def read_json(path: Path) -> Any:
    """A JSON file's value; a one-line `GanzooError` naming the file when it is unreadable, not UTF-8 or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GanzooError(f"cannot read {path}: {exc}") from None


def read_trainer_info(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's trainer.json; a `GanzooError` naming the file when it is unreadable or not a JSON object."""
    path = checkpoint / TRAINER_FILE
    info = read_json(path)
    if not isinstance(info, dict) or not isinstance(info.get("step"), int):
        raise GanzooError(f"{path} is not a checkpoint's trainer.json (a JSON object with a step)")
    return info


def verify_checkpoint(checkpoint: Path) -> str | None:
    """Why `checkpoint` is not usable (a missing or garbled file, a checksum mismatch), or None when it verifies.

    Checkpoints written before checksums were recorded verify by their files' presence alone.
    """
    for name in (MODEL_FILE, STATE_FILE, TRAINER_FILE):
        if not (checkpoint / name).is_file():
            return f"{name} is missing"
    try:
        info = read_trainer_info(checkpoint)
    except GanzooError as exc:
        return str(exc)
    files = info.get("files", {})
    if not isinstance(files, dict):
        return f"{TRAINER_FILE} has a garbled file list"
    for name, expected in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if sha256_file(path) != expected:
            return f"{name} does not match its SHA-256 (corrupted or truncated)"
    return None


def _pointed_at(directory: Path) -> Path | None:
    """The checkpoint directory `latest` names, or None when it is missing, garbled or names something else."""
    try:
        name = (directory / LATEST).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    named = directory / name
    return named if name.startswith(_PREFIX) and named.parent == directory and named.is_dir() else None


def _newest_first(directory: Path) -> Iterator[Path]:
    """`latest`'s checkpoint first (when it names one), then every step directory, newest first."""
    seen = set()
    named = _pointed_at(directory)
    if named is not None:
        seen.add(named)
        yield named
    if directory.is_dir():
        for path in sorted((p for p in directory.iterdir() if p.is_dir() and p.name.startswith(_PREFIX)), reverse=True):
            if path not in seen:
                yield path


def usable_checkpoints(directory: Path) -> Iterator[tuple[Path, str | None]]:
    """Each checkpoint under `directory`, newest first, with why it is unusable (None: it verifies)."""
    for path in _newest_first(directory):
        yield path, verify_checkpoint(path)


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint `latest` names, falling back to the newest complete one."""
    candidate = _pointed_at(directory)
    if candidate is not None and (candidate / MODEL_FILE).is_file():
        return candidate
    found = list_checkpoints(directory)
    return found[-1] if found else None


def newest_verified(directory: Path, on_skip: Any = None) -> Path | None:
    """The newest checkpoint under `directory` that verifies; `on_skip(path, reason)` hears of each newer one that
    does not. None when there are no checkpoints; a `GanzooError` listing each one tried when none verifies."""
    tried = []
    for path, problem in usable_checkpoints(directory):
        if problem is None:
            return path
        tried.append(f"{path.name}: {problem}")
        if on_skip is not None:
            on_skip(path, problem)
    if tried:
        raise GanzooError(f"no checkpoint in {directory} verifies: {'; '.join(tried)}")
    return None


def find_checkpoint(source: str | Path, on_skip: Any = None) -> Path:
    """A checkpoint directory from a run directory, its `checkpoints/` directory or the checkpoint itself; it must
    verify (a run falls back to its newest checkpoint that does, telling `on_skip(path, reason)` of the others)."""
    path = Path(source)
    if (path / MODEL_FILE).is_file() or (path / TRAINER_FILE).is_file():
        problem = verify_checkpoint(path) if (path / STATE_FILE).exists() else None  # (best/: weights only)
        if problem is not None:
            raise GanzooError(f"the checkpoint {path} is unusable: {problem}")
        return path
    for directory in (path / "checkpoints", path):
        found = newest_verified(directory, on_skip)
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
        state = unflatten_state(tensors, skeleton)
    except (SafetensorError, OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise GanzooError(f"cannot read the training state in {checkpoint}: {exc}") from None
    return state, read_trainer_info(checkpoint)


def split_roles(weights: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """`{"generator.net.0.weight": t}` -> `{"generator": {"net.0.weight": t}}`."""
    roles: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in weights.items():
        role, _, name = key.partition(".")
        roles.setdefault(role, {})[name] = tensor
    return roles
