"""A fake ``pynvml`` (nvidia-ml-py) that behaves like the real one, for machines with no GPU.

It mirrors nvidia-ml-py 13.615 where llenergymeasure (and Zeus) touch it: the same function
names and parameters, the same units (energy mJ, power mW, clocks MHz, memory bytes), the same
constants, the same ctypes structures for field values, memory and utilisation, and the same
error classes, built the way pynvml builds them (``NVMLError(code)`` returns the generated
subclass, e.g. ``NVMLError_NotSupported``, with the code in ``.value``). ``nvmlInit`` and
``nvmlShutdown`` are reference-counted, and every other call fails with
``NVMLError_Uninitialized`` outside them, as with the real library.

Each fake GPU draws a configured power (constant, or a piecewise-constant schedule) and its
total-energy counter advances with the injected clock at that power, so an energy sampler
reading it must report power x time. Options simulate what real fleets do: no energy counter
(before Volta), no instantaneous-power field (older drivers), a counter that only updates every
``counter_update_s``, and a GPU that is lost after N calls or at a given time.

Use :func:`install_fake_pynvml` in tests, and ``python -m llenergymeasure.testing`` with
``LLEM_FAKE_NVML=<json spec>`` to run the ``llem`` CLI in a subprocess against the fake (see
:mod:`llenergymeasure.testing`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import string
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Any, ClassVar

# --- constants, with nvidia-ml-py's names and values ---------------------------------------

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_VGPU_ECC_NOT_SUPPORTED = 22
NVML_ERROR_INSUFFICIENT_RESOURCES = 23
NVML_ERROR_FREQ_NOT_SUPPORTED = 24
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_DEPRECATED = 26
NVML_ERROR_NOT_READY = 27
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_INVALID_STATE = 29
NVML_ERROR_RESET_TYPE_NOT_SUPPORTED = 30
NVML_ERROR_UNKNOWN = 999

NVML_FEATURE_DISABLED = 0
NVML_FEATURE_ENABLED = 1

NVML_TEMPERATURE_GPU = 0

NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2

NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186
NVML_FI_DEV_ENERGY = 191

NVML_POWER_SCOPE_GPU = 0
NVML_POWER_SCOPE_MODULE = 1
NVML_POWER_SCOPE_MEMORY = 2

NVML_VALUE_TYPE_DOUBLE = 0
NVML_VALUE_TYPE_UNSIGNED_INT = 1
NVML_VALUE_TYPE_UNSIGNED_LONG = 2
NVML_VALUE_TYPE_UNSIGNED_LONG_LONG = 3
NVML_VALUE_TYPE_SIGNED_LONG_LONG = 4
NVML_VALUE_TYPE_SIGNED_INT = 5
NVML_VALUE_TYPE_UNSIGNED_SHORT = 6

NVML_DEVICE_ARCH_KEPLER = 2
NVML_DEVICE_ARCH_MAXWELL = 3
NVML_DEVICE_ARCH_PASCAL = 4
NVML_DEVICE_ARCH_VOLTA = 5
NVML_DEVICE_ARCH_TURING = 6
NVML_DEVICE_ARCH_AMPERE = 7
NVML_DEVICE_ARCH_ADA = 8
NVML_DEVICE_ARCH_HOPPER = 9
NVML_DEVICE_ARCH_BLACKWELL = 10

nvmlClocksEventReasonGpuIdle = 0x0000000000000001
nvmlClocksEventReasonApplicationsClocksSetting = 0x0000000000000002
nvmlClocksEventReasonSwPowerCap = 0x0000000000000004
nvmlClocksEventReasonHwSlowdown = 0x0000000000000008
nvmlClocksEventReasonSyncBoost = 0x0000000000000010
nvmlClocksEventReasonSwThermalSlowdown = 0x0000000000000020
nvmlClocksEventReasonHwThermalSlowdown = 0x0000000000000040
nvmlClocksEventReasonHwPowerBrakeSlowdown = 0x0000000000000080
nvmlClocksEventReasonDisplayClockSetting = 0x0000000000000100
nvmlClocksEventReasonNone = 0x0000000000000000

# --- errors, generated the way pynvml generates them ----------------------------------------


class NVMLError(Exception):
    """pynvml's base error: ``NVMLError(code)`` returns the subclass for that code."""

    _valClassMapping: ClassVar[dict[int, type[NVMLError]]] = {}
    _errcode_to_string: ClassVar[dict[int, str]] = {
        NVML_ERROR_UNINITIALIZED: "Uninitialized",
        NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
        NVML_ERROR_NOT_SUPPORTED: "Not Supported",
        NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
        NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
        NVML_ERROR_NOT_FOUND: "Not Found",
        NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
        NVML_ERROR_INSUFFICIENT_POWER: "Insufficient External Power",
        NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
        NVML_ERROR_TIMEOUT: "Timeout",
        NVML_ERROR_IRQ_ISSUE: "Interrupt Request Issue",
        NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
        NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
        NVML_ERROR_CORRUPTED_INFOROM: "Corrupted infoROM",
        NVML_ERROR_GPU_IS_LOST: "GPU is lost",
        NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
        NVML_ERROR_OPERATING_SYSTEM: "The operating system has blocked the request.",
        NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
        NVML_ERROR_MEMORY: "Insufficient Memory",
        NVML_ERROR_UNKNOWN: "Unknown Error",
    }
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __str__(self) -> str:
        return NVMLError._errcode_to_string.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]  # as in pynvml, where __eq__ drops the hash


def nvmlExceptionClass(nvmlErrorCode: int) -> type[NVMLError]:
    """The generated NVMLError subclass for an error code."""
    if nvmlErrorCode not in NVMLError._valClassMapping:
        raise ValueError(f"nvmlErrorCode {nvmlErrorCode} is not valid")
    return NVMLError._valClassMapping[nvmlErrorCode]


def _extract_errors_as_classes() -> None:
    """pynvml's ``_extractNVMLErrorsAsClasses``: NVML_ERROR_GPU_IS_LOST → NVMLError_GpuIsLost."""
    this_module = sys.modules[__name__]
    for err_name in [name for name in dir(this_module) if name.startswith("NVML_ERROR_")]:
        words = string.capwords(err_name.replace("NVML_ERROR_", ""), "_")
        class_name = "NVMLError_" + words.replace("_", "")
        err_val = getattr(this_module, err_name)

        def gen_new(val: int) -> Callable[..., NVMLError]:
            def new(typ: type[NVMLError], *args: object) -> NVMLError:
                return NVMLError.__new__(typ, val)

            return new

        new_error_class = type(class_name, (NVMLError,), {"__new__": gen_new(err_val)})
        new_error_class.__module__ = __name__
        setattr(this_module, class_name, new_error_class)
        NVMLError._valClassMapping[err_val] = new_error_class


_extract_errors_as_classes()

# --- the ctypes structures pynvml returns ---------------------------------------------------


class c_nvmlValue_t(ctypes.Union):
    """pynvml's value union of a field value."""

    _fields_: ClassVar = [
        ("dVal", ctypes.c_double),
        ("uiVal", ctypes.c_uint),
        ("ulVal", ctypes.c_ulong),
        ("ullVal", ctypes.c_ulonglong),
        ("sllVal", ctypes.c_longlong),
        ("siVal", ctypes.c_int),
        ("usVal", ctypes.c_ushort),
    ]


class c_nvmlFieldValue_t(ctypes.Structure):
    """pynvml's nvmlFieldValue_t: one field's id, scope, timestamp (us), status and value."""

    _fields_: ClassVar = [
        ("fieldId", ctypes.c_uint32),
        ("scopeId", ctypes.c_uint32),
        ("timestamp", ctypes.c_int64),
        ("latencyUsec", ctypes.c_int64),
        ("valueType", ctypes.c_uint),
        ("nvmlReturn", ctypes.c_uint),
        ("value", c_nvmlValue_t),
    ]


class c_nvmlMemory_t(ctypes.Structure):
    """pynvml's nvmlMemory_t, in bytes."""

    _fields_: ClassVar = [
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    ]


class c_nvmlUtilization_t(ctypes.Structure):
    """pynvml's nvmlUtilization_t, in percent."""

    _fields_: ClassVar = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class c_nvmlProcessInfo_v2_t(ctypes.Structure):
    """pynvml's nvmlProcessInfo_t (v2 and v3 share it): a process with a context on a GPU."""

    _fields_: ClassVar = [
        ("pid", ctypes.c_uint),
        ("usedGpuMemory", ctypes.c_ulonglong),
        ("gpuInstanceId", ctypes.c_uint),
        ("computeInstanceId", ctypes.c_uint),
    ]


c_nvmlProcessInfo_v3_t = c_nvmlProcessInfo_v2_t
c_nvmlProcessInfo_t = c_nvmlProcessInfo_v3_t

# What NVML writes into usedGpuMemory when it cannot say (pynvml's
# NVML_VALUE_NOT_AVAILABLE_ulonglong, a ctypes value that compares by identity).
_MEMORY_NOT_AVAILABLE = ctypes.c_ulonglong(-1).value


class _FriendlyObject:
    """pynvml's nvmlFriendlyObject: a structure's fields as plain attributes."""

    def __init__(self, dictionary: Mapping[str, Any]) -> None:
        for key, value in dictionary.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return str(self.__dict__)


def _process_object(pid: int, used_bytes: int | None) -> _FriendlyObject:
    """One process as nvmlDeviceGetComputeRunningProcesses_v3 returns it (nvidia-ml-py turns
    NOT_AVAILABLE memory into None)."""
    info = c_nvmlProcessInfo_v2_t(pid, _MEMORY_NOT_AVAILABLE if used_bytes is None else used_bytes)
    values = {field[0]: getattr(info, field[0]) for field in c_nvmlProcessInfo_v2_t._fields_}
    if values["usedGpuMemory"] == _MEMORY_NOT_AVAILABLE:
        values["usedGpuMemory"] = None
    return _FriendlyObject(values)


# --- the simulated machine ------------------------------------------------------------------

PowerSchedule = float | Sequence[tuple[float, float]]
"""A constant power in W, or ``[(start_s, power_w), ...]``: piecewise-constant power from each
start (seconds after the fake was created) until the next; before the first start the first
power applies."""


@dataclass
class FakeGpuSpec:
    """One fake GPU. Units as in its field names.

    Attributes:
        power_w: constant power, or a piecewise-constant schedule (see ``PowerSchedule``).
        name: nvmlDeviceGetName.
        uuid: nvmlDeviceGetUUID (default ``GPU-fa4e0000-...-<index>``).
        energy_counter: False makes nvmlDeviceGetTotalEnergyConsumption raise NotSupported,
            as on GPUs before Volta.
        power_instant: False makes the NVML_FI_DEV_POWER_INSTANT field NotSupported.
        counter_update_s: the energy counter only moves every this many seconds (real
            drivers: about 0.1 s); 0 = continuous.
        power_average_s: nvmlDeviceGetPowerUsage returns the mean power over this trailing
            window (1 s on Ampere and newer); 0 = instantaneous.
        fail_after_calls: after this many device calls every device call raises
            ``fail_error`` (None = never).
        fail_at_s: every device call from this many seconds after creation raises
            ``fail_error`` (None = never).
        fail_error: the NVML error code of the failure (default: GPU is lost).
        start_energy_mj: the counter's value at creation.
        mig_uuids: MIG instances hosted by this GPU (``MIG-...``).
        compute_processes: the processes with a compute context on it, as ``(pid,
            used_memory_bytes)``; None bytes where the driver cannot say (Windows WDDM).
    """

    power_w: PowerSchedule = 300.0
    name: str = "NVIDIA H100 80GB HBM3 (llenergymeasure fake)"
    uuid: str | None = None
    energy_counter: bool = True
    power_instant: bool = True
    counter_update_s: float = 0.0
    power_average_s: float = 1.0
    fail_after_calls: int | None = None
    fail_at_s: float | None = None
    fail_error: int = NVML_ERROR_GPU_IS_LOST
    start_energy_mj: int = 1_000_000
    temperature_c: int = 45
    memory_total_bytes: int = 80 * 2**30
    memory_used_bytes: int = 2 * 2**30
    utilisation_gpu_pct: int = 0
    utilisation_memory_pct: int = 0
    sm_clock_mhz: int = 1980
    max_sm_clock_mhz: int = 1980
    mem_clock_mhz: int = 2619
    clock_event_reasons: int = nvmlClocksEventReasonNone
    power_limit_mw: int = 700_000
    persistence_mode: int = NVML_FEATURE_ENABLED
    compute_capability: tuple[int, int] = (9, 0)
    ecc_mode: int | None = NVML_FEATURE_ENABLED
    architecture: int = NVML_DEVICE_ARCH_HOPPER
    mig_uuids: tuple[str, ...] = ()
    compute_processes: tuple[tuple[int, int | None], ...] = ()


@dataclass(frozen=True)
class FakeDeviceHandle:
    """What the fake returns where pynvml returns a ``c_nvmlDevice_t``."""

    index: int
    mig_uuid: str | None = None


@dataclass
class _Device:
    spec: FakeGpuSpec
    uuid: str
    schedule: list[tuple[float, float]]
    calls: int = 0
    lost_code: int | None = None


class FakeNvml:
    """The simulated NVML: devices, driver, clock. Its ``nvml*`` methods are pynvml's functions.

    Args:
        gpus: one spec per GPU, in NVML index order.
        clock: monotonic clock in seconds that drives power and energy (share it with the
            code under test to make energy exact).
        driver_version: nvmlSystemGetDriverVersion.
        cuda_driver_version: nvmlSystemGetCudaDriverVersion (major*1000 + minor*10).
        library_found: False makes nvmlInit raise NVMLError_LibraryNotFound (no driver).
        driver_loaded: False makes nvmlInit raise NVMLError_DriverNotLoaded.

    Attributes:
        calls: how often each pynvml function was called (``nvmlInit`` counts
            ``nvmlInitWithFlags`` too; ``nvmlShutdown`` counts every shutdown).
        init_count: inits not yet balanced by a shutdown (0: NVML is shut down).
    """

    def __init__(
        self,
        gpus: Sequence[FakeGpuSpec] = (FakeGpuSpec(),),
        *,
        clock: Callable[[], float] = time.monotonic,
        driver_version: str = "550.54.15",
        cuda_driver_version: int = 12040,
        library_found: bool = True,
        driver_loaded: bool = True,
    ) -> None:
        self._clock = clock
        self._t0 = clock()
        self._devices = [
            _Device(spec, spec.uuid or f"GPU-fa4e0000-0000-4000-8000-{i:012x}", _schedule(spec))
            for i, spec in enumerate(gpus)
        ]
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.library_found = library_found
        self.driver_loaded = driver_loaded
        self.init_count = 0
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    # -- control and inspection (not part of pynvml) --

    @property
    def elapsed_s(self) -> float:
        """Seconds on the fake's clock since it was created."""
        return self._clock() - self._t0

    def energy_j(self, index: int, start_s: float = 0.0, end_s: float | None = None) -> float:
        """Exact energy of GPU ``index`` between two times (seconds since creation)."""
        end = self.elapsed_s if end_s is None else end_s
        return _integral(self._devices[index].schedule, start_s, end)

    def lose_gpu(self, index: int, error: int = NVML_ERROR_GPU_IS_LOST) -> None:
        """Make every later call on GPU ``index`` fail with ``error`` (e.g. mid-window)."""
        self._devices[index].lost_code = error

    def recover_gpu(self, index: int) -> None:
        """Undo :meth:`lose_gpu` (a transient driver error that went away)."""
        self._devices[index].lost_code = None

    def power_at_w(self, index: int, at_s: float | None = None) -> float:
        """GPU ``index``'s power at a time (seconds since creation; default now)."""
        return _power_at(self._devices[index].schedule, self.elapsed_s if at_s is None else at_s)

    # -- pynvml: library --

    def nvmlInit(self) -> None:
        """Start NVML (counted: every init needs its own shutdown)."""
        self.nvmlInitWithFlags(0)

    def nvmlInitWithFlags(self, flags: int) -> None:
        """Start NVML with flags (ignored)."""
        self.calls["nvmlInit"] += 1
        if not self.library_found:
            raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
        if not self.driver_loaded:
            raise NVMLError(NVML_ERROR_DRIVER_NOT_LOADED)
        with self._lock:
            self.init_count += 1

    def nvmlShutdown(self) -> None:
        """Balance one nvmlInit."""
        self._check_init("nvmlShutdown")
        with self._lock:
            self.init_count -= 1

    def nvmlErrorString(self, result: int) -> str:
        """The text of an NVML error code."""
        return NVMLError._errcode_to_string.get(result, "Unknown Error")

    def nvmlSystemGetDriverVersion(self) -> str:
        """e.g. ``550.54.15``."""
        self._check_init("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        """e.g. ``12.550.54.15``."""
        self._check_init("nvmlSystemGetNVMLVersion")
        return f"{self.cuda_driver_version // 1000}.{self.driver_version}"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        """e.g. 12040 for CUDA 12.4."""
        self._check_init("nvmlSystemGetCudaDriverVersion")
        return self.cuda_driver_version

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        """As nvmlSystemGetCudaDriverVersion."""
        self._check_init("nvmlSystemGetCudaDriverVersion_v2")
        return self.cuda_driver_version

    # -- pynvml: device discovery --

    def nvmlDeviceGetCount(self) -> int:
        """Number of GPUs."""
        self._check_init("nvmlDeviceGetCount")
        return len(self._devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeDeviceHandle:
        """A handle for NVML index ``index``."""
        self._check_init("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self._devices):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return FakeDeviceHandle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> FakeDeviceHandle:
        """A handle for a GPU (``GPU-...``) or MIG instance (``MIG-...``) UUID."""
        self._check_init("nvmlDeviceGetHandleByUUID")
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        for index, device in enumerate(self._devices):
            if device.uuid == text:
                return FakeDeviceHandle(index)
            if text in device.spec.mig_uuids:
                return FakeDeviceHandle(index, text)
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceIsMigDeviceHandle(self, device: FakeDeviceHandle) -> ctypes.c_uint:
        """A c_uint, as pynvml returns (test it with bool())."""
        self._device(device, "nvmlDeviceIsMigDeviceHandle")
        return ctypes.c_uint(1 if device.mig_uuid else 0)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(
        self,
        migDevice: FakeDeviceHandle,
    ) -> FakeDeviceHandle:
        """The GPU hosting a MIG instance."""
        self._device(migDevice, "nvmlDeviceGetDeviceHandleFromMigDeviceHandle")
        if migDevice.mig_uuid is None:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return FakeDeviceHandle(migDevice.index)

    def nvmlDeviceGetIndex(self, handle: FakeDeviceHandle) -> int:
        """NVML index of a handle."""
        self._device(handle, "nvmlDeviceGetIndex")
        return handle.index

    def nvmlDeviceGetName(self, handle: FakeDeviceHandle) -> str:
        """Product name."""
        return self._device(handle, "nvmlDeviceGetName").spec.name

    def nvmlDeviceGetUUID(self, handle: FakeDeviceHandle) -> str:
        """``GPU-...``."""
        return self._device(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetArchitecture(self, device: FakeDeviceHandle) -> int:
        """NVML_DEVICE_ARCH_*."""
        return self._device(device, "nvmlDeviceGetArchitecture").spec.architecture

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeDeviceHandle) -> tuple[int, int]:
        """(major, minor)."""
        major, minor = self._device(
            handle, "nvmlDeviceGetCudaComputeCapability"
        ).spec.compute_capability
        return (major, minor)

    def nvmlDeviceGetC2cModeInfoV(self, handle: FakeDeviceHandle) -> None:
        """NotSupported: the fake GPUs are not Grace Hopper superchips (Zeus asks)."""
        self._device(handle, "nvmlDeviceGetC2cModeInfoV")
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)

    # -- pynvml: energy and power --

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeDeviceHandle) -> int:
        """mJ since the driver loaded; advances at the configured power."""
        device = self._device(handle, "nvmlDeviceGetTotalEnergyConsumption")
        if not device.spec.energy_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return self._counter_mj(device)

    def nvmlDeviceGetPowerUsage(self, handle: FakeDeviceHandle) -> int:
        """mW, averaged over the trailing ``power_average_s``."""
        device = self._device(handle, "nvmlDeviceGetPowerUsage")
        return round(self._average_power_w(device) * 1000)

    def nvmlDeviceGetFieldValues(
        self,
        handle: FakeDeviceHandle,
        fieldIds: Sequence[int | tuple[int, int]],
    ) -> ctypes.Array[c_nvmlFieldValue_t]:
        """Field values; an unsupported field has its own nvmlReturn, the call succeeds."""
        device = self._device(handle, "nvmlDeviceGetFieldValues")
        values = (c_nvmlFieldValue_t * len(fieldIds))()
        for value, field_id in zip(values, fieldIds, strict=True):
            if isinstance(field_id, tuple):
                value.fieldId, value.scopeId = field_id
            else:
                value.fieldId = field_id
            value.timestamp = int(self._clock() * 1_000_000)
            self._fill_field(device, value)
        return values

    def nvmlDeviceGetPowerManagementLimit(self, handle: FakeDeviceHandle) -> int:
        """mW."""
        return self._device(handle, "nvmlDeviceGetPowerManagementLimit").spec.power_limit_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeDeviceHandle) -> int:
        """mW."""
        return self._device(handle, "nvmlDeviceGetEnforcedPowerLimit").spec.power_limit_mw

    # -- pynvml: state --

    def nvmlDeviceGetTemperature(self, handle: FakeDeviceHandle, sensor: int) -> int:
        """Degrees C (sensor NVML_TEMPERATURE_GPU)."""
        device = self._device(handle, "nvmlDeviceGetTemperature")
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return device.spec.temperature_c

    def nvmlDeviceGetTemperatureV(
        self, handle: FakeDeviceHandle, sensor: int, version: int | None = None
    ) -> int:
        """The versioned nvmlDeviceGetTemperature (Zeus uses it)."""
        return self.nvmlDeviceGetTemperature(handle, sensor)

    def nvmlDeviceGetMemoryInfo(
        self, handle: FakeDeviceHandle, version: int | None = None
    ) -> c_nvmlMemory_t:
        """Bytes total/free/used."""
        spec = self._device(handle, "nvmlDeviceGetMemoryInfo").spec
        free = spec.memory_total_bytes - spec.memory_used_bytes
        return c_nvmlMemory_t(spec.memory_total_bytes, free, spec.memory_used_bytes)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeDeviceHandle) -> list[Any]:
        """The current call: nvidia-ml-py forwards it to the ``_v3`` function."""
        return self.nvmlDeviceGetComputeRunningProcesses_v3(handle)

    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle: FakeDeviceHandle) -> list[Any]:
        """Objects with ``pid``, ``usedGpuMemory`` (bytes, or None), ``gpuInstanceId`` and
        ``computeInstanceId``, one per process with a compute context."""
        return self._running_processes(handle, "nvmlDeviceGetComputeRunningProcesses_v3")

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: FakeDeviceHandle) -> list[Any]:
        """The same list through the older call (drivers before the v3 structure)."""
        return self._running_processes(handle, "nvmlDeviceGetComputeRunningProcesses_v2")

    def nvmlDeviceGetUtilizationRates(self, handle: FakeDeviceHandle) -> c_nvmlUtilization_t:
        """Percent gpu/memory."""
        spec = self._device(handle, "nvmlDeviceGetUtilizationRates").spec
        return c_nvmlUtilization_t(spec.utilisation_gpu_pct, spec.utilisation_memory_pct)

    def nvmlDeviceGetClockInfo(self, handle: FakeDeviceHandle, type: int) -> int:
        """MHz of NVML_CLOCK_GRAPHICS/SM/MEM."""
        spec = self._device(handle, "nvmlDeviceGetClockInfo").spec
        return _clock_mhz(spec.sm_clock_mhz, spec.mem_clock_mhz, type)

    def nvmlDeviceGetMaxClockInfo(self, handle: FakeDeviceHandle, type: int) -> int:
        """Maximum MHz of NVML_CLOCK_GRAPHICS/SM/MEM."""
        spec = self._device(handle, "nvmlDeviceGetMaxClockInfo").spec
        return _clock_mhz(spec.max_sm_clock_mhz, spec.mem_clock_mhz, type)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeDeviceHandle) -> int:
        """Bitmask of nvmlClocksEventReason*."""
        return self._device(
            handle, "nvmlDeviceGetCurrentClocksEventReasons"
        ).spec.clock_event_reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: FakeDeviceHandle) -> int:
        """The deprecated name of nvmlDeviceGetCurrentClocksEventReasons."""
        spec = self._device(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").spec
        return spec.clock_event_reasons

    def nvmlDeviceGetPersistenceMode(self, handle: FakeDeviceHandle) -> int:
        """NVML_FEATURE_ENABLED or NVML_FEATURE_DISABLED."""
        return self._device(handle, "nvmlDeviceGetPersistenceMode").spec.persistence_mode

    def nvmlDeviceGetEccMode(self, handle: FakeDeviceHandle) -> list[int]:
        """[current, pending]; NotSupported where ``ecc_mode`` is None (consumer GPUs)."""
        spec = self._device(handle, "nvmlDeviceGetEccMode").spec
        if spec.ecc_mode is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [spec.ecc_mode, spec.ecc_mode]

    def _nvmlGetFunctionPointer(self, name: str) -> Callable[..., Any]:
        """pynvml's internal lookup; Zeus checks it exists to tell nvidia-ml-py from impostors."""
        function = getattr(self, name, None)
        if function is None or not name.startswith("nvml"):
            raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)
        return function  # type: ignore[no-any-return]

    # -- internals --

    def _check_init(self, function: str) -> None:
        self.calls[function] += 1
        if self.init_count <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _device(self, handle: FakeDeviceHandle, function: str) -> _Device:
        self._check_init(function)
        if not isinstance(handle, FakeDeviceHandle) or handle.index >= len(self._devices):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        device = self._devices[handle.index]
        with self._lock:
            device.calls += 1
            calls = device.calls
        spec = device.spec
        lost_by_calls = spec.fail_after_calls is not None and calls > spec.fail_after_calls
        lost_by_time = spec.fail_at_s is not None and self.elapsed_s >= spec.fail_at_s
        if device.lost_code is not None:
            raise NVMLError(device.lost_code)
        if lost_by_calls or lost_by_time:
            raise NVMLError(spec.fail_error)
        return device

    def _running_processes(self, handle: FakeDeviceHandle, function: str) -> list[Any]:
        spec = self._device(handle, function).spec
        return [_process_object(pid, used) for pid, used in spec.compute_processes]

    def _counter_mj(self, device: _Device) -> int:
        now = self.elapsed_s
        period = device.spec.counter_update_s
        if period > 0:
            now = math.floor(now / period) * period
        return device.spec.start_energy_mj + round(_integral(device.schedule, 0.0, now) * 1000)

    def _average_power_w(self, device: _Device) -> float:
        now = self.elapsed_s
        window = device.spec.power_average_s
        if window <= 0:
            return _power_at(device.schedule, now)
        return _integral(device.schedule, now - window, now) / window

    def _fill_field(self, device: _Device, value: c_nvmlFieldValue_t) -> None:
        spec = device.spec
        value.nvmlReturn = NVML_SUCCESS
        if value.fieldId == NVML_FI_DEV_POWER_INSTANT and spec.power_instant:
            value.valueType = NVML_VALUE_TYPE_UNSIGNED_INT
            value.value.uiVal = round(_power_at(device.schedule, self.elapsed_s) * 1000)
        elif value.fieldId == NVML_FI_DEV_POWER_AVERAGE:
            value.valueType = NVML_VALUE_TYPE_UNSIGNED_INT
            value.value.uiVal = round(self._average_power_w(device) * 1000)
        elif value.fieldId == NVML_FI_DEV_ENERGY and spec.energy_counter:
            value.valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
            value.value.ullVal = self._counter_mj(device)
        else:
            value.nvmlReturn = NVML_ERROR_NOT_SUPPORTED


def _clock_mhz(sm_mhz: int, mem_mhz: int, clock_type: int) -> int:
    if clock_type in (NVML_CLOCK_GRAPHICS, NVML_CLOCK_SM):
        return sm_mhz
    if clock_type == NVML_CLOCK_MEM:
        return mem_mhz
    raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)


def _schedule(spec: FakeGpuSpec) -> list[tuple[float, float]]:
    if isinstance(spec.power_w, (int, float)):
        return [(0.0, float(spec.power_w))]
    steps = sorted((float(start), float(power)) for start, power in spec.power_w)
    if not steps:
        raise ValueError("a power schedule needs at least one (start_s, power_w) step")
    return steps


def _power_at(schedule: Sequence[tuple[float, float]], at_s: float) -> float:
    power = schedule[0][1]
    for start, step_power in schedule:
        if start <= at_s:
            power = step_power
    return power


def _integral(schedule: Sequence[tuple[float, float]], start_s: float, end_s: float) -> float:
    """Energy in J of a piecewise-constant power between two times (exact)."""
    if end_s < start_s:
        return -_integral(schedule, end_s, start_s)
    edges = sorted({start_s, end_s, *(s for s, _ in schedule if start_s < s < end_s)})
    return sum(_power_at(schedule, lo) * (hi - lo) for lo, hi in pairwise(edges))


# --- installing it as ``pynvml`` ------------------------------------------------------------

_EXPORTED_PREFIXES = ("NVML_", "NVMLError", "nvmlClocks", "c_nvml")


def build_module(fake: FakeNvml) -> types.ModuleType:
    """A module object that can stand in for ``pynvml``, backed by ``fake``.

    It carries the constants, error classes and structures of this module, every ``nvml*``
    function bound to ``fake``, and ``__llem_fake__`` (the FakeNvml) so code can tell.
    """
    module = types.ModuleType("pynvml", "llenergymeasure's fake of nvidia-ml-py's pynvml")
    this_module = sys.modules[__name__]
    for name in dir(this_module):
        if name.startswith(_EXPORTED_PREFIXES):
            setattr(module, name, getattr(this_module, name))
    module.nvmlExceptionClass = nvmlExceptionClass  # type: ignore[attr-defined]
    for name in dir(fake):
        if name.startswith(("nvml", "_nvmlGetFunctionPointer")):
            setattr(module, name, getattr(fake, name))
    module.__llem_fake__ = fake  # type: ignore[attr-defined]
    return module


def install(fake: FakeNvml) -> types.ModuleType:
    """Make ``import pynvml`` return a module backed by ``fake`` for the rest of the process.

    For a whole process (``python -m llenergymeasure.testing``); tests use the context
    manager :func:`install_fake_pynvml`, which restores what was there.
    """
    module = build_module(fake)
    sys.modules["pynvml"] = module
    return module


@contextlib.contextmanager
def install_fake_pynvml(
    gpus: Sequence[FakeGpuSpec] | int = 1,
    *,
    clock: Callable[[], float] = time.monotonic,
    **system: Any,
) -> Iterator[FakeNvml]:
    """Put a fake ``pynvml`` in ``sys.modules`` for the duration of the block.

    Args:
        gpus: GPU specs, or a number of default GPUs.
        clock: the clock that drives power and energy.
        system: other :class:`FakeNvml` options (``driver_version``, ``library_found``, ...).

    Yields:
        The FakeNvml, to inspect calls or compute the exact energy.
    """
    specs = [FakeGpuSpec() for _ in range(gpus)] if isinstance(gpus, int) else list(gpus)
    fake = FakeNvml(specs, clock=clock, **system)
    previous = sys.modules.get("pynvml")
    sys.modules["pynvml"] = build_module(fake)
    try:
        yield fake
    finally:
        if previous is None:
            sys.modules.pop("pynvml", None)
        else:
            sys.modules["pynvml"] = previous


def fake_from_spec(
    spec: str | Mapping[str, Any], *, clock: Callable[[], float] = time.monotonic
) -> FakeNvml:
    """Build a FakeNvml from a JSON text or mapping (the ``LLEM_FAKE_NVML`` format).

    Example: ``{"gpus": [{"power_w": 250}, {"power_w": [[0, 100], [2, 300]]}],
    "driver_version": "550.54.15"}``; each GPU takes :class:`FakeGpuSpec`'s fields.

    Raises:
        ValueError: the spec is not valid JSON or names an unknown field.
    """
    data = json.loads(spec) if isinstance(spec, str) else dict(spec)
    if not isinstance(data, dict):
        raise ValueError("a fake NVML spec is a JSON object")
    known = {f.name for f in fields(FakeGpuSpec)}
    specs = []
    for gpu in data.pop("gpus", [{}]):
        unknown = set(gpu) - known
        if unknown:
            raise ValueError(f"unknown fake GPU field(s) {sorted(unknown)}; known: {sorted(known)}")
        specs.append(FakeGpuSpec(**_tuples(gpu)))
    allowed = {"driver_version", "cuda_driver_version", "library_found", "driver_loaded"}
    if set(data) - allowed:
        raise ValueError(f"unknown fake NVML option(s) {sorted(set(data) - allowed)}")
    return FakeNvml(specs, clock=clock, **data)


def _tuples(gpu: Mapping[str, Any]) -> dict[str, Any]:
    """JSON arrays become the tuples FakeGpuSpec uses."""
    converted = dict(gpu)
    if isinstance(converted.get("power_w"), list):
        converted["power_w"] = [tuple(step) for step in converted["power_w"]]
    for name in ("compute_capability", "mig_uuids"):
        if isinstance(converted.get(name), list):
            converted[name] = tuple(converted[name])
    if isinstance(converted.get("compute_processes"), list):
        converted["compute_processes"] = tuple(tuple(p) for p in converted["compute_processes"])
    return converted
