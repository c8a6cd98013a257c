"""Result models and their files: result.json, requests.parquet, atomic new directories."""

from llenergymeasure.results.io import load_requests, load_result, write_experiment
from llenergymeasure.results.models import (
    SCHEMA_VERSION,
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    LatencyStats,
    MeasurementWarning,
    ModelInfo,
    PerformanceMetrics,
    PhaseTimings,
)

__all__ = [
    "SCHEMA_VERSION",
    "EnergyMetrics",
    "EnvironmentSnapshot",
    "ExperimentResult",
    "LatencyStats",
    "MeasurementWarning",
    "ModelInfo",
    "PerformanceMetrics",
    "PhaseTimings",
    "load_requests",
    "load_result",
    "write_experiment",
]
