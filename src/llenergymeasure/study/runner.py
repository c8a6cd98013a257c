"""Run a study: resolved experiments × cycles, each in an isolated process, resumable.

The manifest is rewritten after every status change; finished results are never touched
again; a failed or timed-out experiment is recorded and the study goes on. Each entry records
the execution settings it ran under, so a resume that changes them cannot rewrite history.
A killed study's runs are settled on resume (:mod:`llenergymeasure.study.staging`).
With ``execution.target_ci_pct`` the study adds cycles until every configuration's interval
of J per output token is within the target, or ``execution.cycle_limit`` cycles have run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from llenergymeasure.config.study import (
    StudyConfig,
    cycle_schedule,
    safe_name,
    study_design_hash,
)
from llenergymeasure.config.user_config import load_user_config, study_execution_defaults
from llenergymeasure.errors import ConfigError, ResultsError, describe_os_error
from llenergymeasure.fileio import numbered_paths
from llenergymeasure.results.io import check_out_dir
from llenergymeasure.results.study import (
    StudyEntry,
    StudyResult,
    aggregate_study,
    token_energy_intervals,
    write_study_result,
)
from llenergymeasure.study.isolation import ChildTarget, Outcome, run_isolated
from llenergymeasure.study.lock import DeviceLock, StudyDirLock, devices_in_use
from llenergymeasure.study.manifest import (
    Manifest,
    new_manifest,
    read_manifest,
    release_reserve,
    reserve_space,
    write_manifest,
)
from llenergymeasure.study.observer import SilentStudyObserver, StudyObserver
from llenergymeasure.study.staging import RUNS_DIR, adopt, prepare, set_aside_leftovers, settle
from llenergymeasure.study.worker import run_child

LOGS_DIR = "logs"

Execute = Callable[[dict[str, Any], Path, Path, float, ChildTarget], Outcome]
"""Runs one experiment and says how it ended (:func:`run_isolated`, a Ray or Docker executor)."""


def run_study(
    study: StudyConfig,
    *,
    out_dir: Path,
    resume: Path | None = None,
    observer: StudyObserver | None = None,
    target: ChildTarget = run_child,
    sleep: Callable[[float], None] = time.sleep,
    wait_for_device: bool = False,
) -> StudyResult:
    """Run (or resume) ``study`` and write its study directory.

    Args:
        study: the validated study (experiments already resolved).
        out_dir: parent of a new study directory (ignored when resuming).
        resume: an existing study directory to continue (or top up with more cycles).
        observer: receives progress events.
        target: the child entry point (tests inject fakes).
        sleep: used for the cool-down gaps.
        wait_for_device: when another measurement holds one of the devices, wait for it
            instead of refusing to start.

    The study holds its study directory (:class:`StudyDirLock`) and the physical devices
    this process sees (:class:`DeviceLock`) until it ends.

    Raises:
        ConfigError: ``resume`` is not a study directory or holds a different design, the
            Ray cluster cannot be reached, or the user config is invalid.
        DependencyError: runner 'ray' without Ray installed, or runner 'docker' where Docker,
            the NVIDIA container toolkit or an image is missing (each with its fix).
        ResultsError: the study directory, its manifest or the device lock could not be
            written (disk full, read-only, no permission, name too long); the message names
            the path and the cause. The manifest on disk stays valid, so the study resumes.
        StudyInUseError: another process runs (or resumes) this study directory.
        DeviceBusyError: another measurement holds a device, and ``wait_for_device`` is
            False.
        KeyboardInterrupt: after the current child is stopped and the manifest written.
    """
    observer = observer or SilentStudyObserver()
    study = with_user_defaults(study)
    check_out_dir(resume or out_dir)  # an unusable --out fails before anything starts
    try:
        # connects / preflights first: no study dir on failure
        with _executor(study, observer) as execute, ExitStack() as locks:
            if resume is not None:  # before its manifest is read: a second resume is refused
                locks.enter_context(StudyDirLock(resume))
            locks.enter_context(DeviceLock(*devices_in_use(), wait=wait_for_device))
            return _run_study(study, out_dir, resume, observer, target, sleep, execute, locks)
    except OSError as exc:  # anything not translated where it happened (the device lock)
        raise ResultsError(f"the study stopped: {describe_os_error(exc)}") from None


def with_user_defaults(study: StudyConfig) -> StudyConfig:
    """``study`` with the execution fields it leaves unset (gaps, runner) from the user config.

    Raises:
        ConfigError: the user config is invalid.
    """
    user = load_user_config().config
    execution = study_execution_defaults(study.execution, user)
    if execution is study.execution:
        return study
    return study.model_copy(update={"execution": execution})


def _executor(study: StudyConfig, observer: StudyObserver) -> AbstractContextManager[Execute]:
    """Local isolated children (their phases go to ``observer``), Ray tasks for ``runner:
    ray``, containers for ``docker``."""
    execution = study.execution
    if execution.runner == "ray":
        from llenergymeasure.study.ray_executor import RayExecutor

        return RayExecutor(execution.ray_address)
    if execution.runner == "docker":
        from llenergymeasure.study.docker_executor import DockerExecutor

        return DockerExecutor(e.backend for e in study.experiments_resolved)
    return nullcontext(partial(run_isolated, on_phase=observer.phase))


def _run_study(
    study: StudyConfig,
    out_dir: Path,
    resume: Path | None,
    observer: StudyObserver,
    target: ChildTarget,
    sleep: Callable[[float], None],
    execute: Execute,
    locks: ExitStack,
) -> StudyResult:
    experiments = study.experiments_resolved
    design_hash = study_design_hash(experiments)
    configs = [e.model_dump(mode="json") for e in experiments]
    execution = study.execution.model_dump(mode="json")
    if resume is not None:
        study_dir, manifest = resume, _resumed_manifest(resume, design_hash)
        manifest.execution = _resumed_execution(manifest, execution)
    else:
        study_dir = _new_study_dir(out_dir, study.name)
        locks.enter_context(StudyDirLock(study_dir))  # held until the study ends
        schedule = cycle_schedule(len(experiments), study.execution)
        manifest = new_manifest(study.name, design_hash, execution, configs, schedule, _now())
    for sub in (RUNS_DIR, LOGS_DIR):
        try:
            (study_dir / sub).mkdir(exist_ok=True)
        except OSError as exc:
            where = describe_os_error(exc, study_dir / sub)
            raise ResultsError(f"cannot create a study directory: {where}") from None
    started_at = manifest.created_at
    _run_cycles(manifest, study, study_dir, observer, target, sleep, execute)
    result = aggregate_study(
        study_dir, study.name, design_hash, manifest.execution, configs, manifest.entries,
        started_at, _now(),
    )  # fmt: skip
    write_study_result(result, study_dir)
    return result


def _run_cycles(
    manifest: Manifest,
    study: StudyConfig,
    study_dir: Path,
    observer: StudyObserver,
    target: ChildTarget,
    sleep: Callable[[float], None],
    execute: Execute,
) -> None:
    """Run every pending entry of the manifest's cycles, in the study's cycle order; with
    ``execution.target_ci_pct``, then add one cycle of every configuration at a time until
    each one's interval is within the target or ``execution.cycle_limit`` cycles are
    scheduled. Each added cycle is in the manifest (its entries pending, ``n_cycles`` raised)
    before it runs, so a killed study resumes it and goes on."""

    def save() -> None:
        write_manifest(manifest, study_dir)

    for entry in manifest.entries:  # what a killed study left: adopt, set aside, or rerun
        settle(study_dir, entry, save, observer.note)
    n_cycles = int(manifest.execution["n_cycles"])
    order = _cycle_order(len(manifest.experiments), study, n_cycles)
    entries = [manifest.entry(e, c) for e, c in order]
    save()
    try:
        reserve_space(study_dir, len(manifest.entries))
        observer.started(str(study_dir), len(entries), sum(e.status == "done" for e in entries))
        previous: StudyEntry | None = None
        position = 0
        while True:
            for entry in entries[position:]:
                position += 1
                if entry.status == "done":
                    continue
                _cool_down(previous, entry, study, observer, sleep)
                observer.running(position, len(entries), entry, n_cycles)
                _run_entry(entry, study, study_dir, target, execute, save, observer, manifest)
                observer.finished(entry)
                previous = entry
            if not _another_cycle(manifest, study, study_dir, n_cycles, observer):
                return
            n_cycles += 1
            added = _cycle_order(len(manifest.experiments), study, n_cycles)
            entries += [manifest.entry(e, c) for e, c in added if c == n_cycles - 1]
            manifest.execution["n_cycles"] = n_cycles
            save()
            reserve_space(study_dir, len(manifest.entries))
    finally:
        release_reserve(study_dir)


def _cycle_order(n_experiments: int, study: StudyConfig, n_cycles: int) -> list[tuple[int, int]]:
    """(experiment, cycle) pairs of ``n_cycles`` cycles in the study's cycle order."""
    execution = study.execution.model_copy(update={"n_cycles": n_cycles})
    return cycle_schedule(n_experiments, execution)


def _another_cycle(
    manifest: Manifest,
    study: StudyConfig,
    study_dir: Path,
    n_cycles: int,
    observer: StudyObserver,
) -> bool:
    """Whether a target needs one more cycle: some configuration's interval of J per output
    token is not within ``execution.target_ci_pct`` and fewer than ``cycle_limit`` cycles
    are scheduled (the observer is told which, and why).

    Raises:
        ResultsError: a done entry's result cannot be read.
    """
    execution = study.execution
    target_pct = execution.target_ci_pct
    if target_pct is None or n_cycles >= execution.cycle_limit:
        return False
    intervals = token_energy_intervals(study_dir, manifest.entries, len(manifest.experiments))
    missed = [
        f"{manifest.experiments[index].get('name')} {_pct_text(interval.pct)}"
        for index, interval in enumerate(intervals)
        if not interval.within(target_pct)
    ]
    if not missed:
        return False
    observer.note(
        f"cycle {n_cycles + 1} of at most {execution.cycle_limit} added (target ±"
        f"{target_pct:g} % on J per output token): {', '.join(missed)}"
    )
    return True


def _pct_text(pct: float | None) -> str:
    return "(no interval yet)" if pct is None else f"±{pct:.3g} %"


def _cool_down(
    previous: StudyEntry | None,
    entry: StudyEntry,
    study: StudyConfig,
    observer: StudyObserver,
    sleep: Callable[[float], None],
) -> None:
    """A cycle gap when the cycle changes, else a config gap between experiments."""
    if previous is None:
        return
    execution = study.execution
    if entry.cycle_index != previous.cycle_index and execution.cycle_gap_s > 0:
        observer.waiting(execution.cycle_gap_s, "between cycles")
        sleep(execution.cycle_gap_s)
    elif execution.config_gap_s > 0:
        observer.waiting(execution.config_gap_s, "between experiments")
        sleep(execution.config_gap_s)


def _run_entry(
    entry: StudyEntry,
    study: StudyConfig,
    study_dir: Path,
    target: ChildTarget,
    execute: Execute,
    save: Callable[[], None],
    observer: StudyObserver,
    manifest: Manifest,
) -> None:
    """Run one entry into its staging folder, then adopt its result and record how it ended."""
    staging = prepare(study_dir, entry, observer.note)
    entry.status, entry.started_at, entry.ended_at = "running", _now(), None
    entry.execution = study.execution.model_dump(mode="json")
    entry.result_dir = entry.error = entry.stderr_tail = None
    entry.exit_code = None
    save()
    log = study_dir / LOGS_DIR / f"{entry.experiment_name}_c{entry.cycle_index + 1}.log"
    config = manifest.experiments[entry.experiment_index]
    try:
        outcome = execute(config, staging, log, study.execution.experiment_timeout_s, target)
    except KeyboardInterrupt:
        settle(study_dir, entry, save, observer.note)  # a run that finished anyway is kept
        save()
        raise
    if outcome.status == "done" and outcome.result_dir is not None:
        adopt(study_dir, entry, Path(outcome.result_dir), save)  # fsynced before 'done'
    _record(entry, outcome)
    set_aside_leftovers(study_dir, entry, observer.note)
    save()


def _record(entry: StudyEntry, outcome: Outcome) -> None:
    entry.status = "done" if outcome.status == "done" else "failed"
    entry.ended_at = _now()
    entry.exit_code = outcome.exit_code
    entry.error = outcome.error
    entry.stderr_tail = outcome.stderr_tail


def _resumed_manifest(study_dir: Path, design_hash: str) -> Manifest:
    manifest = read_manifest(study_dir)
    if manifest.study_design_hash != design_hash:
        raise ConfigError(
            f"{study_dir} holds a different study (design hash {manifest.study_design_hash}, "
            f"this file resolves to {design_hash}); resume it with the study file it was "
            "started from, or start a new study"
        )
    return manifest


def _resumed_execution(manifest: Manifest, requested: dict[str, Any]) -> dict[str, Any]:
    """The study's execution after a resume: the settings it started with, ``n_cycles``
    raised by a top-up (the requested settings if nothing has run yet). ``n_cycles`` counts
    the cycles scheduled, those a target added included, so a resume runs them; the target
    (``target_ci_pct``, ``max_cycles``) is the requested one: it decides how many cycles
    run, not how a run is measured.

    A resume that changes other settings (``cycle_order``, gaps) runs its entries under them
    and records them on those entries, never here: what ran before stays described as it
    ran. Entries run by an older version, which kept one protocol per study, get the
    manifest's.
    """
    recorded = manifest.execution
    for entry in manifest.entries:
        if entry.execution is None and entry.status in ("running", "done", "failed"):
            entry.execution = dict(recorded)
    if not recorded or all(e.execution is None for e in manifest.entries):
        return requested
    n_cycles = max(int(recorded.get("n_cycles", 1)), int(requested["n_cycles"]))
    target = {key: requested.get(key) for key in ("target_ci_pct", "max_cycles")}
    return {**recorded, "n_cycles": n_cycles, **target}


def _new_study_dir(out_dir: Path, name: str) -> Path:
    """A new, empty ``<name>_<UTC timestamp>`` directory (suffixed if taken)."""
    safe = safe_name(name, default="study")
    stem = f"{safe}_{_now().strftime('%Y%m%dT%H%M%S')}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"cannot create {describe_os_error(exc, out_dir)}") from None
    for candidate in numbered_paths(out_dir, stem):
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            where = describe_os_error(exc, candidate)
            raise ResultsError(f"cannot create the study directory: {where}") from None
        return candidate
    raise ResultsError(f"no free study directory name for {stem} under {out_dir}")


def _now() -> datetime:
    return datetime.now(timezone.utc)
