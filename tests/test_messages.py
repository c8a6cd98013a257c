"""What `llem` says: -h, help text with literal brackets, and `llem config` views that never
crop a value (#18)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from llenergymeasure.backends import BACKENDS, backend_status
from llenergymeasure.cli import app
from llenergymeasure.cli.app import _RUN_FIELD_HELP
from llenergymeasure.config import models
from llenergymeasure.config.user_config import ENV_VARIABLES, load_user_config
from llenergymeasure.energy import probe_samplers
from llenergymeasure.parameters import introspection
from llenergymeasure.parameters.docs import format_constraints, format_value

runner = CliRunner()


def invoke(*args: str, columns: int = 80) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    return result.exit_code, result.output


# ---- item 9: -h, literal brackets ---------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["run"], ["config"], ["report"]])
def test_h_is_help(command: list[str]) -> None:
    code_h, short = invoke(*command, "-h")
    code_help, long = invoke(*command, "--help")

    assert code_h == code_help == 0
    assert short == long and "Usage: llem" in short


def test_help_keeps_literal_brackets_of_the_field_descriptions() -> None:
    code, output = invoke("run", "--help", columns=400)
    flat = " ".join(output.split())

    assert code == 0
    assert "'zeus' also needs llenergymeasure[zeus]." in flat
    for model_name, field in _RUN_FIELD_HELP.values():
        description = getattr(models, model_name).model_fields[field].description
        assert " ".join(description.split()) in flat


def test_escaping_help_does_not_accumulate_over_calls() -> None:
    for _ in range(2):
        _, output = invoke("run", "--help", columns=400)
        assert "llenergymeasure[zeus]" in output and "\\[" not in output


# ---- item 9: `llem config` views never crop a value ---------------------------------------


def words(output: str) -> set[str]:
    """The output's whitespace-separated words, table borders removed."""
    return set(re.split(r"[\s│┃]+", output))


def assert_every_word_whole(output: str, cells: list[str]) -> None:
    shown = words(output)
    missing = {word for cell in cells for word in cell.split() if word not in shown}
    assert not missing, f"cropped or split: {sorted(missing)[:10]}"
    assert "…" not in output


@pytest.mark.parametrize("width", [60, 80, 200])
@pytest.mark.parametrize("backend", ["pytorch", None])
def test_config_params_shows_every_name_default_and_description_whole(
    width: int, backend: str | None
) -> None:
    code, output = invoke("config", "--params", *([backend] if backend else []), columns=width)

    assert code == 0
    assert all(len(line) <= width for line in output.splitlines())
    cells = []
    for info in introspection.parameters(backend):
        cells += [info.path, info.annotation, format_value(info.default), info.description]
        cells += [format_constraints(info)]
        assert info.path in words(output)
    assert_every_word_whole(output, cells)


@pytest.mark.parametrize("width", [60, 80, 200])
def test_config_shows_every_backend_sampler_and_setting_whole(width: int) -> None:
    code, output = invoke("config", columns=width)

    assert code == 0
    cells: list[str] = []
    for name in BACKENDS:
        status = backend_status(name)
        cells += [name, status.install_hint if not status.installed else ""]
        cells += [", ".join(f"{k} {v or '—'}" for k, v in status.versions.items())]
    for name, availability in probe_samplers().items():
        cells += [name, availability.reason]
    settings = load_user_config()
    for key, value in settings.values().items():
        cells += [key, "—" if value is None else str(value), ENV_VARIABLES[key]]
    assert_every_word_whole(output, cells)
