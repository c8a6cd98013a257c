"""Process faults: a study child never outlives its parent; one measurement per device; one
run per study directory.

The orphan tests SIGKILL a parent process moments after it has spawned its child (before and
after the child can arm its parent-death signal) and check that the child is gone and wrote
nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from typer.testing import CliRunner

from llenergymeasure.cli import app
from llenergymeasure.study import lock as locks
from llenergymeasure.testing import FAKE_NVML_ENV, FakeGpuSpec, install_fake_pynvml
from llenergymeasure.testing.models import tiny_experiment

# A child target that would write a result a second after it starts, unless it is killed.
_TARGET = """
import time
from pathlib import Path


def write_later(config, out_dir, log_path, conn):
    time.sleep(config["write_after_s"])
    result = Path(out_dir) / "result.txt"
    result.write_text("measured by an orphan")
    conn.send(("done", str(result)))
"""

# The parent: runs the target in an isolated child, as the study runner does.
_PARENT = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from llenergymeasure.study.isolation import run_isolated
import orphan_target
out = Path(sys.argv[2])
run_isolated({"write_after_s": 1.0}, out, out / "child.log", 60, orphan_target.write_later)
"""


def _spawned_child(parent: subprocess.Popen[bytes], timeout_s: float = 60) -> psutil.Process:
    """The parent's first `spawn` child (not multiprocessing's resource tracker), as soon as
    it exists."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in psutil.Process(parent.pid).children():
            try:
                if "--multiprocessing-fork" in child.cmdline():
                    return child
            except psutil.Error:
                continue
        assert parent.poll() is None, parent.communicate()
        time.sleep(0.002)
    raise AssertionError(f"no child process within {timeout_s} s")


def _gone(process: psutil.Process, timeout_s: float) -> bool:
    """Whether ``process`` has exited (a zombie nobody reaped counts) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def reap() -> Iterator[list[psutil.Process]]:
    """Processes to SIGKILL after the test, should one survive (it must not)."""
    survivors: list[psutil.Process] = []
    yield survivors
    for process in survivors:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _kill_parent_after(
    parent: subprocess.Popen[bytes], delay_s: float, reap: list[psutil.Process]
) -> psutil.Process:
    child = _spawned_child(parent)
    reap.append(child)
    time.sleep(delay_s)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    return child


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.1, 0.3])
def test_a_child_dies_with_its_parent_at_any_moment(
    delay_s: float, tmp_path: Path, reap: list[psutil.Process]
) -> None:
    """Killed before the child armed its death signal (0 s) or after: the child goes too."""
    (tmp_path / "orphan_target.py").write_text(_TARGET)
    out = tmp_path / "out"
    out.mkdir()
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(tmp_path), str(out)])
    child = _kill_parent_after(parent, delay_s, reap)

    assert _gone(child, timeout_s=5.0), f"child {child.pid} outlived its parent"
    time.sleep(1.5)  # past the moment the target would have written its result
    assert not (out / "result.txt").exists()


def _tiny_study(model_dir: Path, sizes: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    return {
        **tiny_experiment(model_dir, name="tiny"),
        "sweep": {"n": list(sizes)},
        "execution": {"n_cycles": 1},
    }


def test_killing_a_study_kills_its_experiment_and_writes_no_result(
    tiny_model_dir: Path, tmp_path: Path, reap: list[psutil.Process]
) -> None:
    """`llem run study.yaml` SIGKILLed 0.1 s after its first child started: the child does not
    run the experiment alone and write a result that no manifest points to."""
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(_tiny_study(tiny_model_dir)))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "llenergymeasure.cli", "run", str(study_file), "--out",
               str(out), "-q"]  # fmt: skip
    parent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    child = _kill_parent_after(parent, 0.1, reap)

    assert _gone(child, timeout_s=5.0), f"child {child.pid} outlived the study"
    (study_dir,) = out.iterdir()
    assert list(study_dir.glob("runs/**/result.json")) == []


def _loaded_by(statement: str) -> list[str]:
    """The modules a fresh interpreter has loaded after ``statement``."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def _project(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] == "llenergymeasure"]


def test_the_child_imports_nothing_heavy_before_arming() -> None:
    """Before :func:`child_main` arms the signal, a spawned child imports only the worker and
    the package's light ``__init__`` files (besides re-importing the parent's main module,
    which the parent-pid check covers)."""
    assert _project(_loaded_by("import llenergymeasure.study.worker")) == [
        "llenergymeasure", "llenergymeasure._version", "llenergymeasure.study",
        "llenergymeasure.study.worker",
    ]  # fmt: skip


def test_a_child_whose_parent_is_already_gone_exits_at_once() -> None:
    """The parent died before the signal was armed: the child, adopted by another process,
    sees a different parent pid and exits without running anything."""
    code = (
        "import os\n"
        "from llenergymeasure.study.worker import die_with_parent\n"
        "die_with_parent(os.getppid() + 1)\n"
        "print('still running')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (1, "")
    code = code.replace("os.getppid() + 1", "os.getppid()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (0, "still running\n")


# --- one measurement per device, one run per study directory --------------------------------

UUIDS = ("GPU-fa4e0000-0000-4000-8000-00000000000a", "GPU-fa4e0000-0000-4000-8000-00000000000b")
MIG = "MIG-5c2b0000-0000-4000-8000-000000000001"


@pytest.fixture
def two_gpus() -> Iterator[None]:
    """Two fake GPUs; the first hosts a MIG instance."""
    specs = [FakeGpuSpec(uuid=UUIDS[0], mig_uuids=(MIG,)), FakeGpuSpec(uuid=UUIDS[1])]
    with install_fake_pynvml(specs):
        yield


@pytest.mark.usefixtures("two_gpus")
@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, list(UUIDS)),  # unset: every GPU
        ("0", [UUIDS[0]]),
        ("1,0", list(UUIDS)),
        (UUIDS[0], [UUIDS[0]]),
        ("GPU-fa4e0000-0000-4000-8000-00000000000b", [UUIDS[1]]),
        (MIG, [UUIDS[0]]),  # a MIG instance occupies its GPU
        ("", ["cpu"]),  # no GPU visible: the CPU host is the device
    ],
)
def test_every_name_of_a_device_is_one_physical_device(
    visible: str | None, expected: list[str]
) -> None:
    assert locks.devices_in_use(visible) == expected


@pytest.mark.usefixtures("two_gpus")
@pytest.mark.parametrize(
    ("held", "wanted", "refused"),
    [
        (None, "0", True),  # "all visible" overlaps any subset
        ("0", None, True),
        ("0", UUIDS[0], True),  # index and UUID of one GPU
        (MIG, "0", True),
        ("1", "0", False),  # different GPUs measure side by side
        ("", "0", False),  # a CPU-only run does not hold the GPUs
    ],
)
def test_the_device_lock_is_keyed_on_physical_devices(
    held: str | None, wanted: str | None, refused: bool
) -> None:
    with locks.DeviceLock(*locks.devices_in_use(held)):
        if refused:
            with (
                pytest.raises(locks.DeviceBusyError, match=f"pid {os.getpid()}"),
                locks.DeviceLock(*locks.devices_in_use(wanted)),
            ):
                pass
        else:
            with locks.DeviceLock(*locks.devices_in_use(wanted)):
                pass
    with locks.DeviceLock(*locks.devices_in_use(wanted)):  # released: free again
        pass


def test_a_waiting_device_lock_starts_when_the_holder_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    holder = locks.DeviceLock(locks.CPU_HOST)
    holder.__enter__()
    release = threading.Timer(0.5, holder.__exit__, (None, None, None))
    release.start()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), locks.DeviceLock(locks.CPU_HOST, wait=True):
        waited_s = time.monotonic() - started
    release.join()
    assert waited_s >= 0.4
    assert f"waiting for device cpu: in use by pid {os.getpid()}" in caplog.text
    assert "device cpu is free" in caplog.text


def test_a_second_run_of_a_study_directory_is_refused(tmp_path: Path) -> None:
    holder = f"another llem process: pid {os.getpid()}"
    with (
        locks.StudyDirLock(tmp_path),
        pytest.raises(locks.StudyInUseError, match=holder),
        locks.StudyDirLock(tmp_path),
    ):
        pass
    assert locks.STUDY_LOCK_FILE.startswith(".")  # hidden: not one of the study's files
    with locks.StudyDirLock(tmp_path):  # released: free again
        pass


def _llem(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "llenergymeasure.cli", "run", *args, "-q"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_two_resumes_of_one_study_do_not_both_run(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    reap: list[psutil.Process],
) -> None:  # fmt: skip
    """A study killed mid-run is resumed twice at once (one with CUDA_VISIBLE_DEVICES=0, one
    without): the second is refused, naming the first, and every entry is measured once."""
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(_tiny_study(tiny_model_dir)))
    out = tmp_path / "out"
    first = _llem(str(study_file), "--out", str(out))
    _kill_parent_after(first, 0.0, reap)
    (study_dir,) = out.iterdir()

    resume = _llem(str(study_file), "--resume", str(study_dir))
    reap.append(_spawned_child(resume))  # the resume holds the study and measures
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    second = CliRunner().invoke(app, ["run", str(study_file), "--resume", str(study_dir), "-q"])
    assert second.exit_code == 1, second.output
    assert f"is being run by another llem process: pid {resume.pid}" in second.output

    _, stderr = resume.communicate(timeout=300)
    assert resume.returncode == 0, stderr
    entries = json.loads((study_dir / "manifest.json").read_text())["entries"]
    assert [e["status"] for e in entries] == ["done"] * 2
    assert len(list(study_dir.glob("runs/**/result.json"))) == 2  # each measured once


def test_a_study_on_gpu_0_is_refused_while_another_uses_every_gpu(
    tiny_model_dir: Path, tmp_path: Path, reap: list[psutil.Process]
) -> None:
    """Two studies against the same two (fake) GPUs: one sees them all, the other only
    ``CUDA_VISIBLE_DEVICES=0``; the second is refused while the first runs."""
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(_tiny_study(tiny_model_dir)))
    fake = json.dumps({"gpus": [{"uuid": UUIDS[0]}, {"uuid": UUIDS[1]}]})
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env[FAKE_NVML_ENV] = fake
    command = [sys.executable, "-m", "llenergymeasure.testing", "run", str(study_file), "-q"]
    first = subprocess.Popen([*command, "--out", str(tmp_path / "a")], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    child = _spawned_child(first)
    reap.append(child)
    second = subprocess.run([*command, "--out", str(tmp_path / "b")], capture_output=True,
                            text=True, env={**env, "CUDA_VISIBLE_DEVICES": "0"})  # fmt: skip
    alive = first.poll() is None
    first.kill()
    first.communicate()
    assert alive, "the first study ended before the second tried"
    assert second.returncode == 1, second.stderr
    assert f"device {UUIDS[0]} is in use by another measurement: pid {first.pid}" in (
        " ".join(second.stderr.split())
    )


def test_a_single_run_is_refused_or_waits_while_a_study_measures(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(_tiny_study(tiny_model_dir)))
    experiment_file = tmp_path / "experiment.yaml"
    experiment_file.write_text(yaml.safe_dump(tiny_experiment(tiny_model_dir, name="tiny")))
    study = _llem(str(study_file), "--out", str(tmp_path / "study"))
    _spawned_child(study)

    refused = CliRunner().invoke(app, ["run", str(experiment_file), "--out", str(tmp_path / "r")])
    assert refused.exit_code == 1, refused.output
    text = " ".join(refused.output.split())
    assert f"device cpu is in use by another measurement: pid {study.pid}" in text
    assert "--wait-for-device" in text
    assert study.poll() is None

    waited = CliRunner().invoke(
        app, ["run", str(experiment_file), "--out", str(tmp_path / "w"), "--wait-for-device", "-q"]
    )
    study_ended = study.poll() is not None  # measured only once the study let go
    assert waited.exit_code == 0, waited.output
    assert f"waiting for device cpu: in use by pid {study.pid}" in " ".join(waited.output.split())
    assert study_ended
    assert study.wait() == 0
