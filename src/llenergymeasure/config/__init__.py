"""Configuration: Pydantic models (the single source of truth) and the YAML/CLI loader."""

from llenergymeasure.config.loader import build_experiment_config, load_experiment_config
from llenergymeasure.config.models import (
    DatasetConfig,
    DecoderConfig,
    EnergyConfig,
    ExperimentConfig,
    PyTorchConfig,
    WarmupConfig,
)

__all__ = [
    "DatasetConfig",
    "DecoderConfig",
    "EnergyConfig",
    "ExperimentConfig",
    "PyTorchConfig",
    "WarmupConfig",
    "build_experiment_config",
    "load_experiment_config",
]
