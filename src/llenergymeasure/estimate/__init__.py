"""Before running: how much memory an experiment needs and roughly how long it takes.

Powers ``llem run --dry-run``. Nothing here loads a model or imports torch: sizes come from
config files (:mod:`llenergymeasure.estimate.model_facts`), device memory from the devices layer
(NVML) or the operating system.

Memory = weights (parameters x bytes per weight, after quantisation) + KV cache (2 x layers x
KV heads x head width x bytes per element, per token, for every sequence in flight at its
longest: ``max_input_tokens + max_output_tokens``). Activations, the CUDA context and
allocator slack come on top; vLLM instead reserves ``gpu_memory_utilization`` of the device.

Time is a rough guide (often off by 2x): decode is taken as memory-bound (each step reads the
weights once, at a fraction of peak bandwidth), prefill as compute-bound, plus model loading,
warmup, thermal floor, idle baseline, and the gaps of a study.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.estimate.model_facts import ModelFacts, model_facts
from llenergymeasure.flops.workload import kv_bytes_per_token
from llenergymeasure.load import plan_load

BANDWIDTH_EFFICIENCY = 0.6
"""Fraction of a GPU's peak memory bandwidth a decode step achieves."""
COMPUTE_EFFICIENCY = 0.4
"""Fraction of a GPU's peak FLOP/s a prefill achieves."""
CPU_BANDWIDTH_BYTES_PER_S = 8e9
"""Effective bandwidth assumed for CPU decode (a CPU's own varies too much to tabulate)."""
CPU_FLOPS_PER_S = 1e11
"""Effective FLOP/s assumed for CPU prefill."""
LOAD_BYTES_PER_S = 1e9
"""Rate weights load from disk into memory."""
PROCESS_START_S = {"pytorch": 8.0, "vllm": 40.0, "tensorrt": 60.0}
"""Start-up of a fresh experiment process per backend (imports, engine start), seconds."""
DEFAULT_CONCURRENCY = {"vllm": 256, "tensorrt": 2048}
"""Sequences in flight when the config does not bound them (the libraries' defaults)."""

_BYTES = {"fp32": 4.0, "float32": 4.0, "fp16": 2.0, "float16": 2.0, "bf16": 2.0, "bfloat16": 2.0}
_QUANT_BYTES = {"fp8": 1.0, "int8": 1.0, "w8a8": 1.0, "w8a16": 1.0, "nvfp4": 0.5, "int4": 0.5}


@dataclass(frozen=True)
class Device:
    """Where the experiment runs and how much memory one device has."""

    kind: str  # "gpu" or "cpu"
    name: str
    memory_bytes: int | None
    count: int = 1
    bandwidth_bytes_per_s: float | None = None
    flops_per_s: float | None = None


@dataclass(frozen=True)
class Estimate:
    """Memory and time for one experiment (one cycle). Sizes in bytes, times in seconds."""

    model_source: str
    n_parameters: int | None
    bytes_per_weight: float
    weights_bytes: float | None
    kv_cache_bytes: float | None
    concurrency: int
    devices_used: int
    per_device_bytes: float | None
    device_memory_bytes: int | None
    budget_bytes: float | None
    fits: bool | None
    time_s: float | None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def probe_device() -> Device:
    """The first visible GPU (via NVML, no torch), else this machine's CPU and RAM."""
    from llenergymeasure.devices import GpuError, get_gpus
    from llenergymeasure.flops.specs import find_device_spec

    gpus = get_gpus()
    if gpus:
        try:
            name, total = gpus[0].name(), int(gpus[0].memory_total_mb() * 2**20)
        except GpuError:
            name, total = "GPU", None
        spec = find_device_spec(name).spec
        bandwidth = spec.peak_bandwidth_bytes_per_s if spec else None
        flops = spec.peak_flops_per_s("bf16") if spec else None
        return Device("gpu", name, total, len(gpus), bandwidth, flops)
    return Device("cpu", "CPU", _system_ram_bytes())


def _system_ram_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def estimate_experiment(
    config: ExperimentConfig,
    device: Device,
    facts: Callable[[str], ModelFacts] = model_facts,
) -> Estimate:
    """Memory and time for one run of ``config`` on ``device``.

    Args:
        config: the experiment.
        device: from :func:`probe_device`.
        facts: how model sizes are found (tests inject their own).
    """
    data = config.model_dump(mode="json")
    model = facts(config.model)
    section = data.get(config.backend) or {}
    bytes_per_weight, notes = _bytes_per_weight(data, section, model, device)
    concurrency = _concurrency(data, section)
    weights = model.n_parameters * bytes_per_weight if model.n_parameters is not None else None
    kv = None
    if model.shape is not None:
        kv_elem = 1.0 if "fp8" in str(section.get("kv_cache_dtype", "")) else bytes_per_weight
        tokens = config.max_input_tokens + config.max_output_tokens
        kv = kv_bytes_per_token(model.shape, max(kv_elem, 1.0)) * tokens * concurrency
    devices_used = _devices_used(section)
    per_device = (weights + kv) / devices_used if weights is not None and kv is not None else None
    budget = _budget(device, section, config.backend, notes)
    fits = None if per_device is None or budget is None else per_device <= budget
    return Estimate(
        model_source=model.source, n_parameters=model.n_parameters,
        bytes_per_weight=bytes_per_weight, weights_bytes=weights, kv_cache_bytes=kv,
        concurrency=concurrency, devices_used=devices_used, per_device_bytes=per_device,
        device_memory_bytes=device.memory_bytes, budget_bytes=budget, fits=fits,
        time_s=_time_s(config, data, weights, model, concurrency, device), notes=notes,
    )  # fmt: skip


def _bytes_per_weight(
    data: Mapping[str, Any], section: Mapping[str, Any], model: ModelFacts, device: Device
) -> tuple[float, list[str]]:
    """Bytes per weight after the precision and any weight quantisation."""
    notes: list[str] = []
    precision = str(data.get("precision", "auto"))
    if precision == "auto":
        # The pytorch backend picks bf16 on a GPU, fp32 on CPU; the engines keep the stored dtype.
        stored = str(model.stored_dtype or "")
        chosen = "bf16" if device.kind == "gpu" else "fp32"
        if data.get("backend") != "pytorch" and stored in _BYTES:
            chosen = stored
        notes.append(f"precision auto -> {chosen}")
        precision = chosen
    size = _BYTES.get(precision, 2.0)
    if section.get("load_in_4bit"):
        return 0.5, [*notes, "4-bit weights"]
    if section.get("load_in_8bit"):
        return 1.0, [*notes, "8-bit weights"]
    quant = str(section.get("quantization") or (section.get("quant_config") or {}).get("quant_algo")
                or "").lower()  # fmt: skip
    if quant:
        quantised = next((b for k, b in _QUANT_BYTES.items() if k in quant), 0.5)
        return min(size, quantised), [*notes, f"quantised weights ({quant})"]
    return size, notes


def _concurrency(data: Mapping[str, Any], section: Mapping[str, Any]) -> int:
    """Sequences in flight at once."""
    n = int(data.get("n", 1))
    backend = str(data.get("backend"))
    if backend == "pytorch":
        return max(1, min(n, int(section.get("batch_size") or 1)))
    bound = section.get("max_num_seqs") or section.get("max_batch_size")
    bound = bound or (section.get("build_config") or {}).get("max_batch_size")
    return max(1, min(n, int(bound or DEFAULT_CONCURRENCY.get(backend, n))))


def _devices_used(section: Mapping[str, Any]) -> int:
    tensor = int(section.get("tensor_parallel_size") or 1)
    return tensor * int(section.get("pipeline_parallel_size") or 1)


def _budget(
    device: Device, section: Mapping[str, Any], backend: str, notes: list[str]
) -> float | None:
    """The memory one device gives the experiment."""
    if device.memory_bytes is None:
        return None
    if backend == "vllm" and device.kind == "gpu":
        share = float(section.get("gpu_memory_utilization") or 0.9)
        notes.append(f"vLLM reserves gpu_memory_utilization {share:g} of the device")
        return device.memory_bytes * share
    return float(device.memory_bytes)


def _time_s(
    config: ExperimentConfig,
    data: Mapping[str, Any],
    weights: float | None,
    model: ModelFacts,
    concurrency: int,
    device: Device,
) -> float | None:
    """Process start + load + warmup + floor + baseline + measured window (one cycle).

    The window is the decode steps of ``n`` requests in groups of the requests in flight (the
    backend's batch, or ``load.max_concurrency`` when lower) plus the prefill; in rate mode
    at least until the schedule's last arrival has been served.
    """
    if weights is None:
        return None
    bandwidth = (device.bandwidth_bytes_per_s or 0) * BANDWIDTH_EFFICIENCY
    bandwidth = bandwidth or CPU_BANDWIDTH_BYTES_PER_S
    flops = (device.flops_per_s or 0) * COMPUTE_EFFICIENCY or CPU_FLOPS_PER_S
    step_s = weights / bandwidth
    params = model.n_parameters or 0
    in_flight = min(concurrency, config.load.max_concurrency or concurrency)
    batches = math.ceil(config.n / in_flight)
    window = batches * config.max_output_tokens * step_s
    window += 2 * params * config.n * config.max_input_tokens / flops
    last_arrival_s = plan_load(config.load, config.n, config.random_seed).expected_duration_s
    if last_arrival_s is not None:  # rate mode: the window lasts until the last arrival is served
        window = max(window, last_arrival_s + config.max_output_tokens * step_s)
    warmup = data.get("warmup") or {}
    warm = int(warmup.get("n_warmup", 0)) * int(warmup.get("max_output_tokens", 8)) * step_s
    baseline = data.get("baseline") or {}
    idle = float(baseline.get("duration_s", 0)) if baseline.get("enabled") else 0.0
    start = PROCESS_START_S.get(config.backend, 10.0) + weights / LOAD_BYTES_PER_S
    return start + warm + float(warmup.get("thermal_floor_s", 0.0)) + idle + window


def gaps_s(schedule: Sequence[tuple[int, int]], config_gap_s: float, cycle_gap_s: float) -> float:
    """Total cool-down between the runs of a schedule, as the study runner pauses."""
    total = 0.0
    for previous, current in itertools.pairwise(schedule):
        total += cycle_gap_s if current[1] != previous[1] and cycle_gap_s > 0 else config_gap_s
    return total


__all__ = [
    "Device",
    "Estimate",
    "ModelFacts",
    "estimate_experiment",
    "gaps_s",
    "model_facts",
    "probe_device",
]
