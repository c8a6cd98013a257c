"""Atomic, durable file writes: a reader sees the old file or the new one, never a part of
either, and what was written survives a power loss once the call returns."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

MAX_NUMBERED = 9_999
"""The most names :func:`numbered_paths` offers (``name`` … ``name_9999``)."""


def numbered_paths(parent: Path, name: str) -> Iterator[Path]:
    """``parent/name``, then ``parent/name_2``, ``name_3`` … : the names to try, in order, for a
    new file or directory that must never replace an existing one."""
    yield parent / name
    for number in range(2, MAX_NUMBERED + 1):
        yield parent / f"{name}_{number}"


def make_shareable(path: Path) -> None:
    """Give a ``mkdtemp``/``mkstemp`` path (mode 0700/0600) the permissions a plain
    ``mkdir``/``open`` would get under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def fsync_file(path: Path) -> None:
    """Flush ``path``'s content to the device."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Flush ``path``'s entries (files created, renamed or removed in it) to the device.

    A filesystem that cannot sync a directory (EINVAL, ENOTSUP) is left as it is.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush every file under directory ``path``, then each directory (deepest first)."""
    folders = [path]
    for parent, subfolders, files in os.walk(path):
        for name in sorted(files):
            fsync_file(Path(parent, name))
        folders.extend(Path(parent, name) for name in subfolders)
    for folder in reversed(folders):
        fsync_dir(folder)


def replace_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """Write via a hidden temporary file beside ``target`` (``write(tmp)``), fsync it, rename
    it over ``target`` and fsync the directory: readers see the old file or the new one,
    never a part, and after a power loss the new one is there."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        fsync_file(tmp)
        make_shareable(tmp)  # mkstemp makes it 0600; give it a plain file's mode
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` (UTF-8) atomically."""
    replace_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
