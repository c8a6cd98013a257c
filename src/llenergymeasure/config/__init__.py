"""Configuration: Pydantic models (the single source of truth) and the YAML/CLI loader."""

from llenergymeasure.config.loader import build_experiment_config, load_experiment_config
from llenergymeasure.config.models import (
    BaselineConfig,
    DatasetConfig,
    DecoderConfig,
    EnergyConfig,
    ExperimentConfig,
    PyTorchConfig,
    TelemetryConfig,
    WarmupConfig,
)
from llenergymeasure.config.study import (
    PROFILES,
    ExecutionConfig,
    StudyConfig,
    apply_profile,
    build_study_config,
    cycle_schedule,
    is_study_data,
    load_study_config,
    study_design_hash,
)

__all__ = [
    "PROFILES",
    "BaselineConfig",
    "DatasetConfig",
    "DecoderConfig",
    "EnergyConfig",
    "ExecutionConfig",
    "ExperimentConfig",
    "PyTorchConfig",
    "StudyConfig",
    "TelemetryConfig",
    "WarmupConfig",
    "apply_profile",
    "build_experiment_config",
    "build_study_config",
    "cycle_schedule",
    "is_study_data",
    "load_experiment_config",
    "load_study_config",
    "study_design_hash",
]
