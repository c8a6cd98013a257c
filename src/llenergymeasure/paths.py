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


def default_results_dir() -> Path:
    """Where result directories are written unless ``--out`` says otherwise:
    ``LLEM_RESULTS_DIR``, else the user config's ``results_dir``, else ``results/``.

    Raises:
        ConfigError: the user config file or an ``LLEM_*`` variable is invalid.
    """
    from llenergymeasure.config.user_config import load_user_config

    return load_user_config().config.results_dir.expanduser()


def make_shareable(path: Path) -> None:
    """Give a ``mkdtemp``/``mkstemp`` path (mode 0700/0600) the permissions a plain
    ``mkdir``/``open`` would get under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
