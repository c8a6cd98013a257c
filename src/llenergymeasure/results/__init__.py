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
from llenergymeasure.results.stats import Summary
from llenergymeasure.results.study import (
    ExperimentAggregate,
    StudyEntry,
    StudyResult,
    load_study_result,
)

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
    "load_requests",
    "load_result",
    "load_study_result",
    "write_experiment",
]
