"""The library entry point: ``llem.run`` for one experiment or a whole study."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, overload

from llenergymeasure.backends import Backend
from llenergymeasure.config.loader import build_experiment_config, read_yaml
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import StudyConfig, build_study_config, is_study_data
from llenergymeasure.config.user_config import default_results_dir, load_user_config
from llenergymeasure.energy import EnergySampler
from llenergymeasure.errors import ConfigError
from llenergymeasure.harness import RunObserver, run_and_save, run_experiment
from llenergymeasure.results import ExperimentResult, StudyResult, load_result
from llenergymeasure.results.io import check_out_dir
from llenergymeasure.study.lock import DeviceLock, devices_in_use
from llenergymeasure.study.observer import StudyObserver

ConfigLike = ExperimentConfig | StudyConfig | Mapping[str, Any] | str | os.PathLike[str]


def to_config(config: ConfigLike, profile: str | None = None) -> ExperimentConfig | StudyConfig:
    """Accept a config object, a mapping, or a YAML path; a ``sweep:`` or ``experiments:``
    block makes a study."""
    if isinstance(config, (ExperimentConfig, StudyConfig)):
        return config
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        data, source = read_yaml(path), str(path)
        if is_study_data(data):
            data.setdefault("name", path.stem)
    elif isinstance(config, Mapping):
        data, source = dict(config), "dict"
    else:
        raise ConfigError(f"run() takes a path, a dict or a config object, not {type(config)}")
    if is_study_data(data):
        return build_study_config(data, source=source, profile=profile)
    return build_experiment_config(data, source=source)


@overload
def run(
    config: ExperimentConfig,
    *,
    out_dir: str | os.PathLike[str] | None = ...,
    save: bool = ...,
    backend: Backend | None = ...,
    sampler_factory: Callable[[], EnergySampler] | None = ...,
    observer: RunObserver | None = ...,
    resume: str | os.PathLike[str] | None = ...,
    study_observer: StudyObserver | None = ...,
    wait_for_device: bool = ...,
) -> ExperimentResult: ...


@overload
def run(
    config: StudyConfig,
    *,
    out_dir: str | os.PathLike[str] | None = ...,
    save: bool = ...,
    backend: Backend | None = ...,
    sampler_factory: Callable[[], EnergySampler] | None = ...,
    observer: RunObserver | None = ...,
    resume: str | os.PathLike[str] | None = ...,
    study_observer: StudyObserver | None = ...,
    wait_for_device: bool = ...,
) -> StudyResult: ...


@overload
def run(
    config: Mapping[str, Any] | str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] | None = ...,
    save: bool = ...,
    backend: Backend | None = ...,
    sampler_factory: Callable[[], EnergySampler] | None = ...,
    observer: RunObserver | None = ...,
    resume: str | os.PathLike[str] | None = ...,
    study_observer: StudyObserver | None = ...,
    wait_for_device: bool = ...,
) -> ExperimentResult | StudyResult: ...


def run(
    config: ConfigLike,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    save: bool = True,
    backend: Backend | None = None,
    sampler_factory: Callable[[], EnergySampler] | None = None,
    observer: RunObserver | None = None,
    resume: str | os.PathLike[str] | None = None,
    study_observer: StudyObserver | None = None,
    wait_for_device: bool = False,
) -> ExperimentResult | StudyResult:
    """Run one experiment or a study and (by default) write its result directory.

    Args:
        config: an ExperimentConfig or StudyConfig, a dict of fields, or a YAML path.
        out_dir: parent of the new result directory (default ``results/`` or
            ``$LLEM_RESULTS_DIR``). Existing directories are never overwritten.
        save: write the result files (experiments only; a study always writes its directory).
        backend: inject a backend instead of the registry's (experiments only).
        sampler_factory: builds the energy sampler for each window (experiments only).
        observer: receives an experiment's progress events.
        resume: a study directory to continue (studies only).
        study_observer: receives a study's progress events.
        wait_for_device: when another measurement (a study or a single run, in any
            process) holds one of the devices, wait for it to end instead of refusing;
            who holds it is logged (``llenergymeasure.study.lock``) while waiting.

    Returns:
        An ExperimentResult or a StudyResult; ``output_dir`` says where it was written.

    With ``runner: docker`` in the user config (or ``LLEM_RUNNER=docker``), an experiment runs
    in a container of its backend's image, unless ``save=False`` or a backend or sampler is
    injected (those can only run in this process).

    The run holds the physical devices this process sees (one GPU by UUID, every visible
    GPU, or the CPU host where none is visible) from start to end: a second measurement
    on any of them is refused (``DeviceBusyError``) or waits. A study also holds its
    study directory (a second run or resume of it: ``StudyInUseError``).

    Raises:
        LLEMError: ConfigError (exit 2) for bad input, others (exit 1) for run failures.
    """
    resolved = to_config(config)
    user = load_user_config()  # an invalid user config fails here, before anything runs
    root = Path(out_dir) if out_dir is not None else default_results_dir(user.config)
    if isinstance(resolved, StudyConfig):
        from llenergymeasure.study import run_study

        return run_study(
            resolved, out_dir=root, resume=Path(resume) if resume else None,
            observer=study_observer,
            wait_for_device=wait_for_device,
        )  # fmt: skip
    if save:
        check_out_dir(root)  # an unusable --out fails now, not after the measurement
    with DeviceLock(*devices_in_use(), wait=wait_for_device):
        if user.config.runner == "docker" and save and backend is None and sampler_factory is None:
            from llenergymeasure.study.docker_executor import run_experiment_in_docker

            return load_result(run_experiment_in_docker(resolved.model_dump(mode="json"), root))
        if not save:
            return run_experiment(
                resolved, backend=backend, sampler_factory=sampler_factory, observer=observer
            ).result
        return run_and_save(
            resolved, root, backend=backend, sampler_factory=sampler_factory, observer=observer
        )
