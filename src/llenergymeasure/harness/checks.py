"""Measurement warnings: caveats a reader needs before trusting a figure."""

from __future__ import annotations

from dataclasses import asdict

from llenergymeasure.energy.base import EnergyReading
from llenergymeasure.results.models import EnergyMetrics, MeasurementWarning

MIN_WINDOW_S = 10.0


def measurement_warnings(reading: EnergyReading, window_s: float) -> list[MeasurementWarning]:
    """Warnings that apply to a window of ``window_s`` measured as ``reading`` says."""
    warnings = []
    if window_s < MIN_WINDOW_S:
        warnings.append(
            MeasurementWarning(
                code="short_window",
                message=f"measured window was {window_s:.1f} s (< {MIN_WINDOW_S:.0f} s): "
                "counter granularity and start/stop effects weigh heavily; use more prompts",
            )
        )
    if reading.energy_total_j is None:
        warnings.append(
            MeasurementWarning(
                code="no_energy_source",
                message=f"no energy was measured (sampler '{reading.method}'); energy fields "
                "are null",
            )
        )
    elif reading.is_estimate:
        warnings.append(
            MeasurementWarning(
                code="energy_estimated",
                message=f"energy from '{reading.method}' is an estimate, not a measurement: "
                + "; ".join(reading.notes or ["modelled power"]),
            )
        )
    warnings += [MeasurementWarning(code=code, message=msg) for code, msg in reading.warnings]
    return warnings


def energy_metrics(reading: EnergyReading) -> EnergyMetrics:
    """The result's energy section from a sampler reading (its warnings go to the result's)."""
    fields = asdict(reading)
    del fields["warnings"]
    return EnergyMetrics(**fields)
