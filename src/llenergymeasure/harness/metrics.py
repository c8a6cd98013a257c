"""Metrics from raw per-request records. Percentiles always come from the raw samples.

Only completed requests count in the figures, as in ``vllm bench serve``: a failed request
(``RequestRecord.error``) adds to ``n_failed`` and the error rate, and its partial output to no
token total, throughput, energy denominator or latency distribution.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from llenergymeasure.backends.base import MemoryReading
from llenergymeasure.results.models import PerformanceMetrics
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.results.stats import completed, request_latencies

MAX_FAILURE_REASONS = 3


def _per_second(amount: float, duration_s: float) -> float | None:
    return amount / duration_s if duration_s > 0 else None


def per_unit(energy_j: float | None, units: int) -> float | None:
    """``energy_j / units``; None without energy or units."""
    return energy_j / units if energy_j is not None and units > 0 else None


J_PER_WH = 3600.0


def per_1k_requests_wh(energy_j: float | None, n_requests: int) -> float | None:
    """Watt-hours per 1,000 requests (AIEnergyScore's unit): ``energy_j / n_requests``
    × 1000 / 3600; None without energy or requests."""
    per_request_j = per_unit(energy_j, n_requests)
    return None if per_request_j is None else per_request_j * 1000 / J_PER_WH


def failure_reasons(records: Sequence[RequestRecord]) -> dict[str, int]:
    """The most common reasons among the failed records (up to :data:`MAX_FAILURE_REASONS`),
    each with its count, most common first (ties in the order first seen)."""
    counts = Counter(r.error for r in records if r.error is not None)
    return dict(counts.most_common(MAX_FAILURE_REASONS))


def compute_metrics(
    records: Sequence[RequestRecord],
    duration_s: float,
    energy_total_j: float | None,
    memory: MemoryReading,
    energy_adjusted_j: float | None = None,
) -> PerformanceMetrics:
    """Throughput, latency distributions and energy per unit of work for one window, over
    the completed requests (module docstring); with none completed, the rates are 0 and the
    per-unit energies and latencies empty (None)."""
    done = completed(records)
    n_failed = len(records) - len(done)
    input_tokens = sum(r.input_tokens for r in done)
    output_tokens = sum(r.output_tokens for r in done)
    latencies = request_latencies(done)
    return PerformanceMetrics(
        duration_s=duration_s,
        n_requests=len(done),
        total_input_tokens=input_tokens,
        total_output_tokens=output_tokens,
        n_failed=n_failed,
        error_rate=n_failed / len(records) if records else 0.0,
        failure_reasons=failure_reasons(records),
        output_tokens_per_s=_per_second(output_tokens, duration_s),
        input_tokens_per_s=_per_second(input_tokens, duration_s),
        requests_per_s=_per_second(len(done), duration_s),
        energy_per_output_token_j=per_unit(energy_total_j, output_tokens),
        energy_per_request_j=per_unit(energy_total_j, len(done)),
        energy_per_output_token_adjusted_j=per_unit(energy_adjusted_j, output_tokens),
        energy_per_request_adjusted_j=per_unit(energy_adjusted_j, len(done)),
        energy_per_total_token_j=per_unit(energy_total_j, input_tokens + output_tokens),
        energy_per_total_token_adjusted_j=per_unit(energy_adjusted_j, input_tokens + output_tokens),
        energy_per_1k_requests_wh=per_1k_requests_wh(energy_total_j, len(done)),
        energy_per_1k_requests_adjusted_wh=per_1k_requests_wh(energy_adjusted_j, len(done)),
        ttft=latencies.ttft,
        itl=latencies.itl,
        tpot=latencies.tpot,
        e2e_latency=latencies.e2e_latency,
        peak_memory_mb=memory.peak_mb,
        peak_memory_scope=memory.scope,
    )
