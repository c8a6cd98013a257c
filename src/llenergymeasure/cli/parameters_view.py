"""`llem config --params [BACKEND]` and `llem config --schema [study]`: views of the models."""

from __future__ import annotations

import json

from rich.console import Console

from llenergymeasure.config.loader import did_you_mean
from llenergymeasure.errors import ConfigError
from llenergymeasure.parameters import introspection
from llenergymeasure.parameters.docs import format_constraints, format_value
from llenergymeasure.parameters.schema import schema
from llenergymeasure.reporting.layout import Column, FittedTable


def print_parameters(console: Console, backend: str | None) -> None:
    """Print a table of the parameters a backend takes (all parameters when None).

    Raises:
        ConfigError: unknown backend (with a did-you-mean).
    """
    if backend is not None and backend not in introspection.BACKENDS:
        raise ConfigError(
            f"unknown backend {backend!r}" + did_you_mean(backend, introspection.BACKENDS)
        )
    title = f"parameters for backend {backend}" if backend else "all parameters"
    rows = [_parameter_row(info) for info in introspection.parameters(backend)]
    console.print(FittedTable(title, _PARAMETER_COLUMNS, rows), highlight=False)


_PARAMETER_COLUMNS = (
    Column("parameter"),
    Column("type", wrap=True),
    Column("default"),
    Column("constraints", wrap=True),
    Column("backends", wrap=True),
    Column("description", wrap=True, min_width=30, own_line=True),
)


def _parameter_row(info: introspection.ParameterInfo) -> list[str]:
    extras = [f"unit: {info.unit}"] if info.unit else []
    extras += [f"hardware: {info.hardware}"] if info.hardware else []
    return [
        info.path,
        info.annotation,
        format_value(info.default),
        format_constraints(info),
        "all" if info.backends == introspection.BACKENDS else ", ".join(info.backends),
        " ".join([info.description, *(f"[{extra}]" for extra in extras)]),
    ]


def print_schema(console: Console, name: str | None) -> None:
    """Print the JSON Schema of an experiment file (None) or of ``name`` ("study").

    Raises:
        ConfigError: unknown schema name.
    """
    console.print_json(json.dumps(schema(name or "experiment")))


def print_config_view(console: Console, *, schema: bool, params: bool, target: str | None) -> None:
    """Dispatch `llem config --schema [study]` / `--params [BACKEND]`.

    Raises:
        ConfigError: both or neither flag, or an unknown target.
    """
    if schema and params:
        raise ConfigError("use --schema or --params, not both")
    if not (schema or params):
        raise ConfigError(
            f"what should be shown for {target!r}? e.g. llem config --params {target} "
            "(parameters of a backend) or llem config --schema study"
        )
    if schema:
        print_schema(console, target)
    else:
        print_parameters(console, target)
