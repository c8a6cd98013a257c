"""A fake ``zeus`` (ml-energy/zeus) with the names and signatures llenergymeasure uses.

It mirrors Zeus 0.16 (same as 0.11 for these names): ``zeus.monitor.ZeusMonitor(gpu_indices,
cpu_indices, approx_instant_energy, log_file, sync_execution_with)`` with
``begin_window(key, sync_execution=True, restart=False)`` and
``end_window(key, sync_execution=True, cancel=False) -> Measurement``; ``Measurement(time,
gpu_energy, cpu_energy, dram_energy, soc_energy)`` whose ``total_energy`` sums the GPUs only;
``zeus.device.get_gpus()`` raising ``ZeusGPUInitError`` where neither NVML nor AMDSMI works;
and a monitor asked for GPU indices where there are none raising ``ValueError("No GPUs
available.")``, as Zeus's ``EmptyGPUs`` does. Energy is each device's configured power times
the injected clock's elapsed time.

The monitor's device managers are there too, as in Zeus ≥ 0.13 (snake-case names):
``monitor.gpus`` (``zeus.device.gpu.common.GPUs``: ``supports_get_total_energy_consumption(i)``,
``get_total_energy_consumption(i)`` in mJ since the driver loaded, an int, raising
``ZeusGPUNotSupportedError`` before Volta, and ``get_instant_power_usage(i)`` in mW) and
``monitor.cpus`` (``zeus.device.cpu.common.CPUs``: ``get_total_energy_consumption(i)`` ->
``CpuDramMeasurement(cpu_mj, dram_mj)`` in mJ, wraparounds already counted; an ``EmptyCPUs``
where RAPL is missing, whose reads raise ``ValueError("No CPUs available.")``). A GPU made lost
with :meth:`FakeZeus.lose_gpu` raises ``ZeusGPULostError`` on every read, ``end_window``
included.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import json
import sys
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from llenergymeasure.testing.modules import modules_installed

ZEUS_VERSION = "0.16.0"


class ZeusBaseError(Exception):
    """zeus.exception.ZeusBaseError."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ZeusBaseGPUError(ZeusBaseError):
    """zeus.device.exception.ZeusBaseGPUError."""


class ZeusBaseCPUError(ZeusBaseError):
    """zeus.device.exception.ZeusBaseCPUError."""


class ZeusGPUInitError(ZeusBaseGPUError):
    """zeus.device.gpu.common.ZeusGPUInitError."""


class ZeusGPULostError(ZeusBaseGPUError):
    """zeus.device.gpu.common.ZeusGPULostError."""


class ZeusGPUNotSupportedError(ZeusBaseGPUError):
    """zeus.device.gpu.common.ZeusGPUNotSupportedError."""


class ZeusCPUInitError(ZeusBaseCPUError):
    """zeus.device.cpu.common.ZeusCPUInitError."""


class ZeusCPUNoPermissionError(ZeusBaseCPUError):
    """zeus.device.cpu.common.ZeusCPUNoPermissionError."""


@dataclass
class CpuDramMeasurement:
    """zeus.device.cpu.common.CpuDramMeasurement: cumulative CPU and DRAM energy in mJ."""

    cpu_mj: float
    dram_mj: float | None = None

    def __truediv__(self, other: float) -> CpuDramMeasurement:
        """Both values divided (Zeus's monitor divides by 1000 to get joules)."""
        if other == 0:
            raise ZeroDivisionError("Division by zero is not allowed")
        dram = None if self.dram_mj is None else self.dram_mj / other
        return CpuDramMeasurement(self.cpu_mj / other, dram)


@dataclass
class Measurement:
    """zeus.monitor.energy.Measurement: seconds and joules of one window."""

    time: float
    gpu_energy: dict[int, float]
    cpu_energy: dict[int, float] | None = None
    dram_energy: dict[int, float] | None = None
    soc_energy: Any | None = None

    @cached_property
    def total_energy(self) -> float:
        """As in Zeus: the GPUs' energy only (CPU and DRAM are not included)."""
        return sum(self.gpu_energy.values())


@dataclass
class FakeZeusSpec:
    """The simulated machine behind the fake Zeus.

    Attributes:
        gpu_power_w: power of each visible GPU (empty: no GPU, get_gpus raises).
        cpu_power_w: power of each RAPL CPU package; None = no RAPL (cpu_energy is None).
        dram_power_w: DRAM power of each package; None = no DRAM zone.
        fail_end_window: end_window raises ZeusGPULostError (a GPU lost mid-window).
        old_gpus: indices of GPUs before Volta: no total-energy counter (Zeus integrates
            their power instead).
        start_energy_mj: every GPU counter's value when the fake is created.
    """

    gpu_power_w: Sequence[float] = (300.0,)
    cpu_power_w: Sequence[float] | None = None
    dram_power_w: Sequence[float] | None = None
    fail_end_window: bool = False
    old_gpus: Sequence[int] = ()
    start_energy_mj: int = 1_000_000


@dataclass
class _State:
    started_s: float
    energy_j: dict[str, dict[int, float]]


@dataclass
class FakeZeus:
    """The fake's machine and what the code under test did to it.

    Attributes:
        spec: the simulated machine.
        clock: drives the energy (seconds).
        monitors: every ZeusMonitor created, in order.
        lost_gpus: indices of GPUs whose reads raise ZeusGPULostError (see :meth:`lose_gpu`).
    """

    spec: FakeZeusSpec
    clock: Callable[[], float] = time.monotonic
    monitors: list[Any] = field(default_factory=list)
    lost_gpus: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.created_s = self.clock()

    @property
    def elapsed_s(self) -> float:
        """Seconds on the fake's clock since it was created."""
        return self.clock() - self.created_s

    def lose_gpu(self, index: int) -> None:
        """Make every later read of GPU ``index`` raise ZeusGPULostError."""
        self.lost_gpus.add(index)

    def recover_gpu(self, index: int) -> None:
        """Undo :meth:`lose_gpu` (a transient error that went away)."""
        self.lost_gpus.discard(index)

    def get_gpus(self, ensure_homogeneous: bool = False) -> FakeGPUs:
        """zeus.device.get_gpus: the GPU manager (raises where there is no GPU)."""
        if not self.spec.gpu_power_w:
            raise ZeusGPUInitError(
                "NVML and AMDSMI unavailable. Failed to initialize GPU management library."
            )
        return FakeGPUs(self)

    def get_cpus(self) -> FakeCPUs:
        """zeus.device.get_cpus: the RAPL manager (raises where RAPL is missing)."""
        if self.spec.cpu_power_w is None:
            raise ZeusCPUInitError("RAPL unavailable. Failed to initialize CPU management.")
        return FakeCPUs(self)

    def monitor_class(self) -> type:
        """A ZeusMonitor class bound to this machine."""
        fake = self

        class ZeusMonitor:
            """zeus.monitor.energy.ZeusMonitor (fake)."""

            def __init__(
                self,
                gpu_indices: list[int] | None = None,
                cpu_indices: list[int] | None = None,
                approx_instant_energy: bool = False,
                log_file: str | None = None,
                sync_execution_with: str = "torch",
            ) -> None:
                gpus = fake.spec.gpu_power_w
                cpus = fake.spec.cpu_power_w or []
                self.gpus = FakeGPUs(fake)  # Zeus uses EmptyGPUs where there are none
                self.cpus = FakeCPUs(fake)
                self.gpu_indices = list(range(len(gpus))) if gpu_indices is None else gpu_indices
                self.cpu_indices = list(range(len(cpus))) if cpu_indices is None else cpu_indices
                if self.gpu_indices and not gpus:
                    raise ValueError("No GPUs available.")
                for index in self.gpu_indices:
                    _ = gpus[index]  # IndexError for an index that is not there, as in Zeus
                self.approx_instant_energy = approx_instant_energy
                self.sync_with = sync_execution_with
                self.sync_calls: list[bool] = []
                self.measurement_states: dict[str, _State] = {}
                fake.monitors.append(self)

            def begin_window(
                self, key: str, sync_execution: bool = True, restart: bool = False
            ) -> None:
                if key in self.measurement_states and not restart:
                    raise ValueError(f"Measurement window '{key}' already exists")
                self.sync_calls.append(sync_execution)
                self.measurement_states[key] = _State(fake.clock(), {})

            def end_window(
                self, key: str, sync_execution: bool = True, cancel: bool = False
            ) -> Measurement:
                try:
                    state = self.measurement_states.pop(key)
                except KeyError:
                    raise ValueError(f"Measurement window '{key}' does not exist") from None
                self.sync_calls.append(sync_execution)
                if fake.spec.fail_end_window or set(self.gpu_indices) & fake.lost_gpus:
                    raise ZeusGPULostError("GPU is lost")
                elapsed = fake.clock() - state.started_s
                if cancel:
                    return Measurement(0.0, dict.fromkeys(self.gpu_indices, 0.0))
                return Measurement(
                    time=elapsed,
                    gpu_energy={i: fake.spec.gpu_power_w[i] * elapsed for i in self.gpu_indices},
                    cpu_energy=_per_index(fake.spec.cpu_power_w, self.cpu_indices, elapsed),
                    dram_energy=_per_index(fake.spec.dram_power_w, self.cpu_indices, elapsed),
                )

        return ZeusMonitor


class FakeGPUs:
    """zeus.device.gpu.common.GPUs (fake): the visible GPUs' counters and power."""

    def __init__(self, fake: FakeZeus) -> None:
        self._fake = fake

    def __len__(self) -> int:
        return len(self._fake.spec.gpu_power_w)

    def supports_get_total_energy_consumption(self, gpu_index: int) -> bool:
        """Volta and newer have the counter."""
        self._check(gpu_index)
        return gpu_index not in self._fake.spec.old_gpus

    def get_total_energy_consumption(self, gpu_index: int) -> int:
        """Energy since the driver loaded. Units: mJ.

        Raises:
            ZeusGPUNotSupportedError: the GPU is older than Volta.
        """
        self._check(gpu_index)
        if gpu_index in self._fake.spec.old_gpus:
            raise ZeusGPUNotSupportedError("Not Supported")
        energy_j = self._fake.spec.gpu_power_w[gpu_index] * self._fake.elapsed_s
        return self._fake.spec.start_energy_mj + round(energy_j * 1000)

    def get_instant_power_usage(self, gpu_index: int) -> int:
        """The current power draw. Units: mW."""
        self._check(gpu_index)
        return round(self._fake.spec.gpu_power_w[gpu_index] * 1000)

    def _check(self, gpu_index: int) -> None:
        _ = self._fake.spec.gpu_power_w[gpu_index]  # IndexError, as Zeus's GPU list gives
        if gpu_index in self._fake.lost_gpus:
            raise ZeusGPULostError("GPU is lost")


class FakeCPUs:
    """zeus.device.cpu.common.CPUs (fake): RAPL packages, or EmptyCPUs where there is none."""

    def __init__(self, fake: FakeZeus) -> None:
        self._fake = fake

    def __len__(self) -> int:
        return len(self._fake.spec.cpu_power_w or ())

    def get_total_energy_consumption(self, index: int) -> CpuDramMeasurement:
        """Package (and DRAM) energy since boot, wraparounds counted. Units: mJ.

        Raises:
            ValueError: no RAPL here (``EmptyCPUs``).
        """
        cpu_w, dram_w = self._fake.spec.cpu_power_w, self._fake.spec.dram_power_w
        if not cpu_w:
            raise ValueError("No CPUs available.")
        elapsed_s = self._fake.elapsed_s
        dram_mj = dram_w[index] * elapsed_s * 1000 if dram_w else None
        return CpuDramMeasurement(cpu_w[index] * elapsed_s * 1000, dram_mj)

    def supports_get_dram_energy_consumption(self, index: int) -> bool:
        """Whether the package has a DRAM zone."""
        if not self._fake.spec.cpu_power_w:
            raise ValueError("No CPUs available.")
        return bool(self._fake.spec.dram_power_w)


def _per_index(
    power_w: Sequence[float] | None, indices: Sequence[int], elapsed_s: float
) -> dict[int, float] | None:
    if not power_w or not indices:
        return None
    return {i: power_w[i] * elapsed_s for i in indices}


def build_modules(fake: FakeZeus) -> dict[str, types.ModuleType]:
    """Module objects for ``zeus`` and the submodules llenergymeasure imports."""
    monitor_cls = fake.monitor_class()
    contents: dict[str, dict[str, Any]] = {
        "zeus": {"__version__": ZEUS_VERSION, "__llem_fake__": fake},
        "zeus.exception": {"ZeusBaseError": ZeusBaseError},
        "zeus.device": {"get_gpus": fake.get_gpus, "get_cpus": fake.get_cpus},
        "zeus.device.exception": {
            "ZeusBaseGPUError": ZeusBaseGPUError,
            "ZeusBaseCPUError": ZeusBaseCPUError,
        },
        "zeus.device.gpu": {"get_gpus": fake.get_gpus, "ZeusGPUInitError": ZeusGPUInitError},
        "zeus.device.gpu.common": {
            "GPUs": FakeGPUs,
            "ZeusGPUInitError": ZeusGPUInitError,
            "ZeusGPULostError": ZeusGPULostError,
            "ZeusGPUNotSupportedError": ZeusGPUNotSupportedError,
        },
        "zeus.device.cpu": {"get_cpus": fake.get_cpus},
        "zeus.device.cpu.common": {
            "CPUs": FakeCPUs,
            "CpuDramMeasurement": CpuDramMeasurement,
            "ZeusCPUInitError": ZeusCPUInitError,
            "ZeusCPUNoPermissionError": ZeusCPUNoPermissionError,
        },
        "zeus.monitor": {"ZeusMonitor": monitor_cls, "Measurement": Measurement},
        "zeus.monitor.energy": {"ZeusMonitor": monitor_cls, "Measurement": Measurement},
    }
    modules = {}
    for name, attributes in contents.items():
        module = types.ModuleType(name, "llenergymeasure's fake of zeus")
        is_package = name.count(".") < 2 and name != "zeus.exception"
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=is_package)
        if is_package:
            module.__path__ = []
        for attribute, value in attributes.items():
            setattr(module, attribute, value)
        modules[name] = module
    for name, module in modules.items():
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
    return modules


def install(fake: FakeZeus) -> None:
    """Make ``import zeus`` (and its submodules) return the fake for the rest of the process."""
    sys.modules.update(build_modules(fake))


@contextlib.contextmanager
def install_fake_zeus(
    spec: FakeZeusSpec | None = None, *, clock: Callable[[], float] = time.monotonic
) -> Iterator[FakeZeus]:
    """Put a fake ``zeus`` in ``sys.modules`` for the duration of the block.

    Yields:
        The FakeZeus, whose ``monitors`` list shows how the code under test used it.
    """
    fake = FakeZeus(spec or FakeZeusSpec(), clock)
    with modules_installed(build_modules(fake)):
        yield fake


def fake_zeus_from_spec(
    spec: str | Mapping[str, Any], *, clock: Callable[[], float] = time.monotonic
) -> FakeZeus:
    """Build a FakeZeus from JSON text or a mapping of :class:`FakeZeusSpec` fields.

    Raises:
        ValueError: the spec is not a JSON object of known fields.
    """
    data = json.loads(spec) if isinstance(spec, str) else dict(spec)
    if not isinstance(data, dict):
        raise ValueError("a fake Zeus spec is a JSON object")
    return FakeZeus(FakeZeusSpec(**data), clock)
