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

__all__ = [
    "BaselineConfig",
    "DatasetConfig",
    "DecoderConfig",
    "EnergyConfig",
    "ExperimentConfig",
    "PyTorchConfig",
    "TelemetryConfig",
    "WarmupConfig",
    "build_experiment_config",
    "load_experiment_config",
]
