"""The study manifest: every (experiment, cycle) and its status, rewritten atomically after
every change so an interrupted study can resume exactly where it stopped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from llenergymeasure.errors import ConfigError
from llenergymeasure.fileio import write_text_atomically
from llenergymeasure.results.study import StudyEntry

MANIFEST_FILE = "manifest.json"


class Manifest(BaseModel):
    """What a study is and how far it got."""

    model_config = ConfigDict(extra="ignore")

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

    def reset_interrupted(self) -> None:
        """Entries left 'running' by a killed study run again."""
        for entry in self.entries:
            if entry.status == "running":
                entry.status = "pending"
                entry.started_at = None


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
    """Replace ``manifest.json`` atomically (a reader never sees half a file)."""
    write_text_atomically(study_dir / MANIFEST_FILE, manifest.model_dump_json(indent=2))


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
    except (OSError, ValidationError) as exc:
        raise ConfigError(f"{path}: unreadable study manifest: {exc}") from None
