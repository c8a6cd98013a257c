"""FLOPs, J/FLOP, MFU and MBU of one measured window, each None with a reason when not computable.

- ``energy_per_flop_j`` = energy_total_j / flops_total.
- ``mfu`` (model FLOPs utilisation; Chowdhery et al. 2022, PaLM, Appendix B) =
  (flops_total / duration_s) / (peak dense FLOP/s for the dtype x devices).
- ``mbu`` (model bandwidth utilisation; Databricks 2023, "LLM Inference Performance Engineering:
  Best Practices") = (bytes moved / duration_s) / (peak memory bandwidth x devices).

Both utilisations average over the whole window, prefill included: prefill is compute-bound and
decode bandwidth-bound, so neither figure is a per-phase roofline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from llenergymeasure.flops.architecture import ArchitectureError, TransformerShape
from llenergymeasure.flops.specs import find_device_spec
from llenergymeasure.flops.workload import TokenCounts, workload_bytes, workload_flops

METHOD = (
    "analytical: prefill 2·N·T_in + 2·V·d + 2·L·d_attn·T_in·(T_in+1); decode per token "
    "2·N + 2·V·d + 4·L·d_attn·context (Kaplan et al. 2020; causal attention term)"
)

_DTYPES = {
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "tf32": "tf32",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp8": "fp8",
    "float8_e4m3fn": "fp8",
    "float8_e4m3fnuz": "fp8",
    "float8_e5m2": "fp8",
    "float8_e5m2fnuz": "fp8",
}
BYTES_PER_ELEMENT = {"fp32": 4.0, "tf32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0}


class FlopsMetrics(BaseModel):
    """FLOPs of the measured window and what they say about efficiency.

    Every figure is None when it cannot be computed; ``reason`` then says why, one clause per
    missing figure.

    Attributes:
        method: the formula used.
        n_parameters: all parameters of the model (from its config).
        n_parameters_non_embedding: parameters outside the embedding and output projection.
        flops_total: model FLOPs of every request in the window (prefill + decode).
        flops_prefill: FLOPs of the prefill passes.
        flops_decode: FLOPs of the decode passes.
        flops_per_output_token: flops_total / output tokens.
        bytes_moved: estimated bytes read and written to device memory (weights and KV cache).
        energy_per_flop_j: joules per FLOP over the window.
        achieved_flops_per_s: flops_total / duration_s.
        achieved_bytes_per_s: bytes_moved / duration_s.
        mfu: achieved FLOP/s as a fraction of the dense peak for ``dtype``.
        mbu: achieved bytes/s as a fraction of the peak memory bandwidth.
        peak_flops_per_s: the dense peak used for MFU (all devices together).
        peak_bandwidth_bytes_per_s: the bandwidth peak used for MBU (all devices together).
        device_spec: the spec-table entry the peaks came from.
        device_spec_source: where that entry's figures come from.
        dtype: the canonical dtype the peak was taken for.
        n_devices: devices the peaks were multiplied by.
        assumption: a caveat on the counts (an architecture counted by analogy), if any.
        reason: why figures are None, or None when every figure was computed.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    method: str = METHOD
    n_parameters: int | None = None
    n_parameters_non_embedding: int | None = None
    flops_total: float | None = None
    flops_prefill: float | None = None
    flops_decode: float | None = None
    flops_per_output_token: float | None = None
    bytes_moved: float | None = None
    energy_per_flop_j: float | None = None
    achieved_flops_per_s: float | None = None
    achieved_bytes_per_s: float | None = None
    mfu: float | None = None
    mbu: float | None = None
    peak_flops_per_s: float | None = None
    peak_bandwidth_bytes_per_s: float | None = None
    device_spec: str | None = None
    device_spec_source: str | None = None
    dtype: str | None = None
    n_devices: int = 1
    assumption: str | None = None
    reason: str | None = None


def canonical_dtype(dtype: str) -> str | None:
    """'bfloat16', 'torch.bfloat16', 'bf16' -> 'bf16'; None for names that are not a dtype."""
    return _DTYPES.get(dtype.strip().lower().removeprefix("torch."))


def efficiency(
    *,
    flops_total: float,
    bytes_moved: float | None,
    duration_s: float,
    energy_total_j: float | None,
    dtype: str,
    gpu_name: str | None,
    n_devices: int = 1,
) -> FlopsMetrics:
    """J/FLOP, MFU and MBU from totals already known.

    Args:
        flops_total: model FLOPs of the window.
        bytes_moved: bytes moved in the window (None: MBU is not computed).
        duration_s: length of the measured window.
        energy_total_j: energy of the window (None without an energy source).
        dtype: the dtype the model ran in ('bf16', 'bfloat16', 'torch.float16', 'fp32', ...).
        gpu_name: the GPU as NVML names it; None on CPU.
        n_devices: GPUs the model ran on (peaks are per GPU and are multiplied by this).

    Returns:
        A :class:`FlopsMetrics` with the efficiency fields, ``flops_total`` and ``bytes_moved``.
    """
    reasons: list[str] = []
    per_flop = _ratio(energy_total_j, flops_total)
    if energy_total_j is None:
        reasons.append("energy_per_flop_j: no energy was measured")
    elif per_flop is None:
        reasons.append("energy_per_flop_j: no FLOPs (no requests)")
    flops_rate = _ratio(flops_total, duration_s)
    bytes_rate = _ratio(bytes_moved, duration_s)
    if duration_s <= 0:
        reasons.append("mfu, mbu: the window has no duration")
    peak_flops, peak_bytes, spec_name, spec_source, canonical = _peaks(
        dtype, gpu_name, max(n_devices, 1), reasons
    )
    if bytes_moved is None:
        reasons.append("mbu: no byte count")
    return FlopsMetrics(
        flops_total=float(flops_total),
        bytes_moved=bytes_moved,
        energy_per_flop_j=per_flop,
        achieved_flops_per_s=flops_rate,
        achieved_bytes_per_s=bytes_rate,
        mfu=_ratio(flops_rate, peak_flops),
        mbu=_ratio(bytes_rate, peak_bytes),
        peak_flops_per_s=peak_flops,
        peak_bandwidth_bytes_per_s=peak_bytes,
        device_spec=spec_name,
        device_spec_source=spec_source,
        dtype=canonical,
        n_devices=max(n_devices, 1),
        reason="; ".join(reasons) or None,
    )


def compute_flops_metrics(
    model_config: Mapping[str, Any] | Any,
    records: Sequence[TokenCounts],
    duration_s: float,
    energy_total_j: float | None,
    dtype: str,
    gpu_name: str | None,
    *,
    batch_size: int = 1,
    n_devices: int = 1,
    kv_cache_dtype: str | None = None,
) -> FlopsMetrics:
    """Analytical FLOPs of a measured window and its J/FLOP, MFU and MBU.

    Pure: no device or file access; never raises for a model it cannot count (the figures are
    None and ``reason`` says why).

    Args:
        model_config: the model's config: a dict (config.json, or ``ModelInfo.details
            ["architecture"]``) or a transformers ``PretrainedConfig``.
        records: per-request token counts (``RequestRecord`` objects), in batch order.
        duration_s: length of the measured window in seconds.
        energy_total_j: energy of the window in joules (None without an energy source).
        dtype: the dtype the weights ran in ('bf16', 'bfloat16', 'float32', ...).
        gpu_name: the GPU as NVML names it ("NVIDIA H100 80GB HBM3"); None on CPU.
        batch_size: sequences per forward pass (the pytorch backend's ``batch_size``).
        n_devices: GPUs the model ran on.
        kv_cache_dtype: dtype of the KV cache when it differs from ``dtype``.
    """
    try:
        shape = TransformerShape.from_config(model_config)
    except ArchitectureError as exc:
        return FlopsMetrics(reason=f"all figures: the model config cannot be counted ({exc})")
    params = shape.parameters()
    flops = workload_flops(shape, records)
    canonical = canonical_dtype(dtype)
    bytes_moved: float | None = None
    notes: list[str] = []
    if canonical is None:
        notes.append(f"bytes_moved: unknown dtype '{dtype}'")
    else:
        kv = canonical_dtype(kv_cache_dtype) if kv_cache_dtype else canonical
        bytes_moved = workload_bytes(
            shape,
            records,
            BYTES_PER_ELEMENT[canonical],
            batch_size=max(batch_size, 1),
            kv_bytes_per_element=BYTES_PER_ELEMENT[kv or canonical],
        )
    result = efficiency(
        flops_total=flops.total,
        bytes_moved=bytes_moved,
        duration_s=duration_s,
        energy_total_j=energy_total_j,
        dtype=dtype,
        gpu_name=gpu_name,
        n_devices=n_devices,
    )
    output_tokens = sum(r.output_tokens for r in records)
    reasons = notes + ([result.reason] if result.reason else [])
    return result.model_copy(
        update={
            "n_parameters": params.total,
            "n_parameters_non_embedding": params.non_embedding,
            "flops_prefill": float(flops.prefill),
            "flops_decode": float(flops.decode),
            "flops_per_output_token": _ratio(flops.total, output_tokens),
            "assumption": shape.assumption,
            "reason": "; ".join(reasons) or None,
        }
    )


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _peaks(
    dtype: str, gpu_name: str | None, n_devices: int, reasons: list[str]
) -> tuple[float | None, float | None, str | None, str | None, str | None]:
    """(peak FLOP/s, peak bytes/s, spec name, spec source, canonical dtype), noting reasons."""
    canonical = canonical_dtype(dtype)
    match = find_device_spec(gpu_name)
    if match.spec is None:
        reasons.append(f"mfu, mbu: {match.reason}")
        return None, None, None, None, canonical
    spec = match.spec
    peak_bytes = spec.peak_bandwidth_bytes_per_s * n_devices
    peak_flops: float | None = None
    if canonical is None:
        reasons.append(f"mfu: unknown dtype '{dtype}' (expected fp32, tf32, fp16, bf16 or fp8)")
    else:
        per_device = spec.peak_flops_per_s(canonical)
        if per_device is None:
            reasons.append(f"mfu: the {spec.name} has no {canonical} peak in the spec table")
        else:
            peak_flops = per_device * n_devices
    return peak_flops, peak_bytes, spec.name, spec.source, canonical
