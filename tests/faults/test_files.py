"""File faults (issue #14): an unusable output directory, corrupt result and study files, a
damaged converted-model cache, what a dry run checks, and symbolic-link loops under a report.

CI runs as root, where permission bits stop nothing, so a read-only, forbidden or full
filesystem is injected by patching ``os`` to raise the real errno under one folder; a too-long
name and a file in place of a folder are real. Where a tiny tmpfs can be mounted, a full disk
is real too.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import llenergymeasure as llem
from llenergymeasure.backends.pytorch import gguf_cache
from llenergymeasure.cli.app import app
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import EXIT_FAILURE, EXIT_USAGE, BackendError, ConfigError, ResultsError
from llenergymeasure.results.io import RESULT_FILE, load_result, write_experiment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))  # report_fixtures
from report_fixtures import Written, make_result, records, write_all

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.output


def _under(path: object, root: Path) -> bool:
    try:
        return Path(os.fsdecode(path)).resolve().is_relative_to(root.resolve())  # type: ignore[arg-type]
    except (TypeError, ValueError, OSError):
        return False


def fail_under(monkeypatch: pytest.MonkeyPatch, root: Path, code: int) -> None:
    """Make the filesystem under ``root`` behave as errno ``code`` says.

    EROFS and EACCES: creating a folder or opening a file for writing fails there. ENOSPC:
    folders and empty files can be made (a full disk still has inodes), writing bytes fails.
    """
    real_mkdir, real_open, real_write = os.mkdir, os.open, os.write
    doomed: set[int] = set()
    error = OSError(code, os.strerror(code))

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if code != errno.ENOSPC and _under(path, root):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        real_mkdir(path, *args, **kwargs)

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if code != errno.ENOSPC and writing and _under(path, root):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        fd = real_open(path, flags, *args, **kwargs)
        if writing and _under(path, root):
            doomed.add(fd)
        return fd

    def write(fd: int, data: Any) -> int:
        if fd in doomed:
            raise error
        return real_write(fd, data)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "write", write)


class NeverLoads:
    """A backend that records a model load (the preflight must stop the run before it)."""

    name = "never"

    def __init__(self) -> None:
        self.loaded = False

    def load(self, config: ExperimentConfig) -> Any:
        self.loaded = True
        raise BackendError("the model was loaded")

    def unload(self) -> None:
        pass


def _tiny(**fields: Any) -> dict[str, Any]:
    return {"model": "tiny", "n": 2, "energy": {"sampler": "null"}, **fields}


UNUSABLE = {
    "read-only": errno.EROFS,
    "forbidden": errno.EACCES,
    "full": errno.ENOSPC,
}


# 5. --out is checked before any model loads -------------------------------------------------


@pytest.mark.parametrize("kind", sorted(UNUSABLE))
def test_a_run_refuses_an_unusable_out_dir_before_loading(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    fail_under(monkeypatch, out, UNUSABLE[kind])
    backend = NeverLoads()
    with pytest.raises(ConfigError) as raised:
        llem.run(_tiny(), out_dir=out, backend=backend)  # type: ignore[arg-type]
    assert not backend.loaded
    assert str(out) in str(raised.value)
    assert os.strerror(UNUSABLE[kind]) in str(raised.value)
    assert raised.value.exit_code == EXIT_USAGE
    assert list(out.iterdir()) == []  # the probe leaves nothing behind


@pytest.mark.parametrize("kind", ["a file", "under a file", "a name too long"])
def test_a_run_refuses_an_out_path_that_cannot_be_a_folder(kind: str, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    out = {
        "a file": tmp_path / "file",
        "under a file": tmp_path / "file" / "sub",
        "a name too long": tmp_path / ("x" * 300) / "results",
    }[kind]
    backend = NeverLoads()
    with pytest.raises(ConfigError, match="cannot write results under") as raised:
        llem.run(_tiny(), out_dir=out, backend=backend)  # type: ignore[arg-type]
    assert not backend.loaded
    assert str(out) in str(raised.value)


def test_a_missing_out_dir_is_fine_and_not_created_by_the_check(tmp_path: Path) -> None:
    from llenergymeasure.results.io import check_out_dir

    check_out_dir(tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []


def _study_file(tmp_path: Path, **fields: Any) -> Path:
    path = tmp_path / "study.yaml"
    study = {"name": "s", "model": "smollm2-135m", "sweep": {"pytorch.batch_size": [1, 2]}}
    path.write_text(yaml.safe_dump({**study, **fields}))
    return path


def test_a_study_refuses_a_read_only_out_dir_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _study_file(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    fail_under(monkeypatch, out, errno.EROFS)
    code, output = invoke("run", str(study), "--out", str(out))
    assert code == EXIT_USAGE, output
    assert "Read-only file system" in output and str(out) in output.replace("\n", "")
    assert list(out.iterdir()) == []


def test_a_300_character_name_gets_a_short_directory_with_a_hash(tmp_path: Path) -> None:
    reqs = records(2, 0.1)
    dirs = []
    for tail in ("a", "b"):
        label = "x" * 299 + tail
        config = ExperimentConfig(model="tiny", name=label)
        dirs.append(write_experiment(make_result(config, 1.0, reqs), reqs, tmp_path, label))
    assert dirs[0] != dirs[1]  # two long names that differ only at the end stay apart
    for folder in dirs:
        assert len(folder.name) <= 120 and folder.name.startswith("x" * 80)
        assert load_result(folder).config.name is not None


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir()
    if not shutil.which("mount"):
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True, check=False,
    )  # fmt: skip
    return done.returncode == 0


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs (where this process may mount one), unmounted afterwards."""
    folder = tmp_path / "tmpfs"
    if not _mount_tmpfs(folder, "512k"):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)


def test_a_really_full_disk_is_refused_before_loading(tiny_tmpfs: Path) -> None:
    backend = NeverLoads()
    with pytest.raises(ConfigError, match="No space left on device"):
        llem.run(_tiny(), out_dir=tiny_tmpfs / "results", backend=backend)  # type: ignore[arg-type]
    assert not backend.loaded
    assert list(tiny_tmpfs.iterdir()) == []


# 13. A dry run makes the checks a run makes first --------------------------------------------


def test_dry_run_of_a_missing_dataset_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    code, output = invoke("run", "--model", "smollm2-135m", "--dataset", str(missing), "--dry-run")
    assert code == EXIT_USAGE, output
    assert "missing.jsonl" in output.replace("\n", "")


def test_dry_run_of_a_study_checks_every_dataset(tmp_path: Path) -> None:
    study = _study_file(
        tmp_path, experiments=[{"name": "ok"}, {"name": "bad", "dataset": "nope.jsonl"}]
    )
    code, output = invoke("run", str(study), "--dry-run")
    assert code == EXIT_USAGE and "nope.jsonl" in output, output


@pytest.mark.parametrize("kind", ["a file", "read-only", "full"])
def test_dry_run_reports_an_unusable_out_dir(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    if kind == "a file":
        out.write_text("")
    else:
        out.mkdir()
        fail_under(monkeypatch, out, errno.EROFS if kind == "read-only" else errno.ENOSPC)
    code, output = invoke("run", "--model", "smollm2-135m", "--out", str(out), "--dry-run")
    assert code == EXIT_USAGE, output
    assert "cannot write results under" in output and str(out) in output.replace("\n", "")


def test_dry_run_of_a_new_out_dir_passes_and_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "new" / "results"
    code, output = invoke("run", "--model", "smollm2-135m", "--out", str(out), "--dry-run")
    assert code == 0, output
    assert list(tmp_path.iterdir()) == []


def test_dry_run_lists_library_versions_a_run_would_refuse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import llenergymeasure.cli.dry_run as dry_run
    from llenergymeasure.backends.registry import BackendStatus

    def status(name: str) -> BackendStatus:
        versions = {"torch": "1.13.0", "transformers": "4.50.0"}
        return BackendStatus(name, True, versions, "pip install ...")

    monkeypatch.setattr(dry_run, "backend_status", status)
    code, output = invoke("run", "--model", "smollm2-135m", "--dry-run", "--json")
    assert code == 0, output
    problems = json.loads(output)["problems"]
    assert problems == ["backend 'pytorch': torch 1.13.0 is outside the tested range >=2.1,<3"]
    code, output = invoke("run", "--model", "smollm2-135m", "--dry-run")
    assert code == 0 and "a run here would stop" in output and "torch 1.13.0" in output
    monkeypatch.setenv("LLEM_ALLOW_UNTESTED", "1")  # a run would measure (with a warning)
    code, output = invoke("run", "--model", "smollm2-135m", "--dry-run", "--json")
    assert code == 0 and json.loads(output)["problems"] == []


# 8. Corrupt result, study and manifest files --------------------------------------------------


def _garble(path: Path) -> None:
    path.write_bytes(bytes(range(128, 256)) * 8)  # not UTF-8, not JSON, not Parquet


def _truncate(path: Path, keep: int = 200) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def test_load_result_of_random_bytes_names_the_file(written: Written) -> None:
    file = written.experiment_a / RESULT_FILE
    _garble(file)
    with pytest.raises(ResultsError, match="not UTF-8") as raised:
        load_result(written.experiment_a)
    assert str(file) in str(raised.value)


def test_report_skips_an_unreadable_result_and_reports_the_rest(written: Written) -> None:
    _garble(written.experiment_a / RESULT_FILE)
    code, output = invoke("report", str(written.experiment_a.parent))
    assert code == 0, output
    assert "unreadable" in output and str(written.experiment_a / RESULT_FILE) in output
    assert "solo_b" in output


def test_report_skips_a_truncated_results_parquet(written: Written) -> None:
    table = written.study / "results.parquet"
    _truncate(table)
    code, output = invoke("report", str(written.study), str(written.experiment_b))
    assert code == 0, output
    assert "unreadable" in output and str(table) in output
    assert "solo_b" in output and "demo_bs1" not in output


def test_report_leaves_out_one_cycle_whose_result_is_unreadable(written: Written) -> None:
    run = next((written.study / "runs").glob("demo_bs1_c0_*"))
    _garble(run / RESULT_FILE)
    frame = llem.load_results(written.study)
    assert str(run / RESULT_FILE) in frame.attrs["unreadable"][0]
    assert sorted(frame.loc[frame["experiment_name"] == "demo_bs1", "cycle_index"]) == [1, 2]


def test_report_names_a_truncated_requests_parquet(written: Written) -> None:
    requests = written.experiment_a / "requests.parquet"
    _truncate(requests)
    code, output = invoke("report", str(written.experiment_a), str(written.experiment_b))
    assert code == 0, output
    assert str(requests) in output


def test_report_of_nothing_readable_is_a_clear_error(written: Written) -> None:
    _garble(written.experiment_a / RESULT_FILE)
    code, output = invoke("report", str(written.experiment_a))
    assert code == EXIT_FAILURE
    assert "nothing readable" in output and str(written.experiment_a / RESULT_FILE) in output


def test_resume_with_a_corrupt_manifest_exits_2(tmp_path: Path) -> None:
    study_dir = tmp_path / "s_20250101T000000"
    study_dir.mkdir()
    _garble(study_dir / "manifest.json")
    code, output = invoke("run", str(_study_file(tmp_path)), "--resume", str(study_dir))
    assert code == EXIT_USAGE, output
    assert "manifest.json" in output


# 9. The converted-model cache is verified before use ------------------------------------------


@pytest.fixture
def fake_conversion(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Replace the transformers conversion with one writing 4 KiB of "weights"; returns the
    folders it converted into."""
    converted: list[Path] = []

    def convert(gguf_path: Path, out: Path) -> None:
        converted.append(out)
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(bytes(range(256)) * 16)

    monkeypatch.setattr(gguf_cache, "_convert", convert)
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))
    return converted


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + b"\1" * 100)
    return path


def _damage_by(kind: str) -> Callable[[Path], None]:
    def truncate(folder: Path) -> None:
        _truncate(folder / "model.safetensors", 100)

    def same_size(folder: Path) -> None:
        weights = folder / "model.safetensors"
        weights.write_bytes(b"\0" * weights.stat().st_size)

    def manifest(folder: Path) -> None:
        _garble(folder / gguf_cache.CACHE_MANIFEST)

    def missing(folder: Path) -> None:
        (folder / "model.safetensors").unlink()

    damages = {"truncated": truncate, "same size": same_size, "manifest": manifest}
    return {**damages, "missing": missing}[kind]


@pytest.mark.parametrize("kind", ["truncated", "same size", "manifest", "missing"])
def test_a_damaged_converted_model_is_rebuilt_with_a_warning(
    kind: str, gguf: Path, fake_conversion: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    folder = gguf_cache.converted_folder(gguf)
    assert folder.parent == Path(os.environ["LLEM_CACHE_DIR"]) / "converted"
    intact = (folder / "model.safetensors").read_bytes()
    _damage_by(kind)(folder)
    with caplog.at_level(logging.WARNING):
        again = gguf_cache.converted_folder(gguf)
    assert again == folder and len(fake_conversion) == 2
    assert (folder / "model.safetensors").read_bytes() == intact
    assert f"converted model cache {folder} is damaged" in caplog.text
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no leftovers


def test_an_intact_converted_model_is_used_without_hashing_its_weights(
    gguf: Path, fake_conversion: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = gguf_cache.converted_folder(gguf)
    hashed: list[Path] = []
    real = gguf_cache.file_sha256
    monkeypatch.setattr(gguf_cache, "file_sha256", lambda p: hashed.append(p) or real(p))
    assert gguf_cache.converted_folder(gguf) == folder
    assert hashed == [gguf] and len(fake_conversion) == 1  # only the cache key's hash


def test_a_touched_but_intact_file_is_hashed_once(gguf: Path, fake_conversion: list[Path]) -> None:
    folder = gguf_cache.converted_folder(gguf)
    weights = folder / "model.safetensors"
    os.utime(weights, ns=(1, 1))
    assert gguf_cache.damage(folder) is None
    manifest = json.loads((folder / gguf_cache.CACHE_MANIFEST).read_text())
    assert manifest["files"]["model.safetensors"]["mtime_ns"] == 1  # recorded: no hash next time
    assert len(fake_conversion) == 1


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_an_unwritable_cache_is_a_clear_error(
    code: int, gguf: Path, fake_conversion: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Path(os.environ["LLEM_CACHE_DIR"])
    cache.mkdir()
    fail_under(monkeypatch, cache, code)
    with pytest.raises(BackendError) as raised:
        gguf_cache.converted_folder(gguf)
    assert str(cache / "converted") in str(raised.value)
    assert os.strerror(code) in str(raised.value) and "LLEM_CACHE_DIR" in str(raised.value)
    assert raised.value.exit_code == EXIT_FAILURE


def test_a_full_cache_disk_is_a_clear_error(
    gguf: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def convert(gguf_path: Path, out: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "model.safetensors"))

    monkeypatch.setattr(gguf_cache, "_convert", convert)
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(BackendError, match="No space left on device") as raised:
        gguf_cache.converted_folder(gguf)
    assert str(tmp_path / "cache" / "converted") in str(raised.value)
    assert list((tmp_path / "cache" / "converted").iterdir()) == []  # staging removed


# 14. Symbolic-link loops under `llem report` --------------------------------------------------


def _within(seconds: int, call: Callable[[], Any]) -> Any:
    """``call()``, failing the test if it takes longer than ``seconds`` (it would hang)."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still searching after {seconds} s: a symbolic-link loop?")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        return call()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _links(folder: Path, names: Sequence[tuple[str, str]]) -> None:
    for name, target in names:
        (folder / name).symlink_to(target, target_is_directory=True)


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM")
def test_report_of_a_folder_with_symlink_loops_ends(written: Written) -> None:
    from llenergymeasure.reporting.loading import find_sources

    solo = written.experiment_a.parent
    _links(solo, [("self", "."), ("parent", ".."), ("again", ".")])
    _links(written.experiment_a, [("up", "../..")])
    sources = _within(20, lambda: find_sources(solo))
    assert {s.path for s in sources} >= {
        (written.experiment_a / RESULT_FILE).resolve(),
        (written.experiment_b / RESULT_FILE).resolve(),
    }
    assert len(sources) == len({s.path for s in sources})
    code, output = _within(60, lambda: invoke("report", str(solo)))
    assert code == 0 and "solo_a" in output and "solo_b" in output, output


def test_a_dangling_or_looping_link_is_ignored(written: Written) -> None:
    from llenergymeasure.reporting.loading import find_sources

    solo = written.experiment_a.parent
    (solo / "dangling").symlink_to(solo / "nowhere")
    (solo / "loop_a").symlink_to(solo / "loop_b")
    (solo / "loop_b").symlink_to(solo / "loop_a")
    assert len(find_sources(solo)) == 2


@pytest.fixture
def written(tmp_path: Path) -> Written:
    """A 2 x 3 study (one failed cycle) and experiments solo_a (no telemetry), solo_b."""
    return write_all(tmp_path)
