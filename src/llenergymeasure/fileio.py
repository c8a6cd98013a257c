"""Atomic file writes: a reader sees the old file or the new one, never a part of either."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def make_shareable(path: Path) -> None:
    """Give a ``mkdtemp``/``mkstemp`` path (mode 0700/0600) the permissions a plain
    ``mkdir``/``open`` would get under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def replace_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """Write via a hidden temporary file beside ``target`` (``write(tmp)``), fsync it, then
    rename it over ``target``: readers see the old file or the new one, never a part."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        make_shareable(tmp)  # mkstemp makes it 0600; give it a plain file's mode
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` (UTF-8) atomically."""
    replace_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
