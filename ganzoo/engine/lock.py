"""An exclusive lock on a run directory for the whole life of the process that writes it.

`ganzoo train` and `finetune` hold it (under DDP, rank 0), so a second writer into the same `--out` is refused with
one line naming the holder's PID instead of interleaving checkpoints and metrics with the first. It is an OS lock
(`fcntl.flock` on `RUN/.lock`): it dies with its process, so a killed run never leaves a stale lock behind.
Platforms without `fcntl` (Windows) run unlocked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from ganzoo.errors import UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".lock"


class RunLock:
    """`RunLock(run_dir).acquire()` takes the lock or raises a `UsageError`; `release()` gives it back."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        if fcntl is None or self._handle is not None:
            return
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise UsageError(
                f"{self.run_dir} is being written by another ganzoo process (PID {holder}); wait for it to finish "
                "or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
