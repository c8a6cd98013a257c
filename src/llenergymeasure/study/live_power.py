"""Current device power for the live study display, read from the GPU telemetry source.

The study's runs execute in child processes (or containers) that own the energy samplers; the
display only needs a glance at what the devices draw now, so the parent reads this machine's
GPUs through the same telemetry source the poller uses (NVML power, the instantaneous field
where the driver has it). Without a GPU there is no reader and the display shows none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llenergymeasure.devices import Gpu, get_gpus
from llenergymeasure.errors import LLEMError
from llenergymeasure.telemetry import GpuTelemetrySource

PowerReader = Callable[[], float | None]
"""Returns the total power of the devices now, in watts, or None when it cannot be read."""


def gpu_power_reader(gpus: Sequence[Gpu] | None = None) -> PowerReader | None:
    """A reader of the visible GPUs' total power; None when there are no GPUs."""
    gpus = get_gpus() if gpus is None else list(gpus)
    if not gpus:
        return None
    source = GpuTelemetrySource(gpus)

    def read_w() -> float | None:
        try:
            samples = source.read(0.0)
        except LLEMError:  # a GPU lost or NVML failing: the display shows no figure
            return None
        powers = [s.power_w for s in samples if s.power_w is not None]
        return sum(powers) if powers else None

    return read_w
