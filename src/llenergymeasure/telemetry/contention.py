"""Other work on the machine: CPU time used outside this run, and other processes on its GPUs.

Each read scans the processes this run can see (psutil) and reports, as a sample of device
``contention``, the CPU time (user + system) that processes outside this run's own process
tree used since the previous read, as a share of all CPUs' time over that interval
(``foreign_cpu_pct``: 100 = every CPU busy with other work), and how many processes outside
the tree hold one of the run's GPUs (NVML's running compute processes:
``foreign_gpu_processes``). The source keeps each interval's detail (which processes, how
much) for the summary of the measured window (``harness.contention``).

**The run's own tree** is a root process and all its descendants, found anew at every read
(engine workers, a server llem launched). The root is this process, or, when this process
was started by ``multiprocessing`` (a study's isolated run), the process that started it:
the study's display and its helpers are llem's own work, not other work on the machine.

**What is not seen.** A process that starts and ends between two reads (its CPU time is
never read), processes of another container or hidden by ``/proc``'s ``hidepid``, and
interrupt work: the window's summary notes the CPU time the machine's counters show busy that
no visible process accounts for. GPU processes are listed by NVML with the host's pids: seen
from a container they name no process here, and are noted, not counted.

A scan costs a few milliseconds per hundred processes, so it runs at most every
:data:`SCAN_INTERVAL_S` (``min_interval_s``, honoured by the poller); every phase change
reads at once, so each phase's intervals start and end with it.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import psutil

from llenergymeasure.devices import Gpu, GpuError
from llenergymeasure.results.records import TelemetrySample

CONTENTION_DEVICE = "contention"
"""The ``device`` of the contention samples in ``timeseries.parquet``."""
SCAN_INTERVAL_S = 1.0
"""The shortest time between two scans of the process table."""
CREATE_TIME_SLACK_S = 1.0
"""psutil derives a process's start time from the boot time, which Linux gives in whole
seconds: a process first seen now counts as new if it started at most this long before the
previous scan."""


@dataclass(frozen=True)
class ProcessRow:
    """One process in a scan.

    Attributes:
        pid: its id.
        ppid: its parent's id.
        name: its name.
        cpu_s: user + system CPU time since it started; None when it cannot be read.
        create_time: when it started (UNIX time, seconds).
    """

    pid: int
    ppid: int
    name: str
    cpu_s: float | None
    create_time: float


@dataclass(frozen=True)
class MachineScan:
    """The machine's processes and CPU counters at one moment.

    Attributes:
        wall_s: when the scan was taken (UNIX time, seconds).
        busy_cpu_s: CPU time all CPUs spent busy (not idle or waiting on I/O) since boot.
        processes: every process that could be listed.
    """

    wall_s: float
    busy_cpu_s: float
    processes: tuple[ProcessRow, ...]


class ProcessTable(Protocol):
    """What the source needs of the operating system (psutil; tests inject a script)."""

    @property
    def cpu_count(self) -> int:
        """Logical CPUs on the machine."""

    def scan(self) -> MachineScan:
        """The processes and the CPU counters now."""

    def exists(self, pid: int) -> bool:
        """Whether ``pid`` names a process here (also one this user cannot list)."""


class PsutilProcessTable:
    """The machine as psutil sees it."""

    _ATTRS = ("ppid", "name", "cpu_times", "create_time")

    @property
    def cpu_count(self) -> int:
        """psutil.cpu_count() (logical CPUs)."""
        return psutil.cpu_count() or 1

    def scan(self) -> MachineScan:
        """psutil.process_iter over every visible process, and psutil.cpu_times."""
        wall_s = time.time()
        busy_cpu_s = _busy_cpu_s(psutil.cpu_times())
        rows = []
        for process in psutil.process_iter(list(self._ATTRS), ad_value=None):
            row = _row(process.pid, process.info)
            if row is not None:
                rows.append(row)
        return MachineScan(wall_s, busy_cpu_s, tuple(rows))

    def exists(self, pid: int) -> bool:
        """psutil.pid_exists."""
        return psutil.pid_exists(pid)


def _row(pid: int, info: dict[str, object]) -> ProcessRow | None:
    """A row from process_iter's info; None for a process that vanished while it was read."""
    created, ppid = info.get("create_time"), info.get("ppid")
    if not isinstance(created, float) or not isinstance(ppid, int):
        return None
    times = info.get("cpu_times")  # (user, system, ...); None where access was denied
    cpu_s = float(times[0] + times[1]) if isinstance(times, tuple) else None
    return ProcessRow(pid, ppid, str(info.get("name") or "?"), cpu_s, created)


def _busy_cpu_s(times: object) -> float:
    """Busy time from psutil.cpu_times(): all fields but idle and iowait, without guest
    time (Linux already counts it in user and nice)."""
    not_busy = {"idle", "iowait", "guest", "guest_nice"}
    fields = getattr(times, "_fields", ())
    return float(sum(getattr(times, f) for f in fields if f not in not_busy))


@dataclass(frozen=True)
class ProcessCpu:
    """CPU time one process outside the run used in an interval."""

    pid: int
    name: str
    cpu_s: float


@dataclass(frozen=True)
class GpuHolder:
    """A process outside the run with a compute context on one of its GPUs.

    Attributes:
        name: the process's name; None when it cannot be listed here (another user's,
            with ``/proc`` hidden).
        gpu: the device's key (``gpu:<index>``).
        used_memory_mb: device memory it held, in MiB, or None where the driver cannot say.
    """

    pid: int
    name: str | None
    gpu: str
    used_memory_mb: float | None


@dataclass(frozen=True)
class GpuListing:
    """The run's GPUs' foreign processes at one read.

    Attributes:
        holders: processes outside the run's tree on one of the GPUs.
        unseen_pids: pids NVML lists that name no process here (the host's pids, seen from
            a container): they cannot be told apart from the run's own, so are not counted.
        errors: GPUs whose processes could not be listed, with why.
    """

    holders: tuple[GpuHolder, ...] = ()
    unseen_pids: tuple[int, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContentionInterval:
    """What one read found since the previous one.

    Attributes:
        start_s: the previous read's timestamp (the poller's clock).
        end_s: this read's timestamp.
        cpu_capacity_s: all CPUs' time over the interval (seconds x CPUs).
        foreign_cpu_s: CPU time processes outside the run's tree used.
        own_cpu_s: CPU time the run's own tree used.
        busy_cpu_s: CPU time the machine's counters show busy, whoever used it.
        foreign: the processes outside the tree that used CPU time, most first.
        unreadable: processes whose CPU time could not be read (not counted).
        gpus: this read's GPU listing; None when the run has no GPU.
    """

    start_s: float
    end_s: float
    cpu_capacity_s: float
    foreign_cpu_s: float
    own_cpu_s: float
    busy_cpu_s: float
    foreign: tuple[ProcessCpu, ...]
    unreadable: int
    gpus: GpuListing | None

    @property
    def foreign_cpu_pct(self) -> float:
        """foreign_cpu_s as a share of all CPUs' time, in percent."""
        return 100.0 * self.foreign_cpu_s / self.cpu_capacity_s if self.cpu_capacity_s else 0.0


def default_root_pids() -> tuple[int, ...]:
    """The root of this run's own tree: the process that started this one by
    ``multiprocessing`` (a study), else this process."""
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        return (parent.pid,)
    return (os.getpid(),)


class ContentionSource:
    """CPU time used outside this run's process tree, and foreign processes on its GPUs.

    Args:
        gpus: the run's GPUs (their compute processes are listed at each read).
        root_pids: the roots of the run's own tree (default: :func:`default_root_pids`).
        table: the operating system's processes and counters (default: psutil).

    Attributes:
        min_interval_s: the poller reads this source at most this often, but at every phase
            change.
        intervals: every interval read so far, in order.
    """

    min_interval_s = SCAN_INTERVAL_S

    def __init__(
        self,
        gpus: Sequence[Gpu] = (),
        *,
        root_pids: Sequence[int] | None = None,
        table: ProcessTable | None = None,
    ) -> None:
        self._gpus = list(gpus)
        self.root_pids = tuple(root_pids) if root_pids is not None else default_root_pids()
        self._table = table or PsutilProcessTable()
        self._cpu_count = self._table.cpu_count
        self._previous: tuple[float, MachineScan] | None = None
        self.intervals: list[ContentionInterval] = []

    def read(self, timestamp_s: float) -> list[TelemetrySample]:
        """Foreign CPU share since the previous read (None at the first) and foreign GPU
        processes now."""
        scan = self._table.scan()
        own = own_tree(scan.processes, self.root_pids)
        gpus = self._list_gpus(scan, own) if self._gpus else None
        interval = None
        if self._previous is not None:
            interval = self._interval(*self._previous, timestamp_s, scan, own, gpus)
            self.intervals.append(interval)
        self._previous = (timestamp_s, scan)
        return [
            TelemetrySample(
                timestamp_s=timestamp_s,
                device=CONTENTION_DEVICE,
                foreign_cpu_pct=None if interval is None else interval.foreign_cpu_pct,
                foreign_gpu_processes=self._foreign_gpu_count(gpus),
            )
        ]

    def _foreign_gpu_count(self, gpus: GpuListing | None) -> int | None:
        """Distinct foreign pids on the run's GPUs; None when none could be listed."""
        if gpus is None or len(gpus.errors) == len(self._gpus):
            return None
        return len({holder.pid for holder in gpus.holders})

    def _interval(
        self,
        start_s: float,
        before: MachineScan,
        end_s: float,
        after: MachineScan,
        own: frozenset[int],
        gpus: GpuListing | None,
    ) -> ContentionInterval:
        used = cpu_used(before, after)
        foreign = [
            ProcessCpu(row.pid, row.name, cpu_s)
            for row, cpu_s in used.items()
            if row.pid not in own and cpu_s > 0
        ]
        return ContentionInterval(
            start_s=start_s,
            end_s=end_s,
            cpu_capacity_s=max(0.0, end_s - start_s) * self._cpu_count,
            foreign_cpu_s=sum(p.cpu_s for p in foreign),
            own_cpu_s=sum(cpu_s for row, cpu_s in used.items() if row.pid in own),
            busy_cpu_s=max(0.0, after.busy_cpu_s - before.busy_cpu_s),
            foreign=tuple(sorted(foreign, key=lambda p: -p.cpu_s)),
            unreadable=sum(row.cpu_s is None for row in after.processes),
            gpus=gpus,
        )

    def _list_gpus(self, scan: MachineScan, own: frozenset[int]) -> GpuListing:
        names = {row.pid: row.name for row in scan.processes}
        holders: dict[tuple[int, str], GpuHolder] = {}
        unseen: set[int] = set()
        errors = []
        for gpu in self._gpus:
            try:
                processes = gpu.compute_processes()
            except GpuError as exc:
                errors.append(f"{gpu.key}: {exc}")
                continue
            for process in processes:
                if process.pid in own:
                    continue
                if process.pid not in names and not self._table.exists(process.pid):
                    unseen.add(process.pid)
                    continue
                holders[(process.pid, gpu.key)] = GpuHolder(
                    process.pid, names.get(process.pid), gpu.key, process.used_memory_mb
                )
        return GpuListing(tuple(holders.values()), tuple(sorted(unseen)), tuple(errors))


def own_tree(processes: Iterable[ProcessRow], roots: Sequence[int]) -> frozenset[int]:
    """The pids of ``roots`` and all their descendants among ``processes``."""
    children: dict[int, list[int]] = {}
    for row in processes:
        if row.pid != row.ppid:
            children.setdefault(row.ppid, []).append(row.pid)
    tree, frontier = set(roots), list(roots)
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in tree:
                tree.add(child)
                frontier.append(child)
    return frozenset(tree)


def cpu_used(before: MachineScan, after: MachineScan) -> dict[ProcessRow, float]:
    """CPU time each process in ``after`` used since ``before`` (seconds).

    A process in both scans (same pid and start time) counts the difference; one that is
    new since ``before`` counts all its CPU time; one that was there but could not be read
    counts nothing (its share of the interval is unknown). Unreadable processes are left out.
    """
    earlier = {(row.pid, row.create_time): row.cpu_s for row in before.processes}
    new_after_s = before.wall_s - CREATE_TIME_SLACK_S
    used: dict[ProcessRow, float] = {}
    for row in after.processes:
        if row.cpu_s is None:
            continue
        key = (row.pid, row.create_time)
        if key in earlier:
            previous = earlier[key]
            if previous is not None:
                used[row] = max(0.0, row.cpu_s - previous)
        elif row.create_time >= new_after_s:
            used[row] = row.cpu_s
    return used
