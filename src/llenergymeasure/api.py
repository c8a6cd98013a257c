"""The library entry point: ``llem.run``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llenergymeasure.backends import Backend
from llenergymeasure.config.loader import build_experiment_config, load_experiment_config
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.energy import EnergySampler
from llenergymeasure.errors import ConfigError
from llenergymeasure.harness import RunObserver, run_experiment
from llenergymeasure.paths import default_results_dir
from llenergymeasure.results import ExperimentResult, write_experiment

ConfigLike = ExperimentConfig | Mapping[str, Any] | str | os.PathLike[str]


def to_experiment_config(config: ConfigLike) -> ExperimentConfig:
    """Accept a config object, a mapping, or a path to a YAML file."""
    if isinstance(config, ExperimentConfig):
        return config
    if isinstance(config, Mapping):
        return build_experiment_config(config, source="dict")
    if isinstance(config, (str, os.PathLike)):
        return load_experiment_config(Path(config))
    raise ConfigError(f"run() takes a path, a dict or an ExperimentConfig, not {type(config)}")


def result_label(config: ExperimentConfig) -> str:
    """The directory label: the config's name, else ``<model>_<backend>``."""
    if config.name:
        return config.name
    return f"{Path(config.model.rstrip('/')).name}_{config.backend}"


def run(
    config: ConfigLike,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    save: bool = True,
    backend: Backend | None = None,
    sampler_factory: Callable[[], EnergySampler] | None = None,
    observer: RunObserver | None = None,
) -> ExperimentResult:
    """Run one experiment and (by default) write its result directory.

    Args:
        config: an ExperimentConfig, a dict of its fields, or a path to a YAML file.
        out_dir: parent of the new result directory (default ``results/`` or
            ``$LLEM_RESULTS_DIR``). Existing directories are never overwritten.
        save: write ``result.json`` and ``requests.parquet`` (False: return the result only).
        backend: inject a backend instead of the registry's (tests, custom engines).
        sampler_factory: builds the energy sampler for each window (baseline, measurement)
            instead of the factory's choice for ``config.energy``.
        observer: receives progress events.

    Returns:
        The ExperimentResult; ``output_dir`` says where it was written.

    Raises:
        LLEMError: ConfigError (exit 2) for bad input, others (exit 1) for run failures.
    """
    experiment = to_experiment_config(config)
    outcome = run_experiment(
        experiment, backend=backend, sampler_factory=sampler_factory, observer=observer
    )
    if save:
        root = Path(out_dir) if out_dir is not None else default_results_dir()
        label = result_label(experiment)
        write_experiment(outcome.result, outcome.records, root, label, outcome.timeseries)
    return outcome.result
