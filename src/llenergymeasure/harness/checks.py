"""Measurement warnings and the energy section of a result.

Each warning has a stable code (for machines) and a sentence (for people); each check is a
small function of what was measured, so thresholds are easy to find and test.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from llenergymeasure.backends.registry import untested_versions
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy.base import EnergyReading
from llenergymeasure.harness.baseline import BUSY_BASELINE_PCT, Baseline
from llenergymeasure.harness.carbon import Co2
from llenergymeasure.results.models import (
    EnergyMetrics,
    MeasurementWarning,
    PerformanceMetrics,
    ServingMetrics,
    TelemetrySummary,
)
from llenergymeasure.results.warning_codes import WarningCode, warning_code

MIN_WINDOW_S = 10.0
MIN_ENERGY_SAMPLES = 10
MAX_TEMPERATURE_DRIFT_C = 5.0


def _warn(code: WarningCode, message: str) -> MeasurementWarning:
    return MeasurementWarning.of(code, message)


def window_warnings(reading: EnergyReading, window_s: float) -> list[MeasurementWarning]:
    """Short windows, too few samples, and energy that is estimated or missing."""
    warnings = []
    if window_s < MIN_WINDOW_S:
        warnings.append(_warn(
            WarningCode.SHORT_WINDOW,
            f"measured window was {window_s:.1f} s (< {MIN_WINDOW_S:.0f} s): counter "
            "granularity and start/stop effects weigh heavily; use more prompts",
        ))  # fmt: skip
    if reading.energy_total_j is None:
        warnings.append(_warn(
            WarningCode.NO_ENERGY_SOURCE,
            f"no energy was measured (sampler '{reading.method}'); energy fields are null",
        ))  # fmt: skip
        return warnings
    if reading.sample_count < MIN_ENERGY_SAMPLES:
        warnings.append(_warn(
            WarningCode.TOO_FEW_SAMPLES,
            f"only {reading.sample_count} energy samples in the window "
            f"(< {MIN_ENERGY_SAMPLES}); the figure is coarse",
        ))  # fmt: skip
    if reading.is_estimate:
        warnings.append(_warn(
            WarningCode.ENERGY_ESTIMATED,
            f"energy from '{reading.method}' is an estimate, not a measurement: "
            + "; ".join(reading.notes or ["modelled power"]),
        ))  # fmt: skip
    return warnings


def failed_request_warnings(metrics: PerformanceMetrics) -> list[MeasurementWarning]:
    """Requests that failed: how many, the rate, and the most common reasons with counts."""
    if not metrics.n_failed:
        return []
    return [_warn(
        WarningCode.REQUESTS_FAILED,
        f"{metrics.n_failed} of {metrics.n_submitted} requests failed "
        f"({metrics.error_rate:.1%}): {metrics.failure_reasons_text()}. The latency "
        "percentiles, throughput and energy per request and per token count only the "
        f"{metrics.n_requests} completed",
    )]  # fmt: skip


def telemetry_warnings(summary: TelemetrySummary | None) -> list[MeasurementWarning]:
    """Thermal drift and throttling seen by the telemetry poller during the window."""
    if summary is None:
        return []
    warnings = []
    drift = summary.temperature_drift_c
    if drift is not None and abs(drift) > MAX_TEMPERATURE_DRIFT_C:
        warnings.append(_warn(
            WarningCode.THERMAL_DRIFT,
            f"device temperature changed by {drift:+.1f} °C during the window "
            f"(> {MAX_TEMPERATURE_DRIFT_C:.0f} °C): use warmup/thermal_floor_s",
        ))  # fmt: skip
    if summary.throttled_fraction:
        warnings.append(_warn(
            WarningCode.THROTTLING,
            f"clocks were throttled in {summary.throttled_fraction:.0%} of telemetry samples",
        ))  # fmt: skip
    return warnings


def context_warnings(
    baseline: Baseline | None, baseline_enabled: bool, co2: Co2
) -> list[MeasurementWarning]:
    """A missing baseline and an uncomputed CO2 figure."""
    warnings = []
    if baseline is None:
        reason = "disabled" if not baseline_enabled else "the sampler measured no energy"
        warnings.append(_warn(
            WarningCode.BASELINE_MISSING,
            f"no idle baseline ({reason}): energy_adjusted_j is null and the totals "
            "include idle power",
        ))  # fmt: skip
    if co2.co2_kg is None:
        warnings.append(_warn(
            WarningCode.CO2_NOT_COMPUTED,
            "CO2 not computed: set carbon_intensity_g_per_kwh in the user config (llem "
            "config shows where) or LLEM_CARBON_INTENSITY (gCO2eq/kWh) for your grid",
        ))  # fmt: skip
    return warnings


def baseline_warnings(
    baseline: Baseline | None, reading: EnergyReading
) -> list[MeasurementWarning]:
    """A stale idle baseline: one that does not fit this window.

    A baseline (cached or fresh) is stale when it covers other devices than the window measured
    (the visible GPUs changed since it was cached), or when its idle power is above the
    window's mean power (it was taken under other conditions: another load, a hotter device).
    Either way ``energy_adjusted_j`` subtracts the wrong idle power.
    """
    if baseline is None or reading.energy_total_j is None or reading.duration_s <= 0:
        return []
    origin = "cached" if baseline.from_cache else "measured for this run"
    advice = "re-measure it (baseline.cache_ttl_s: 0) with the devices idle"
    warnings = []
    baseline_domains = set(baseline.power_by_domain_w)
    window_domains = set(reading.energy_by_domain_j)
    if baseline_domains != window_domains:
        warnings.append(_warn(
            WarningCode.BASELINE_STALE,
            f"the idle baseline ({origin}) covers {', '.join(sorted(baseline_domains)) or '—'} "
            f"but the window measured {', '.join(sorted(window_domains)) or '—'}: {advice}",
        ))  # fmt: skip
    warnings += _busy_baseline_warnings(baseline, origin, advice)
    window_power_w = reading.energy_total_j / reading.duration_s
    if baseline.power_w > window_power_w:
        warnings.append(_warn(
            WarningCode.BASELINE_STALE,
            f"the idle baseline ({origin}, {baseline.power_w:.1f} W) is above the window's "
            f"mean power ({window_power_w:.1f} W), so it was not taken at idle: {advice}",
        ))  # fmt: skip
    return warnings


def _busy_baseline_warnings(
    baseline: Baseline, origin: str, advice: str
) -> list[MeasurementWarning]:
    """A baseline with CPU-side domains taken while other processes kept the CPUs busy."""
    if not baseline.taken_busy:
        return []
    return [_warn(
        WarningCode.BASELINE_STALE,
        f"the CPUs were {baseline.cpu_busy_pct:.0f}% busy during the idle baseline ({origin}, "
        f"{baseline.power_w:.1f} W; idle is at most {BUSY_BASELINE_PCT:g} % busy): other "
        f"processes were running, so the idle power is too high and energy_adjusted_j too "
        f"low; {advice}",
    )]  # fmt: skip


def stability_warnings(stable: bool | None, timeout_s: float) -> list[MeasurementWarning]:
    """The devices did not settle before the window (only when a wait was asked for)."""
    if timeout_s <= 0 or stable:
        return []
    if stable is None:
        return [_warn(
            WarningCode.STABILITY_UNKNOWN,
            "stability wait asked for, but the telemetry has no temperature or power to judge "
            "it by (no GPU telemetry)",
        )]  # fmt: skip
    return [_warn(
        WarningCode.NOT_STABLE,
        f"temperature/power still varied after {timeout_s:g} s of waiting; the window started "
        "anyway",
    )]  # fmt: skip


def device_warnings(gpus: list[dict[str, Any]]) -> list[MeasurementWarning]:
    """GPUs without persistence mode re-initialise between uses, adding latency and energy."""
    off = [str(g.get("index")) for g in gpus if g.get("persistence_mode") is False]
    if not off:
        return []
    return [_warn(
        WarningCode.PERSISTENCE_MODE_OFF,
        f"persistence mode is off on GPU {', '.join(off)}: enable it (nvidia-smi -pm 1) for "
        "stable measurements",
    )]  # fmt: skip


def config_warnings(config: ExperimentConfig) -> list[MeasurementWarning]:
    """Accepted settings that will not act (e.g. sampling fields with greedy decoding)."""
    return [_warn(warning_code(code), message) for code, message in config.config_warnings()]


def version_warnings(backend: str, libraries: dict[str, str | None]) -> list[MeasurementWarning]:
    """Backend libraries outside their tested range (only ``LLEM_ALLOW_UNTESTED=1`` gets a
    run this far with one)."""
    return [
        _warn(WarningCode.UNTESTED_VERSION, problem)
        for problem in untested_versions(backend, libraries)
    ]


def sampler_warnings(reading: EnergyReading) -> list[MeasurementWarning]:
    """Warnings the sampler itself raised (mismatch, failure mid-window...)."""
    return [_warn(code, message) for code, message in reading.warnings]


def energy_metrics(
    reading: EnergyReading, baseline: Baseline | None, co2: Co2, now: float
) -> EnergyMetrics:
    """The result's energy section: the reading, idle-adjusted figures and CO2."""
    # the timeline stays on the reading (ExperimentRun, energy_timeline.parquet)
    values: dict[str, Any] = {
        f.name: getattr(reading, f.name)
        for f in fields(reading)
        if f.name not in ("warnings", "timeline")
    }
    values.update(co2_kg=co2.co2_kg, co2_source=co2.source,
                  carbon_intensity_g_per_kwh=co2.intensity_g_per_kwh, pue=co2.pue,
                  energy_facility_j=co2.energy_facility_j)  # fmt: skip
    if baseline is not None and reading.energy_total_j is not None:
        adjusted_by_domain_j = {
            key: energy - baseline.power_by_domain_w.get(key, 0.0) * reading.duration_s
            for key, energy in reading.energy_by_domain_j.items()
        }
        values.update(
            baseline_power_w=baseline.power_w,
            baseline_power_by_domain_w=baseline.power_by_domain_w,
            baseline_from_cache=baseline.from_cache,
            baseline_age_s=baseline.age_s(now),
            energy_adjusted_j=reading.energy_total_j - baseline.power_w * reading.duration_s,
            energy_adjusted_by_domain_j=adjusted_by_domain_j,
            notes=[
                *reading.notes,
                *negative_adjusted_notes(reading, baseline, adjusted_by_domain_j),
            ],
        )
    return EnergyMetrics(**values)


def negative_adjusted_notes(
    reading: EnergyReading, baseline: Baseline, adjusted_by_domain_j: dict[str, float]
) -> list[str]:
    """A note naming every domain whose idle-adjusted energy is below zero, with its idle and
    window power, and saying why (none when no domain is)."""
    negative = {key: value for key, value in adjusted_by_domain_j.items() if value < 0}
    if not negative or reading.duration_s <= 0:
        return []
    listed = "; ".join(
        f"{key} {value:.3g} J (idle baseline {baseline.power_by_domain_w.get(key, 0.0):.3g} W, "
        f"window mean {reading.energy_by_domain_j[key] / reading.duration_s:.3g} W)"
        for key, value in negative.items()
    )
    return [
        f"idle-adjusted energy is negative for {listed}: the idle baseline's power there is "
        "above the domain's mean power in the window, so subtracting it removes more than "
        "the window drew. The value is kept, not clipped to 0 (clipping would hide the "
        "mismatch and change the sum over domains). The baseline was taken under other "
        "conditions than the window (other processes busy during it, a domain that draws "
        "less under this load, or one so small that its counter's resolution dominates), so "
        "that domain's idle-adjusted figure is not meaningful"
    ]


STEADY_MIN_S = 30.0
STEADY_MIN_SHARE = 0.5  # of the measured window
UNSATURATED_SHARE = 0.8  # of max_concurrency
GENERATOR_LAG_S = 0.010
GENERATOR_LAG_SHARE = 0.01  # of the mean scheduled inter-arrival time
RATE_SHORTFALL = 0.05  # below the schedule's own rate


def serving_warnings(serving: ServingMetrics | None, window_s: float) -> list[MeasurementWarning]:
    """Where the load was not what was asked: a short or missing steady state, a cap not
    kept full, a late generator, an arrival rate below the schedule's."""
    if serving is None or serving.mode == "offline":
        return []
    return (
        _steady_warnings(serving, window_s)
        + _unsaturated_warnings(serving)
        + _lag_warnings(serving)
        + _rate_warnings(serving)
    )


def _steady_warnings(serving: ServingMetrics, window_s: float) -> list[MeasurementWarning]:
    steady = serving.steady_state
    if steady is None:
        return [_warn(
            WarningCode.STEADY_STATE_SHORT,
            f"no steady-state window: {serving.steady_state_note}; the steady-state figures "
            "are null and the whole-window figures include ramp-up and drain",
        )]  # fmt: skip
    if steady.duration_s >= STEADY_MIN_S and steady.duration_s >= STEADY_MIN_SHARE * window_s:
        return []
    return [_warn(
        WarningCode.STEADY_STATE_SHORT,
        f"the steady-state window is {steady.duration_s:.1f} s of the {window_s:.1f} s "
        f"measured window (< {STEADY_MIN_S:g} s or < {STEADY_MIN_SHARE:.0%} of it): ramp-up "
        "and drain weigh on the figures; use more requests",
    )]  # fmt: skip


def _unsaturated_warnings(serving: ServingMetrics) -> list[MeasurementWarning]:
    cap, steady = serving.max_concurrency, serving.steady_state
    if cap is None or steady is None or steady.mean_in_flight is None:
        return []
    if steady.mean_in_flight >= UNSATURATED_SHARE * cap:
        return []
    return [_warn(
        WarningCode.LOAD_UNSATURATED,
        f"{steady.mean_in_flight:.2f} requests were in flight on average in the steady state, "
        f"{steady.mean_in_flight / cap:.0%} of max_concurrency {cap} "
        f"(< {UNSATURATED_SHARE:.0%}): the load did not keep the cap full",
    )]  # fmt: skip


def _lag_warnings(serving: ServingMetrics) -> list[MeasurementWarning]:
    rate, p99_s = serving.scheduled_rate_rps, serving.submit_lag.p99_s
    if rate is None or p99_s is None:
        return []
    limit_s = min(GENERATOR_LAG_S, GENERATOR_LAG_SHARE / rate)
    if p99_s <= limit_s:
        return []
    return [_warn(
        WarningCode.GENERATOR_LAG,
        f"the load generator submitted requests late: submit-lag p99 {p99_s * 1e3:.2f} ms, "
        f"above {limit_s * 1e3:.2f} ms ({GENERATOR_LAG_S * 1e3:g} ms or "
        f"{GENERATOR_LAG_SHARE:.0%} of the mean scheduled inter-arrival time "
        f"{1e3 / rate:.1f} ms): arrivals were not the process asked for",
    )]  # fmt: skip


def _rate_warnings(serving: ServingMetrics) -> list[MeasurementWarning]:
    scheduled, achieved = serving.scheduled_rate_rps, serving.achieved_rate_rps
    if scheduled is None or achieved is None or achieved >= (1 - RATE_SHORTFALL) * scheduled:
        return []
    return [_warn(
        WarningCode.RATE_NOT_ACHIEVED,
        f"requests arrived at {achieved:.3g}/s, {1 - achieved / scheduled:.0%} below the "
        f"schedule's {scheduled:.3g}/s (requested {serving.requested_rate_rps:g}/s; more than "
        f"{RATE_SHORTFALL:.0%} below): the generator or max_concurrency held arrivals back",
    )]  # fmt: skip
