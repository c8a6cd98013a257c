"""Load an ExperimentConfig from YAML, a dict or CLI overrides, with errors people can act on.

Every validation problem becomes one :class:`~llenergymeasure.errors.ConfigError` that names the
file, the dotted field path and the problem, with a did-you-mean for misspelt keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from llenergymeasure.config.credentials import check_no_credentials
from llenergymeasure.config.dotted import deep_copy, set_dotted
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.safe_yaml import YamlRefused, parse_config_yaml
from llenergymeasure.config.walk import model_at
from llenergymeasure.errors import ConfigError


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``.

    Aliases that expand too far, recursive aliases, duplicate keys and values their tag cannot
    convert are refused (see :mod:`~llenergymeasure.config.safe_yaml`).

    Raises:
        ConfigError: the file is missing, unreadable, not YAML, refused, or not a mapping.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        data = parse_config_yaml(text)
    except YamlRefused as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply to read") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted-key overrides set (``pytorch.batch_size: 8``).

    None values are skipped so unset CLI options do not clobber the file.
    """
    merged = deep_copy(data)
    for dotted, value in overrides.items():
        if value is None:
            continue
        set_dotted(merged, dotted, value)
    return merged


def build_experiment_config(
    data: Mapping[str, Any],
    *,
    source: str = "<config>",
    options: Mapping[str, str] | None = None,
) -> ExperimentConfig:
    """Validate ``data`` into an ExperimentConfig.

    Args:
        data: the raw mapping (from YAML, a dict, or CLI options).
        source: what to call the origin in error messages (usually the file path).
        options: field path -> the command-line option that set it (``{"n": "-n"}``), so a
            problem with that field names the option.

    Raises:
        ConfigError: with every problem listed by field path, or a credential-looking key.
    """
    check_no_credentials(data, source)
    try:
        return ExperimentConfig.model_validate(dict(data))
    except ValidationError as exc:
        message = format_validation_error(exc, ExperimentConfig, source, options)
        raise ConfigError(message) from None


def load_experiment_config(
    path: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> ExperimentConfig:
    """Load a YAML file (optional) and apply dotted CLI overrides on top."""
    data = read_yaml(path) if path is not None else {}
    merged = apply_overrides(data, overrides or {})
    return build_experiment_config(merged, source=str(path) if path else "command line")


def format_validation_error(
    exc: ValidationError,
    model: type[BaseModel],
    source: str,
    options: Mapping[str, str] | None = None,
) -> str:
    """Turn a pydantic ValidationError into lines of ``field.path: problem``; a field a
    command-line option set reads ``--option (field.path): problem`` (see ``options``)."""
    lines = [f"Invalid configuration in {source}:"]
    for error in exc.errors():
        loc = [part for part in error["loc"] if isinstance(part, (str, int))]
        path = ".".join(str(part) for part in loc) or "(top level)"
        if options and path in options:
            path = f"{options[path]} ({path})"
        lines.append(f"  {path}: {_describe(error, model, loc)}")
    return "\n".join(lines)


def _describe(error: Mapping[str, Any], model: type[BaseModel], loc: Sequence[str | int]) -> str:
    if error["type"] == "extra_forbidden":
        valid = _field_names_at(model, loc[:-1])
        return "unknown field" + did_you_mean(str(loc[-1]), valid)
    message = str(error["msg"])
    if error["type"] == "missing":
        message = "required field is missing"
    if "input" in error and error["type"] != "missing" and not isinstance(error["input"], Mapping):
        message += f" (got {error['input']!r})"  # a whole section would bury the problem
    return message


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest choice, else a list of valid choices."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if choices:
        return f" (valid: {', '.join(sorted(choices))})"
    return ""


def _field_names_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The field names of the nested model found by following ``loc`` from ``model``."""
    current = model_at(model, loc)
    return list(current.model_fields) if current is not None else []
