"""Other work on the machine during the window: the contention source, its summary and
warning, and the idle baseline that is not reused when it was taken on a busy machine."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from llenergymeasure.backends.base import ProgressCallback
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.devices import GpuLostError, get_gpus
from llenergymeasure.devices.nvidia import close_shared_session
from llenergymeasure.energy import NullSampler
from llenergymeasure.harness import run_experiment
from llenergymeasure.harness.baseline import BUSY_BASELINE_PCT, Baseline, BaselineCache
from llenergymeasure.harness.contention import (
    CONTENTION_THRESHOLD_PCT,
    contention_warnings,
    phase_intervals,
    summarise_contention,
)
from llenergymeasure.load import LoadPlan
from llenergymeasure.results.models import Contention
from llenergymeasure.results.records import RequestRecord, TelemetrySample
from llenergymeasure.telemetry import (
    ContentionSource,
    CpuTelemetrySource,
    TelemetryPoller,
    default_sources,
)
from llenergymeasure.telemetry import contention as contention_module
from llenergymeasure.telemetry.contention import (
    MachineScan,
    ProcessRow,
    cpu_used,
    default_root_pids,
    own_tree,
)
from llenergymeasure.testing.fake_backend import ScriptedBackend
from llenergymeasure.testing.fake_energy import ConstantPowerSampler, FakeClock
from llenergymeasure.testing.fake_pynvml import FakeGpuSpec, install_fake_pynvml

README = Path(__file__).resolve().parents[1] / "README.md"
OWN = 100  # the injected root of "this run"


def row(pid: int, cpu_s: float | None, ppid: int = 1, name: str = "", created: float = 0.0):
    return ProcessRow(pid, ppid, name or f"p{pid}", cpu_s, created)


class ScriptedTable:
    """A machine whose scans are given in advance (the last one repeats)."""

    cpu_count = 4

    def __init__(self, scans: Sequence[MachineScan], existing: Sequence[int] = ()) -> None:
        self._scans = list(scans)
        self._existing = set(existing)

    def scan(self) -> MachineScan:
        return self._scans.pop(0) if len(self._scans) > 1 else self._scans[0]

    def exists(self, pid: int) -> bool:
        return pid in self._existing


def machine(
    seconds: int, own_cpu_per_s: float, foreign: dict[int, tuple[str, float]]
) -> list[MachineScan]:
    """One scan a second: the run (root OWN, a busy child) and foreign processes, each
    using its CPU seconds per second."""
    scans = []
    for t in range(seconds + 1):
        rows = [row(OWN, 0.5 * t), row(OWN + 1, own_cpu_per_s * t, ppid=OWN, name="engine")]
        rows += [row(pid, per_s * t, name=name) for pid, (name, per_s) in foreign.items()]
        busy = sum(r.cpu_s or 0.0 for r in rows)
        scans.append(MachineScan(1000.0 + t, busy, tuple(rows)))
    return scans


def watch(source: ContentionSource, clock: FakeClock, window_reads: int) -> list[TelemetrySample]:
    """Drive a poller by hand as the harness does: a read in the baseline, one at the window's
    start, ``window_reads`` more a second apart, then the read that starts ``after``."""
    poller = TelemetryPoller([source], 100, clock)
    for phase in ("baseline", "window"):
        poller.set_phase(phase)  # the poller is not running: read as set_phase then would
        poller.poll(every_source=True)
        clock.advance(1.0)
    for _ in range(window_reads):
        poller.poll()
        clock.advance(1.0)
    poller.set_phase("after")
    poller.poll(every_source=True)
    return poller.stop()


def summary_of(foreign: dict[int, tuple[str, float]], own_cpu_per_s: float = 3.0) -> Contention:
    source = ContentionSource(
        root_pids=[OWN], table=ScriptedTable(machine(4, own_cpu_per_s, foreign))
    )
    samples = watch(source, FakeClock(), window_reads=2)
    contention = summarise_contention(samples, [source])
    assert contention is not None
    return contention


def test_an_idle_machine_gives_a_small_share_and_no_warning_however_busy_the_run_is() -> None:
    contention = summary_of({50: ("sshd", 0.02)}, own_cpu_per_s=3.5)

    assert contention.n_samples == 3  # window start -> 1 s -> 2 s -> the read that ends it
    assert contention.foreign_cpu_pct_mean == pytest.approx(0.5)  # 0.02 of 4 CPUs
    assert contention.top_processes == [{"pid": 50, "name": "sshd", "cpu_s": 0.06}]
    assert contention.foreign_gpu_processes == []
    assert contention.threshold_pct == CONTENTION_THRESHOLD_PCT
    assert contention_warnings(contention) == []


def test_a_busy_machine_warns_with_the_share_and_the_busiest_processes() -> None:
    contention = summary_of(
        {50: ("sshd", 0.02), 77: ("stress", 2.0), 78: ("make", 0.4), 79: ("cc1", 0.2)}
    )

    assert contention.foreign_cpu_pct_mean == pytest.approx(100 * 2.62 / 4)
    assert [p["name"] for p in contention.top_processes] == ["stress", "make", "cc1"]
    (warning,) = contention_warnings(contention)
    assert warning.code == "contention"
    assert "65.5 % of all CPUs' time" in warning.message
    assert "stress (pid 77, 6.0 CPU-s)" in warning.message


@pytest.mark.parametrize(("foreign_per_s", "warned"), [(0.36, False), (0.44, True)])
def test_the_warning_starts_above_the_threshold(foreign_per_s: float, warned: bool) -> None:
    contention = summary_of({77: ("job", foreign_per_s)})  # of 4 CPUs: 9 % and 11 %

    assert bool(contention_warnings(contention)) is warned


def test_only_the_windows_intervals_count() -> None:
    # Busy before the window, idle in it: the baseline's interval is not the window's.
    rows_before = (row(OWN, 0.0), row(77, 0.0, name="stress"))
    scans = [
        MachineScan(1000.0, 0.0, rows_before),
        MachineScan(1001.0, 4.0, (row(OWN, 0.0), row(77, 4.0, name="stress"))),
        MachineScan(1002.0, 4.0, (row(OWN, 0.0), row(77, 4.0, name="stress"))),
    ]
    source = ContentionSource(root_pids=[OWN], table=ScriptedTable(scans))
    clock = FakeClock()
    poller = TelemetryPoller([source], 100, clock)
    poller.set_phase("baseline")
    poller.poll(every_source=True)
    clock.advance(1.0)
    poller.set_phase("window")
    poller.poll(every_source=True)
    clock.advance(1.0)
    poller.set_phase("after")
    poller.poll(every_source=True)
    samples = poller.stop()

    assert [s.foreign_cpu_pct for s in samples] == [None, 100.0, 0.0]
    assert [i.start_s for i in phase_intervals(source, samples, "window")] == [1.0]
    contention = summarise_contention(samples, [source])
    assert contention is not None and contention.foreign_cpu_pct_mean == 0.0


def test_cpu_time_counts_new_processes_from_their_start_and_old_unseen_ones_not_at_all() -> None:
    before = MachineScan(1000.0, 0.0, (row(10, 5.0, created=1.0), row(11, None, created=1.0)))
    after = MachineScan(
        1001.0,
        0.0,
        (
            row(10, 5.5, created=1.0),  # the same process: its difference
            row(11, 9.0, created=1.0),  # unreadable before: its share is unknown
            row(12, 0.3, created=1000.5),  # started since: all of it
            row(13, 7.0, created=2.0),  # old, first seen now (was missed): nothing
            row(14, None, created=1000.5),  # cannot be read: left out
        ),
    )
    used = {r.pid: cpu_s for r, cpu_s in cpu_used(before, after).items()}

    assert used == {10: pytest.approx(0.5), 12: pytest.approx(0.3)}


def test_a_reused_pid_is_a_new_process() -> None:
    before = MachineScan(1000.0, 0.0, (row(10, 50.0, created=1.0),))
    after = MachineScan(1001.0, 0.0, (row(10, 0.2, created=1000.9),))

    assert list(cpu_used(before, after).values()) == [pytest.approx(0.2)]


def test_the_own_tree_is_the_root_and_every_descendant() -> None:
    rows = [row(1, 0, ppid=0), row(OWN, 0, ppid=1), row(101, 0, ppid=OWN), row(102, 0, ppid=101)]
    rows.append(row(200, 0, ppid=1))  # a sibling of the run (another user's shell, say)

    assert own_tree(rows, [OWN]) == {OWN, 101, 102}


def test_the_root_is_the_study_that_started_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_root_pids() == (os.getpid(),)
    study = types.SimpleNamespace(pid=4321)
    monkeypatch.setattr(contention_module.multiprocessing, "parent_process", lambda: study)

    assert default_root_pids() == (4321,)


class CountingSource:
    min_interval_s = 1.0

    def __init__(self) -> None:
        self.reads: list[float] = []

    def read(self, timestamp_s: float) -> list[TelemetrySample]:
        self.reads.append(timestamp_s)
        return []


def test_the_poller_reads_a_slow_source_at_most_every_min_interval_but_at_each_phase() -> None:
    clock = FakeClock()
    slow = CountingSource()
    poller = TelemetryPoller([slow], 100, clock)
    for t in (0.0, 0.5, 0.9, 1.0, 1.5):
        clock.now_s = t
        poller.poll()
    clock.now_s = 1.6
    poller.poll(every_source=True)  # what set_phase does

    assert slow.reads == [0.0, 1.0, 1.6]
    assert poller.sources == (slow,)


def test_default_sources_watch_contention_on_the_given_gpus() -> None:
    sources = default_sources([])

    assert isinstance(sources[0], CpuTelemetrySource) and isinstance(sources[1], ContentionSource)


@pytest.fixture
def fresh_nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield
    close_shared_session()


def gpu_machine() -> ScriptedTable:
    rows = (row(OWN, 0.0), row(4242, 0.0, name="trainer"))
    return ScriptedTable([MachineScan(1000.0, 0.0, rows)], existing=[777])


@pytest.mark.usefixtures("fresh_nvml")
def test_a_foreign_process_on_the_gpu_is_counted_named_and_warned() -> None:
    processes = ((OWN, 2**30), (4242, 512 * 2**20), (777, None), (99999, None))
    with install_fake_pynvml([FakeGpuSpec(compute_processes=processes)]):
        source = ContentionSource(get_gpus(), root_pids=[OWN], table=gpu_machine())
        samples = watch(source, FakeClock(), window_reads=1)

    assert {s.foreign_gpu_processes for s in samples} == {2}  # 4242 and 777, not OWN
    contention = summarise_contention(samples, [source])
    assert contention is not None
    assert contention.foreign_gpu_processes == [
        {"pid": 4242, "name": "trainer", "gpu": "gpu:0", "used_memory_mb": 512.0},
        {"pid": 777, "name": None, "gpu": "gpu:0", "used_memory_mb": None},  # another user's
    ]
    assert any("[99999]" in note for note in contention.notes)  # a host pid: not counted
    (warning,) = contention_warnings(contention)
    assert "held a measured GPU" in warning.message
    assert "trainer (pid 4242) on gpu:0, 512 MiB" in warning.message


@pytest.mark.usefixtures("fresh_nvml")
def test_a_gpu_whose_processes_cannot_be_listed_is_noted_not_fatal() -> None:
    with install_fake_pynvml(1) as fake:
        gpus = get_gpus()
        fake.lose_gpu(0)
        source = ContentionSource(gpus, root_pids=[OWN], table=gpu_machine())
        samples = watch(source, FakeClock(), window_reads=1)
        with pytest.raises(GpuLostError):
            gpus[0].compute_processes()

    assert {s.foreign_gpu_processes for s in samples} == {None}
    contention = summarise_contention(samples, [source])
    assert contention is not None and contention.foreign_cpu_pct_mean == 0.0
    assert any("could not be listed" in note for note in contention.notes)


@pytest.mark.usefixtures("fresh_nvml")
def test_gpu_processes_come_from_the_v2_call_where_v3_is_missing() -> None:
    with install_fake_pynvml([FakeGpuSpec(compute_processes=((5, 2**20),))]) as fake:
        del sys.modules["pynvml"].nvmlDeviceGetComputeRunningProcesses_v3
        (gpu,) = get_gpus()
        processes = gpu.compute_processes()

    assert [(p.pid, p.used_memory_mb) for p in processes] == [(5, 1.0)]
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 1


def test_nothing_watched_gives_no_contention() -> None:
    assert summarise_contention([], []) is None
    assert contention_warnings(None) == []
    idle = ContentionSource(root_pids=[OWN], table=ScriptedTable(machine(1, 0.0, {})))
    assert summarise_contention([], [idle]) is None  # telemetry off: never read


# --- a real busy process outside the run's tree, through run_experiment -------------------

BUSY_GRANDCHILD = r"""
import os, sys, time
if os.fork():
    os._exit(0)  # the grandchild is re-parented away from the test's process tree
print(os.getpid(), flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
"""


@contextlib.contextmanager
def busy_process_outside_the_tree(seconds: float = 30.0) -> Iterator[int]:
    launcher = subprocess.Popen(
        [sys.executable, "-c", BUSY_GRANDCHILD, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert launcher.stdout is not None
    with launcher.stdout:
        pid = int(launcher.stdout.readline())
    launcher.wait()
    busy = psutil.Process(pid)
    try:
        yield pid
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            busy.kill()


class SleepingBackend(ScriptedBackend):
    """Answers every prompt at once after ``window_s`` of real time."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s

    def run(
        self,
        prompts: Sequence[list[int]],
        max_output_tokens: int,
        on_progress: ProgressCallback | None = None,
        load: LoadPlan | None = None,
        output_lengths: Sequence[int] | None = None,
    ) -> list[RequestRecord]:
        assert output_lengths is None, "this fake generates fixed lengths only"
        submit = time.perf_counter()
        time.sleep(self.window_s)
        end = time.perf_counter()
        return [RequestRecord(p[0], 10, 1, submit, [end], [1], end) for p in prompts]


def quick_config(**fields: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"model": "m", "n": 2, "max_output_tokens": 1, "warmup": {"n_warmup": 0}, **fields}
    )


def test_a_busy_process_outside_the_tree_raises_the_share_and_warns_through_a_run() -> None:
    source = ContentionSource()  # the real machine; this process is the root
    with busy_process_outside_the_tree() as busy_pid:
        run = run_experiment(
            quick_config(baseline={"enabled": False}),
            backend=SleepingBackend(window_s=0.6),
            sampler_factory=NullSampler,
            sleep=lambda _: None,
            telemetry_sources=[source],
        )

    contention = run.result.contention
    assert contention is not None and contention.n_samples >= 1
    assert contention.foreign_cpu_pct_mean is not None
    assert contention.foreign_cpu_pct_mean > CONTENTION_THRESHOLD_PCT
    counted = {p.pid for i in source.intervals for p in i.foreign}
    assert busy_pid in counted and busy_pid not in own_tree(source_rows(), source.root_pids)
    assert "contention" in {w.code for w in run.result.warnings}
    rows = [s for s in run.timeseries if s.device == "contention"]
    assert rows and any((s.foreign_cpu_pct or 0.0) > 0 for s in rows)


def source_rows() -> list[ProcessRow]:
    return list(contention_module.PsutilProcessTable().scan().processes)


# --- the idle baseline taken on a busy machine --------------------------------------------


@pytest.mark.parametrize(
    ("domains", "busy_pct", "reused"),
    [
        ({"cpu": 80.0}, BUSY_BASELINE_PCT + 50, False),  # taken busy: measured again
        ({"cpu": 80.0}, BUSY_BASELINE_PCT, True),  # at the threshold: idle enough
        ({"cpu": 80.0}, None, True),  # unknown: kept
        ({"gpu:0": 80.0}, BUSY_BASELINE_PCT + 50, True),  # GPU idle power: CPUs do not matter
    ],
)
def test_a_cached_baseline_taken_on_busy_cpus_is_not_reused(
    tmp_path: Path, domains: dict[str, float], busy_pct: float | None, reused: bool
) -> None:
    cache = BaselineCache(tmp_path / "b.json")
    cache.put("k", Baseline(80.0, domains, 10.0, time.time(), "fake", cpu_busy_pct=busy_pct))

    assert (cache.get("k", 3600.0, time.time()) is not None) is reused


def test_a_run_measures_again_instead_of_reusing_a_busy_baseline(tmp_path: Path) -> None:
    cache = BaselineCache(tmp_path / "b.json")
    key = cache.key("fake")
    busy = Baseline(80.0, {"cpu": 80.0}, 10.0, time.time(), "fake", cpu_busy_pct=90.0)
    cache.put(key, busy)
    clock = FakeClock()

    run = run_experiment(
        quick_config(),
        backend=SleepingBackend(window_s=0.0),
        sampler_factory=lambda: ConstantPowerSampler(clock, 50.0, "cpu", 20),
        clock=clock,
        sleep=clock.advance,
        telemetry_sources=[],
        baseline_cache=cache,
    )

    energy = run.result.energy
    assert energy.baseline_from_cache is False and energy.baseline_power_w == pytest.approx(50.0)
    assert cache.get(key, 3600.0, time.time()) is not None  # the new one replaced it
    assert run.result.contention is None  # nothing watched the machine


def test_the_readme_documents_the_threshold_and_the_re_measured_baseline() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())

    threshold = f"{CONTENTION_THRESHOLD_PCT:g} %"
    assert f"`contention` when processes outside the run used more than {threshold}" in text
    assert "**Contention.**" in text and f"more than {threshold} of all CPUs' time" in text
    assert "a cached baseline taken on CPUs more than" in text
