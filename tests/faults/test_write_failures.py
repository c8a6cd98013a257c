"""Writes that fail: a full disk mid-study, a manifest, study directory, device lock or model
cache that cannot be written (one line naming the path and the cause, exit 1), and result files
fsynced before the manifest calls them done (#14).

Failures are injected as the real OSError (ENOSPC, EROFS, EACCES, ENAMETOOLONG): CI runs as
root, where permission bits stop nothing. One test fills a real tiny tmpfs where it can mount
one.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from faults_fixtures import calls, finish, study_data
from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.config.study import build_study_config
from llenergymeasure.errors import LLEMError, ResultsError
from llenergymeasure.study.runner import run_study

ERRNOS = [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.ENAMETOOLONG]


def os_error(code: int, path: object = None) -> OSError:
    return OSError(code, os.strerror(code), *([str(path)] if path is not None else []))


def cause(code: int) -> str:
    return f"{os.strerror(code)} ({errno.errorcode[code]})"


def fail_opening(
    monkeypatch: pytest.MonkeyPatch, code: int, matches: Callable[[Path], bool]
) -> None:
    """``os.open`` and ``os.mkdir`` raise OSError(code) for the paths ``matches`` accepts."""
    real_open, real_mkdir = os.open, os.mkdir

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if matches(Path(os.fsdecode(path))):
            raise os_error(code, path)
        return real_open(path, flags, *args, **kwargs)

    def fake_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if matches(Path(os.fsdecode(path))):
            raise os_error(code, path)
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


@pytest.fixture
def faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FAULTS_CALLS", str(tmp_path / "calls"))
    for name in ("FAULTS_HANG_AT", "FAULTS_FULL_AT", "FAULTS_DISK_FULL", "FAULTS_FILL_AT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def manifest(study_dir: Path) -> dict[str, Any]:
    return dict(json.loads((study_dir / "manifest.json").read_text()))


def temp_files(study_dir: Path) -> list[str]:
    return sorted(p.name for p in study_dir.iterdir() if p.name.endswith(".tmp"))


def one_study(out: Path) -> Path:
    (study_dir,) = out.iterdir()
    return study_dir


# --- a full disk mid-study -------------------------------------------------------------------


class FullDisk:
    """The parent's view of a disk that fills when the FAULTS_DISK_FULL file appears: every
    ``Path.write_text`` under ``root`` then fails with ENOSPC, until space is freed by deleting
    the study's reserve file (when there was one at the moment the disk filled)."""

    def __init__(self, root: Path, flag: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.flag = root, flag
        self.reserves: list[Path] | None = None
        real = pathlib.Path.write_text

        def write_text(path: Path, *args: Any, **kwargs: Any) -> int:
            if self.full(path):
                raise os_error(errno.ENOSPC)
            return real(path, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, "write_text", write_text)

    def full(self, path: Path) -> bool:
        if not self.flag.exists() or self.root not in path.parents:
            return False
        if self.reserves is None:  # the moment it filled up
            self.reserves = list(self.root.rglob(".manifest-reserve"))
        return not any(not r.exists() for r in self.reserves)


def test_a_full_disk_fails_the_entry_with_its_reason_and_resume_completes(
    faults: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = faults / "disk-full"
    monkeypatch.setenv("FAULTS_DISK_FULL", str(flag))
    monkeypatch.setenv("FAULTS_FULL_AT", "1")  # the first child fills the disk
    FullDisk(faults / "out", flag, monkeypatch)
    study = build_study_config(study_data(execution={"n_cycles": 1}))

    with pytest.raises(ResultsError) as stopped:
        run_study(study, out_dir=faults / "out", target=finish)
    study_dir = one_study(faults / "out")
    message = str(stopped.value)
    assert str(study_dir / "manifest.json") in message and cause(errno.ENOSPC) in message
    assert "\n" not in message and "--resume" in message
    entries = manifest(study_dir)["entries"]  # valid, and it says what happened
    assert [e["status"] for e in entries] == ["failed", "pending"]
    assert "No space left on device" in entries[0]["error"]
    assert temp_files(study_dir) == []

    flag.unlink()  # space freed
    monkeypatch.delenv("FAULTS_FULL_AT")
    resumed = run_study(study, out_dir=faults, resume=study_dir, target=finish)
    assert [e.status for e in resumed.entries] == ["done", "done"]
    assert calls(faults / "calls") == ["faults_n1", "faults_n1", "faults_n2"]


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs (skipped where this process cannot mount one)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_really_full_tmpfs_fails_the_entry_and_resume_completes(
    faults: Path, tiny_tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filler = tiny_tmpfs / "filler"
    monkeypatch.setenv("FAULTS_FILL", str(filler))
    monkeypatch.setenv("FAULTS_FILL_AT", "1")  # the first child fills the disk, then writes
    study = build_study_config(study_data(execution={"n_cycles": 1}))
    out = tiny_tmpfs / "out"

    try:
        run_study(study, out_dir=out, target=finish)
    except ResultsError as exc:  # stopped: the manifest could only be saved in the reserve
        assert cause(errno.ENOSPC) in str(exc) and "manifest.json" in str(exc)
    study_dir = one_study(out)
    first = manifest(study_dir)["entries"][0]
    assert first["status"] == "failed" and "No space left on device" in first["error"]
    assert temp_files(study_dir) == []

    filler.unlink()
    monkeypatch.delenv("FAULTS_FILL_AT")
    resumed = run_study(study, out_dir=out, resume=study_dir, target=finish)
    assert [e.status for e in resumed.entries] == ["done", "done"]


# --- one line naming the path and the cause, exit 1 --------------------------------------------


def run_cli(tmp_path: Path, *extra: str) -> Any:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(study_data(execution={"n_cycles": 1})))
    args = ["run", str(study_file), "--out", str(tmp_path / "out"), "-q", *extra]
    return CliRunner().invoke(app, args)


def assert_one_line(result: Any, path: object, code: int) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    (line,) = [line for line in result.output.splitlines() if "error" in line]
    assert str(path) in line and os.strerror(code) in line, result.output


@pytest.mark.parametrize("code", ERRNOS, ids=[errno.errorcode[c] for c in ERRNOS])
def test_a_manifest_that_cannot_be_written_is_one_line_and_exit_1(
    faults: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    fail_opening(monkeypatch, code, lambda p: p.name.startswith(".manifest.json."))
    result = run_cli(faults)
    study_dir = one_study(faults / "out")
    assert_one_line(result, study_dir / "manifest.json", code)
    assert errno.errorcode[code] in result.output
    assert temp_files(study_dir) == []


@pytest.mark.parametrize("code", ERRNOS, ids=[errno.errorcode[c] for c in ERRNOS])
def test_a_study_directory_that_cannot_be_made_is_one_line_and_exit_1(
    faults: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    out = faults / "out"
    fail_opening(monkeypatch, code, lambda p: p.parent == out and p.name.startswith("faults_"))
    result = run_cli(faults)
    assert_one_line(result, out / "faults_", code)


@pytest.mark.parametrize("code", ERRNOS, ids=[errno.errorcode[c] for c in ERRNOS])
def test_a_lock_directory_that_cannot_be_written_is_one_line_and_exit_1(
    faults: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    locks = faults / "locks"
    monkeypatch.setenv("LLEM_LOCK_DIR", str(locks))
    fail_opening(monkeypatch, code, lambda p: p == locks or locks in p.parents)
    assert_one_line(run_cli(faults), locks, code)


@pytest.mark.parametrize("code", ERRNOS, ids=[errno.errorcode[c] for c in ERRNOS])
def test_a_model_cache_that_cannot_be_written_names_the_path_and_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    from llenergymeasure.backends.pytorch.gguf_cache import converted_folder

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF not really")
    cache = tmp_path / "cache"
    fail_opening(monkeypatch, code, lambda p: p == cache or cache in p.parents)
    with pytest.raises(LLEMError) as failed:
        converted_folder(gguf, root=cache)
    message = str(failed.value)
    assert failed.value.exit_code == 1 and "\n" not in message
    assert str(cache) in message and os.strerror(code) in message


# --- durability ---------------------------------------------------------------------------------


class Fsyncs:
    """Records what each os.fsync flushed, and the manifest each manifest fsync would write."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[Path, dict[str, Any] | None]] = []
        real = os.fsync

        def fsync(fd: int) -> None:
            path = Path(os.readlink(f"/proc/self/fd/{fd}"))
            written = None
            if path.name.startswith(".manifest.json."):
                written = json.loads(path.read_text(encoding="utf-8"))
            self.calls.append((path, written))
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    def first(self, path: Path) -> int:
        """Index of the first fsync of ``path``."""
        return next(i for i, (p, _) in enumerate(self.calls) if p == path)

    def done_at(self, experiment_index: int) -> int:
        """Index of the first manifest fsync in which that experiment's entry is done."""
        return next(
            i
            for i, (_, written) in enumerate(self.calls)
            if written is not None
            and any(
                e["status"] == "done" and e["experiment_index"] == experiment_index
                for e in written["entries"]
            )
        )


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


@needs_proc
def test_result_files_and_directories_are_fsynced_before_the_manifest_says_done(
    faults: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = Fsyncs(monkeypatch)
    study = build_study_config(study_data(execution={"n_cycles": 1}))
    result = run_study(study, out_dir=faults / "out", target=finish)
    study_dir = Path(result.output_dir or "").resolve()
    for entry in result.entries:
        run_dir = study_dir / (entry.result_dir or "")
        done = fsyncs.done_at(entry.experiment_index)
        for path in (
            run_dir / "result.json",
            run_dir / "requests.parquet",
            run_dir,
            study_dir / "runs",
        ):
            assert fsyncs.first(path) < done, path


@needs_proc
def test_write_experiment_fsyncs_its_files_and_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faults_fixtures import write_result

    fsyncs = Fsyncs(monkeypatch)
    config = build_study_config(study_data()).experiments_resolved[0].model_dump(mode="json")
    root = tmp_path.resolve() / "runs"
    run_dir = write_result(config, str(root))
    flushed = [p for p, _ in fsyncs.calls]
    staged = [p for p in flushed if p.parent.parent == root and p.parent.name.startswith(".")]
    assert sorted(p.name for p in staged) == ["requests.parquet", "result.json"]
    assert staged[0].parent in flushed  # the staging directory, before its rename
    assert root in flushed and run_dir.is_dir()
