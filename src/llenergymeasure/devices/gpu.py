"""The vendor-neutral GPU interface: what llenergymeasure reads from a GPU, in named units.

A :class:`Gpu` is one device as the inference engine sees it (``cuda:<index>`` after
``CUDA_VISIBLE_DEVICES``). Implementations (``devices/nvidia.py``) call their vendor library
and translate its errors into the exceptions below at this boundary; nothing above
``devices/`` imports a vendor library or sees its exceptions::

    LLEMError
    └── GpuError                 a device read failed (the message names the call)
        ├── GpuNotSupportedError the device or driver does not offer this reading
        ├── GpuLostError         the device fell off the bus or needs a reset
        └── GpuUnavailableError  no vendor library, no driver, or no visible device

Energy counters belong to the energy sampler: ``total_energy_mj`` is read by exactly one
sampler per measurement (``nvml`` or Zeus's own reads), never by the telemetry poller, which
uses :meth:`Gpu.read_state`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from llenergymeasure.errors import LLEMError

T = TypeVar("T")

PowerSource = Literal["instant", "average"]
"""How :meth:`Gpu.power_w` reads power: ``instant`` (a momentary reading) or ``average``
(the driver's moving average, 1 s on NVIDIA Ampere and newer, which smears short phases)."""

THROTTLE_REASONS = frozenset(
    {
        "sw_power_cap",
        "hw_slowdown",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
    }
)
"""Clock-event reasons that mean the device was held below the clocks it asked for.

Idle, application/display clock settings and sync boost also lower clocks but are not
throttling; see :func:`is_throttled`."""


class GpuError(LLEMError):
    """A GPU read failed; the message names the call and the vendor's error."""


class GpuNotSupportedError(GpuError):
    """The device or its driver does not offer this reading (e.g. no energy counter)."""


class GpuLostError(GpuError):
    """The device is gone (fell off the bus, or needs a reset); later reads fail too."""


class GpuUnavailableError(GpuError):
    """No GPU can be used: the vendor library or driver is missing, or none is visible."""


@dataclass(frozen=True)
class GpuState:
    """One device's state at one moment; None where the device cannot say.

    Attributes:
        power_w: power draw in watts (see :attr:`Gpu.power_source` for how it was read).
        temperature_c: core temperature in degrees Celsius.
        memory_used_mb: device memory in use, in MiB (2**20 bytes, as nvidia-smi reports).
        sm_utilisation_pct: percent of the last sample period a kernel was running.
        sm_clock_mhz: streaming-multiprocessor clock in MHz.
        clock_event_reasons: why clocks are below maximum (names, e.g. ``sw_power_cap``).
    """

    power_w: float | None = None
    temperature_c: float | None = None
    memory_used_mb: float | None = None
    sm_utilisation_pct: float | None = None
    sm_clock_mhz: float | None = None
    clock_event_reasons: tuple[str, ...] | None = None


@dataclass(frozen=True)
class GpuProcess:
    """A process holding a GPU (a compute context on it), as the vendor library lists it.

    Attributes:
        pid: the process id as the driver gives it: the host's pid namespace, so seen from a
            container it may name no process there (or another one).
        used_memory_mb: device memory it holds, in MiB; None where the driver cannot say.
    """

    pid: int
    used_memory_mb: float | None = None


def is_throttled(reasons: tuple[str, ...] | list[str] | None) -> bool:
    """Whether any of the clock-event reasons is a throttle (power or thermal slowdown)."""
    return bool(reasons) and any(reason in THROTTLE_REASONS for reason in reasons or ())


class Gpu(abc.ABC):
    """One GPU, read through its vendor library.

    Every reader raises :class:`GpuNotSupportedError` when the device lacks the reading,
    :class:`GpuLostError` when the device is gone, and :class:`GpuError` for any other
    failure; never a vendor exception.

    Attributes:
        index: position among the visible GPUs, i.e. the ``N`` in ``cuda:N``.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self._supports_energy: bool | None = None

    @property
    def key(self) -> str:
        """The scope key used in readings and timeseries: ``gpu:<index>``."""
        return f"gpu:{self.index}"

    @property
    def simulated(self) -> bool:
        """True when a shipped fake (``llenergymeasure.testing``) stands in for the vendor
        library, so every figure read from this device is synthetic."""
        return False

    @property
    @abc.abstractmethod
    def vendor_index(self) -> int:
        """The device's index in its vendor library (NVML's order, by PCI bus id)."""

    @property
    @abc.abstractmethod
    def power_source(self) -> PowerSource | None:
        """How :meth:`power_w` reads power; None until it has been called once."""

    @abc.abstractmethod
    def name(self) -> str:
        """The product name, e.g. ``NVIDIA H100 80GB HBM3``."""

    @abc.abstractmethod
    def uuid(self) -> str:
        """The device's UUID (``GPU-...``), stable across reboots and index changes."""

    @abc.abstractmethod
    def total_energy_mj(self) -> int:
        """The device's total-energy counter in millijoules (since the driver loaded).

        Raises:
            GpuNotSupportedError: the device has no energy counter (NVIDIA before Volta).
        """

    @abc.abstractmethod
    def power_w(self) -> float:
        """Power draw in watts: instantaneous where the driver offers it, else its average."""

    @abc.abstractmethod
    def temperature_c(self) -> float:
        """Core temperature in degrees Celsius."""

    @abc.abstractmethod
    def memory_used_mb(self) -> float:
        """Device memory in use, in MiB."""

    def memory_total_mb(self) -> float:
        """Device memory in total, in MiB.

        Raises:
            GpuNotSupportedError: the vendor layer cannot tell.
        """
        raise GpuNotSupportedError(f"{self.key}: total memory is not available")

    def compute_processes(self) -> list[GpuProcess]:
        """The processes with a compute context on this device now (any user's).

        Raises:
            GpuNotSupportedError: the vendor layer cannot list them.
        """
        raise GpuNotSupportedError(f"{self.key}: its processes cannot be listed")

    @abc.abstractmethod
    def sm_utilisation_pct(self) -> float:
        """Percent of the last sample period during which a kernel was running."""

    @abc.abstractmethod
    def sm_clock_mhz(self) -> float:
        """Current streaming-multiprocessor clock in MHz."""

    @abc.abstractmethod
    def max_sm_clock_mhz(self) -> float:
        """Maximum streaming-multiprocessor clock in MHz."""

    @abc.abstractmethod
    def clock_event_reasons(self) -> tuple[str, ...]:
        """Why clocks are below maximum now (e.g. ``gpu_idle``, ``sw_power_cap``)."""

    @abc.abstractmethod
    def power_limit_w(self) -> float:
        """The power limit the driver enforces, in watts."""

    @abc.abstractmethod
    def persistence_mode(self) -> bool:
        """Whether the driver stays loaded with no client (avoids slow first calls)."""

    @abc.abstractmethod
    def compute_capability(self) -> tuple[int, int]:
        """CUDA compute capability as (major, minor), e.g. (9, 0) for Hopper."""

    @abc.abstractmethod
    def ecc_enabled(self) -> bool:
        """Whether ECC memory protection is on now."""

    @abc.abstractmethod
    def driver_version(self) -> str:
        """The kernel driver's version, e.g. ``550.54.15``."""

    @abc.abstractmethod
    def cuda_driver_version(self) -> str:
        """The newest CUDA version the driver supports, e.g. ``12.4``."""

    def supports_total_energy(self) -> bool:
        """Whether :meth:`total_energy_mj` works on this device (asked once, then cached).

        Raises:
            GpuError: the device failed for another reason (e.g. it is lost).
        """
        if self._supports_energy is None:
            try:
                self.total_energy_mj()
            except GpuNotSupportedError:
                self._supports_energy = False
            else:
                self._supports_energy = True
        return self._supports_energy

    def read_state(self) -> GpuState:
        """Read everything the telemetry poller records (never the energy counter).

        Readings the device does not support are None.

        Raises:
            GpuLostError: the device is gone.
            GpuError: another read failed.
        """
        return GpuState(
            power_w=_optional(self.power_w),
            temperature_c=_optional(self.temperature_c),
            memory_used_mb=_optional(self.memory_used_mb),
            sm_utilisation_pct=_optional(self.sm_utilisation_pct),
            sm_clock_mhz=_optional(self.sm_clock_mhz),
            clock_event_reasons=_optional(self.clock_event_reasons),
        )

    def snapshot(self) -> dict[str, Any]:
        """What the environment record keeps about this device; unsupported fields are None.

        Raises:
            GpuLostError: the device is gone.
        """
        capability = _optional(self.compute_capability)
        return {
            "index": self.index,
            "vendor_index": self.vendor_index,
            "name": _optional(self.name),
            "uuid": _optional(self.uuid),
            "driver_version": _optional(self.driver_version),
            "cuda_driver_version": _optional(self.cuda_driver_version),
            "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
            "power_limit_w": _optional(self.power_limit_w),
            "sm_clock_mhz": _optional(self.sm_clock_mhz),
            "max_sm_clock_mhz": _optional(self.max_sm_clock_mhz),
            "persistence_mode": _optional(self.persistence_mode),
            "ecc_enabled": _optional(self.ecc_enabled),
            "energy_counter": self.supports_total_energy(),
            **({"simulated": True} if self.simulated else {}),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(index={self.index}, vendor_index={self.vendor_index})"


def _optional(read: Callable[[], T]) -> T | None:
    """``read()``, or None when the device does not support it (other errors propagate)."""
    try:
        return read()
    except GpuNotSupportedError:
        return None
