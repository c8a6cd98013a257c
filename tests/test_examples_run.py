"""Every file in examples/ passes its dry run and runs on the installed (pinned) libraries (#18).

The dry run makes the version-dependent checks a run makes (a field the installed
transformers no longer acts on is listed as a problem). The real runs shrink each experiment
(the tiny test model, 2 prompts, 4 output tokens, no warmup, no baseline, the null sampler) and
run every experiment whose backend is installed here; a server example runs against the shipped fake
OpenAI-compatible server instead of the command it would launch, a TensorRT-LLM one on the
shipped fake TensorRT-LLM. The vLLM examples run in the real-vLLM suite
(``scripts/test-vllm.sh``, marker ``vllm``) on the embedded model, each distinct engine
configuration once, with vLLM's memory share capped as the embedded default caps it (on a CPU
machine it is a share of RAM).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import llenergymeasure as llem
from llenergymeasure.backends import backend_status
from llenergymeasure.cli import app
from llenergymeasure.cli.defaults import EMBEDDED_MEMORY
from llenergymeasure.config.loader import load_experiment_config, read_yaml
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import is_study_data, load_study_config
from llenergymeasure.testing import install_fake_tensorrt_llm
from llenergymeasure.testing.fake_openai_server import FakeOpenAIServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))
N_PROMPTS = 2
MAX_OUTPUT_TOKENS = 4

VLLM_MEMORY = EMBEDDED_MEMORY["vllm"]["gpu_memory_utilization"]

runner = CliRunner()


def dry_run_plan(path: Path) -> dict[str, Any]:
    result = runner.invoke(app, ["run", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan: dict[str, Any] = json.loads(result.output)
    return plan


def experiments_of(path: Path) -> list[ExperimentConfig]:
    if is_study_data(read_yaml(path)):
        return load_study_config(path).experiments_resolved
    return [load_experiment_config(path)]


def shrunk(experiment: ExperimentConfig, model: Path | str, server_url: str) -> ExperimentConfig:
    """The experiment on ``model`` with 2 prompts of at most 4 tokens, no warmup or baseline,
    the null sampler; a server experiment pointed at ``server_url`` instead of launching its
    server."""
    data = experiment.model_dump()
    data.update(model=str(model), n=N_PROMPTS, max_output_tokens=MAX_OUTPUT_TOKENS)
    data["warmup"].update(n_warmup=0, thermal_floor_s=0.0, stabilise_timeout_s=0.0)
    data["baseline"]["enabled"] = False
    data["energy"]["sampler"] = "null"
    decoder = data["decoder"]
    if decoder["min_new_tokens"] is not None:
        decoder["min_new_tokens"] = min(decoder["min_new_tokens"], MAX_OUTPUT_TOKENS)
    load = data["load"]
    if load["max_concurrency"] is not None:
        load["max_concurrency"] = min(load["max_concurrency"], N_PROMPTS)
    if data["server"] is not None:
        data["server"].update(url=server_url, launch=None, model=None)
    if experiment.backend == "vllm":
        options = data["vllm"] or {}
        share = options.get("gpu_memory_utilization") or VLLM_MEMORY
        data["vllm"] = {**options, "gpu_memory_utilization": min(share, VLLM_MEMORY)}
    return ExperimentConfig.model_validate(data)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(token_delay_s=0.001) as server:
        yield server


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_example_dry_run_has_no_problem_but_missing_backends(path: Path) -> None:
    problems = dry_run_plan(path)["problems"]
    assert all("is not installed here" in problem for problem in problems), problems


def test_dry_run_makes_the_transformers_version_checks_of_a_run(tmp_path: Path) -> None:
    """pytorch.low_cpu_mem_usage is refused by a run on transformers >= 5: so by the dry run."""
    transformers = pytest.importorskip("transformers")
    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("the field acts on transformers < 5")
    config = tmp_path / "exp.yaml"
    config.write_text("model: smollm2-135m\npytorch: {low_cpu_mem_usage: true}\n")
    (problem,) = dry_run_plan(config)["problems"]
    assert problem.startswith("smollm2-135m_pytorch: pytorch.low_cpu_mem_usage is not acted on")


def runnable_here(experiment: ExperimentConfig) -> bool:
    """tensorrt (on the fake), else pytorch or server where installed; never vllm (minutes
    per engine start: its examples get their dry run only)."""
    if experiment.backend in ("tensorrt", "vllm"):
        return experiment.backend == "tensorrt"
    return backend_status(experiment.backend).installed


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_example_runs_where_its_backend_is_installed(
    path: Path,
    tmp_path: Path,
    fake_server: FakeOpenAIServer,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runnable = [e for e in experiments_of(path) if runnable_here(e)]
    if not runnable:
        pytest.skip(f"{path.name}: vLLM only, or no backend installed (dry run checked)")
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))  # built engines
    for experiment in runnable:
        config = shrunk(experiment, tiny_model_dir, fake_server.url)
        with install_fake_tensorrt_llm() if experiment.backend == "tensorrt" else nullcontext():
            result = llem.run(config, out_dir=tmp_path / "results")
        assert isinstance(result, llem.ExperimentResult)
        assert result.metrics.n_requests == N_PROMPTS, experiment.name
        assert 0 < result.metrics.total_output_tokens <= N_PROMPTS * MAX_OUTPUT_TOKENS


def distinct_vllm_experiments(path: Path) -> list[ExperimentConfig]:
    """The file's vLLM experiments, one per engine configuration (a load sweep shares one)."""
    seen: dict[str, ExperimentConfig] = {}
    for experiment in experiments_of(path):
        if experiment.backend == "vllm":
            seen.setdefault(experiment.model_dump_json(exclude={"name", "load"}), experiment)
    return list(seen.values())


VLLM_FILES = [path for path in FILES if distinct_vllm_experiments(path)]


@pytest.mark.vllm
@pytest.mark.parametrize("path", VLLM_FILES, ids=lambda path: path.name)
def test_vllm_example_runs_on_the_real_engine(path: Path, tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    for experiment in distinct_vllm_experiments(path):
        config = shrunk(experiment, "smollm2-135m", "")
        result = llem.run(config, out_dir=tmp_path / "results")
        assert isinstance(result, llem.ExperimentResult)
        assert result.metrics.n_requests == N_PROMPTS, experiment.name
        assert 0 < result.metrics.total_output_tokens <= N_PROMPTS * MAX_OUTPUT_TOKENS
