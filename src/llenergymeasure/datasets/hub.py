"""Hugging Face hub datasets through the ``datasets`` library: load a split at a revision,
tell which commit was loaded, and turn the library's failures into :class:`DatasetError`.

``datasets`` keeps a hub dataset it has prepared under
``HF_DATASETS_CACHE/<namespace>___<name>/<config>/<version>/<commit sha>/``. A dataset there
loads without the network (``HF_DATASETS_OFFLINE=1`` stops it trying first); the folder's
name is the commit that was loaded, recorded on the result. ``datasets`` is imported lazily
(``llenergymeasure[datasets]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llenergymeasure.errors import DatasetError, DependencyError, describe_exception

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_INSTALL_HINT = "pip install 'llenergymeasure[datasets]'"


@dataclass(frozen=True)
class HubSplit:
    """One split of a hub dataset as loaded.

    Attributes:
        name: the dataset's hub name.
        table: the ``datasets.Dataset`` (memory-mapped from the local cache).
        resolved_revision: the commit SHA loaded, or None when the cache does not say.
    """

    name: str
    table: Any
    resolved_revision: str | None

    @property
    def n_rows(self) -> int:
        """Rows in the split."""
        return int(self.table.num_rows)

    def column(self, name: str, field: str) -> list[Any]:
        """Every value of column ``name``.

        Args:
            name: the column.
            field: the config field that named it, for the error.

        Raises:
            DatasetError: the split has no such column.
        """
        columns = list(self.table.column_names)
        if name not in columns:
            raise DatasetError(
                f"{field}: the hub dataset '{self.name}' has no column '{name}'; its columns are "
                f"{', '.join(repr(c) for c in columns)}."
            )
        return list(self.table[name])


def load_hub_split(name: str, revision: str, split: str) -> HubSplit:
    """Load ``split`` of the hub dataset ``name`` at ``revision`` (fetched into the local
    Hugging Face cache if it is not there and the hub can be reached).

    Raises:
        DependencyError: ``datasets`` is not installed.
        DatasetError: the dataset cannot be fetched and is not cached, does not exist or is
            gated, has no such split or revision, or the cache holds another commit than a
            pinned ``revision``.
    """
    library = _datasets()
    where = f"The hub dataset '{name}' at revision '{revision}'"
    try:
        table = library.load_dataset(name, split=split, revision=revision)
    except ConnectionError as exc:
        raise DatasetError(_unreachable(where, library, exc)) from None
    except FileNotFoundError as exc:  # also DatasetNotFoundError: unknown, gated, no revision
        raise DatasetError(f"{where} could not be loaded: {exc}") from None
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise DatasetError(f"dataset.split '{split}': {exc}") from None
        raise DatasetError(f"{where} could not be loaded: {describe_exception(exc)}") from None
    except Exception as exc:  # anything else datasets raises while reading or preparing
        raise DatasetError(f"{where} could not be loaded: {describe_exception(exc)}") from None
    resolved = resolved_revision(table)
    if _COMMIT.match(revision) and resolved is not None and resolved != revision:
        raise DatasetError(
            f"{where}: the local cache holds commit {resolved}, not the pinned {revision}, and "
            "the pinned commit could not be fetched; fetch it where the hub is reachable (with "
            "HF_DATASETS_OFFLINE unset)."
        )
    return HubSplit(name, table, resolved)


def resolved_revision(table: Any) -> str | None:
    """The commit SHA a loaded ``datasets.Dataset`` came from: the name of the cache folder
    holding its Arrow files; None for a dataset not backed by that cache."""
    files = getattr(table, "cache_files", None) or []
    if not files:
        return None
    folder = Path(str(files[0].get("filename", ""))).parent.name
    return folder if _COMMIT.match(folder) else None


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise DependencyError(
            f"Hub datasets need the 'datasets' library, which is not installed: {_INSTALL_HINT}"
        ) from None
    return datasets


def _unreachable(where: str, library: Any, exc: BaseException) -> str:
    cache = library.config.HF_DATASETS_CACHE
    return (
        f"{where} could not be fetched from the Hugging Face hub and is not in the local "
        f"cache ({cache}): {exc}. Fetch it once where the hub is reachable (or copy in a "
        "cache that holds it; HF_HOME or HF_DATASETS_CACHE say where the cache is). A cached "
        "dataset loads offline: set HF_DATASETS_OFFLINE=1 so the network is not tried first."
    )
