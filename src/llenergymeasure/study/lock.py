"""A lock that keeps two studies from measuring on the same devices at once."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from llenergymeasure.errors import LLEMError
from llenergymeasure.paths import lock_dir


class StudyLockedError(LLEMError):
    """Another study holds the lock for these devices."""


class DeviceLock:
    """An exclusive, non-blocking `flock` on a file named after the devices.

    The kernel drops the lock when the holder exits, even by SIGKILL, so a crashed study
    never leaves a stale lock behind.
    """

    def __init__(self, devices: str, root: Path | None = None) -> None:
        self.path = (root or lock_dir()) / f"study-{devices}.lock"
        self._fd: int | None = None

    def __enter__(self) -> DeviceLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StudyLockedError(
                f"another study (pid {holder}) is measuring on the same devices "
                f"(lock {self.path}); wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
