"""The study manifest: every (experiment, cycle) and its status, rewritten atomically after
every change so an interrupted study can resume exactly where it stopped.

While a study runs, a hidden file (:data:`RESERVE_FILE`) holds disk space for the manifest:
when the disk fills, :func:`write_manifest` gives that space up so the entry that hit the full
disk is still recorded (failed, with the reason) before the study stops.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from llenergymeasure.errors import ConfigError, ResultsError, describe_os_error
from llenergymeasure.fileio import write_text_atomically
from llenergymeasure.results.study import StudyEntry

MANIFEST_FILE = "manifest.json"
RESERVE_FILE = ".manifest-reserve"
RESERVE_MIN_BYTES = 1 << 20
RESERVE_BYTES_PER_ENTRY = 8 << 10
"""An entry takes about 1 KB of manifest, up to 6 KB with an error and its log tail; the atomic
rewrite needs room for the new copy while the old one still exists."""
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class Manifest(BaseModel):
    """What a study is and how far it got."""

    # a swept load.request_rate may be inf: written as "Infinity", which the config reads back
    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="strings")

    schema_version: str = "1.0"
    study_name: str
    study_design_hash: str
    created_at: datetime
    execution: dict[str, Any]
    experiments: list[dict[str, Any]]
    entries: list[StudyEntry]

    def entry(self, experiment_index: int, cycle_index: int) -> StudyEntry:
        """The entry for one (experiment, cycle), added as pending if it is new (top-up)."""
        for entry in self.entries:
            if (entry.experiment_index, entry.cycle_index) == (experiment_index, cycle_index):
                return entry
        entry = StudyEntry(
            experiment_index=experiment_index,
            cycle_index=cycle_index,
            experiment_name=str(self.experiments[experiment_index].get("name")),
            status="pending",
        )
        self.entries.append(entry)
        return entry


def new_manifest(
    name: str,
    design_hash: str,
    execution: dict[str, Any],
    experiments: Sequence[dict[str, Any]],
    schedule: Sequence[tuple[int, int]],
    now: datetime,
) -> Manifest:
    """A manifest with every scheduled (experiment, cycle) pending."""
    manifest = Manifest(
        study_name=name,
        study_design_hash=design_hash,
        created_at=now,
        execution=execution,
        experiments=list(experiments),
        entries=[],
    )
    for experiment_index, cycle_index in schedule:
        manifest.entry(experiment_index, cycle_index)
    return manifest


def write_manifest(manifest: Manifest, study_dir: Path) -> None:
    """Replace ``manifest.json`` atomically (a reader never sees half a file) and durably.

    On a full disk the space held by :func:`reserve_space` is given up and the write tried
    again; then the manifest on disk is up to date, but the error is raised all the same: a
    study cannot go on without room for its results.

    Raises:
        ResultsError: the manifest could not be written, or only with the reserved space; the
            message names the file and the cause, and says how to resume.
    """
    path = study_dir / MANIFEST_FILE
    text = manifest.model_dump_json(indent=2)
    try:
        write_text_atomically(path, text)
        return
    except OSError as exc:
        error = exc
    saved = False
    if error.errno in _DISK_FULL and release_reserve(study_dir):
        try:
            write_text_atomically(path, text)
            saved = True
        except OSError as exc:
            error = exc
    cause = describe_os_error(error, path)
    hint = f"; then resume: llem run STUDY.yaml --resume {study_dir}" if path.is_file() else ""
    if saved:
        raise ResultsError(
            f"the disk is full ({cause}): the study stopped, its manifest up to date (written "
            f"in the space it held in reserve); free some space{hint}"
        )
    raise ResultsError(f"cannot write the study manifest: {cause}{hint}")


def reserve_space(study_dir: Path, n_entries: int) -> None:
    """Hold disk space beside the manifest (:data:`RESERVE_FILE`), for :func:`write_manifest`
    to give up when the disk fills. Best effort: where the space cannot be had, nothing is
    held (a disk full already fails on the next manifest write)."""
    path = study_dir / RESERVE_FILE
    size = max(RESERVE_MIN_BYTES, n_entries * RESERVE_BYTES_PER_ENTRY)
    try:
        if path.stat().st_size >= size:
            return
    except OSError:
        pass
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            # Random bytes, not zeros: a compressing filesystem would store zeros in no space.
            for offset in range(0, size, 1 << 20):
                os.write(fd, os.urandom(min(1 << 20, size - offset)))
        finally:
            os.close(fd)
    except OSError:
        release_reserve(study_dir)


def release_reserve(study_dir: Path) -> bool:
    """Give up the space :func:`reserve_space` held; whether there was any."""
    try:
        (study_dir / RESERVE_FILE).unlink()
    except OSError:
        return False
    return True


def read_manifest(study_dir: Path) -> Manifest:
    """Read a study directory's manifest.

    Raises:
        ConfigError: the directory is not a study directory (exit 2).
    """
    path = study_dir / MANIFEST_FILE
    if not path.is_file():
        raise ConfigError(f"{study_dir}: not a study directory (no {MANIFEST_FILE})")
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValidationError) as exc:
        raise ConfigError(f"{path}: unreadable study manifest: {exc}") from None


def result_dirs(study_dir: Path) -> set[Path]:
    """The result directories the manifest's entries point to (absolute): a study's runs.

    Raises:
        ConfigError: the manifest is missing or unreadable.
    """
    return {
        (study_dir / e.result_dir).resolve()
        for e in read_manifest(study_dir).entries
        if e.result_dir is not None
    }
