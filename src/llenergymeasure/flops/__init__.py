"""Analytical FLOPs of LLM inference as a normaliser: J/FLOP, MFU and MBU against a spec table.

FLOPs are a property of the model and the workload (the same for every backend on the same
requests), so they serve to compare energy across model sizes and hardware, not to rank
implementations. Everything here is pure arithmetic on a model config and token counts; nothing
imports torch or touches a device.

Entry point: :func:`compute_flops_metrics`. Formulas and their sources are in
:mod:`llenergymeasure.flops.workload`; peak figures and theirs in
:mod:`llenergymeasure.flops.specs`.
"""

from llenergymeasure.flops.architecture import (
    ArchitectureError,
    ParameterCounts,
    TransformerShape,
    architecture_summary,
)
from llenergymeasure.flops.metrics import (
    FlopsMetrics,
    canonical_dtype,
    compute_flops_metrics,
    efficiency,
)
from llenergymeasure.flops.specs import DEVICE_SPECS, DeviceSpec, SpecMatch, find_device_spec
from llenergymeasure.flops.workload import (
    TokenCounts,
    WorkloadFlops,
    decode_flops,
    prefill_flops,
    workload_bytes,
    workload_flops,
)

__all__ = [
    "DEVICE_SPECS",
    "ArchitectureError",
    "DeviceSpec",
    "FlopsMetrics",
    "ParameterCounts",
    "SpecMatch",
    "TokenCounts",
    "TransformerShape",
    "WorkloadFlops",
    "architecture_summary",
    "canonical_dtype",
    "compute_flops_metrics",
    "decode_flops",
    "efficiency",
    "find_device_spec",
    "prefill_flops",
    "workload_bytes",
    "workload_flops",
]
