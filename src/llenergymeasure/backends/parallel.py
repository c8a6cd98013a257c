"""Run-time check that a tensor x pipeline parallel layout fits the visible GPUs.

Config validators stay pure (no device access), so the GPU count is checked here, when a
backend loads, before the inference library starts any worker.
"""

from __future__ import annotations

from collections.abc import Callable

from llenergymeasure.devices import GpuProbe, probe
from llenergymeasure.errors import ConfigError


def check_parallel_fits(
    section: str,
    tensor_parallel_size: int,
    pipeline_parallel_size: int,
    gpu_probe: Callable[[], GpuProbe] = probe,
) -> None:
    """Refuse a layout needing more GPUs than this process can see (one device always fits).

    Raises:
        ConfigError: naming both sizes, the GPUs they need and the GPUs visible (and why none).
    """
    needed = tensor_parallel_size * pipeline_parallel_size
    if needed == 1:
        return
    found = gpu_probe()
    if needed <= found.count:
        return
    why = f" ({found.reason})" if found.reason else ""
    raise ConfigError(
        f"{section}.tensor_parallel_size ({tensor_parallel_size}) x "
        f"{section}.pipeline_parallel_size ({pipeline_parallel_size}) needs {needed} GPUs, but "
        f"{found.count} {'is' if found.count == 1 else 'are'} visible{why}; lower them or make "
        "more GPUs visible (CUDA_VISIBLE_DEVICES)"
    )
