"""`llem run`: build the config, run it with a progress display, print the result."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from llenergymeasure.api import run
from llenergymeasure.cli.defaults import EMBEDDED_DEFAULT
from llenergymeasure.cli.display import RichObserver, print_result
from llenergymeasure.cli.study_display import RichStudyObserver, print_study
from llenergymeasure.config.loader import apply_overrides, build_experiment_config, read_yaml
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import StudyConfig, build_study_config, is_study_data
from llenergymeasure.config.user_config import load_user_config
from llenergymeasure.errors import EXIT_FAILURE, EXIT_OK, ConfigError
from llenergymeasure.study.live_power import gpu_power_reader


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


def build_config_data(
    config_file: Path | None, overrides: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The raw config mapping: file (or the embedded default when neither file nor model)."""
    if config_file is not None:
        base, source = read_yaml(config_file), str(config_file)
    elif overrides.get("model") is None:
        base, source = EMBEDDED_DEFAULT, "embedded default"
    else:
        base, source = {}, "command line"
    return apply_overrides(base, overrides), source


def execute_run(
    config_file: Path | None,
    overrides: dict[str, Any],
    out: Path | None,
    *,
    options: RunOptions,
    console: Console,
) -> int:
    """Validate, run with progress, print the table; returns the exit code."""
    data, source = build_config_data(config_file, overrides)
    _quiet_libraries(options.verbose)
    _show_device_waits()
    if is_study_data(data):
        if config_file is not None:
            data.setdefault("name", config_file.stem)
        study = build_study_config(data, source=source, profile=options.profile)
        if options.dry_run:
            return _dry_run(study, out, options, console)
        return _run_study(study, out, options, console)
    if options.resume is not None or options.profile is not None:
        raise ConfigError("--resume and --profile apply to studies (a file with sweep: or "
                          "experiments:)")  # fmt: skip
    config = build_experiment_config(data, source=source)
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


def _run_study(study: StudyConfig, out: Path | None, options: RunOptions, console: Console) -> int:
    for dropped in study.dropped_duplicates:
        console.print(f"[yellow]note[/]: dropped duplicate {escape(dropped)}")
    if options.quiet or options.json:
        result = run(
            study, out_dir=out, resume=options.resume, wait_for_device=options.wait_for_device
        )
    else:
        execution = study.execution
        console.print(
            f"[bold]llem run[/] · study {escape(study.name)} · "
            f"{len(study.experiments_resolved)} experiments × {execution.n_cycles} cycles "
            f"({execution.cycle_order})"
        )
        with RichStudyObserver(console, power_reader=gpu_power_reader()) as observer:
            result = run(
                study, out_dir=out, resume=options.resume, study_observer=observer,
                wait_for_device=options.wait_for_device,
            )  # fmt: skip
    _report(console, options, result.output_dir, result.model_dump_json(indent=2),
            lambda: print_study(console, result))  # fmt: skip
    return EXIT_FAILURE if result.failed else EXIT_OK


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
    """Library chatter (transformers' progress bars, codecarbon's logs) hides our output."""
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("transformers", "codecarbon", "accelerate", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
