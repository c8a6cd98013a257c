"""Machine-local user settings: a YAML file at the XDG path, overridden by ``LLEM_*`` variables.

The file is ``$XDG_CONFIG_HOME/llenergymeasure/config.yaml`` (``~/.config/...`` when
``XDG_CONFIG_HOME`` is unset). Every key is optional::

    results_dir: ~/llem-results          # LLEM_RESULTS_DIR
    carbon_intensity_g_per_kwh: 230      # LLEM_CARBON_INTENSITY
    pue: 1.2                             # LLEM_PUE
    config_gap_s: 30                     # LLEM_CONFIG_GAP_S
    cycle_gap_s: 60                      # LLEM_CYCLE_GAP_S
    runner: docker                       # LLEM_RUNNER
    docker_images:                       # LLEM_DOCKER_IMAGE_<BACKEND>
      vllm: registry.example/llem:vllm

An environment variable wins over the file, the file over the built-in default. The settings
describe this machine (where results go, its grid and facility, its container images); they are
never part of an experiment, so studies stay portable. Credentials are not settings: the Hugging
Face auth chain (``huggingface-cli login`` or ``HF_TOKEN``) provides them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from llenergymeasure.config.credentials import check_no_credentials
from llenergymeasure.config.dotted import get_dotted, has_dotted
from llenergymeasure.config.loader import apply_overrides, format_validation_error, read_yaml
from llenergymeasure.config.models import _Strict
from llenergymeasure.config.study import ExecutionConfig
from llenergymeasure.errors import ConfigError

USER_CONFIG_NAME = "config.yaml"
IMAGE_ENV_PREFIX = "LLEM_DOCKER_IMAGE_"
DefaultRunner = Literal["local", "docker"]
Source = str
"""``default``, ``file`` or ``env LLEM_...``."""


class DockerImages(_Strict):
    """The image ``runner: docker`` uses per backend (``docker/Dockerfile.<backend>``)."""

    pytorch: str = Field("llenergymeasure:pytorch", min_length=1, description="pytorch image.")
    vllm: str = Field("llenergymeasure:vllm", min_length=1, description="vllm image.")
    tensorrt: str = Field("llenergymeasure:tensorrt", min_length=1, description="tensorrt image.")


class UserConfig(_Strict):
    """Settings of this machine, applied to every run on it."""

    results_dir: Path = Field(
        Path("results"),
        description="Parent directory of result directories when --out / out_dir is not given "
        "(relative paths are relative to the working directory).",
    )
    carbon_intensity_g_per_kwh: float | None = Field(
        None,
        ge=0.0,
        description="Grid carbon intensity in gCO2eq/kWh used for CO2 figures (None = "
        "CodeCarbon's figure where it ran, else no CO2).",
    )
    pue: float = Field(
        1.0,
        ge=1.0,
        description="Power usage effectiveness of the facility: facility energy = measured "
        "(IT) energy x PUE. Recorded on every result; CO2 is computed from facility energy.",
    )
    config_gap_s: float = Field(
        ExecutionConfig.model_fields["config_gap_s"].default,
        ge=0.0,
        description="Default execution.config_gap_s of studies that do not set it.",
    )
    cycle_gap_s: float = Field(
        ExecutionConfig.model_fields["cycle_gap_s"].default,
        ge=0.0,
        description="Default execution.cycle_gap_s of studies that do not set it.",
    )
    runner: DefaultRunner = Field(
        "local",
        description="Where experiments run when a study does not set execution.runner, and "
        "where single `llem run` experiments run: 'local' or 'docker' (one container each).",
    )
    docker_images: DockerImages = Field(default_factory=DockerImages)


ENV_VARIABLES: dict[str, str] = {
    "results_dir": "LLEM_RESULTS_DIR",
    "carbon_intensity_g_per_kwh": "LLEM_CARBON_INTENSITY",
    "pue": "LLEM_PUE",
    "config_gap_s": "LLEM_CONFIG_GAP_S",
    "cycle_gap_s": "LLEM_CYCLE_GAP_S",
    "runner": "LLEM_RUNNER",
    **{f"docker_images.{b}": IMAGE_ENV_PREFIX + b.upper() for b in DockerImages.model_fields},
}
"""Dotted setting -> the environment variable that overrides it."""


@dataclass(frozen=True)
class UserSettings:
    """The effective settings and where each value came from.

    Attributes:
        config: the effective values (defaults, then the file, then the environment).
        path: where the user config file is (or would be).
        exists: whether that file exists.
        sources: dotted setting -> ``default``, ``file`` or ``env LLEM_...``.
    """

    config: UserConfig
    path: Path
    exists: bool
    sources: dict[str, Source]

    def values(self) -> dict[str, Any]:
        """Dotted setting -> effective value (JSON-ready), in :data:`ENV_VARIABLES` order."""
        dumped = self.config.model_dump(mode="json")
        return {key: get_dotted(dumped, key) for key in ENV_VARIABLES}


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/llenergymeasure/config.yaml`` (default ``~/.config/...``)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "llenergymeasure" / USER_CONFIG_NAME


def load_user_config(environ: Mapping[str, str] | None = None) -> UserSettings:
    """Read the user config file (if any) and apply ``LLEM_*`` overrides.

    Args:
        environ: the environment to read (default ``os.environ``).

    Raises:
        ConfigError: the file is not a valid mapping of known settings (with a did-you-mean),
            holds a credential, or a variable has an invalid value (named).
    """
    env = os.environ if environ is None else environ
    path = user_config_path(env)
    exists = path.is_file()
    file_data = read_yaml(path) if exists else {}
    check_no_credentials(file_data, str(path))
    overrides = {key: env[var] for key, var in ENV_VARIABLES.items() if env.get(var, "").strip()}
    check_no_credentials(
        {ENV_VARIABLES[key]: value for key, value in overrides.items()}, "environment"
    )
    merged = apply_overrides(file_data, overrides)
    try:
        config = UserConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path, overrides)) from None
    sources = {
        key: f"env {ENV_VARIABLES[key]}"
        if key in overrides
        else ("file" if has_dotted(file_data, key) else "default")
        for key in ENV_VARIABLES
    }
    return UserSettings(config, path, exists, sources)


def default_results_dir(user: UserConfig | None = None) -> Path:
    """Where result directories are written unless ``--out`` says otherwise:
    ``LLEM_RESULTS_DIR``, else the user config's ``results_dir``, else ``results/``.

    Args:
        user: settings already loaded (default: load them now).

    Raises:
        ConfigError: the user config file or an ``LLEM_*`` variable is invalid.
    """
    config = user if user is not None else load_user_config().config
    return config.results_dir.expanduser()


def study_execution_defaults(execution: ExecutionConfig, user: UserConfig) -> ExecutionConfig:
    """``execution`` with the fields the study left unset taken from the user config.

    Only ``config_gap_s``, ``cycle_gap_s`` and ``runner`` have user defaults; a value the
    study file (or a profile, or an override) set explicitly always wins.
    """
    unset = {
        "config_gap_s": user.config_gap_s,
        "cycle_gap_s": user.cycle_gap_s,
        "runner": user.runner,
    }
    update = {k: v for k, v in unset.items() if k not in execution.model_fields_set}
    return execution.model_copy(update=update) if update else execution


def _explain(exc: ValidationError, path: Path, overrides: Mapping[str, str]) -> str:
    """One line per problem; a value that came from a variable names the variable."""
    lines = format_validation_error(exc, UserConfig, str(path)).splitlines()[1:]
    for number, error in enumerate(exc.errors()):
        key = ".".join(str(part) for part in error["loc"])
        if key in overrides:
            lines[number] = f"  {ENV_VARIABLES[key]}={overrides[key]!r}: {error['msg']}"
    return "\n".join([f"Invalid user configuration ({path}):", *lines])
