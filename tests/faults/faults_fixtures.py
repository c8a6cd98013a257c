"""Stand-in study children that write real result directories in milliseconds, and the faults
they can be told to hit (through environment variables, which a spawned child inherits).

Each target has :func:`llenergymeasure.study.worker.run_child`'s signature and reports over the
pipe the way the real child does. ``FAULTS_CALLS`` names a file each child appends its
experiment name to (how many times each entry ran). With ``FAULTS_HANG_AT=<k>`` the k-th child
stops after writing (its whole result directory, or with ``FAULTS_HANG_MODE=partial`` one whose
``result.json`` is cut short), touches the file ``FAULTS_HANGING`` names, and waits to be
killed with its study. While the file named by
``FAULTS_DISK_FULL`` exists, writing a result fails with ENOSPC, and the ``FAULTS_FULL_AT``-th
child creates it (the disk fills). The ``FAULTS_FILL_AT``-th child grows the file
``FAULTS_FILL`` names until its filesystem (a tiny tmpfs) is really full, then writes.
"""

from __future__ import annotations

import errno
import os
import time
from datetime import datetime, timedelta, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import LLEMError
from llenergymeasure.harness.metrics import compute_metrics
from llenergymeasure.results.io import write_experiment
from llenergymeasure.results.models import (
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    ModelInfo,
    PhaseTimings,
)
from llenergymeasure.results.records import RequestRecord

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def study_data(**fields: Any) -> dict[str, Any]:
    """A study of two experiments (``faults_n1``, ``faults_n2``) × 2 interleaved cycles."""
    return {
        "name": "faults",
        "model": "tiny",
        "n": 2,
        "energy": {"sampler": "null"},
        "baseline": {"enabled": False},
        "sweep": {"n": [1, 2]},
        "execution": {"n_cycles": 2, "experiment_timeout_s": 60},
        **fields,
    }


def make_result(config: dict[str, Any], energy_j: float = 10.0) -> tuple[Any, list[Any]]:
    """A valid result for ``config`` and its request records."""
    records = [RequestRecord(i, 10, 3, 0.0, [0.1, 0.15, 0.2], [1, 1, 1], 0.2) for i in range(2)]
    result = ExperimentResult(
        llem_version="test",
        config=ExperimentConfig.model_validate(config),
        measurement_config_hash="0" * 16,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=4),
        measurement_method="null",
        model=ModelInfo(model_id="tiny", source_kind="test", dtype="fp32", device="cpu"),
        environment=EnvironmentSnapshot(python="3", os="test", machine="test"),
        timings=PhaseTimings(model_load_s=0.1, warmup_s=0.1, window_s=4.0),
        energy=EnergyMetrics(method="null", energy_total_j=energy_j, energy_adjusted_j=energy_j),
        metrics=compute_metrics(records, 4.0, energy_j, MemoryReading(None, "test"), energy_j),
    )
    return result, records


def write_result(config: dict[str, Any], out_dir: str) -> Path:
    """Write a result directory for ``config`` under ``out_dir`` through the real writer."""
    result, records = make_result(config)
    return write_experiment(result, records, Path(out_dir), str(config.get("name")))


def finish(config: dict[str, Any], out_dir: str, log_path: str, conn: Connection) -> None:
    """The child: record the call, write a result (or hit the faults set), report, exit."""
    calls = str(_record_call(config))
    if calls == os.environ.get("FAULTS_HANG_AT"):
        _write_then_hang(config, out_dir)
    if calls == os.environ.get("FAULTS_FILL_AT"):
        _fill_disk(Path(os.environ["FAULTS_FILL"]))
    flag = os.environ.get("FAULTS_DISK_FULL")
    if calls == os.environ.get("FAULTS_FULL_AT") and flag:
        Path(flag).touch()
    try:
        if flag and os.path.exists(flag):
            raise_disk_full(Path(out_dir))
        path = write_result(config, out_dir)
    except LLEMError as exc:  # as llenergymeasure.study.worker reports it
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    else:
        conn.send(("done", str(path)))
    conn.close()
    os._exit(0)


def raise_disk_full(out_dir: Path) -> None:
    """Fail the way write_experiment does when the disk is full."""
    from llenergymeasure.errors import ResultsError, describe_os_error

    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    raise ResultsError(f"cannot write results: {describe_os_error(exc, out_dir)}")


def _record_call(config: dict[str, Any]) -> int:
    """Append the experiment's name to FAULTS_CALLS; the number of calls so far."""
    path = os.environ.get("FAULTS_CALLS")
    if not path:
        return 0
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"{config.get('name')}\n")
    return len(Path(path).read_text(encoding="utf-8").splitlines())


def _write_then_hang(config: dict[str, Any], out_dir: str) -> None:
    """Write this run's result (whole, or cut short), then wait to die with the study."""
    path = write_result(config, out_dir)
    if os.environ.get("FAULTS_HANG_MODE") == "partial":
        (path / "result.json").write_text('{"llem_version": "te', encoding="utf-8")
    Path(os.environ["FAULTS_HANGING"]).touch()  # tells the test: kill the study now
    while True:
        time.sleep(0.05)


def _fill_disk(filler: Path) -> None:
    """Grow ``filler`` until its filesystem has no space left."""
    block = os.urandom(1 << 16)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            os.write(fd, block)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        try:  # the last few blocks
            while True:
                os.write(fd, b"x" * 512)
        except OSError:
            pass
    finally:
        os.close(fd)


def calls(path: Path) -> list[str]:
    """The experiment names the children recorded, in order."""
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
