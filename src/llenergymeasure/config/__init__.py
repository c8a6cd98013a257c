"""Configuration: Pydantic models (the single source of truth) and the YAML/CLI loader."""

from llenergymeasure.config.models import (
    DatasetConfig,
    DecoderConfig,
    EnergyConfig,
    ExperimentConfig,
    PyTorchConfig,
    WarmupConfig,
)
from llenergymeasure.config.loader import build_experiment_config, load_experiment_config

__all__ = [
    "build_experiment_config",
    "load_experiment_config",
    "DatasetConfig",
    "DecoderConfig",
    "EnergyConfig",
    "ExperimentConfig",
    "PyTorchConfig",
    "WarmupConfig",
]
