"""`llem run`: build the config, run it with a progress display, print the result."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from llenergymeasure.api import run
from llenergymeasure.cli.display import RichObserver, print_result
from llenergymeasure.config.defaults import EMBEDDED_DEFAULT
from llenergymeasure.config.loader import apply_overrides, build_experiment_config, read_yaml


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
    verbose: bool,
    quiet: bool,
    console: Console,
) -> None:
    """Validate, run with progress, and print the table (or only the path with --quiet)."""
    data, source = build_config_data(config_file, overrides)
    config = build_experiment_config(data, source=source)
    _quiet_libraries(verbose)
    if quiet:
        result = run(config, out_dir=out)
        console.print(result.output_dir, soft_wrap=True, highlight=False)
        return
    console.print(f"[bold]llem run[/] · {config.model} · {config.backend} · n={config.n}")
    with RichObserver(console) as observer:
        result = run(config, out_dir=out, observer=observer)
    print_result(console, result)


def _quiet_libraries(verbose: bool) -> None:
    """Library chatter (transformers' progress bars, codecarbon's logs) hides our output."""
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("transformers", "codecarbon", "accelerate", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
