"""The Docker runner against a fake ``docker``: the command line, results, timeouts, preflight."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from llenergymeasure.study import docker_executor
from llenergymeasure.study.docker_executor import (
    docker_preflight,
    gpu_request,
    image_for,
    run_in_docker,
)
from llenergymeasure.testing.fake_docker import (
    FakeDockerSpec,
    read_calls,
    volume_mounts,
    write_fake_docker,
)

CONFIG = {"model": "org/tiny", "backend": "vllm", "n": 2, "vllm": {"max_num_seqs": 4}}


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "llem-cache"))
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    for backend in ("VLLM", "TENSORRT", "PYTORCH"):
        monkeypatch.delenv(f"LLEM_DOCKER_IMAGE_{backend}", raising=False)
    monkeypatch.setattr(docker_executor, "CDI_SPEC_DIRS", (tmp_path / "no-cdi",))


def _run_call(docker: Path) -> list[str]:
    runs = [call for call in read_calls(docker) if call[0] == "run"]
    assert len(runs) == 1
    return runs[0]


def test_run_carries_gpus_ipc_mounts_env_user_and_config(tmp_path: Path) -> None:
    docker = write_fake_docker(tmp_path / "bin")
    out = tmp_path / "runs"
    outcome = run_in_docker(CONFIG, out, tmp_path / "logs" / "e.log", 30, docker=str(docker))

    assert outcome.status == "done", outcome
    assert outcome.result_dir == str((out / "fake-run_20250101T000000").resolve())
    written = json.loads(Path(outcome.result_dir, "result.json").read_text())
    assert yaml.safe_load(written["config_yaml"]) == CONFIG

    argv = _run_call(docker)
    assert argv[:2] == ["run", "--rm"]
    assert argv[argv.index("--gpus") + 1] == "all"
    assert "--ipc=host" in argv
    assert argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    name = argv[argv.index("--name") + 1]
    assert name.startswith("llem-")
    mounts = volume_mounts(argv)
    assert mounts["/cache/huggingface"] == (str(tmp_path / "hf"), "rw")
    assert mounts["/cache/llenergymeasure"] == (str(tmp_path / "llem-cache"), "rw")
    assert mounts["/config"][1] == "ro"
    assert mounts["/results"] == (str(out.resolve()), "rw")
    env = [argv[i + 1] for i, flag in enumerate(argv) if flag == "-e"]
    assert "HF_TOKEN" in env  # by name: Docker copies the value from the environment
    assert "HF_HOME=/cache/huggingface" in env
    assert not any("hf_secret_value" in arg for arg in argv)
    image_at = argv.index("llenergymeasure:vllm")
    assert argv[image_at - 2 : image_at] == ["--entrypoint", "python3"]
    assert argv[image_at + 1 :] == [
        "-m", "llenergymeasure.cli", "run", "/config/experiment.yaml", "--out", "/results", "-q",
    ]  # fmt: skip
    log = (tmp_path / "logs" / "e.log").read_text()
    assert "fake container starting" in log and "/results/fake-run" in log


def test_gpu_list_becomes_a_quoted_device_request(tmp_path: Path) -> None:
    docker = write_fake_docker(tmp_path / "bin")
    run_in_docker(CONFIG, tmp_path / "o", tmp_path / "l.log", 30, gpus=[0, 1], docker=str(docker))
    argv = _run_call(docker)
    assert argv[argv.index("--gpus") + 1] == '"device=0,1"'


@pytest.mark.parametrize(
    ("gpus", "visible", "expected"),
    [
        (None, None, "all"),
        (None, "2,3", '"device=2,3"'),
        ([1], None, '"device=1"'),
        ("device=0,2", None, '"device=0,2"'),
        ("all", "1", "all"),
        ([], None, None),
    ],
)
def test_gpu_request(
    gpus: list[int] | str | None,
    visible: str | None,
    expected: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if visible is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert gpu_request(gpus) == expected


def test_image_per_backend_with_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert image_for("vllm") == "llenergymeasure:vllm"
    assert image_for("tensorrt") == "llenergymeasure:tensorrt"
    assert image_for("pytorch") == "llenergymeasure:pytorch"
    monkeypatch.setenv("LLEM_DOCKER_IMAGE_TENSORRT", "registry.example/llem:trt-1.0")
    assert image_for("tensorrt") == "registry.example/llem:trt-1.0"


def test_tensorrt_gets_nvidia_ulimits_and_explicit_image(tmp_path: Path) -> None:
    docker = write_fake_docker(tmp_path / "bin")
    config = {"model": "org/tiny", "backend": "tensorrt"}
    outcome = run_in_docker(
        config, tmp_path / "o", tmp_path / "l.log", 30, image="mine:trt", docker=str(docker)
    )
    assert outcome.status == "done"
    argv = _run_call(docker)
    assert "memlock=-1" in argv and "stack=67108864" in argv
    assert "mine:trt" in argv


def test_nonzero_exit_is_a_failed_outcome_with_the_stderr_tail(tmp_path: Path) -> None:
    docker = write_fake_docker(tmp_path / "bin", FakeDockerSpec(run="fail", exit_code=3))
    outcome = run_in_docker(CONFIG, tmp_path / "o", tmp_path / "l.log", 30, docker=str(docker))
    assert outcome.status == "failed"
    assert outcome.exit_code == 3
    assert "exited with code 3" in (outcome.error or "")
    assert "CUDA out of memory" in (outcome.stderr_tail or "")


def test_success_without_a_printed_result_is_a_failure(tmp_path: Path) -> None:
    docker = write_fake_docker(tmp_path / "bin", FakeDockerSpec(run="silent"))
    outcome = run_in_docker(CONFIG, tmp_path / "o", tmp_path / "l.log", 30, docker=str(docker))
    assert outcome.status == "failed"
    assert "printed no result directory" in (outcome.error or "")


def test_timeout_kills_the_named_container(tmp_path: Path) -> None:
    docker = write_fake_docker(tmp_path / "bin", FakeDockerSpec(run="hang"))
    outcome = run_in_docker(CONFIG, tmp_path / "o", tmp_path / "l.log", 1.0, docker=str(docker))
    assert outcome.status == "failed"
    assert "timed out after 1 s" in (outcome.error or "")
    calls = read_calls(docker)
    name = calls[0][calls[0].index("--name") + 1]
    assert ["kill", name] in calls
    assert outcome.exit_code == 137


def test_missing_docker_executable_is_a_failed_outcome(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-docker")
    outcome = run_in_docker(CONFIG, tmp_path / "o", tmp_path / "l.log", 5, docker=missing)
    assert outcome.status == "failed"
    assert "Install Docker" in (outcome.error or "")


def test_preflight_passes_when_everything_is_there(tmp_path: Path) -> None:
    docker = write_fake_docker(tmp_path / "bin", FakeDockerSpec(images=["llenergymeasure:vllm"]))
    assert docker_preflight(str(docker), images=["llenergymeasure:vllm"]) == []


def test_preflight_finds_docker_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_docker(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert docker_preflight() == []


def test_preflight_without_docker(tmp_path: Path) -> None:
    (problem,) = docker_preflight(str(tmp_path / "no-docker"))
    assert "not found" in problem and "Install Docker" in problem


@pytest.mark.parametrize(
    ("daemon", "advice"),
    [("down", "systemctl start docker"), ("denied", "usermod -aG docker")],
)
def test_preflight_when_the_daemon_does_not_answer(
    tmp_path: Path, daemon: str, advice: str
) -> None:
    docker = write_fake_docker(tmp_path / "bin", FakeDockerSpec(daemon=daemon))  # type: ignore[arg-type]
    (problem,) = docker_preflight(str(docker), images=["llenergymeasure:vllm"])
    assert advice in problem


def test_preflight_without_the_nvidia_toolkit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker_executor.shutil, "which", _which_only_fakes)
    docker = write_fake_docker(tmp_path / "bin", FakeDockerSpec(runtimes=["runc"]))
    (problem,) = docker_preflight(str(docker))
    assert "nvidia-container-toolkit" in problem and "restart Docker" in problem


def test_preflight_accepts_a_cdi_spec_instead_of_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docker_executor.shutil, "which", _which_only_fakes)
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    (cdi / "nvidia.yaml").write_text("cdiVersion: 0.5.0\n")
    monkeypatch.setattr(docker_executor, "CDI_SPEC_DIRS", (cdi,))
    docker = write_fake_docker(tmp_path / "bin", FakeDockerSpec(runtimes=["runc"]))
    assert docker_preflight(str(docker)) == []


def test_preflight_names_the_build_command_for_a_missing_image(tmp_path: Path) -> None:
    docker = write_fake_docker(tmp_path / "bin", FakeDockerSpec(images=["llenergymeasure:vllm"]))
    problems = docker_preflight(
        str(docker), images=["llenergymeasure:vllm", "llenergymeasure:tensorrt", "other:1"]
    )
    assert len(problems) == 2
    assert "docker build -f docker/Dockerfile.tensorrt -t llenergymeasure:tensorrt ." in problems[0]
    assert "'other:1'" in problems[1] and "docker pull other:1" in problems[1]


def test_dockerfiles_install_this_package_on_the_official_bases() -> None:
    root = Path(__file__).resolve().parents[2] / "docker"
    vllm = (root / "Dockerfile.vllm").read_text()
    tensorrt = (root / "Dockerfile.tensorrt").read_text()
    assert "FROM vllm/vllm-openai:" in vllm
    assert "FROM nvcr.io/nvidia/tensorrt-llm/release:" in tensorrt
    for text in (vllm, tensorrt):
        assert "pip install" in text
        assert '"llenergymeasure.cli"' in text


def _which_only_fakes(name: str, *args: object, **kwargs: object) -> str | None:
    """shutil.which that finds only absolute paths (no nvidia-container-cli on this host)."""
    return name if os.path.isabs(name) and os.access(name, os.X_OK) else None
