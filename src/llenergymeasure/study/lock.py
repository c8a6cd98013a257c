"""Locks that keep measurements apart: one per physical device, one per study directory.

- :class:`DeviceLock`: one lock file per physical device (a GPU by UUID, or the CPU host on a
  machine without a visible GPU), taken in sorted order, so "every visible GPU" overlaps any
  subset of them however ``CUDA_VISIBLE_DEVICES`` names it. Studies hold it for their whole
  run, single experiments for theirs; a second measurement is refused or, with ``wait``,
  queues behind the first.
- :class:`StudyDirLock`: a lock file inside a study directory, held for the whole run or
  resume, so two ``--resume`` of one study never measure its entries twice.

Both are exclusive ``flock`` locks: the kernel drops them when the holder exits, even by
SIGKILL, so a crashed run never leaves a stale lock. Each lock file holds its holder's pid and
command line, which the refusal names.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from types import TracebackType

from llenergymeasure.devices import physical_gpu_ids
from llenergymeasure.errors import LLEMError, ResultsError
from llenergymeasure.paths import lock_dir

logger = logging.getLogger(__name__)

CPU_HOST = "cpu"
"""The device a measurement occupies on a machine (or under a ``CUDA_VISIBLE_DEVICES``) with
no visible GPU: the CPU host."""
STUDY_LOCK_FILE = ".llem-study.lock"
"""The lock file inside a study directory (hidden: not one of the study's result files)."""


class LockedError(LLEMError):
    """Another llem process holds a lock this run needs (exit 1): the message names it."""


class DeviceBusyError(LockedError):
    """Another measurement is running on one of these devices."""


class StudyInUseError(LockedError):
    """Another llem process is running (or resuming) this study directory."""


def devices_in_use(visible: str | None = None) -> list[str]:
    """What a measurement started by this process occupies: the physical GPUs it can see
    (:func:`~llenergymeasure.devices.physical_gpu_ids`), or :data:`CPU_HOST` where it sees
    none.

    Args:
        visible: a ``CUDA_VISIBLE_DEVICES`` value; None reads the environment.
    """
    return physical_gpu_ids(visible) or [CPU_HOST]


class _LockFile:
    """One ``flock``-ed file that records who holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> None:
        """Open (and create) the lock file.

        Raises:
            ResultsError: it cannot be created or opened (the message says why).
        """
        try:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except PermissionError:  # another user's lock file in a shared lock directory
                fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise ResultsError(f"cannot open the lock file {self.path}: {exc.strerror}") from None
        with contextlib.suppress(OSError):  # let every user of a shared directory take it
            os.fchmod(fd, 0o666)
        self._fd = fd

    def try_lock(self) -> bool:
        """Take the lock if it is free; False if another holds it."""
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._record_holder()
        return True

    def lock(self) -> None:
        """Take the lock, waiting as long as it takes (Ctrl-C interrupts)."""
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._record_holder()

    def holder(self) -> str:
        """Who holds the lock, as its holder recorded it."""
        assert self._fd is not None
        try:
            text = os.pread(self._fd, 4096, 0).decode(errors="replace").strip()
        except OSError:
            text = ""
        return text or "pid unknown"

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def _record_holder(self) -> None:
        assert self._fd is not None
        since = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        text = f"pid {os.getpid()} ({_command()}, since {since})"
        with contextlib.suppress(OSError):  # read-only in a shared directory: cannot say
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text.encode(), 0)


def _command() -> str:
    """This process's command line, short: ``llem run study.yaml --resume ...``."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    if program == "__main__.py":  # python -m <package>
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        name = getattr(spec, "name", "") or ""
        program = f"python -m {name.removesuffix('.__main__')}"
    text = " ".join([program, *sys.argv[1:]])
    return text if len(text) <= 200 else text[:197] + "..."


class DeviceLock:
    """Exclusive use of physical devices for one measurement (or one whole study).

    Args:
        devices: the devices to hold (:func:`devices_in_use`); each gets its own lock file,
            ``device-<id>.lock``, taken in sorted order (so two waiters never deadlock).
        root: the lock directory (default: ``$LLEM_LOCK_DIR`` or the cache's ``locks/``).
        wait: when a device is busy, wait for it (logging who holds it) instead of raising.

    Raises (on entry):
        DeviceBusyError: a device is busy and ``wait`` is False; the message names the
            device and the process that holds it.
        ResultsError: a lock file cannot be created.
        KeyboardInterrupt: while waiting; every lock taken so far is released.
    """

    def __init__(self, *devices: str, root: Path | None = None, wait: bool = False) -> None:
        directory = root or lock_dir()
        self.devices = sorted(set(devices))
        self.paths = [directory / f"device-{_file_safe(d)}.lock" for d in self.devices]
        self.wait = wait
        self._held: list[_LockFile] = []

    def __enter__(self) -> DeviceLock:
        try:
            for device, path in zip(self.devices, self.paths, strict=True):
                self._take(device, _LockFile(path))
        except BaseException:
            self._release()
            raise
        return self

    def _take(self, device: str, lock: _LockFile) -> None:
        try:
            lock.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            where = lock.path.parent
            raise ResultsError(
                f"cannot create the lock directory {where}: {exc.strerror}"
            ) from None
        lock.open()
        self._held.append(lock)
        if lock.try_lock():
            return
        holder = lock.holder()
        if not self.wait:
            raise DeviceBusyError(
                f"device {device} is in use by another measurement: {holder}. Wait for it to "
                "end, or queue behind it with --wait-for-device (wait_for_device=True)"
            )
        logger.warning("waiting for device %s: in use by %s", device, holder)
        started = time.monotonic()
        lock.lock()
        logger.warning("device %s is free after %.0f s", device, time.monotonic() - started)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        while self._held:
            self._held.pop().close()


class StudyDirLock:
    """Exclusive use of a study directory by one run or resume (never waits).

    A directory that does not exist is not locked (there is nothing in it to protect).

    Raises (on entry):
        StudyInUseError: another process runs this study; the message names it.
        ResultsError: the lock file cannot be created in the directory.
    """

    def __init__(self, study_dir: Path) -> None:
        self.study_dir = study_dir
        self._lock = _LockFile(study_dir / STUDY_LOCK_FILE)

    def __enter__(self) -> StudyDirLock:
        if not self.study_dir.is_dir():  # nothing to protect; the caller says what is wrong
            return self
        self._lock.open()
        if not self._lock.try_lock():
            holder = self._lock.holder()
            self._lock.close()
            raise StudyInUseError(
                f"{self.study_dir} is being run by another llem process: {holder}. Two runs "
                "of one study would measure its entries twice; resume it once that one has "
                "ended"
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.close()


def _file_safe(device: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in device) or "device"
