"""Metrics from raw per-request records. Percentiles always come from the raw samples."""

from __future__ import annotations

from collections.abc import Sequence

from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.results.models import PerformanceMetrics
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.results.stats import latency_stats


def _per_second(amount: float, duration_s: float) -> float | None:
    return amount / duration_s if duration_s > 0 else None


def per_unit(energy_j: float | None, units: int) -> float | None:
    """``energy_j / units``; None without energy or units."""
    return energy_j / units if energy_j is not None and units > 0 else None


def compute_metrics(
    records: Sequence[RequestRecord],
    duration_s: float,
    energy_total_j: float | None,
    memory: MemoryReading,
    energy_adjusted_j: float | None = None,
) -> PerformanceMetrics:
    """Throughput, latency distributions and energy per unit of work for one window."""
    input_tokens = sum(r.input_tokens for r in records)
    output_tokens = sum(r.output_tokens for r in records)
    ttfts = [r.ttft_s for r in records if r.ttft_s is not None]
    itls = [gap for r in records for gap in r.itl_s]
    return PerformanceMetrics(
        duration_s=duration_s,
        n_requests=len(records),
        total_input_tokens=input_tokens,
        total_output_tokens=output_tokens,
        output_tokens_per_s=_per_second(output_tokens, duration_s),
        input_tokens_per_s=_per_second(input_tokens, duration_s),
        requests_per_s=_per_second(len(records), duration_s),
        energy_per_output_token_j=per_unit(energy_total_j, output_tokens),
        energy_per_request_j=per_unit(energy_total_j, len(records)),
        energy_per_output_token_adjusted_j=per_unit(energy_adjusted_j, output_tokens),
        energy_per_request_adjusted_j=per_unit(energy_adjusted_j, len(records)),
        energy_per_total_token_j=per_unit(energy_total_j, input_tokens + output_tokens),
        energy_per_total_token_adjusted_j=per_unit(energy_adjusted_j, input_tokens + output_tokens),
        ttft=latency_stats(ttfts),
        itl=latency_stats(itls),
        tpot=latency_stats([t for r in records if (t := r.tpot_s) is not None]),
        e2e_latency=latency_stats([r.e2e_s for r in records]),
        peak_memory_mb=memory.peak_mb,
        peak_memory_scope=memory.scope,
    )
