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


class ZeusCPUInitError(ZeusBaseCPUError):
    """zeus.device.cpu.common.ZeusCPUInitError."""


class ZeusCPUNoPermissionError(ZeusBaseCPUError):
    """zeus.device.cpu.common.ZeusCPUNoPermissionError."""


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
    """

    gpu_power_w: Sequence[float] = (300.0,)
    cpu_power_w: Sequence[float] | None = None
    dram_power_w: Sequence[float] | None = None
    fail_end_window: bool = False


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
    """

    spec: FakeZeusSpec
    clock: Callable[[], float] = time.monotonic
    monitors: list[Any] = field(default_factory=list)

    def get_gpus(self, ensure_homogeneous: bool = False) -> list[float]:
        """zeus.device.get_gpus: one entry per GPU (len() is what callers use)."""
        if not self.spec.gpu_power_w:
            raise ZeusGPUInitError(
                "NVML and AMDSMI unavailable. Failed to initialize GPU management library."
            )
        return list(self.spec.gpu_power_w)

    def get_cpus(self) -> list[float]:
        """zeus.device.get_cpus: one entry per RAPL package."""
        if self.spec.cpu_power_w is None:
            raise ZeusCPUInitError("RAPL unavailable. Failed to initialize CPU management.")
        return list(self.spec.cpu_power_w)

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
                if fake.spec.fail_end_window:
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
            "ZeusGPUInitError": ZeusGPUInitError,
            "ZeusGPULostError": ZeusGPULostError,
        },
        "zeus.device.cpu": {"get_cpus": fake.get_cpus},
        "zeus.device.cpu.common": {
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
