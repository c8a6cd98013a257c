"""Studies end to end: isolation (raise, hang, crash), resume after SIGKILL, top-up, lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from llenergymeasure.cli import app
from llenergymeasure.config.study import build_study_config
from llenergymeasure.study import run_study
from llenergymeasure.study.lock import DeviceBusyError, DeviceLock
from llenergymeasure.testing.models import tiny_experiment
from llenergymeasure.testing.study_targets import by_name

pytest.importorskip("transformers")


def tiny_study(model_dir: Path, **fields: Any) -> dict[str, Any]:
    return tiny_experiment(model_dir, name="tiny", **fields)


def test_failures_are_recorded_and_the_study_goes_on(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tiny_study(
        tiny_model_dir,
        experiments=[
            {"name": "fine"},
            {"name": "raise-me", "n": 3},
            {"name": "hang-me", "n": 4},
            {"name": "crash-me", "n": 5},
        ],
        execution={"n_cycles": 1, "experiment_timeout_s": 12},
    )
    study = build_study_config(data)
    result = run_study(study, out_dir=tmp_path, target=by_name)

    by_experiment = {e.experiment_name: e for e in result.entries}
    assert by_experiment["fine"].status == "done"
    assert [e.experiment_name for e in result.failed] == ["raise-me", "hang-me", "crash-me"]
    assert by_experiment["raise-me"].error == "BackendError: the GPU caught fire"
    assert "caught fire" in (by_experiment["raise-me"].stderr_tail or "")
    assert "timed out after 12 s" in (by_experiment["hang-me"].error or "")
    assert by_experiment["crash-me"].exit_code == 139
    assert "died" in (by_experiment["crash-me"].error or "")
    assert "about to crash" in (by_experiment["crash-me"].stderr_tail or "")
    rows = pq.read_table(Path(result.output_dir or "") / "results.parquet").to_pylist()
    assert sorted(r["status"] for r in rows) == ["done", "failed", "failed", "failed"]


def manifest(study_dir: Path) -> dict[str, Any]:
    return dict(json.loads((study_dir / "manifest.json").read_text()))


def done_files(study_dir: Path) -> dict[str, bytes]:
    files = {}
    for entry in manifest(study_dir)["entries"]:
        if entry["status"] == "done":
            for file in sorted((study_dir / entry["result_dir"]).iterdir()):
                files[str(file)] = file.read_bytes()
    return files


def test_sigkill_then_resume_then_top_up(tiny_model_dir: Path, tmp_path: Path) -> None:
    study_file = tmp_path / "study.yaml"
    data = tiny_study(
        tiny_model_dir,
        sweep={"pytorch.batch_size": [1, 2]},
        execution={"n_cycles": 2},
    )
    study_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "llenergymeasure.cli", "run", str(study_file), "--out",
               str(out), "-q"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    study_dir = _wait_for_first_done(out, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = done_files(study_dir)
    assert 1 <= len({Path(p).parent for p in before}) < 4

    runner = CliRunner()
    resumed = runner.invoke(app, ["run", str(study_file), "--resume", str(study_dir), "-q"])
    assert resumed.exit_code == 0, resumed.output
    after = done_files(study_dir)
    assert {k: after[k] for k in before} == before  # finished results untouched
    assert [e["status"] for e in manifest(study_dir)["entries"]] == ["done"] * 4
    design = manifest(study_dir)["study_design_hash"]

    data["execution"]["n_cycles"] = 3
    study_file.write_text(yaml.safe_dump(data))
    topped = runner.invoke(app, ["run", str(study_file), "--resume", str(study_dir), "-q"])
    assert topped.exit_code == 0, topped.output
    final = manifest(study_dir)
    assert final["study_design_hash"] == design
    assert sorted((e["experiment_index"], e["cycle_index"]) for e in final["entries"]) == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2),
    ]  # fmt: skip
    assert {k: done_files(study_dir)[k] for k in before} == before
    summary = json.loads((study_dir / "study_result.json").read_text())
    assert [a["n_cycles_done"] for a in summary["experiments"]] == [3, 3]


def _wait_for_first_done(out: Path, process: subprocess.Popen[bytes], status: str = "done") -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for study_dir in out.glob("tiny_*"):
            entries = (
                manifest(study_dir)["entries"] if (study_dir / "manifest.json").exists() else []
            )
            if any(e["status"] == status for e in entries):
                return study_dir
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    raise AssertionError(f"no experiment reached {status!r} within 120 s")


def test_ctrl_c_stops_the_child_writes_the_manifest_and_exits_130(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    study_file = tmp_path / "study.yaml"
    data = tiny_study(tiny_model_dir, sweep={"n": [2, 3]}, execution={"n_cycles": 1})
    study_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "llenergymeasure.cli", "run", str(study_file), "--out",
               str(out), "-q"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    study_dir = _wait_for_first_done(out, process, status="running")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    statuses = [e["status"] for e in manifest(study_dir)["entries"]]
    assert "running" not in statuses and "pending" in statuses


def test_resume_refuses_a_different_design(tiny_model_dir: Path, tmp_path: Path) -> None:
    study_dir = tmp_path / "s"
    study_dir.mkdir()
    (study_dir / "manifest.json").write_text(json.dumps({
        "study_name": "tiny", "study_design_hash": "0" * 16, "created_at": "2026-01-01T00:00:00Z",
        "execution": {}, "experiments": [], "entries": [],
    }))  # fmt: skip
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(tiny_study(tiny_model_dir, sweep={"n": [1, 2]})))
    result = CliRunner().invoke(app, ["run", str(study_file), "--resume", str(study_dir)])
    assert result.exit_code == 2 and "different study" in result.output


def test_a_second_study_on_the_same_devices_is_refused(tmp_path: Path) -> None:
    with (
        DeviceLock("all", root=tmp_path),
        pytest.raises(DeviceBusyError, match=str(os.getpid())),
        DeviceLock("all", root=tmp_path),
    ):
        pass
    with DeviceLock("all", root=tmp_path):  # released: free again
        pass


def test_a_failed_experiment_makes_the_cli_exit_1(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tiny_study(
        tiny_model_dir,
        experiments=[{"name": "fine"}, {"name": "missing", "model": str(tmp_path / "nope")}],
        execution={"n_cycles": 1},
    )
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["run", str(study_file), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    assert "missing" in result.output and "not found" in result.output


def test_embedded_model_study_writes_results_statistics_and_a_ranked_table(
    embedded_folder: Path, tmp_path: Path
) -> None:
    """The acceptance study: 2 configurations × 3 cycles of the embedded model."""
    data = {
        "name": "embedded",
        "n": 2,
        "max_output_tokens": 4,
        "warmup": {"n_warmup": 1, "max_output_tokens": 2},
        "baseline": {"enabled": False},
        "model": "smollm2-135m",
        "sweep": {"pytorch.batch_size": [1, 2]},
    }
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["run", str(study_file), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "ranked by J/token" in result.output and "embedded_bs1" in result.output
    (study_dir,) = (tmp_path / "o").iterdir()
    assert len(list((study_dir / "runs").iterdir())) == 6  # default: 3 interleaved cycles
    rows = pq.read_table(study_dir / "results.parquet").to_pylist()
    assert len(rows) == 6 and {r["config.pytorch.batch_size"] for r in rows} == {1, 2}
    summary = json.loads((study_dir / "study_result.json").read_text())
    for aggregate in summary["experiments"]:
        tokens_per_s = aggregate["output_tokens_per_s"]
        assert aggregate["n_cycles_done"] == 3 and tokens_per_s["n"] == 3
        assert tokens_per_s["ci95_low"] < tokens_per_s["mean"] < tokens_per_s["ci95_high"]
