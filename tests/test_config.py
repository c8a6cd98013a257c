"""Config validation: valid files, invalid values, typos with did-you-mean, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.config import ExperimentConfig, load_experiment_config
from llenergymeasure.config.loader import apply_overrides, read_yaml
from llenergymeasure.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


def test_valid_yaml_loads_with_nested_sections(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "model: some/model\nn: 7\ndataset: synthetic\npytorch:\n  batch_size: 4\n"
        "decoder:\n  do_sample: true\n  temperature: 0.7\n",
    )
    config = load_experiment_config(path)
    assert config.n == 7
    assert config.dataset.source == "synthetic"
    assert config.pytorch_options.batch_size == 4
    assert config.decoder.temperature == 0.7


def test_misspelt_key_suggests_the_nearest_field(tmp_path: Path) -> None:
    path = write(tmp_path, "model: m\nmax_output_token: 5\n")
    with pytest.raises(ConfigError) as info:
        load_experiment_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "max_output_token: unknown field (did you mean 'max_output_tokens'?)" in message


def test_nested_typo_names_the_full_path(tmp_path: Path) -> None:
    path = write(tmp_path, "model: m\npytorch:\n  batch_sise: 2\n")
    with pytest.raises(ConfigError, match=r"pytorch\.batch_sise: .*'batch_size'"):
        load_experiment_config(path)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("model: m\nn: -1\n", "n"),
        ("model: m\nmax_output_tokens: 0\n", "max_output_tokens"),
        ("model: m\nprecision: fp12\n", "precision"),
        ("model: m\ndecoder:\n  top_p: 1.5\n", "decoder.top_p"),
        ("n: 3\n", "model"),
    ],
)
def test_invalid_values_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"  {field}: "):
        load_experiment_config(write(tmp_path, text))


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_experiment_config(write(tmp_path, "model: m\nn: 0\nmax_output_token: 3\n"))
    assert "  n: " in str(info.value) and "  max_output_token: " in str(info.value)


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line 2"):
        read_yaml(write(tmp_path, "model: m\n  bad: [\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        read_yaml(write(tmp_path, "- a\n- b\n"))


def test_compile_mode_requires_compile() -> None:
    with pytest.raises(ValueError, match="torch_compile_mode"):
        ExperimentConfig.model_validate(
            {"model": "m", "pytorch": {"torch_compile_mode": "max-autotune"}}
        )


def test_overrides_set_dotted_keys_and_skip_none() -> None:
    merged = apply_overrides(
        {"model": "a", "pytorch": {"batch_size": 1}},
        {"pytorch.batch_size": 8, "n": None, "energy.sampler": "null"},
    )
    assert merged == {"model": "a", "pytorch": {"batch_size": 8}, "energy": {"sampler": "null"}}


def test_config_hash_is_stable_and_sensitive() -> None:
    a = ExperimentConfig(model="m", n=3)
    assert a.measurement_config_hash() == ExperimentConfig(model="m", n=3).measurement_config_hash()
    assert a.measurement_config_hash() != ExperimentConfig(model="m", n=4).measurement_config_hash()
    assert len(a.measurement_config_hash()) == 16


def test_backend_sections_must_match_the_backend() -> None:
    with pytest.raises(ValueError, match="section 'vllm:' is for backend 'vllm'"):
        ExperimentConfig.model_validate({"model": "m", "backend": "pytorch", "vllm": {}})
    config = ExperimentConfig.model_validate({"model": "m", "backend": "vllm", "vllm": {}})
    assert config.vllm_options.gpu_memory_utilization == 0.9


def test_lora_with_tensorrt_says_to_pre_merge() -> None:
    with pytest.raises(ValueError, match="merge the adapter into the base weights first"):
        ExperimentConfig.model_validate(
            {"model": "m", "backend": "tensorrt", "lora": {"adapter": "a/b"}}
        )
    with pytest.raises(ValueError, match="merge_weights is only supported with backend pytorch"):
        ExperimentConfig.model_validate(
            {"model": "m", "backend": "vllm", "lora": {"adapter": "a", "merge_weights": True}}
        )


@pytest.mark.parametrize("backend", ["vllm", "tensorrt"])
def test_missing_backend_library_exits_1_with_install_advice(backend: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from llenergymeasure.cli import app

    args = ["run", "--model", "m", "--backend", backend, "--sampler", "null", "--out"]
    result = CliRunner().invoke(app, [*args, str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "pip install 'llenergymeasure[" in result.output and "Traceback" not in result.output
