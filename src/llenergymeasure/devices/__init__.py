"""Compute devices behind one vendor-neutral interface, found by a probing factory.

:func:`get_gpus` returns the GPUs this process can use (an empty list, never an exception,
where there is no driver, library or device); :func:`probe` says why there are none;
:func:`physical_gpu_ids` names the physical devices behind them (what a device lock is
keyed on); :func:`gpu_snapshot` is what the environment record keeps. Vendor libraries are imported
only inside these calls, and their errors never leave this package. NVML is initialised once
per process, on the first call, and shut down at exit (:func:`nvidia.shared_session`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from llenergymeasure.devices import nvidia
from llenergymeasure.devices.gpu import (
    THROTTLE_REASONS,
    Gpu,
    GpuError,
    GpuLostError,
    GpuNotSupportedError,
    GpuProcess,
    GpuState,
    GpuUnavailableError,
    PowerSource,
    is_throttled,
)
from llenergymeasure.devices.nvidia import COUNTER_UPDATE_PERIOD_S

VISIBLE_DEVICES_ENV = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class GpuProbe:
    """Whether GPUs can be read here, how many, and why not when none can."""

    available: bool
    count: int = 0
    reason: str = ""


def get_gpus(visible: str | None = None) -> list[Gpu]:
    """The GPUs this process can use, in ``cuda:N`` order; empty when there are none.

    Args:
        visible: a ``CUDA_VISIBLE_DEVICES``-style value (integers, ``GPU-``/``MIG-`` UUIDs);
            None reads the environment variable, and every device is visible when it is unset.
    """
    try:
        return _discover(visible)
    except GpuError:
        return []


def probe(visible: str | None = None) -> GpuProbe:
    """Say whether any GPU can be read, and why not (no library, no driver, none visible)."""
    try:
        gpus = _discover(visible)
    except GpuError as exc:
        return GpuProbe(False, 0, str(exc))
    if not gpus:
        setting = visible if visible is not None else os.environ.get(VISIBLE_DEVICES_ENV)
        if setting is not None:
            return GpuProbe(False, 0, f"no GPU is visible ({VISIBLE_DEVICES_ENV}={setting!r})")
        return GpuProbe(False, 0, "the NVIDIA driver reports no GPU")
    return GpuProbe(True, len(gpus))


def physical_gpu_ids(visible: str | None = None) -> list[str]:
    """The physical GPUs this process can use, by UUID (``GPU-...``), sorted, no repeats.

    However ``CUDA_VISIBLE_DEVICES`` names a device (index, UUID or prefix, MIG instance), the
    same physical GPU gets the same id, and the MIG instances of one GPU share their GPU's
    (they share its power and energy readings). A device whose UUID cannot be read is
    named by its NVML index (``nvml-<index>``). Empty where no GPU can be used.

    Args:
        visible: as for :func:`get_gpus`.
    """
    ids: set[str] = set()
    for gpu in get_gpus(visible):
        try:
            ids.add(gpu.uuid())
        except GpuError:
            ids.add(f"nvml-{gpu.vendor_index}")
    return sorted(ids)


def gpu_snapshot(gpus: list[Gpu] | None = None) -> list[dict[str, Any]]:
    """Name, UUID, driver, CUDA, compute capability, power limit, clocks, persistence mode
    and ECC of each GPU (default: every visible one); a device that fails is recorded with
    its error instead.
    """
    records = []
    for gpu in get_gpus() if gpus is None else gpus:
        try:
            records.append(gpu.snapshot())
        except GpuError as exc:
            records.append({"index": gpu.index, "error": str(exc)})
    return records


def _discover(visible: str | None) -> list[Gpu]:
    if visible is None:
        visible = os.environ.get(VISIBLE_DEVICES_ENV)
    return list(nvidia.discover(visible))


__all__ = [
    "COUNTER_UPDATE_PERIOD_S",
    "THROTTLE_REASONS",
    "VISIBLE_DEVICES_ENV",
    "Gpu",
    "GpuError",
    "GpuLostError",
    "GpuNotSupportedError",
    "GpuProbe",
    "GpuProcess",
    "GpuState",
    "GpuUnavailableError",
    "PowerSource",
    "get_gpus",
    "gpu_snapshot",
    "is_throttled",
    "physical_gpu_ids",
    "probe",
]
