"""`llem config --schema [study]` and `llem config --params [BACKEND]`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from llenergymeasure.cli.app import app
from llenergymeasure.parameters import introspection

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
    return result.exit_code, result.output


def test_schema_defaults_to_the_experiment_file() -> None:
    code, output = _invoke("config", "--schema")
    assert code == 0
    assert "decoder" in json.loads(output)["properties"]
    assert "sweep" not in json.loads(output)["properties"]


def test_schema_study() -> None:
    code, output = _invoke("config", "--schema", "study")
    assert code == 0
    properties = json.loads(output)["properties"]
    assert {"sweep", "experiments", "execution", "model"} <= set(properties)


def test_params_for_one_backend_lists_its_parameters_only() -> None:
    code, output = _invoke("config", "--params", "vllm")
    assert code == 0, output
    assert "parameters for backend vllm" in output
    for info in introspection.backend_parameters("vllm"):
        assert info.path in output
    assert "pytorch.batch_size" not in output and "tensorrt.runtime" not in output


def test_params_without_backend_lists_everything() -> None:
    code, output = _invoke("config", "--params")
    assert code == 0
    assert "pytorch.batch_size" in output and "tensorrt.kv_cache_config.max_tokens" in output


def test_bad_targets_exit_2_with_a_hint() -> None:
    code, output = _invoke("config", "--params", "vlm")
    assert code == 2 and "did you mean 'vllm'" in output and "Traceback" not in output
    code, output = _invoke("config", "--schema", "nope")
    assert code == 2 and "unknown schema 'nope'" in output
    code, output = _invoke("config", "vllm")
    assert code == 2 and "llem config --params vllm" in output
    code, output = _invoke("config", "--schema", "--params")
    assert code == 2 and "not both" in output
