"""Resume after the study process dies: a finished run is kept, not redone; a partial one is
set aside; no run that no entry points to is counted; a resume never rewrites the protocol
that already ran (#14)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from faults_fixtures import T0, calls, finish, make_result, study_data
from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.config.study import build_study_config
from llenergymeasure.reporting.loading import load_results
from llenergymeasure.results.io import write_experiment
from llenergymeasure.results.study import StudyEntry, aggregate_study
from llenergymeasure.study.runner import run_study

HERE = Path(__file__).resolve().parent

# Runs a study in its own process, so the test can SIGKILL it (its child dies with it).
STUDY_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from faults_fixtures import finish, study_data
from llenergymeasure.config.study import build_study_config
from llenergymeasure.study.runner import run_study
if __name__ == "__main__":
    data = study_data(execution={"n_cycles": int(sys.argv[3]), "experiment_timeout_s": 60})
    run_study(build_study_config(data), out_dir=Path(sys.argv[2]), target=finish)
"""


class Notes:
    """A study observer that keeps the notes."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def started(self, study_dir: str, total: int, already_done: int) -> None: ...
    def waiting(self, seconds: float, reason: str) -> None: ...
    def running(self, position: int, total: int, entry: Any, n_cycles: int) -> None: ...
    def finished(self, entry: Any) -> None: ...
    def phase(self, name: str) -> None: ...

    def note(self, message: str) -> None:
        self.notes.append(message)


@pytest.fixture
def faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the children record their calls (FAULTS_CALLS); the study goes under out/."""
    monkeypatch.setenv("FAULTS_CALLS", str(tmp_path / "calls"))
    monkeypatch.setenv("FAULTS_HANGING", str(tmp_path / "hanging"))
    for name in ("FAULTS_HANG_AT", "FAULTS_HANG_MODE", "FAULTS_DISK_FULL", "FAULTS_FILL_AT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def kill_study_when_a_child_hangs(tmp_path: Path, n_cycles: int) -> Path:
    """Start a study whose FAULTS_HANG_AT-th child writes and hangs; SIGKILL the study then."""
    script = tmp_path / "study.py"
    script.write_text(STUDY_SCRIPT)
    out = tmp_path / "out"
    command = [sys.executable, str(script), str(HERE), str(out), str(n_cycles)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (tmp_path / "hanging").exists():
        assert process.poll() is None, process.communicate()[0].decode()
        assert time.monotonic() < deadline, "no child reached the hang"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (study_dir,) = out.iterdir()
    return study_dir


def manifest(study_dir: Path) -> dict[str, Any]:
    return dict(json.loads((study_dir / "manifest.json").read_text()))


def visible_runs(study_dir: Path) -> list[str]:
    return sorted(p.name for p in (study_dir / "runs").iterdir() if not p.name.startswith("."))


def resume(study_dir: Path, observer: Notes | None = None, **execution: Any) -> Any:
    data = study_data()
    data["execution"].update(execution)
    return run_study(
        build_study_config(data),
        out_dir=study_dir.parent,
        resume=study_dir,
        target=finish,
        observer=observer,
    )


def test_a_run_that_finished_before_a_sigkill_is_kept_not_redone(
    faults: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study dies after its 2nd child wrote its result, before the manifest said done."""
    monkeypatch.setenv("FAULTS_HANG_AT", "2")
    study_dir = kill_study_when_a_child_hangs(faults, n_cycles=2)
    assert [e["status"] for e in manifest(study_dir)["entries"]][:2] == ["done", "running"]

    monkeypatch.delenv("FAULTS_HANG_AT")
    observer = Notes()
    result = resume(study_dir, observer)

    # the killed run is adopted: 4 entries, 4 children in all, 4 result directories
    assert calls(faults / "calls") == ["faults_n1", "faults_n2", "faults_n1", "faults_n2"]
    assert [e.status for e in result.entries] == ["done"] * 4
    pointed = sorted(Path(e.result_dir or "").name for e in result.entries)
    assert visible_runs(study_dir) == pointed and len(set(pointed)) == 4
    assert any("kept, not run again" in note for note in observer.notes)
    # study_result.json lists exactly those, and the report of runs/ shows 4 runs
    listed = json.loads((study_dir / "study_result.json").read_text())["files"]
    assert (
        sorted(Path(f).name for f in listed if f.count("/") == 1 and f.startswith("runs/"))
        == pointed
    )
    assert len(load_results(study_dir / "runs")) == 4
    report = CliRunner().invoke(app, ["report", str(study_dir / "runs")], terminal_width=200)
    assert report.exit_code == 0, report.output
    cycles = re.findall(r"^│ [^│]+│ (\d+) +│", report.output, re.MULTILINE)  # per row
    assert sum(int(n) for n in cycles) == 4, report.output


def test_a_partial_run_left_by_a_sigkill_is_set_aside_reported_and_run_again(
    faults: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTS_HANG_AT", "2")
    monkeypatch.setenv("FAULTS_HANG_MODE", "partial")  # result.json cut short
    study_dir = kill_study_when_a_child_hangs(faults, n_cycles=1)

    monkeypatch.delenv("FAULTS_HANG_AT")
    observer = Notes()
    result = resume(study_dir, observer, n_cycles=1)

    assert calls(faults / "calls") == ["faults_n1", "faults_n2", "faults_n2"]  # run again
    assert [e.status for e in result.entries] == ["done", "done"]
    assert visible_runs(study_dir) == sorted(Path(e.result_dir or "").name for e in result.entries)
    (partial,) = result.entries[1].set_aside
    assert partial.startswith("runs/.partial/")
    assert (study_dir / partial).is_dir()
    assert any(partial in note for note in observer.notes)
    assert not any(".partial" in f for f in result.files)
    assert len(load_results(study_dir / "runs")) == 2


def orphaned_study(tmp_path: Path) -> tuple[Path, list[StudyEntry]]:
    """A study directory whose runs/ holds two runs its entries point to and one orphan."""
    study_dir = tmp_path / "study"
    config = build_study_config(study_data()).experiments_resolved[0].model_dump(mode="json")
    runs = []
    for _ in range(3):
        result, records = make_result(config)
        runs.append(write_experiment(result, records, study_dir / "runs", "faults_n1"))
    entries = [
        StudyEntry(
            experiment_index=0,
            cycle_index=cycle,
            experiment_name="faults_n1",
            status="done",
            result_dir=f"runs/{runs[cycle].name}",
        )
        for cycle in range(2)
    ]
    document = {
        "study_name": "faults",
        "study_design_hash": "0",
        "created_at": "2025-01-02T00:00:00Z",
        "execution": {},
        "experiments": [config],
        "entries": [e.model_dump(mode="json") for e in entries],
    }
    (study_dir / "manifest.json").write_text(json.dumps(document))
    return study_dir, entries


def test_a_run_no_entry_points_to_is_counted_nowhere(tmp_path: Path) -> None:
    study_dir, entries = orphaned_study(tmp_path)
    config = json.loads((study_dir / "manifest.json").read_text())["experiments"][0]
    study = aggregate_study(study_dir, "faults", "0", {}, [config], entries, T0, T0)
    assert sorted(f for f in study.files if f.count("/") == 1) == sorted(
        e.result_dir or "" for e in entries
    )
    (orphan,) = set(visible_runs(study_dir)) - {Path(e.result_dir or "").name for e in entries}
    assert not any(orphan in f for f in study.files)
    assert sorted(load_results(study_dir / "runs")["result_dir"]) == sorted(
        str((study_dir / (e.result_dir or "")).resolve()) for e in entries
    )


def test_resuming_a_finished_study_with_another_order_or_fewer_cycles_keeps_its_protocol(
    faults: Path,
) -> None:
    first = run_study(build_study_config(study_data()), out_dir=faults / "out", target=finish)
    study_dir = Path(first.output_dir or "")
    assert first.execution["cycle_order"] == "interleaved"

    for change in ({"cycle_order": "sequential"}, {"n_cycles": 1}):
        again = resume(study_dir, **change)
        assert len(calls(faults / "calls")) == 4  # nothing ran again
        for execution in (
            again.execution,
            manifest(study_dir)["execution"],
            json.loads((study_dir / "study_result.json").read_text())["execution"],
        ):
            assert execution["cycle_order"] == "interleaved"
            assert execution["n_cycles"] == 2
        assert all(e.execution == first.execution for e in again.entries)
        assert again.mixed_execution == []


def test_a_top_up_under_another_order_is_recorded_per_entry_and_called_mixed(
    faults: Path,
) -> None:
    first = run_study(build_study_config(study_data()), out_dir=faults / "out", target=finish)
    study_dir = Path(first.output_dir or "")

    topped = resume(study_dir, n_cycles=3, cycle_order="sequential")
    assert len(calls(faults / "calls")) == 6  # only the new cycle ran
    assert topped.execution["n_cycles"] == 3 and topped.execution["cycle_order"] == "interleaved"
    orders = {
        (e.experiment_index, e.cycle_index): (e.execution or {}).get("cycle_order")
        for e in topped.entries
    }
    assert orders == {
        (0, 0): "interleaved",
        (1, 0): "interleaved",
        (0, 1): "interleaved",
        (1, 1): "interleaved",
        (0, 2): "sequential",
        (1, 2): "sequential",
    }
    assert topped.mixed_execution == ["cycle_order"]
    saved = json.loads((study_dir / "study_result.json").read_text())
    assert saved["mixed_execution"] == ["cycle_order"]

    plain = resume(study_dir, n_cycles=4, cycle_order="interleaved")
    assert plain.execution["n_cycles"] == 4
    assert plain.mixed_execution == ["cycle_order"]  # what ran in cycle 3 still ran


def test_settle_adopts_a_result_moved_into_runs_or_still_staged(tmp_path: Path) -> None:
    """Killed after the move (the entry points at runs/<name>), or between saving that name
    and the move (the result is still in staging): either way kept, nothing set aside."""
    from llenergymeasure.study.staging import settle, staging_dir

    config = build_study_config(study_data()).experiments_resolved[0].model_dump(mode="json")
    notes: list[str] = []
    for moved in (True, False):
        study_dir = tmp_path / f"study-{moved}"
        entry = StudyEntry(
            experiment_index=0, cycle_index=int(moved), experiment_name="a", status="running"
        )
        staging = staging_dir(study_dir, entry)
        result, records = make_result(config)
        written = write_experiment(result, records, staging, "a")
        entry.result_dir = f"runs/{written.name}"
        if moved:
            written.rename(study_dir / "runs" / written.name)
            entry.result_dir = f"runs/{written.name}"
        settle(study_dir, entry, lambda: None, notes.append)
        assert entry.status == "done" and entry.set_aside == []
        assert (study_dir / (entry.result_dir or "") / "result.json").is_file()
        assert not staging.exists()
    assert len(notes) == 2


def test_a_running_entry_without_a_result_runs_again(tmp_path: Path) -> None:
    from llenergymeasure.study.staging import settle

    entry = StudyEntry(experiment_index=0, cycle_index=0, experiment_name="a", status="running")
    os.makedirs(tmp_path / "runs")
    settle(tmp_path, entry, lambda: None, lambda _: None)
    assert entry.status == "pending" and entry.result_dir is None and entry.set_aside == []
