"""A new user's first commands (#18): the embedded default on every backend, errors that name
the command-line option, did-you-mean for a model that is not found, the README's account of
the default, and a dry run's name for a file without ``name:``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from llenergymeasure.backends.model_source import check_hub_model, resolve_model
from llenergymeasure.cli import app
from llenergymeasure.cli import run_command as run_command_module
from llenergymeasure.cli.defaults import (
    BATCH_FIELDS,
    EMBEDDED_BATCH,
    EMBEDDED_MEMORY,
    embedded_default,
)
from llenergymeasure.cli.run_command import OPTION_NAMES, build_config_data
from llenergymeasure.config.base import BACKEND_NAMES
from llenergymeasure.config.dotted import get_dotted
from llenergymeasure.config.loader import build_experiment_config
from llenergymeasure.config.models import ExperimentConfig, TensorRTConfig
from llenergymeasure.errors import ModelNotFoundError

README = Path(__file__).resolve().parents[1] / "README.md"
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def dry_run_plan(*args: str) -> dict[str, Any]:
    code, output = invoke("run", *args, "--dry-run", "--json")
    assert code == 0, output
    plan: dict[str, Any] = json.loads(output)
    return plan


# ---- 1. the embedded default works with every backend ----------------------------------------


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_embedded_default_validates_with_every_backend(backend: str) -> None:
    config_input = build_config_data(None, {"backend": backend})
    config = build_experiment_config(config_input.data, source=config_input.source)
    assert config.backend == backend and config.name == f"smollm2-135m_{backend}_default"
    dumped = config.model_dump()
    if backend in BATCH_FIELDS:
        assert get_dotted(dumped, BATCH_FIELDS[backend]) == EMBEDDED_BATCH
    for field, value in EMBEDDED_MEMORY.get(backend, {}).items():
        assert dumped[backend][field] == value
    other_sections = [name for name in BACKEND_NAMES if name != backend]
    assert all(dumped[name] is None for name in other_sections)


def test_dry_run_of_the_embedded_default_on_vllm() -> None:
    """vLLM is not installed here: the plan is made, and says a run here would stop."""
    plan = dry_run_plan("--backend", "vllm")
    (experiment,) = plan["experiments"]
    assert experiment["backend"] == "vllm" and experiment["name"] == "smollm2-135m_vllm_default"
    settings = plan["shared_settings"] | experiment["settings"]
    assert settings["vllm.max_num_seqs"] == EMBEDDED_BATCH
    assert not any("pytorch" in key for key in settings)


def test_embedded_default_runs_on_the_fake_tensorrt(tmp_path: Path, embedded_folder: Path) -> None:
    """`llem run --backend tensorrt` with no model, on the shipped fake TensorRT-LLM."""
    import llenergymeasure as llem
    from llenergymeasure.testing import install_fake_tensorrt_llm

    with install_fake_tensorrt_llm() as fake:
        code, output = invoke(
            "run", "--backend", "tensorrt", "-n", "2", "--max-output-tokens", "4",
            "--sampler", "null", "--out", str(tmp_path), "-q",
        )  # fmt: skip
    assert code == 0, output
    result = llem.load_result(Path(output.strip().splitlines()[-1]))
    assert result.config.backend == "tensorrt" and result.config.model == "smollm2-135m"
    assert result.metrics.n_requests == 2
    (_, kwargs), *_ = fake.llm_calls
    assert kwargs["max_batch_size"] == EMBEDDED_BATCH


def test_a_tensorrt_section_of_the_pytorch_runtime_reads_back() -> None:
    """A result holds the config's full dump (build_config with every field None): it must
    validate again, or the result of such a run cannot be read."""
    config = build_experiment_config(embedded_default("tensorrt"))
    assert ExperimentConfig.model_validate(config.model_dump()) == config
    with pytest.raises(ValidationError, match="build_config needs runtime: engine"):
        TensorRTConfig(build_config={"max_batch_size": 4})


@pytest.mark.parametrize(
    ("backend", "pointer"),
    [
        ("vllm", "vllm.max_num_seqs"),
        ("tensorrt", "tensorrt.max_batch_size"),
        ("server", "vllm serve --max-num-seqs"),
    ],
)
def test_batch_size_with_another_backend_names_its_field(backend: str, pointer: str) -> None:
    for model in ((), ("--model", "smollm2-135m")):
        code, output = invoke("run", *model, "--backend", backend, "--batch-size", "4", "--dry-run")
        assert code == 2, output
        assert "--batch-size" in output and pointer in output
        assert "section 'pytorch:'" not in output


# ---- 3. command-line errors say "command line" and name the option ----------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("-n", "0"), "-n (n): "),
        (("--batch-size", "0"), "--batch-size (pytorch.batch_size): "),
        (("--precision", "fp8"), "--precision (precision): "),
        (("--model", "smollm2-135m", "--max-output-tokens", "0"),
         "--max-output-tokens (max_output_tokens): "),
    ],
)  # fmt: skip
def test_option_errors_say_command_line_and_name_the_option(
    args: tuple[str, ...], line: str
) -> None:
    code, output = invoke("run", *args, "--dry-run")
    assert code == 2, output
    assert "Invalid configuration in command line:" in output and line in output
    assert "embedded default" not in output


def test_option_error_over_a_file_names_both(tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text("model: smollm2-135m\n")
    code, output = invoke("run", str(config), "-n", "0", "--dry-run")
    assert code == 2, output
    assert f"Invalid configuration in {config} and the command line:" in output
    assert "-n (n): " in output


def test_every_run_option_has_its_name_for_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict[str, Any] = {}

    def capture(config_file: Path | None, overrides: dict[str, Any], *args: Any, **kw: Any) -> int:
        captured.update(overrides)
        return 0

    monkeypatch.setattr(run_command_module, "execute_run", capture)
    assert invoke("run")[0] == 0
    assert set(captured) <= set(OPTION_NAMES)
    code, help_text = invoke("run", "--help")
    assert code == 0
    for option in OPTION_NAMES.values():
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text), option


# ---- 4. a model that is not found: did-you-mean and the models that need no download ----------


@pytest.mark.parametrize(
    ("spec", "suggestion"),
    [
        ("smollm3-135m", "Did you mean 'smollm2-135m' (embedded"),
        ("meta-llama/Llama-3.1-8B", "Did you mean 'llama-3.1-8b-arch'"),
        ("Qwen/Qwen2.5-7B-Instruct", "Did you mean 'qwen2.5-7b-arch'"),
    ],
)
def test_model_not_found_offline_suggests_what_needs_no_download(
    spec: str, suggestion: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as info:
        check_hub_model(resolve_model(spec).location)
    message = str(info.value)
    assert suggestion in message
    assert "need no download: the embedded smollm2-135m" in message
    assert "smollm2-135m-arch" in message and "--dataset synthetic" in message


def test_model_not_found_when_the_hub_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "model_info", unreachable)
    with pytest.raises(ModelNotFoundError, match="Did you mean 'smollm2-135m'"):
        check_hub_model("smollm3-135m")


def test_malformed_model_gets_the_suggestions_too() -> None:
    with pytest.raises(ModelNotFoundError, match=r"Did you mean 'smollm2-135m'.*-arch"):
        resolve_model("./smollm2-135n")


def test_llem_run_with_an_unknown_model_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, output = invoke("run", "--model", "smollm3-135m", "--out", str(tmp_path))
    assert code == 2, output
    assert "Did you mean 'smollm2-135m'" in " ".join(output.split())


# ---- 5. the README says what the embedded default runs ----------------------------------------


def test_readme_states_what_the_embedded_default_runs() -> None:
    """The README's sentence, built from the validated default so it cannot drift."""
    config = build_experiment_config(embedded_default("pytorch"))
    batch_fields = ", ".join(f"`{field}`" for field in BATCH_FIELDS.values())
    expected = (
        f"measures `{config.model}`: n = {config.n} prompts of the {config.dataset.source} "
        f"dataset (at most {config.max_input_tokens} input and {config.max_output_tokens} "
        f"output tokens each), {config.pytorch_options.batch_size} at a time (the backend's "
        f"batch field: {batch_fields}), after {config.warmup.n_warmup} warmup runs of "
        f"{config.warmup.max_output_tokens} tokens and a {config.baseline.duration_s:g} s "
        "idle-power baseline"
    )
    assert config.baseline.enabled
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert expected in readme, f"README should say: {expected}"
    memory = EMBEDDED_MEMORY["vllm"]["gpu_memory_utilization"]
    assert f"vLLM gets `gpu_memory_utilization: {memory:g}`" in readme


# ---- 16. a dry run of a file without name: shows the name the run would use -------------------


def test_dry_run_of_a_file_without_name_shows_the_result_label(tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text("model: smollm2-135m\nbackend: pytorch\nn: 4\n")
    plan = dry_run_plan(str(config))
    assert plan["name"] == plan["experiments"][0]["name"] == "smollm2-135m_pytorch"
    code, output = invoke("run", str(config), "--dry-run")
    assert code == 0, output
    assert "None" not in output and "smollm2-135m_pytorch" in output
