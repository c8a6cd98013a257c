"""NVIDIA GPUs through NVML (the ``pynvml`` module of nvidia-ml-py), imported lazily.

This is the only module that touches pynvml. Every call goes through :meth:`NvidiaGpu._call`,
which turns ``pynvml.NVMLError`` (and its generated subclasses such as
``NVMLError_NotSupported``) into the exceptions of :mod:`llenergymeasure.devices.gpu`, by
error code, so any nvidia-ml-py version (or the fake in ``llenergymeasure.testing``) works.

Units as NVML gives them: energy in mJ, power in mW, clocks in MHz, memory in bytes; the
:class:`~llenergymeasure.devices.gpu.Gpu` methods convert to the units in their names.

NVML is initialised once per process (:func:`shared_session`): every discovery, and so every
caller of :func:`llenergymeasure.devices.get_gpus`, shares one session, shut down at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from llenergymeasure.devices.gpu import (
    Gpu,
    GpuError,
    GpuLostError,
    GpuNotSupportedError,
    GpuProcess,
    GpuUnavailableError,
    PowerSource,
)
from llenergymeasure.errors import describe_exception

INSTALL_HINT = "pip install nvidia-ml-py"
COUNTER_UPDATE_PERIOD_S = 0.1
"""How often NVIDIA drivers refresh the total-energy counter (about 100 ms); read through
NVML here or through Zeus, a counter delta is off by up to one period at each end."""

# Clock-event ("throttle") reason bits, as pynvml's nvmlClocksEventReason* constants.
CLOCK_EVENT_REASONS: tuple[tuple[int, str], ...] = (
    (0x001, "gpu_idle"),
    (0x002, "applications_clocks_setting"),
    (0x004, "sw_power_cap"),
    (0x008, "hw_slowdown"),
    (0x010, "sync_boost"),
    (0x020, "sw_thermal_slowdown"),
    (0x040, "hw_thermal_slowdown"),
    (0x080, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
    (0x200, "board_limit"),
    (0x400, "reliability"),
)

# NVML error codes by pynvml constant name, grouped by the exception they become.
_NOT_SUPPORTED = ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND")
_LOST = ("NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_RESET_REQUIRED")
_UNAVAILABLE_REASONS = {
    "NVML_ERROR_LIBRARY_NOT_FOUND": "the NVML library (libnvidia-ml.so.1) was not found: "
    "no NVIDIA driver is installed on this machine",
    "NVML_ERROR_DRIVER_NOT_LOADED": "the NVIDIA driver is not loaded (no NVIDIA GPU, or the "
    "kernel module failed to load)",
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": "the NVML library and the loaded kernel driver "
    "differ in version (reload the driver or reboot)",
    "NVML_ERROR_NO_PERMISSION": "no permission to open the NVIDIA devices (/dev/nvidia*)",
}


def decode_clock_event_reasons(mask: int) -> tuple[str, ...]:
    """Names of the reason bits set in an NVML clock-event mask (unknown bits as hex)."""
    names = [name for bit, name in CLOCK_EVENT_REASONS if mask & bit]
    unknown = mask & ~sum(bit for bit, _ in CLOCK_EVENT_REASONS)
    if unknown:
        names.append(f"unknown_0x{unknown:x}")
    return tuple(names)


def import_pynvml() -> Any:
    """Import pynvml now (it is never imported at module load).

    Raises:
        GpuUnavailableError: nvidia-ml-py is not installed.
    """
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise GpuUnavailableError(f"nvidia-ml-py is not installed ({INSTALL_HINT})") from exc


class NvmlSession:
    """One ``nvmlInit``, balanced by one ``nvmlShutdown``: at :meth:`close`, or when the last
    object using the session is gone.

    NVML counts ``nvmlInit`` calls, so a session coexists with other users of NVML (Zeus,
    torch); :func:`shared_session` keeps one per process.

    Args:
        nvml: the pynvml module (or a fake with the same names).

    Raises:
        GpuUnavailableError: NVML cannot start here; the message says why.
    """

    def __init__(self, nvml: Any) -> None:
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise GpuUnavailableError(unavailable_reason(nvml, exc)) from exc
        self.nvml = nvml
        self._finalizer = weakref.finalize(self, _shutdown, nvml)

    @property
    def closed(self) -> bool:
        """True once NVML was shut down for this session."""
        return not self._finalizer.alive

    def close(self) -> None:
        """Shut NVML down for this session (the first call; later ones do nothing)."""
        self._finalizer()

    def call(self, function: str, *args: Any, device: str = "NVML") -> Any:
        """Call ``pynvml.<function>(*args)``, translating NVML errors.

        Raises:
            GpuNotSupportedError: the driver or this nvidia-ml-py lacks the call.
            GpuLostError: the device is gone.
            GpuError: any other NVML error.
        """
        try:
            fn = getattr(self.nvml, function)
        except AttributeError as exc:
            raise GpuNotSupportedError(
                f"{device}: this nvidia-ml-py has no {function} (upgrade nvidia-ml-py)"
            ) from exc
        try:
            return fn(*args)
        except self.nvml.NVMLError as exc:
            raise translate_error(self.nvml, exc, f"{device}: {function}") from exc


class _ProcessSession:
    """The session this process shares, the lock that makes its opening happen once, and
    whether the exit hook that closes it is registered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.session: NvmlSession | None = None
        self.exit_hook_registered = False

    def forget(self) -> None:
        """In a forked child: the parent's session and lock are not this process's to use."""
        self.lock = threading.Lock()
        self.session = None


_PROCESS = _ProcessSession()
if hasattr(os, "register_at_fork"):  # POSIX; elsewhere children are spawned, with no state
    os.register_at_fork(after_in_child=_PROCESS.forget)


def shared_session(nvml: Any) -> NvmlSession:
    """This process's NVML session: initialised on first use, shut down at exit (atexit).

    Every discovery uses it, so NVML is initialised once per process however many callers
    ask for the GPUs. A forked child opens its own on first use; a spawned one starts with
    none. A different ``nvml`` module (a test installing a fake) gets a new session, and the
    one it replaces is shut down when its last GPU is gone.

    Raises:
        GpuUnavailableError: NVML cannot start here (nothing is kept: the next call retries).
    """
    with _PROCESS.lock:
        session = _PROCESS.session
        if session is None or session.nvml is not nvml or session.closed:
            session = NvmlSession(nvml)
            _PROCESS.session = session
            if not _PROCESS.exit_hook_registered:
                atexit.register(close_shared_session)
                _PROCESS.exit_hook_registered = True
        return session


def close_shared_session() -> None:
    """Shut this process's NVML session down now (at exit; tests call it too).

    GPUs found through it stop working; the next discovery opens a new session.
    """
    with _PROCESS.lock:
        session, _PROCESS.session = _PROCESS.session, None
    if session is not None:
        session.close()


def translate_error(nvml: Any, exc: Exception, context: str) -> GpuError:
    """The project exception for an NVMLError (chosen by its ``value``, the NVML code)."""
    code = getattr(exc, "value", None)
    message = f"{context} failed: {describe_exception(exc)} (NVML error {code})"
    if _code_in(nvml, code, _NOT_SUPPORTED):
        return GpuNotSupportedError(message)
    if _code_in(nvml, code, _LOST):
        return GpuLostError(message)
    if _code_in(nvml, code, tuple(_UNAVAILABLE_REASONS)):
        return GpuUnavailableError(message)
    return GpuError(message)


def unavailable_reason(nvml: Any, exc: Exception) -> str:
    """Why NVML could not start, in words a user can act on."""
    code = getattr(exc, "value", None)
    for name, reason in _UNAVAILABLE_REASONS.items():
        if _code_in(nvml, code, (name,)):
            return reason
    return f"NVML could not start: {describe_exception(exc)} (NVML error {code})"


class NvidiaGpu(Gpu):
    """One NVIDIA GPU read through NVML.

    Args:
        index: position among the visible GPUs (``cuda:<index>``).
        vendor_index: NVML's index of the device (PCI bus order).
        handle: the NVML device handle.
        session: the NVML session the handle belongs to (kept alive by this object).
        mig_uuid: the MIG instance that made this GPU visible, if any; NVML reads power and
            energy for the whole GPU, not the instance.
    """

    def __init__(
        self,
        index: int,
        vendor_index: int,
        handle: Any,
        session: NvmlSession,
        mig_uuid: str | None = None,
    ) -> None:
        super().__init__(index)
        self._vendor_index = vendor_index
        self._handle = handle
        self._session = session
        self._nvml = session.nvml
        self._power_source: PowerSource | None = None
        self.mig_uuid = mig_uuid

    @property
    def simulated(self) -> bool:
        """True when ``pynvml`` is llenergymeasure's fake (it carries ``__llem_fake__``)."""
        return hasattr(self._nvml, "__llem_fake__")

    @property
    def vendor_index(self) -> int:
        """NVML's index of this device."""
        return self._vendor_index

    @property
    def power_source(self) -> PowerSource | None:
        """``instant`` (NVML_FI_DEV_POWER_INSTANT) or ``average`` (nvmlDeviceGetPowerUsage)."""
        return self._power_source

    def name(self) -> str:
        """The product name."""
        return _text(self._call("nvmlDeviceGetName", self._handle))

    def uuid(self) -> str:
        """The device UUID (``GPU-...``)."""
        return _text(self._call("nvmlDeviceGetUUID", self._handle))

    def total_energy_mj(self) -> int:
        """nvmlDeviceGetTotalEnergyConsumption: mJ since the driver loaded (Volta and newer)."""
        return int(self._call("nvmlDeviceGetTotalEnergyConsumption", self._handle))

    def power_w(self) -> float:
        """Instantaneous power where the driver has the field, else the driver's average.

        The first call decides (and :attr:`power_source` records) which one this device uses:
        on Ampere and newer ``nvmlDeviceGetPowerUsage`` is a 1-second moving average, so the
        ``NVML_FI_DEV_POWER_INSTANT`` field value is preferred.
        """
        if self._power_source != "average":
            try:
                power_mw = self._instant_power_mw()
            except GpuNotSupportedError:
                self._power_source = "average"
            else:
                self._power_source = "instant"
                return power_mw / 1000
        return int(self._call("nvmlDeviceGetPowerUsage", self._handle)) / 1000

    def temperature_c(self) -> float:
        """nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)."""
        sensor = self._nvml.NVML_TEMPERATURE_GPU
        return float(self._call("nvmlDeviceGetTemperature", self._handle, sensor))

    def memory_used_mb(self) -> float:
        """nvmlDeviceGetMemoryInfo().used, bytes → MiB."""
        return int(self._call("nvmlDeviceGetMemoryInfo", self._handle).used) / 2**20

    def memory_total_mb(self) -> float:
        """nvmlDeviceGetMemoryInfo().total, bytes → MiB."""
        return int(self._call("nvmlDeviceGetMemoryInfo", self._handle).total) / 2**20

    def compute_processes(self) -> list[GpuProcess]:
        """nvmlDeviceGetComputeRunningProcesses (the ``_v3`` call, ``_v2`` on drivers
        without it; the unversioned name raises a non-NVML error there): pids and memory,
        bytes → MiB (None where NVML says NOT_AVAILABLE)."""
        try:
            rows = self._call("nvmlDeviceGetComputeRunningProcesses_v3", self._handle)
        except GpuNotSupportedError:
            rows = self._call("nvmlDeviceGetComputeRunningProcesses_v2", self._handle)
        return [
            GpuProcess(
                int(row.pid),
                None if row.usedGpuMemory is None else int(row.usedGpuMemory) / 2**20,
            )
            for row in rows
        ]

    def sm_utilisation_pct(self) -> float:
        """nvmlDeviceGetUtilizationRates().gpu."""
        return float(self._call("nvmlDeviceGetUtilizationRates", self._handle).gpu)

    def sm_clock_mhz(self) -> float:
        """nvmlDeviceGetClockInfo(NVML_CLOCK_SM)."""
        return float(self._call("nvmlDeviceGetClockInfo", self._handle, self._nvml.NVML_CLOCK_SM))

    def max_sm_clock_mhz(self) -> float:
        """nvmlDeviceGetMaxClockInfo(NVML_CLOCK_SM)."""
        sm = self._nvml.NVML_CLOCK_SM
        return float(self._call("nvmlDeviceGetMaxClockInfo", self._handle, sm))

    def clock_event_reasons(self) -> tuple[str, ...]:
        """Decoded nvmlDeviceGetCurrentClocksEventReasons (the older Throttle name before it)."""
        try:
            mask = self._call("nvmlDeviceGetCurrentClocksEventReasons", self._handle)
        except GpuNotSupportedError:
            mask = self._call("nvmlDeviceGetCurrentClocksThrottleReasons", self._handle)
        return decode_clock_event_reasons(int(mask))

    def power_limit_w(self) -> float:
        """nvmlDeviceGetEnforcedPowerLimit (else the management limit), mW → W."""
        try:
            limit_mw = self._call("nvmlDeviceGetEnforcedPowerLimit", self._handle)
        except GpuNotSupportedError:
            limit_mw = self._call("nvmlDeviceGetPowerManagementLimit", self._handle)
        return int(limit_mw) / 1000

    def persistence_mode(self) -> bool:
        """nvmlDeviceGetPersistenceMode() == NVML_FEATURE_ENABLED."""
        mode = self._call("nvmlDeviceGetPersistenceMode", self._handle)
        return bool(mode == self._nvml.NVML_FEATURE_ENABLED)

    def compute_capability(self) -> tuple[int, int]:
        """nvmlDeviceGetCudaComputeCapability() as (major, minor)."""
        major, minor = self._call("nvmlDeviceGetCudaComputeCapability", self._handle)
        return int(major), int(minor)

    def ecc_enabled(self) -> bool:
        """The current mode from nvmlDeviceGetEccMode() (NotSupported on most consumer GPUs)."""
        current, _pending = self._call("nvmlDeviceGetEccMode", self._handle)
        return bool(current == self._nvml.NVML_FEATURE_ENABLED)

    def driver_version(self) -> str:
        """nvmlSystemGetDriverVersion()."""
        return _text(self._call("nvmlSystemGetDriverVersion"))

    def cuda_driver_version(self) -> str:
        """nvmlSystemGetCudaDriverVersion() (e.g. 12040) as ``12.4``."""
        version = int(self._call("nvmlSystemGetCudaDriverVersion"))
        return f"{version // 1000}.{version % 1000 // 10}"

    def snapshot(self) -> dict[str, Any]:
        """The vendor-neutral snapshot plus the MIG instance, if one made this GPU visible."""
        record = super().snapshot()
        record["power_source"] = self._power_source
        if self.mig_uuid is not None:
            record["mig_uuid"] = self.mig_uuid
        return record

    def _instant_power_mw(self) -> int:
        field_id = getattr(self._nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if field_id is None:
            raise GpuNotSupportedError("this nvidia-ml-py has no NVML_FI_DEV_POWER_INSTANT")
        # A bare field id leaves scopeId at 0, NVML_POWER_SCOPE_GPU (the GPU, not the module).
        value = self._call("nvmlDeviceGetFieldValues", self._handle, [field_id])[0]
        status = int(value.nvmlReturn)
        if status != self._nvml.NVML_SUCCESS:
            if _code_in(self._nvml, status, ("NVML_ERROR_INVALID_ARGUMENT",)):
                # Drivers older than the field reject its id instead of saying NotSupported.
                raise GpuNotSupportedError(f"{self.key}: driver does not know POWER_INSTANT")
            raise translate_error(
                self._nvml, self._nvml.NVMLError(status), f"{self.key}: POWER_INSTANT field"
            )
        return int(_field_value(self._nvml, value))

    def _call(self, function: str, *args: Any) -> Any:
        return self._session.call(function, *args, device=self.key)


def discover(visible: str | None, nvml: Any | None = None) -> list[NvidiaGpu]:
    """Every NVIDIA GPU the process can use, in ``cuda:N`` order.

    Args:
        visible: a ``CUDA_VISIBLE_DEVICES`` value (indices, ``GPU-``/``MIG-`` UUIDs), or None
            for every device NVML sees.
        nvml: the pynvml module (default: import it).

    Raises:
        GpuUnavailableError: nvidia-ml-py, the driver or the devices cannot be used.
    """
    nvml = import_pynvml() if nvml is None else nvml
    session = shared_session(nvml)
    try:
        count = int(session.call("nvmlDeviceGetCount"))
        handles = [session.call("nvmlDeviceGetHandleByIndex", i) for i in range(count)]
    except GpuError as exc:
        raise GpuUnavailableError(f"NVML cannot list the GPUs: {exc}") from exc
    # A device that fails here (lost) stays in the list, so its failure is reported where it
    # is used; it just cannot be named by UUID in CUDA_VISIBLE_DEVICES.
    uuids = [_uuid_or_empty(session, handle) for handle in handles]
    if visible is None:
        chosen: list[tuple[int, str | None]] = [(i, None) for i in range(count)]
    else:
        chosen = resolve_visible_devices(
            parse_visible_devices(visible), uuids, lambda mig: _mig_parent_uuid(session, mig)
        )
    return [
        NvidiaGpu(position, nvml_index, handles[nvml_index], session, mig_uuid)
        for position, (nvml_index, mig_uuid) in enumerate(chosen)
    ]


def parse_visible_devices(value: str) -> list[str]:
    """Split a ``CUDA_VISIBLE_DEVICES`` value into its entries (an empty value hides all)."""
    return [] if not value.strip() else [entry.strip() for entry in value.split(",")]


def resolve_visible_devices(
    entries: Sequence[str],
    uuids: Sequence[str],
    mig_parent_uuid: Callable[[str], str | None],
) -> list[tuple[int, str | None]]:
    """Map ``CUDA_VISIBLE_DEVICES`` entries to NVML indices, in visible (``cuda:N``) order.

    As CUDA does, the first entry that is invalid (out of range, unknown, ambiguous or
    repeated) hides itself and every entry after it, so ``-1`` hides every GPU.

    Integer entries are CUDA's device order, which equals NVML's (PCI bus) order when
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; with CUDA's default ``FASTEST_FIRST`` the two can differ
    on machines with mixed GPU models, and UUID entries are the unambiguous choice.

    Args:
        entries: the parsed entries: integers, ``GPU-<uuid>`` (a unique prefix is enough)
            or ``MIG-<uuid>``.
        uuids: every device's UUID, by NVML index.
        mig_parent_uuid: the UUID of the GPU that hosts a MIG instance, or None if unknown.

    Returns:
        ``(nvml_index, mig_uuid)`` per visible device; ``mig_uuid`` is set for MIG entries.
    """
    chosen: list[tuple[int, str | None]] = []
    seen: set[str] = set()
    for entry in entries:
        resolved = _resolve_entry(entry, uuids, mig_parent_uuid)
        if resolved is None or entry in seen:
            break
        seen.add(entry)
        chosen.append(resolved)
    return chosen


def _resolve_entry(
    entry: str, uuids: Sequence[str], mig_parent_uuid: Callable[[str], str | None]
) -> tuple[int, str | None] | None:
    if entry.isdigit():
        index = int(entry)
        return (index, None) if index < len(uuids) else None
    if entry.upper().startswith("GPU-"):
        match = _unique_prefix(entry, uuids)
        return None if match is None else (match, None)
    if entry.upper().startswith("MIG-"):
        parent = mig_parent_uuid(entry)
        host = None if parent is None else _unique_prefix(parent, uuids)
        return None if host is None else (host, entry)
    return None


def _unique_prefix(prefix: str, uuids: Sequence[str]) -> int | None:
    matches = [
        i for i, uuid in enumerate(uuids) if uuid and uuid.lower().startswith(prefix.lower())
    ]
    return matches[0] if len(matches) == 1 else None


def _uuid_or_empty(session: NvmlSession, handle: Any) -> str:
    try:
        return _text(session.call("nvmlDeviceGetUUID", handle))
    except GpuError:
        return ""


def _mig_parent_uuid(session: NvmlSession, mig_uuid: str) -> str | None:
    try:
        mig = session.call("nvmlDeviceGetHandleByUUID", mig_uuid)
        parent = session.call("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", mig)
        return _text(session.call("nvmlDeviceGetUUID", parent))
    except GpuError:
        return None


def _field_value(nvml: Any, field: Any) -> float:
    """The number in an nvmlFieldValue_t, read from the union member its valueType names."""
    members = {
        "NVML_VALUE_TYPE_DOUBLE": "dVal",
        "NVML_VALUE_TYPE_UNSIGNED_INT": "uiVal",
        "NVML_VALUE_TYPE_UNSIGNED_LONG": "ulVal",
        "NVML_VALUE_TYPE_UNSIGNED_LONG_LONG": "ullVal",
        "NVML_VALUE_TYPE_SIGNED_LONG_LONG": "sllVal",
        "NVML_VALUE_TYPE_SIGNED_INT": "siVal",
        "NVML_VALUE_TYPE_UNSIGNED_SHORT": "usVal",
    }
    for constant, member in members.items():
        if getattr(nvml, constant, None) == field.valueType:
            return float(getattr(field.value, member))
    return float(field.value.uiVal)  # power fields are unsigned int


def _code_in(nvml: Any, code: object, names: Sequence[str]) -> bool:
    return any(getattr(nvml, name, object()) == code for name in names)


def _text(value: object) -> str:
    """pynvml returns str on Python 3 (bytes in old releases)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _shutdown(nvml: Any) -> None:
    # At interpreter exit, or with NVML already gone, there is nothing left to release.
    with contextlib.suppress(Exception):
        nvml.nvmlShutdown()
