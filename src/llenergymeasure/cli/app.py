"""`llem run`, `llem config`, `llem report`, `llem --version`.

Errors become one message and an exit code. Each command imports its implementation when it
runs, so `llem --help` and `llem --version` load typer and rich only: no config model is built
and no pyarrow is imported."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from llenergymeasure._version import __version__
from llenergymeasure.errors import EXIT_INTERRUPTED, LLEMError


def _plain(text: str | None) -> str | None:
    """Help text is plain text: escaped so that rich shows `[zeus]` instead of reading it as
    markup (typer renders help as rich markup)."""
    return escape(text) if text else text


def _plain_params(params: list[Any]) -> None:
    for param in params:
        if isinstance(param, TyperOption | TyperArgument):
            param.help = _plain(param.help)


class _PlainHelpGroup(TyperGroup):
    """The `llem` group, its help text shown literally."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _plain(self.help)
        _plain_params(self.params)


class _PlainHelpCommand(TyperCommand):
    """A command whose help texts are shown literally. Typer builds the commands anew on each
    call of ``app()``, so each text is escaped once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _plain(self.help)
        _plain_params(self.params)


app = typer.Typer(
    name="llem",
    cls=_PlainHelpGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Measure the energy, throughput and latency of LLM inference.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stdout = Console()
stderr = Console(stderr=True)

# `llem run` options whose help is a config field's description (one source of truth):
# option -> (model in config.models, field).
_RUN_FIELD_HELP: dict[str, tuple[str, str]] = {
    "model": ("ExperimentConfig", "model"),
    "backend": ("ExperimentConfig", "backend"),
    "n": ("ExperimentConfig", "n"),
    "max_input_tokens": ("ExperimentConfig", "max_input_tokens"),
    "max_output_tokens": ("ExperimentConfig", "max_output_tokens"),
    "batch_size": ("PyTorchConfig", "batch_size"),
    "precision": ("ExperimentConfig", "precision"),
    "sampler": ("EnergyConfig", "sampler"),
    "seed": ("ExperimentConfig", "random_seed"),
}


# `llem run --fresh-baseline`: a baseline measured for this run, never one from the cache.
FRESH_BASELINE: dict[str, Any] = {"baseline.enabled": True, "baseline.cache_ttl_s": 0.0}


class _FieldHelpCommand(_PlainHelpCommand):
    """Fills option help from the Pydantic field descriptions when the help is shown.

    Building the config models takes longer than the rest of `llem --help`, so they are
    imported for `llem run --help` only, not whenever the command line is parsed.
    """

    def format_help(self, ctx: Any, formatter: Any) -> None:  # click or typer._click types
        from llenergymeasure.config import models

        for param in self.params:
            if param.name in _RUN_FIELD_HELP and isinstance(param, TyperOption):
                model_name, field = _RUN_FIELD_HELP[param.name]
                model = getattr(models, model_name)
                param.help = _plain(model.model_fields[field].description) or ""
        super().format_help(ctx, formatter)


@contextmanager
def _exit_codes() -> Iterator[None]:
    """Translate library errors into a message and the documented exit code."""
    try:
        yield
    except LLEMError as exc:
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/]")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _version_callback(value: bool) -> None:
    if value:
        stdout.print(f"llem {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Measure the energy, throughput and latency of LLM inference."""


@app.command(cls=_FieldHelpCommand)
def run(
    config_file: Annotated[
        Path | None,
        typer.Argument(help="Experiment YAML. Omit to use options (or the embedded default)."),
    ] = None,
    model: Annotated[str | None, typer.Option()] = None,
    backend: Annotated[str | None, typer.Option()] = None,
    dataset: Annotated[
        str | None, typer.Option(help="'builtin', 'synthetic', or a JSONL path.")
    ] = None,
    n: Annotated[int | None, typer.Option("-n")] = None,
    max_input_tokens: Annotated[int | None, typer.Option()] = None,
    max_output_tokens: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    precision: Annotated[str | None, typer.Option()] = None,
    sampler: Annotated[str | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Parent directory for the result directory (default: results/)."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue (or top up with more cycles) the study in this directory."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            help="Study profile: quick (1 cycle, no gaps) or publication (>= 5 "
            "shuffled cycles, gaps, thermal floor, baseline). YAML fields win."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Validate and resolve, then print each experiment's settings, weights + "
            "KV-cache memory against the device and a rough duration; run nothing.",
        ),
    ] = False,
    wait_for_device: Annotated[
        bool,
        typer.Option(
            "--wait-for-device",
            help="When another measurement (study or single run) is using a device, wait for "
            "it to end instead of refusing to start.",
        ),
    ] = False,
    fresh_baseline: Annotated[
        bool,
        typer.Option(
            "--fresh-baseline",
            help="Measure the idle baseline anew, not from the cache (sets baseline.enabled: "
            "true and baseline.cache_ttl_s: 0, which the result records; in a study each "
            "experiment measures its own).",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (machine-readable).")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Show library logs and each warning's full text."),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the result path.")
    ] = False,
) -> None:
    """Run one experiment, or a study (a YAML with sweep: or experiments:), and print the
    headline figures. A study without execution: runs 3 interleaved cycles."""
    overrides: dict[str, Any] = {
        "model": model,
        "backend": backend,
        "dataset": dataset,
        "n": n,
        "max_input_tokens": max_input_tokens,
        "max_output_tokens": max_output_tokens,
        "pytorch.batch_size": batch_size,
        "precision": precision,
        "energy.sampler": sampler,
        "random_seed": seed,
        **(FRESH_BASELINE if fresh_baseline else {}),
    }
    with _exit_codes():
        from llenergymeasure.cli.run_command import RunOptions, execute_run

        options = RunOptions(verbose, quiet, json_output, resume, profile, dry_run, wait_for_device)
        code = execute_run(config_file, overrides, out, options=options, console=stdout)
    if code:
        raise typer.Exit(code)


@app.command("config", cls=_PlainHelpCommand)
def config_command(
    schema: Annotated[
        bool,
        typer.Option(
            "--schema",
            help="Print the JSON Schema of an experiment file (`--schema study`: a study file).",
        ),
    ] = False,
    params: Annotated[
        bool,
        typer.Option(
            "--params",
            help="Print every parameter with type, default and constraints "
            "(`--params vllm`: the ones backend vllm takes).",
        ),
    ] = False,
    target: Annotated[
        str | None,
        typer.Argument(metavar="[study|BACKEND]", help="With --schema or --params (see them)."),
    ] = None,
) -> None:
    """Show what this machine can measure: backends, energy samplers, paths."""
    if schema or params or target is not None:
        from llenergymeasure.cli.parameters_view import print_config_view

        with _exit_codes():
            print_config_view(stdout, schema=schema, params=params, target=target)
        return
    from llenergymeasure.cli.config_command import print_machine_report

    print_machine_report(stdout)


@app.command("report", cls=_PlainHelpCommand)
def report_command(
    results: Annotated[
        list[Path],
        typer.Argument(
            help="Experiment or study directories, result.json / results.parquet files, or "
            "folders holding them."
        ),
    ],
    html: Annotated[
        Path | None,
        typer.Option(help="Also write a self-contained HTML report (plots, environment) here."),
    ] = None,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            help="A configuration to compare; give it twice (A, then B). Two configurations "
            "are compared without it."
        ),
    ] = None,
    slo_attainment: Annotated[
        float | None,
        typer.Option(
            help="Serving view: the good fraction (0-1] of requests meeting every SLO target "
            "a load must reach; each line's knee is the highest load that does (default 0.9)."
        ),
    ] = None,
) -> None:
    """Tables ranked by J/token, comparisons with Welch's t-test, the serving view (energy and
    latency against the load, the SLO knee), and an HTML report."""
    with _exit_codes():
        from llenergymeasure.cli.report_command import execute_report

        code = execute_report(results, html, compare, slo_attainment, stdout)
    if code:
        raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    app()
