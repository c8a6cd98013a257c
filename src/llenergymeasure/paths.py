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


def default_results_dir() -> Path:
    """Where result directories are written unless ``--out`` says otherwise."""
    return Path(os.environ.get("LLEM_RESULTS_DIR", "results")).expanduser()


def make_shareable(folder: Path) -> None:
    """Give a ``mkdtemp`` folder (mode 0700) the permissions a plain ``mkdir`` would get."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
