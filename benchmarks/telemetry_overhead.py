"""What does the telemetry poller cost? CPU time per sample, and per second of run.

Times ``poll()`` (one sample of every source) over many calls with ``time.process_time`` and
scales by the sampling rate, for the CPU source and for GPU sources through the shipped fake
pynvml (whose calls are cheap, so the GPU figure is llem's own overhead, not the driver's).

    python benchmarks/telemetry_overhead.py [--polls 500] [--interval-ms 100] [--gpus 4]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from llenergymeasure.devices import get_gpus
from llenergymeasure.telemetry import (
    CpuTelemetrySource,
    GpuTelemetrySource,
    TelemetryPoller,
    TelemetrySource,
)
from llenergymeasure.testing import install_fake_pynvml


def cpu_ms_per_poll(sources: Sequence[TelemetrySource], polls: int) -> float:
    """Mean CPU milliseconds of one ``poll()`` over ``polls`` calls."""
    poller = TelemetryPoller(sources)
    poller.poll()  # first call primes psutil and NVML handles
    start = time.process_time()
    for _ in range(polls):
        poller.poll()
    return (time.process_time() - start) / polls * 1e3


def report(label: str, per_poll_ms: float, interval_ms: int) -> None:
    per_second_ms = per_poll_ms * 1000 / interval_ms
    print(
        f"{label:16} {per_poll_ms:6.3f} ms CPU per sample → {per_second_ms:6.2f} ms per second "
        f"({per_second_ms / 10:.2f}% of one core at {interval_ms} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=500)
    parser.add_argument("--interval-ms", type=int, default=100)
    parser.add_argument("--gpus", type=int, default=4)
    args = parser.parse_args()

    report("cpu source", cpu_ms_per_poll([CpuTelemetrySource()], args.polls), args.interval_ms)
    with install_fake_pynvml(gpus=args.gpus):
        gpus = get_gpus()
        per_poll = cpu_ms_per_poll([GpuTelemetrySource(gpus)], args.polls)
    report(f"{args.gpus} fake GPUs", per_poll, args.interval_ms)


if __name__ == "__main__":
    main()
