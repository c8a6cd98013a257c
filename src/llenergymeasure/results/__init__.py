"""Result models and their files: result.json, requests.parquet, atomic new directories,
and the measurement-warning codes."""

from llenergymeasure.results.io import load_requests, load_result, write_experiment
from llenergymeasure.results.models import (
    SCHEMA_VERSION,
    EnergyMetrics,
    EnvironmentSnapshot,
    ExperimentResult,
    Goodput,
    LatencyStats,
    MeasurementWarning,
    ModelInfo,
    PerformanceMetrics,
    PhaseTimings,
    ServingMetrics,
    SteadyState,
)
from llenergymeasure.results.stats import Summary
from llenergymeasure.results.study import (
    ExperimentAggregate,
    StudyEntry,
    StudyResult,
    load_study_result,
)
from llenergymeasure.results.warning_codes import WarningCode, warning_meaning

__all__ = [
    "SCHEMA_VERSION",
    "EnergyMetrics",
    "EnvironmentSnapshot",
    "ExperimentAggregate",
    "ExperimentResult",
    "Goodput",
    "LatencyStats",
    "MeasurementWarning",
    "ModelInfo",
    "PerformanceMetrics",
    "PhaseTimings",
    "ServingMetrics",
    "SteadyState",
    "StudyEntry",
    "StudyResult",
    "Summary",
    "WarningCode",
    "load_requests",
    "load_result",
    "load_study_result",
    "warning_meaning",
    "write_experiment",
]
