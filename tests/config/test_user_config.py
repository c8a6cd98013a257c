"""User config: XDG path, file and LLEM_* overrides with their sources, study defaults, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llenergymeasure.cli import app
from llenergymeasure.config.loader import build_experiment_config
from llenergymeasure.config.study import build_study_config
from llenergymeasure.config.user_config import (
    ENV_VARIABLES,
    UserConfig,
    default_results_dir,
    load_user_config,
    study_execution_defaults,
    user_config_path,
)
from llenergymeasure.errors import ConfigError
from llenergymeasure.study.docker_executor import image_for
from llenergymeasure.study.runner import with_user_defaults


def write_user_config(data: dict[str, object]) -> Path:
    path = user_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ENV_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)


def test_xdg_path_with_home_fallback(tmp_path: Path) -> None:
    assert user_config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == (
        tmp_path / "llenergymeasure" / "config.yaml"
    )
    assert user_config_path({}) == Path.home() / ".config" / "llenergymeasure" / "config.yaml"


def test_defaults_without_a_file() -> None:
    settings = load_user_config()
    assert not settings.exists
    assert settings.config == UserConfig()
    assert set(settings.sources.values()) == {"default"}
    assert settings.values()["docker_images.vllm"] == "llenergymeasure:vllm"
    assert settings.values()["pue"] == 1.0


def test_file_values_then_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    write_user_config(
        {"pue": 1.3, "carbon_intensity_g_per_kwh": 200, "docker_images": {"vllm": "mine:v"}}
    )
    monkeypatch.setenv("LLEM_PUE", "1.5")
    settings = load_user_config()
    assert settings.exists
    assert settings.config.pue == 1.5
    assert settings.sources["pue"] == "env LLEM_PUE"
    assert settings.config.carbon_intensity_g_per_kwh == 200.0
    assert settings.sources["carbon_intensity_g_per_kwh"] == "file"
    assert settings.sources["docker_images.vllm"] == "file"
    assert settings.sources["docker_images.tensorrt"] == "default"
    assert image_for("vllm") == "mine:v"
    monkeypatch.setenv("LLEM_DOCKER_IMAGE_VLLM", "env:v")
    assert image_for("vllm") == "env:v"


def test_results_dir_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_results_dir() == Path("results")
    write_user_config({"results_dir": str(tmp_path / "from-file")})
    assert default_results_dir() == tmp_path / "from-file"
    monkeypatch.setenv("LLEM_RESULTS_DIR", str(tmp_path / "from-env"))
    assert default_results_dir() == tmp_path / "from-env"


def test_misspelt_key_names_the_file_and_the_nearest_setting() -> None:
    path = write_user_config({"carbon_intensity": 300})
    with pytest.raises(ConfigError) as caught:
        load_user_config()
    message = str(caught.value)
    assert str(path) in message
    assert "carbon_intensity: unknown field (did you mean 'carbon_intensity_g_per_kwh'?)" in message


def test_bad_values_name_the_variable_or_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    write_user_config({"pue": 0.8})
    monkeypatch.setenv("LLEM_RUNNER", "kubernetes")
    with pytest.raises(ConfigError) as caught:
        load_user_config()
    message = str(caught.value)
    assert "pue: Input should be greater than or equal to 1" in message
    assert "LLEM_RUNNER='kubernetes'" in message


def test_a_credential_in_the_user_config_is_refused() -> None:
    write_user_config({"hf_token": "hf_abc"})
    with pytest.raises(ConfigError, match="huggingface-cli login"):
        load_user_config()


def test_study_gaps_and_runner_default_from_user_config() -> None:
    write_user_config({"config_gap_s": 30, "cycle_gap_s": 90, "runner": "docker"})
    base = {"name": "s", "model": "org/tiny", "sweep": {"n": [1, 2]}}
    unset = with_user_defaults(build_study_config(base))
    assert (unset.execution.config_gap_s, unset.execution.cycle_gap_s) == (30.0, 90.0)
    assert unset.execution.runner == "docker"
    assert len(unset.experiments_resolved) == 2
    explicit = build_study_config({**base, "execution": {"config_gap_s": 5, "runner": "local"}})
    effective = with_user_defaults(explicit).execution
    assert (effective.config_gap_s, effective.cycle_gap_s, effective.runner) == (5, 90, "local")
    quick = build_study_config(base, profile="quick")  # a profile's values are explicit
    assert study_execution_defaults(quick.execution, UserConfig(config_gap_s=30)).config_gap_s == 0


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"token": "hf_x"}, "token"),
        ({"pytorch": {"model_kwargs": {"use_auth_token": "hf_x"}}}, "pytorch.model_kwargs"),
        ({"vllm": {"extra": {"hf_token": "hf_x"}}}, "vllm.extra.hf_token"),
        ({"lora": {"adapter": "a/b", "api_key": "k"}}, "lora.api_key"),
        ({"pytorch": {"extra": {"password": "p"}}}, "pytorch.extra.password"),
    ],
)
def test_credential_keys_in_an_experiment_are_config_errors(
    data: dict[str, object], where: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_experiment_config({"model": "org/tiny", **data}, source="exp.yaml")
    assert where in str(caught.value)
    assert "HF_TOKEN" in str(caught.value) and "huggingface-cli login" in str(caught.value)


def test_token_counts_are_not_credentials() -> None:
    config = build_experiment_config(
        {"model": "org/tiny", "max_output_tokens": 4, "decoder": {"min_new_tokens": 2}}
    )
    assert config.max_output_tokens == 4


def test_credential_in_a_study_file_exits_2(tmp_path: Path) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(
        yaml.safe_dump(
            {"model": "org/tiny", "sweep": {"n": [1, 2]}, "experiments": [{"secret": "s3"}]}
        )
    )
    result = CliRunner().invoke(app, ["run", str(study), "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "experiments.0.secret" in result.output
    assert "huggingface-cli login" in result.output


def test_llem_config_shows_the_user_config(monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_user_config({"pue": 1.25})
    monkeypatch.setenv("LLEM_CARBON_INTENSITY", "321")
    result = CliRunner().invoke(app, ["config"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert str(path) in result.output and "exists" in result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if "│" in line}
    assert "1.25" in lines["pue"] and "file" in lines["pue"]
    assert "321" in lines["carbon_intensity_g_per_kwh"]
    assert "env LLEM_CARBON_INTENSITY" in lines["carbon_intensity_g_per_kwh"]
    assert "default" in lines["runner"]
