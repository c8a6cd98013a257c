"""Result models and their files: result.json, requests.parquet, atomic new directories,
and the measurement-warning codes."""

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
    "LatencyStats",
    "MeasurementWarning",
    "ModelInfo",
    "PerformanceMetrics",
    "PhaseTimings",
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
