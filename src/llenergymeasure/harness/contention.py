"""Other work on the machine during the measured window: the summary and the warning.

The contention source (``telemetry.contention``) reads, at least every second and at every
phase change, the CPU time used outside this run's process tree and the foreign processes on
its GPUs. Each read reports the interval since the previous one; an interval belongs to the
phase in which it began, so the window's intervals are those that begin with a read tagged
``window`` (the first at the window's start, the last ending at the read that starts
``after``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llenergymeasure.results.models import Contention, MeasurementWarning
from llenergymeasure.results.records import TelemetrySample
from llenergymeasure.results.warning_codes import WarningCode
from llenergymeasure.telemetry import CONTENTION_DEVICE, ContentionSource, TelemetrySource
from llenergymeasure.telemetry.contention import ContentionInterval, GpuHolder

CONTENTION_THRESHOLD_PCT = 10.0
"""``contention`` is warned when processes outside the run used more than this share of all
CPUs' time, on average over the window.

The run's own processes are left out, so on a quiet machine the share is the system's
daemons: well under 2 %. 10 % is a whole core of a 10-core machine kept busy by other work:
enough to show in CPU-side energy (RAPL counts the whole package, whoever runs on it) and to
take time from the engine's host threads (scheduling, tokenizing, launching kernels); a
busier machine moved a default run from 56.6 to 5.3 tokens/s. Lower, the warning would fire
on shared development machines whose background work is within the run-to-run spread."""
TOP_PROCESSES = 3
"""How many of the busiest foreign processes the summary names."""


def summarise_contention(
    samples: Sequence[TelemetrySample], sources: Sequence[TelemetrySource]
) -> Contention | None:
    """Other work during the window, from the contention source among ``sources``.

    Args:
        samples: the poller's samples (timestamps as the source read them, not shifted).
        sources: what the poller read.

    Returns:
        None when no contention source watched the window (none among the sources, or
        telemetry off).
    """
    source = next((s for s in sources if isinstance(s, ContentionSource)), None)
    if source is None:
        return None
    intervals = phase_intervals(source, samples, "window")
    if not intervals:
        return None
    capacity_s = sum(i.cpu_capacity_s for i in intervals)
    foreign_s = sum(i.foreign_cpu_s for i in intervals)
    return Contention(
        threshold_pct=CONTENTION_THRESHOLD_PCT,
        n_samples=len(intervals),
        foreign_cpu_pct_mean=100.0 * foreign_s / capacity_s if capacity_s else None,
        foreign_cpu_pct_max=max(i.foreign_cpu_pct for i in intervals),
        top_processes=_top_processes(intervals),
        foreign_gpu_processes=[_gpu_record(h) for h in _gpu_holders(intervals)],
        notes=_notes(source, intervals, capacity_s),
    )


def phase_intervals(
    source: ContentionSource, samples: Sequence[TelemetrySample], phase: str
) -> list[ContentionInterval]:
    """The source's intervals that began with a read tagged ``phase``."""
    phases = {s.timestamp_s: s.phase for s in samples if s.device == CONTENTION_DEVICE}
    return [i for i in source.intervals if phases.get(i.start_s) == phase]


def contention_warnings(contention: Contention | None) -> list[MeasurementWarning]:
    """``contention`` when other processes used more than the threshold share of the CPUs, and
    when any held one of the run's GPUs."""
    if contention is None:
        return []
    warnings = []
    mean_pct = contention.foreign_cpu_pct_mean
    if mean_pct is not None and mean_pct > contention.threshold_pct:
        busiest = ", ".join(
            f"{p['name']} (pid {p['pid']}, {p['cpu_s']:.1f} CPU-s)"
            for p in contention.top_processes
        )
        warnings.append(MeasurementWarning.of(
            WarningCode.CONTENTION,
            f"processes outside this run used {mean_pct:.1f} % of all CPUs' time during the "
            f"window (mean; max {contention.foreign_cpu_pct_max:.1f} % between two samples; "
            f"threshold {contention.threshold_pct:g} %), the busiest {busiest}: the energy "
            "and throughput include their effect; measure on an idle machine",
        ))  # fmt: skip
    if contention.foreign_gpu_processes:
        holders = ", ".join(_describe_holder(h) for h in contention.foreign_gpu_processes)
        warnings.append(MeasurementWarning.of(
            WarningCode.CONTENTION,
            f"processes outside this run held a measured GPU during the window: {holders}; "
            "the GPU's energy includes what they drew",
        ))  # fmt: skip
    return warnings


def _top_processes(intervals: Sequence[ContentionInterval]) -> list[dict[str, Any]]:
    totals: dict[tuple[int, str], float] = {}
    for interval in intervals:
        for process in interval.foreign:
            key = (process.pid, process.name)
            totals[key] = totals.get(key, 0.0) + process.cpu_s
    busiest = sorted(totals.items(), key=lambda item: -item[1])[:TOP_PROCESSES]
    return [{"pid": pid, "name": name, "cpu_s": round(cpu_s, 3)} for (pid, name), cpu_s in busiest]


def _gpu_holders(intervals: Sequence[ContentionInterval]) -> list[GpuHolder]:
    """Each (process, GPU) once, with the most memory it was seen holding."""
    found: dict[tuple[int, str], GpuHolder] = {}
    for interval in intervals:
        for holder in interval.gpus.holders if interval.gpus else ():
            key = (holder.pid, holder.gpu)
            kept = found.get(key)
            if kept is None or (holder.used_memory_mb or 0.0) > (kept.used_memory_mb or 0.0):
                found[key] = holder
    return list(found.values())


def _gpu_record(holder: GpuHolder) -> dict[str, Any]:
    return {
        "pid": holder.pid,
        "name": holder.name,
        "gpu": holder.gpu,
        "used_memory_mb": holder.used_memory_mb,
    }


def _describe_holder(record: dict[str, Any]) -> str:
    memory = record.get("used_memory_mb")
    held = f", {memory:.0f} MiB" if memory is not None else ""
    return f"{record.get('name') or '?'} (pid {record['pid']}) on {record['gpu']}{held}"


def _notes(
    source: ContentionSource, intervals: Sequence[ContentionInterval], capacity_s: float
) -> list[str]:
    roots = ", ".join(str(pid) for pid in source.root_pids)
    notes = [f"this run's own processes (not counted): pid {roots} and its descendants"]
    unexplained_s = sum(i.busy_cpu_s - i.own_cpu_s - i.foreign_cpu_s for i in intervals)
    if capacity_s and 100.0 * unexplained_s / capacity_s > CONTENTION_THRESHOLD_PCT:
        notes.append(
            f"the CPUs were also {100.0 * unexplained_s / capacity_s:.1f} % busy with work no "
            "process seen here accounts for (processes shorter than a sample, another "
            "container's, interrupts): it is not in foreign_cpu_pct"
        )
    unreadable = max(i.unreadable for i in intervals)
    if unreadable:
        notes.append(f"{unreadable} processes' CPU time could not be read: not counted")
    listings = [i.gpus for i in intervals if i.gpus is not None]
    unseen = sorted({pid for listing in listings for pid in listing.unseen_pids})
    if unseen:
        notes.append(
            f"NVML listed GPU processes with pids that name no process here ({unseen}): the "
            "host's pids seen from a container; they may be this run's, so are not counted"
        )
    errors = sorted({error for listing in listings for error in listing.errors})
    notes += [f"a GPU's processes could not be listed: {error}" for error in errors]
    return notes
