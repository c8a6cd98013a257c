"""Machine-local directories (XDG conventions, overridable with LLEM_* variables)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where converted models and other reusable artefacts live (``LLEM_CACHE_DIR``)."""
    explicit = os.environ.get("LLEM_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llenergymeasure"


def lock_dir() -> Path:
    """Where study device locks live (``LLEM_LOCK_DIR``, default: the cache dir's locks/)."""
    explicit = os.environ.get("LLEM_LOCK_DIR")
    return Path(explicit).expanduser() if explicit else cache_dir() / "locks"
