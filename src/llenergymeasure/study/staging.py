"""Where a running entry's result is written, and how it joins the study, even after a kill.

The child writes its result directory into the entry's own hidden staging folder,
``runs/.entry-e<experiment>-c<cycle>/`` (:func:`prepare`). The parent then points the entry at
the directory's final name in ``runs/`` and saves the manifest, moves the directory there,
fsyncs it, and only then marks the entry done (:func:`adopt`). So whenever the study process
dies, the next resume knows where to look (:func:`settle`): an entry left ``running`` whose
result is complete (at its recorded name, or still in staging) is adopted without a rerun;
anything partial is moved under ``runs/.partial/`` (recorded on the entry and reported) and the
entry runs again. No result directory in ``runs/`` is left without an entry pointing to it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from llenergymeasure.errors import ResultsError
from llenergymeasure.fileio import fsync_dir, fsync_tree, numbered_paths
from llenergymeasure.results.io import REQUESTS_FILE, load_requests, load_result
from llenergymeasure.results.study import StudyEntry

RUNS_DIR = "runs"
PARTIAL_DIR = ".partial"

Save = Callable[[], None]
"""Writes the manifest."""
Note = Callable[[str], None]
"""Tells the user something (the observer's ``note``)."""


def staging_dir(study_dir: Path, entry: StudyEntry) -> Path:
    """The hidden folder that ``entry``'s run writes its result directory into."""
    return study_dir / RUNS_DIR / f".entry-e{entry.experiment_index}-c{entry.cycle_index}"


def prepare(study_dir: Path, entry: StudyEntry, note: Note) -> Path:
    """An empty staging folder for a new run of ``entry`` (an earlier attempt's leftovers are
    set aside first)."""
    set_aside_leftovers(study_dir, entry, note)
    staging = staging_dir(study_dir, entry)
    staging.mkdir(parents=True, exist_ok=True)
    return staging


def adopt(study_dir: Path, entry: StudyEntry, result_dir: Path, save: Save) -> None:
    """Make ``result_dir`` (a finished run of ``entry``) part of the study.

    A directory in the entry's staging folder is moved into ``runs/``: the entry is pointed at
    the new name and the manifest saved first, so a kill during the move leaves the result
    where a resume looks. Its files and directories are fsynced before this returns; marking
    the entry done is the caller's next step. A directory elsewhere (an executor that ignored
    the staging folder) stays where it is.
    """
    staging = staging_dir(study_dir, entry)
    if result_dir.resolve().parent != staging.resolve():
        fsync_tree(result_dir)
        entry.result_dir = os.path.relpath(result_dir, study_dir)
        return
    runs = study_dir / RUNS_DIR
    final = _free_name(runs, result_dir.name)
    entry.result_dir = final.relative_to(study_dir).as_posix()
    save()
    os.rename(result_dir, final)
    fsync_tree(final)
    fsync_dir(runs)
    fsync_dir(staging)


def settle(study_dir: Path, entry: StudyEntry, save: Save, note: Note) -> None:
    """Put an entry right after its study process stopped (killed, or interrupted).

    An entry left ``running`` becomes ``done`` if its result is complete (at the name the
    manifest recorded, or still in staging), else ``pending`` to run again. Whatever else its
    staging folder holds is set aside. Other entries are only tidied.
    """
    if entry.status == "running":
        recorded = study_dir / entry.result_dir if entry.result_dir else None
        if recorded is not None and recorded.is_dir() and is_complete(recorded):
            _mark_adopted(entry, recorded, note)
        else:
            if recorded is not None and recorded.exists():
                _set_aside(study_dir, entry, [recorded], note)
            entry.result_dir = None
            staged = _staged(study_dir, entry)
            found = next((d for d in staged if d.is_dir() and is_complete(d)), None)
            if found is not None:
                adopt(study_dir, entry, found, save)
                _mark_adopted(entry, study_dir / (entry.result_dir or ""), note)
            else:
                entry.status, entry.started_at = "pending", None
    set_aside_leftovers(study_dir, entry, note)


def set_aside_leftovers(study_dir: Path, entry: StudyEntry, note: Note) -> None:
    """Move whatever ``entry``'s staging folder still holds under ``runs/.partial/`` and
    remove the folder."""
    staging = staging_dir(study_dir, entry)
    leftovers = _staged(study_dir, entry)
    if leftovers:
        _set_aside(study_dir, entry, leftovers, note)
    with contextlib.suppress(OSError):  # already gone, or a network filesystem's stray file
        staging.rmdir()


def is_complete(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a whole, readable result (``result.json``, the requests it
    names, and its time series if it names one)."""
    try:
        result = load_result(run_dir)
        load_requests(run_dir / (result.requests_file or REQUESTS_FILE))
    except ResultsError:
        return False
    return result.timeseries_file is None or (run_dir / result.timeseries_file).is_file()


def _staged(study_dir: Path, entry: StudyEntry) -> list[Path]:
    staging = staging_dir(study_dir, entry)
    return sorted(staging.iterdir()) if staging.is_dir() else []


def _mark_adopted(entry: StudyEntry, run_dir: Path, note: Note) -> None:
    result = load_result(run_dir)
    entry.status, entry.ended_at = "done", result.ended_at
    entry.error = entry.stderr_tail = None
    entry.exit_code = None
    note(
        f"{entry.experiment_name} cycle {entry.cycle_index + 1} had finished when the study "
        f"stopped: its result ({entry.result_dir}) is kept, not run again"
    )


def _set_aside(study_dir: Path, entry: StudyEntry, paths: list[Path], note: Note) -> None:
    """Move ``paths`` into a new folder under ``runs/.partial/``, recorded on the entry."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    name = f"entry-e{entry.experiment_index}-c{entry.cycle_index}_{stamp}"
    folder = _free_name(study_dir / RUNS_DIR / PARTIAL_DIR, name)
    folder.mkdir(parents=True)
    for path in paths:
        os.rename(path, folder / path.name)
    relative = folder.relative_to(study_dir).as_posix()
    entry.set_aside.append(relative)
    note(
        f"{entry.experiment_name} cycle {entry.cycle_index + 1}: an incomplete result of an "
        f"interrupted run was moved to {relative}"
    )


def _free_name(parent: Path, name: str) -> Path:
    """The first of ``parent/name``, ``name_2``, ``name_3``... that does not exist."""
    free = next((path for path in numbered_paths(parent, name) if not path.exists()), None)
    if free is None:
        raise ResultsError(f"no free directory name for {name} under {parent}")
    return free
