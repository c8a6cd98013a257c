"""Measure one experiment in this process and write its result directory.

This is the one entry point that measures *and* saves: ``llem.run`` calls it for a local
run, and a study's child process calls it for each experiment. It never chooses a runner
(Docker, Ray): that decision belongs to the caller, so a study's own ``execution.runner``
is never overridden from inside its children.
"""

from __future__ import annotations

import os
from pathlib import Path

from llenergymeasure.backends.base import Backend
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.harness.observer import RunObserver
from llenergymeasure.harness.runner import SamplerFactory, run_experiment
from llenergymeasure.results.io import write_experiment
from llenergymeasure.results.models import ExperimentResult


def result_label(config: ExperimentConfig) -> str:
    """The directory label: the config's name, else ``<model>_<backend>``."""
    if config.name:
        return config.name
    return f"{Path(config.model.rstrip('/')).name}_{config.backend}"


def run_and_save(
    config: ExperimentConfig,
    out_dir: str | os.PathLike[str],
    *,
    backend: Backend | None = None,
    sampler_factory: SamplerFactory | None = None,
    observer: RunObserver | None = None,
) -> ExperimentResult:
    """Measure ``config`` here and write a new result directory under ``out_dir``.

    Args:
        config: the validated experiment.
        out_dir: parent of the new result directory (never overwritten).
        backend: inject a backend instead of the registry's.
        sampler_factory: builds the energy sampler for each window.
        observer: receives progress events.

    Returns:
        The result; ``output_dir`` says where it was written.

    Raises:
        LLEMError: any failure, already translated.
    """
    outcome = run_experiment(
        config, backend=backend, sampler_factory=sampler_factory, observer=observer
    )
    timeline = outcome.energy_timeline
    write_experiment(
        outcome.result,
        outcome.records,
        Path(out_dir),
        result_label(config),
        outcome.timeseries,
        None if timeline is None else timeline.points,
    )
    return outcome.result
