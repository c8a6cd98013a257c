"""Measure one experiment in this process and write its result directory.

This is the one entry point that measures *and* saves: ``llem.run`` calls it for a local
run, and a study's child process calls it for each experiment. It never chooses a runner
(Docker, Ray): that decision belongs to the caller, so a study's own ``execution.runner``
is never overridden from inside its children.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from llenergymeasure.backends import create_backend
from llenergymeasure.backends.base import Backend
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.harness.observer import RunObserver
from llenergymeasure.harness.runner import SamplerFactory, run_experiment
from llenergymeasure.results.io import write_experiment
from llenergymeasure.results.models import ExperimentResult

SERVER_LOG = "server.log"
"""A launched server's output (``server.launch``), in the result directory."""


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

    A server that ``server.launch`` starts writes its output to a scratch folder; it ends up
    in the result directory as ``server.log``. When the run fails the scratch folder stays,
    so the whole log can be read where the error says.

    Returns:
        The result; ``output_dir`` says where it was written.

    Raises:
        LLEMError: any failure, already translated.
    """
    scratch = None
    if backend is None and config.backend == "server" and config.server_options.launch:
        scratch = Path(tempfile.mkdtemp(prefix="llem-server-"))
        backend = create_backend(config.backend, server_log=scratch / SERVER_LOG)
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
        files={SERVER_LOG: scratch / SERVER_LOG} if scratch is not None else None,
    )
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    return outcome.result
