"""runner: docker wired into studies and single runs: mounts, preflight, layout, killed studies."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from llenergymeasure.cli import app
from llenergymeasure.config.study import build_study_config
from llenergymeasure.errors import DependencyError
from llenergymeasure.study import docker_executor, run_study
from llenergymeasure.study.docker_executor import container_inputs, run_in_docker
from llenergymeasure.testing.fake_docker import (
    FakeDockerSpec,
    read_calls,
    volume_mounts,
    write_fake_docker,
)
from llenergymeasure.testing.models import tiny_experiment

IMAGES = ["llenergymeasure:pytorch", "llenergymeasure:vllm"]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.delenv("LLEM_CARBON_INTENSITY", raising=False)
    for backend in ("VLLM", "TENSORRT", "PYTORCH"):
        monkeypatch.delenv(f"LLEM_DOCKER_IMAGE_{backend}", raising=False)
    monkeypatch.setattr(docker_executor, "CDI_SPEC_DIRS", (tmp_path / "no-cdi",))


def fake_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: FakeDockerSpec) -> Path:
    docker = write_fake_docker(tmp_path / "bin", spec)
    monkeypatch.setenv("PATH", f"{docker.parent}{os.pathsep}{os.environ['PATH']}")
    return docker


def env_values(argv: list[str]) -> list[str]:
    return [value for flag, value in itertools.pairwise(argv) if flag == "-e"]


def test_local_inputs_are_mounted_read_only_and_rewritten(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "adapter").mkdir()
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    config = {
        "model": "model",  # relative to the working directory, as for a local run
        "dataset": str(tmp_path / "prompts.jsonl"),
        "lora": {"adapter": str(tmp_path / "adapter")},
    }
    rewritten, found = container_inputs(config, tmp_path)
    assert rewritten["model"] == "/inputs/model"
    assert rewritten["dataset"] == {"source": "/inputs/dataset/prompts.jsonl"}
    assert rewritten["lora"]["adapter"] == "/inputs/lora"
    assert sorted(found) == sorted(
        [
            (tmp_path / "model", "/inputs/model"),
            (tmp_path / "prompts.jsonl", "/inputs/dataset/prompts.jsonl"),
            (tmp_path / "adapter", "/inputs/lora"),
        ]
    )
    assert config["model"] == "model"  # the caller's config is not changed


@pytest.mark.parametrize("model", ["smollm2-135m", "llama-3.1-8b-arch", "org/not-here"])
def test_aliases_architectures_and_hub_ids_need_no_mount(model: str, tmp_path: Path) -> None:
    config = {"model": model, "dataset": {"source": "builtin"}}
    assert container_inputs(config, tmp_path) == (config, [])


def test_command_line_carries_inputs_gpus_ipc_settings_and_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_PUE", "1.4")
    monkeypatch.setenv("LLEM_CARBON_INTENSITY", "250")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    docker = write_fake_docker(tmp_path / "bin")
    config = {"model": "m", "backend": "pytorch"}
    outcome = run_in_docker(config, tmp_path / "o", tmp_path / "l.log", 30, gpus=[0, 2],
                            docker=str(docker))  # fmt: skip
    assert outcome.status == "done", outcome
    (argv,) = [call for call in read_calls(docker) if call[0] == "run"]
    assert argv[argv.index("--gpus") + 1] == '"device=0,2"'
    assert "--ipc=host" in argv and "--init" in argv
    assert volume_mounts(argv)["/inputs/model"] == (str(tmp_path / "m"), "ro")
    assert volume_mounts(argv)["/cache/huggingface"] == (str(tmp_path / "hf"), "rw")
    assert {"LLEM_RUNNER=local", "LLEM_PUE=1.4", "LLEM_CARBON_INTENSITY=250.0"} <= set(
        env_values(argv)
    )
    written = json.loads(Path(outcome.result_dir or "", "result.json").read_text())
    assert yaml.safe_load(written["config_yaml"])["model"] == "/inputs/model"


def test_preflight_failure_stops_the_study_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_on_path(tmp_path, monkeypatch, FakeDockerSpec(daemon="down", images=IMAGES))
    study = build_study_config(
        {
            "name": "s",
            "model": "org/tiny",
            "sweep": {"n": [1, 2]},
            "execution": {"runner": "docker"},
        }
    )
    with pytest.raises(DependencyError) as caught:
        run_study(study, out_dir=tmp_path / "out")
    assert "systemctl start docker" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_preflight_names_each_missing_image_with_the_build_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_on_path(tmp_path, monkeypatch, FakeDockerSpec(runtimes=["runc"]))
    study = build_study_config(
        {"name": "s", "model": "org/tiny", "sweep": {"backend": ["pytorch", "vllm"]},
         "execution": {"runner": "docker"}}
    )  # fmt: skip
    with pytest.raises(DependencyError) as caught:
        run_study(study, out_dir=tmp_path / "out")
    message = str(caught.value)
    assert "nvidia-ctk runtime configure" in message
    assert "docker build -f docker/Dockerfile.pytorch -t llenergymeasure:pytorch ." in message
    assert "docker build -f docker/Dockerfile.vllm -t llenergymeasure:vllm ." in message


def test_cpu_host_without_visible_gpus_needs_no_toolkit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(docker_executor, "host_gpu_request", lambda: [])
    spec = FakeDockerSpec(runtimes=["runc"], images=IMAGES, run="silent")
    docker = fake_on_path(tmp_path, monkeypatch, spec)
    study = build_study_config(
        {"name": "s", "model": "org/tiny", "sweep": {"n": [1]},
         "execution": {"runner": "docker", "n_cycles": 1}}
    )  # fmt: skip
    result = run_study(study, out_dir=tmp_path / "out")
    assert result.failed  # the silent fake prints no result; the point is the command line
    (argv,) = [call for call in read_calls(docker) if call[0] == "run"]
    assert "--gpus" not in argv


def tiny(model_dir: Path, **fields: Any) -> dict[str, Any]:
    return tiny_experiment(model_dir, telemetry={"enabled": False}, **fields)


def test_docker_study_has_the_local_result_layout(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("transformers")
    docker = fake_on_path(tmp_path, monkeypatch, FakeDockerSpec(run="llem", images=IMAGES))
    study = build_study_config(
        tiny(tiny_model_dir, name="dock", sweep={"n": [1, 2]},
             execution={"runner": "docker", "n_cycles": 1})
    )  # fmt: skip
    result = run_study(study, out_dir=tmp_path / "out")

    assert not result.failed
    study_dir = Path(result.output_dir or "")
    manifest = json.loads((study_dir / "manifest.json").read_text())
    assert [e["status"] for e in manifest["entries"]] == ["done", "done"]
    for entry in manifest["entries"]:
        run_dir = study_dir / entry["result_dir"]
        assert run_dir.parent == study_dir / "runs"
        assert {"result.json", "requests.parquet"} <= {p.name for p in run_dir.iterdir()}
        loaded = json.loads((run_dir / "result.json").read_text())
        # The fake ran /inputs/model, which resolves through the read-only mount only.
        assert loaded["config"]["model"] == str(tiny_model_dir)
    assert (study_dir / "results.parquet").is_file()
    runs = [call for call in read_calls(docker) if call[0] == "run"]
    assert len(runs) == 2
    assert all(run[run.index("--gpus") + 1] == '"device=0"' for run in runs)
    assert all(volume_mounts(run)["/inputs/model"] == (str(tiny_model_dir), "ro") for run in runs)


def test_llem_run_with_docker_in_the_user_config(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("transformers")
    docker = fake_on_path(tmp_path, monkeypatch, FakeDockerSpec(run="llem", images=IMAGES))
    monkeypatch.setenv("LLEM_RUNNER", "docker")
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(tiny(tiny_model_dir)))
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(tmp_path / "res"), "-q"])
    assert result.exit_code == 0, result.output
    run_dir = Path(result.output.strip())
    assert run_dir.parent == tmp_path / "res"
    assert (run_dir / "container.log").is_file() and (run_dir / "requests.parquet").is_file()
    assert len([call for call in read_calls(docker) if call[0] == "run"]) == 1


def test_a_local_study_stays_local_under_a_docker_user_config(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study file's ``runner: local`` wins: its children measure in-process and never
    hand the experiment to Docker because the user config (here LLEM_RUNNER) says docker."""
    pytest.importorskip("transformers")
    docker = fake_on_path(tmp_path, monkeypatch, FakeDockerSpec(run="llem", images=IMAGES))
    monkeypatch.setenv("LLEM_RUNNER", "docker")
    study = build_study_config(
        tiny(tiny_model_dir, name="here", sweep={"n": [1]},
             execution={"runner": "local", "n_cycles": 1})
    )  # fmt: skip
    result = run_study(study, out_dir=tmp_path / "out")
    assert [entry.status for entry in result.entries] == ["done"]
    assert read_calls(docker) == []
    run_dir = Path(result.output_dir or "") / (result.entries[0].result_dir or "")
    assert not (run_dir / "container.log").exists()


_STUDY_SCRIPT = """
import sys
from pathlib import Path
from llenergymeasure.config.study import build_study_config
from llenergymeasure.study import run_study
study = build_study_config({"name": "k", "model": "org/tiny", "sweep": {"n": [1]},
                            "execution": {"runner": "docker", "n_cycles": 1}})
run_study(study, out_dir=Path(sys.argv[1]))
"""


def test_a_killed_study_kills_its_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker = fake_on_path(tmp_path, monkeypatch, FakeDockerSpec(run="hang", images=IMAGES))
    containers = docker.parent / "containers"
    study = subprocess.Popen([sys.executable, "-c", _STUDY_SCRIPT, str(tmp_path / "out")])
    try:
        deadline = time.monotonic() + 60
        while not (containers.is_dir() and any(containers.iterdir())):
            assert time.monotonic() < deadline, "the fake container never started"
            assert study.poll() is None, "the study ended early"
            time.sleep(0.05)
        (pid_file,) = containers.iterdir()
        study.send_signal(signal.SIGKILL)
        study.wait()
        while pid_file.exists():  # the fake container removes it when it is killed
            assert time.monotonic() < deadline, "the container outlived its study"
            time.sleep(0.05)
    finally:
        if study.poll() is None:
            study.kill()
    assert ["kill", pid_file.stem] in read_calls(docker)
