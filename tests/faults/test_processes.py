"""Process faults: a study child never outlives its parent.

The orphan tests SIGKILL a parent process moments after it has spawned its child (before and
after the child can arm its parent-death signal) and check that the child is gone and wrote
nothing.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

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


def _tiny_experiment(model_dir: Path) -> dict[str, Any]:
    return {
        "name": "tiny",
        "model": str(model_dir),
        "n": 2,
        "max_output_tokens": 3,
        "chat_template": False,
        "warmup": {"n_warmup": 0},
        "baseline": {"enabled": False},
        "energy": {"sampler": "null"},
    }


def _tiny_study(model_dir: Path, sizes: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    return {
        **_tiny_experiment(model_dir),
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
