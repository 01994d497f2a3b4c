"""Image folders larger than memory: decoded once into an on-disk cache, then read through a memory map.

`cached_folder(root, files, resolution, channels)` keys the cache by the folder (every file's relative path,
size and modification time), the resolution, the channel count and this module's format, so a changed folder is
decoded again and an unchanged one opens in the time it takes to list it. The build decodes with worker
processes (each writes its rows straight into the memory-mapped file: no image crosses a pipe), shows a progress
bar, and skips and counts unreadable files; it writes under a temporary name and renames, so a killed build
leaves nothing that looks finished. The result is a `TensorImageDataset` over a uint8 (N, C, R, R) tensor backed
by the memory-mapped file (`torch.from_file`): a batch reads its own rows, and the operating system keeps in
memory only the pages training touches.

`in_memory_limit()` is the decoded size up to which folders stay in memory as before (`GANZOO_IN_MEMORY_MB`,
default 1024 MiB); the cache lives under `ganzoo.data.sources.cache_dir()/folders`.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganzoo.data.images import PIL_MODES, TensorImageDataset, decode_square, folder_class_names
from ganzoo.errors import UsageError

FORMAT = 1
CHUNK = 256  # files per worker task
IMAGES, LABELS, META = "images.u8", "labels.npy", "meta.json"
"""The images as raw uint8 rows (N, C, R, R; the shape is in meta.json), mapped with `torch.from_file`."""


def in_memory_limit() -> int:
    """Bytes of decoded images up to which a folder is held in memory (`GANZOO_IN_MEMORY_MB`, default 1024)."""
    return int(float(os.environ.get("GANZOO_IN_MEMORY_MB", "1024")) * 2**20)


def folder_key(root: Path, files: Sequence[Path], resolution: int, channels: int) -> str:
    """The cache key: the files (relative paths, sizes, mtimes), the resolution, the channels and the format."""
    digest = hashlib.sha256(f"ganzoo-folder-cache {FORMAT} {resolution} {channels}\n".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def _decode_rows(target: str, shape: tuple[int, ...], paths: Sequence[str], start: int, mode: str) -> list[bool]:
    """A worker's part: decode `paths` into rows start.. of the raw (N, C, R, R) uint8 file at `target`."""
    images = np.memmap(target, dtype=np.uint8, mode="r+", shape=shape)
    resolution = shape[-1]
    ok = []
    for offset, path in enumerate(paths):
        array = decode_square(Path(path), resolution, mode)
        if array is not None:
            images[start + offset] = array.transpose(2, 0, 1)
        ok.append(array is not None)
    images.flush()
    return ok


def _build(directory: Path, root: Path, files: Sequence[Path], resolution: int, channels: int, workers: int) -> None:
    """Decode `files` into `directory` (images.npy, labels.npy when labelled, meta.json)."""
    from tqdm.auto import tqdm

    draft = directory / f"draft-{IMAGES}"
    shape = (len(files), channels, resolution, resolution)
    with draft.open("wb") as handle:  # the full size, as zeros (sparse where the file system allows)
        handle.truncate(int(np.prod(shape)))
    mode = PIL_MODES[channels]
    starts = range(0, len(files), CHUNK)
    ok: list[bool] = []
    with (  # spawned workers: forking a process that runs torch's threads can deadlock
        ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool,
        tqdm(total=len(files), desc=f"caching {root}", unit="img", leave=False) as bar,
    ):
        parts = [
            pool.submit(_decode_rows, str(draft), shape, [str(p) for p in files[s : s + CHUNK]], s, mode)
            for s in starts
        ]
        for part in parts:
            done = part.result()
            ok += done
            bar.update(len(done))
    kept = [f for f, good in zip(files, ok, strict=True) if good]
    skipped = [f for f, good in zip(files, ok, strict=True) if not good]
    if skipped and kept:  # compact: the rows of readable files only, in order
        source = np.memmap(draft, dtype=np.uint8, mode="r", shape=shape)
        index = np.flatnonzero(np.array(ok))
        final = np.memmap(directory / IMAGES, dtype=np.uint8, mode="w+", shape=(len(kept), *shape[1:]))
        for begin in range(0, len(index), 4096):
            final[begin : begin + 4096] = source[index[begin : begin + 4096]]
        final.flush()
        del final, source
        draft.unlink()
    elif kept:
        draft.rename(directory / IMAGES)
    classes = folder_class_names(root, kept)
    if classes is not None:
        position = {name: i for i, name in enumerate(classes)}
        np.save(directory / LABELS, np.array([position[f.relative_to(root).parts[0]] for f in kept], dtype=np.int64))
    write_meta(directory, (len(kept), *shape[1:]), [str(f) for f in skipped], classes)


def cached(cache: Path, key: str, build: Callable[[Path], object]) -> Path:
    """The cache entry `cache/key`, made by `build(directory)` when missing: built in a temporary directory and
    renamed into place, so a killed build leaves nothing that looks finished (and a finished one is never redone)."""
    directory = cache / key
    if (directory / META).is_file():
        return directory
    cache.mkdir(parents=True, exist_ok=True)
    building = cache / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        build(building)
        if directory.exists():  # another process finished the same build first
            shutil.rmtree(building)
        else:
            os.replace(building, directory)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return directory


def write_meta(directory: Path, shape: Sequence[int], skipped: Sequence[str], classes: Sequence[str] | None) -> None:
    """An entry's meta.json: the images' shape, what was skipped and the class names."""
    meta = {"format": FORMAT, "count": shape[0], "shape": list(shape), "skipped": list(skipped), "classes": classes}
    (directory / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def open_entry(directory: Path) -> tuple[TensorImageDataset, dict[str, Any]]:
    """A built entry as a dataset over its memory-mapped images (and labels), and its meta.json."""
    meta = json.loads((directory / META).read_text(encoding="utf-8"))
    shape = meta["shape"]
    # shared=False maps the file privately: the pages training reads, never a copy of the file, never written back
    images = torch.from_file(str(directory / IMAGES), shared=False, size=math.prod(shape), dtype=torch.uint8)
    labels = torch.from_numpy(np.load(directory / LABELS)) if (directory / LABELS).is_file() else None
    return TensorImageDataset(images.view(*shape), labels), meta


def cached_folder(
    root: Path, files: Sequence[Path], resolution: int, channels: int, cache: Path, workers: int | None = None
) -> TensorImageDataset:
    """The images of `files` under `root` at `resolution` and `channels`, from the cache in `cache` (built when
    missing or stale), as a memory-mapped dataset; unreadable files are skipped with one warning."""
    count = workers or min(8, os.cpu_count() or 1)
    key = folder_key(root, files, resolution, channels)
    directory = cached(cache, key, lambda into: _build(into, root, files, resolution, channels, count))
    dataset, meta = open_entry(directory)
    if meta["skipped"]:
        shown = ", ".join(str(Path(p).relative_to(root)) for p in meta["skipped"][:3])
        warnings.warn(
            f"skipped {len(meta['skipped'])} unreadable image file(s) under {root} (e.g. {shown})", stacklevel=2
        )
    if not meta["count"]:
        raise UsageError(f"none of the {len(files)} image files under {root} could be read")
    return dataset


__all__ = ["cached", "cached_folder", "folder_key", "in_memory_limit", "open_entry", "write_meta"]
