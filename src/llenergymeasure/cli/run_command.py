"""`llem run`: build the config, run it with a progress display, print the result."""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from llenergymeasure.api import run
from llenergymeasure.cli.defaults import BATCH_FIELDS, embedded_default
from llenergymeasure.cli.display import RichObserver, print_result
from llenergymeasure.cli.study_display import RichStudyObserver, print_study
from llenergymeasure.config.base import BACKEND_NAMES
from llenergymeasure.config.loader import apply_overrides, build_experiment_config, read_yaml
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import StudyConfig, build_study_config, is_study_data
from llenergymeasure.config.user_config import load_user_config
from llenergymeasure.errors import EXIT_FAILURE, EXIT_OK, ConfigError
from llenergymeasure.study.live_power import gpu_power_reader
from llenergymeasure.study.observer import SilentStudyObserver


@dataclass(frozen=True)
class RunOptions:
    """How `llem run` reports and what it continues."""

    verbose: bool = False
    quiet: bool = False
    json: bool = False
    resume: Path | None = None
    profile: str | None = None
    dry_run: bool = False
    wait_for_device: bool = False


OPTION_NAMES: dict[str, str] = {
    "model": "--model",
    "backend": "--backend",
    "dataset": "--dataset",
    "n": "-n",
    "max_input_tokens": "--max-input-tokens",
    "max_output_tokens": "--max-output-tokens",
    "pytorch.batch_size": "--batch-size",
    "precision": "--precision",
    "energy.sampler": "--sampler",
    "random_seed": "--seed",
    "baseline.enabled": "--fresh-baseline",
    "baseline.cache_ttl_s": "--fresh-baseline",
}
"""The `llem run` option that sets each field it overrides, for errors that name the option."""


@dataclass(frozen=True)
class ConfigInput:
    """The raw config mapping and where it came from, for error messages.

    Attributes:
        data: the file (or the embedded default) with the command-line options laid over it.
        source: ``command line`` (no file), the file, or ``<file> and the command line``.
        options: field path -> the option that set it (only the options given).
    """

    data: dict[str, Any]
    source: str
    options: dict[str, str]


def build_config_data(config_file: Path | None, overrides: dict[str, Any]) -> ConfigInput:
    """The raw config: the file, or the embedded default for the chosen backend when neither
    file nor model is given, or the options alone; the options laid over it.

    Raises:
        ConfigError: the file cannot be read; ``--batch-size`` with a backend other than pytorch
            (naming that backend's field).
    """
    given = {
        key: OPTION_NAMES.get(key, key) for key, value in overrides.items() if value is not None
    }
    if config_file is not None:
        base, source = read_yaml(config_file), str(config_file)
        source += " and the command line" if given else ""
    elif overrides.get("model") is None:
        base, source = embedded_default(overrides.get("backend") or "pytorch"), "command line"
    else:
        base, source = {}, "command line"
    data = apply_overrides(base, overrides)
    if "pytorch.batch_size" in given:
        _check_batch_size_backend(data.get("backend", "pytorch"), overrides["pytorch.batch_size"])
    return ConfigInput(data, source, given)


def _check_batch_size_backend(backend: Any, batch_size: int) -> None:
    """``--batch-size`` sets ``pytorch.batch_size``; name the field another backend batches by.

    Raises:
        ConfigError: ``backend`` is not pytorch.
    """
    if backend == "pytorch" or backend not in BACKEND_NAMES:
        return  # not a backend name: validation reports it
    message = f"--batch-size sets pytorch.batch_size (backend pytorch only); with backend {backend}"
    if backend in BATCH_FIELDS:
        section, field = BATCH_FIELDS[backend].split(".")
        message += (
            f" set {BATCH_FIELDS[backend]} (the requests it batches at a time) in an experiment "
            f"file ({section}: {{{field}: {batch_size}}}); llem run has no option for it"
        )
    else:
        message += (
            " the server batches as the command that started it says (e.g. vllm serve "
            f"--max-num-seqs {batch_size}); load.max_concurrency caps the requests in flight"
        )
    raise ConfigError(message)


def execute_run(
    config_file: Path | None,
    overrides: dict[str, Any],
    out: Path | None,
    *,
    options: RunOptions,
    console: Console,
) -> int:
    """Validate, run with progress, print the table; returns the exit code."""
    config_input = build_config_data(config_file, overrides)
    data, source = config_input.data, config_input.source
    _quiet_libraries(options.verbose)
    _show_device_waits()
    if is_study_data(data):
        if config_file is not None:
            data.setdefault("name", config_file.stem)
        study = build_study_config(data, source=source, profile=options.profile)
        if options.dry_run:
            return _dry_run(study, out, options, console)
        return _run_study(study, config_file, out, options, console)
    if options.resume is not None or options.profile is not None:
        raise ConfigError("--resume and --profile apply to studies (a file with sweep: or "
                          "experiments:)")  # fmt: skip
    config = build_experiment_config(data, source=source, options=config_input.options)
    if options.dry_run:
        return _dry_run(config, out, options, console)
    _run_experiment(config, out, options, console)
    return EXIT_OK


def _dry_run(
    config: ExperimentConfig | StudyConfig, out: Path | None, options: RunOptions, console: Console
) -> int:
    from llenergymeasure.cli.dry_run import dry_run

    dry_run(config, console, as_json=options.json, out_dir=out, resume=options.resume)
    return EXIT_OK


class _StudyDirectory(SilentStudyObserver):
    """Shows nothing; remembers the study directory (for the resume command after Ctrl-C)."""

    study_dir: str | None = None

    def started(self, study_dir: str, total: int, already_done: int) -> None:
        """Remember where the study runs."""
        self.study_dir = study_dir


def _run_study(
    study: StudyConfig,
    config_file: Path | None,
    out: Path | None,
    options: RunOptions,
    console: Console,
) -> int:
    for dropped in study.dropped_duplicates:
        console.print(f"[yellow]note[/]: dropped duplicate {escape(dropped)}")
    observer: RichStudyObserver | _StudyDirectory = _StudyDirectory()
    try:
        if options.quiet or options.json:
            result = run(study, out_dir=out, resume=options.resume, study_observer=observer,
                         wait_for_device=options.wait_for_device)  # fmt: skip
        else:
            execution = study.execution
            console.print(
                f"[bold]llem run[/] · study {escape(study.name)} · "
                f"{len(study.experiments_resolved)} experiments × {execution.n_cycles} cycles "
                f"({execution.cycle_order})"
            )
            observer = RichStudyObserver(console, power_reader=gpu_power_reader())
            with observer:
                result = run(
                    study, out_dir=out, resume=options.resume, study_observer=observer,
                    wait_for_device=options.wait_for_device,
                )  # fmt: skip
    except KeyboardInterrupt:
        _print_resume_command(config_file, observer.study_dir, options)
        raise
    _report(console, options, result.output_dir, result.model_dump_json(indent=2),
            lambda: print_study(console, result))  # fmt: skip
    return EXIT_FAILURE if result.failed else EXIT_OK


def _resume_command(config_file: Path, study_dir: str, profile: str | None) -> str:
    """The shell command that continues a study (paths as given, quoted for the shell)."""
    words = ["llem", "run", str(config_file), "--resume", study_dir]
    if profile is not None:
        words += ["--profile", profile]
    return shlex.join(words)


def _print_resume_command(
    config_file: Path | None, study_dir: str | None, options: RunOptions
) -> None:
    """After Ctrl-C, say (on stderr) how to continue the study, once it has a directory."""
    directory = study_dir or (str(options.resume) if options.resume is not None else None)
    if config_file is None or directory is None:
        return
    command = _resume_command(config_file, directory, options.profile)
    Console(stderr=True).print(
        f"to continue the study: [bold]{escape(command)}[/]", soft_wrap=True, highlight=False
    )


def _run_experiment(
    config: ExperimentConfig, out: Path | None, options: RunOptions, console: Console
) -> None:
    if options.quiet or options.json:
        result = run(config, out_dir=out, wait_for_device=options.wait_for_device)
    elif load_user_config().config.runner == "docker":  # no progress events from a container
        from llenergymeasure.study.docker_executor import image_for

        console.print(f"[bold]llem run[/] · {config.model} · {config.backend} · n={config.n} · "
                      f"in a container ({escape(image_for(config.backend))})")  # fmt: skip
        result = run(config, out_dir=out, wait_for_device=options.wait_for_device)
    else:
        console.print(f"[bold]llem run[/] · {config.model} · {config.backend} · n={config.n}")
        with RichObserver(console) as observer:
            result = run(
                config, out_dir=out, observer=observer, wait_for_device=options.wait_for_device
            )
    _report(console, options, result.output_dir, result.model_dump_json(indent=2),
            lambda: print_result(console, result, verbose=options.verbose))  # fmt: skip


def _report(
    console: Console,
    options: RunOptions,
    output_dir: str | None,
    json_text: str,
    show: Callable[[], None],
) -> None:
    """--json: the result as JSON; -q: only its path; else the rich rendering."""
    if options.json:
        print(json_text)
    elif options.quiet:
        console.print(output_dir, soft_wrap=True, highlight=False)
    else:
        show()


class _StderrLines(logging.Handler):
    """Prints log records on stderr (so --json output on stdout stays clean)."""

    def emit(self, record: logging.LogRecord) -> None:
        text = escape(record.getMessage())
        Console(stderr=True).print(f"[yellow]{text}[/]", highlight=False, soft_wrap=True)


def _show_device_waits() -> None:
    """Show who holds a busy device while --wait-for-device waits for it."""
    logger = logging.getLogger("llenergymeasure.study.lock")
    if not any(isinstance(h, _StderrLines) for h in logger.handlers):
        logger.addHandler(_StderrLines())


def _quiet_libraries(verbose: bool) -> None:
    """Library chatter (transformers' and datasets' progress bars, codecarbon's logs) hides
    our output."""
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # "Generating train split"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("transformers", "codecarbon", "accelerate", "huggingface_hub", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
