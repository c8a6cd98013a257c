"""Prompt sources under ``runner: docker`` (against the shipped fake ``docker``): a local
ShareGPT file (``dataset.path``) is mounted read-only and the config rewritten to it; the
offline switches of a cached hub dataset reach the container; the pytorch image installs the
``datasets`` extra."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llenergymeasure.study import docker_executor
from llenergymeasure.study.docker_executor import container_inputs, run_in_docker
from llenergymeasure.testing.fake_docker import read_calls, volume_mounts, write_fake_docker

SHAREGPT = {"source": "sharegpt", "path": "sharegpt.json", "output_lengths": "from_dataset"}


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "llem-cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("LLEM_DOCKER_IMAGE_PYTORCH", raising=False)
    monkeypatch.setattr(docker_executor, "CDI_SPEC_DIRS", (tmp_path / "no-cdi",))


def test_a_sharegpt_file_is_mounted_and_the_config_rewritten(tmp_path: Path) -> None:
    (tmp_path / "sharegpt.json").write_text("[]", encoding="utf-8")
    config = {"model": "org/tiny", "dataset": SHAREGPT}
    rewritten, mounts = container_inputs(config, tmp_path)
    assert rewritten["dataset"] == {**SHAREGPT, "path": "/inputs/dataset/sharegpt.json"}
    assert mounts == [(tmp_path / "sharegpt.json", "/inputs/dataset/sharegpt.json")]
    assert config["dataset"]["path"] == "sharegpt.json"  # the caller's config is left as it was


def test_the_container_reads_the_file_through_its_mount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sharegpt.json").write_text("[]", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # dataset.path is relative to where llem runs, as locally
    docker = write_fake_docker(tmp_path / "bin")
    config = {"model": "org/tiny", "backend": "pytorch", "n": 2, "dataset": SHAREGPT}
    outcome = run_in_docker(config, tmp_path / "runs", tmp_path / "e.log", 30, docker=str(docker))
    assert outcome.status == "done", outcome
    (argv,) = [call for call in read_calls(docker) if call[0] == "run"]
    mounts = volume_mounts(argv)
    assert mounts["/inputs/dataset/sharegpt.json"] == (str(tmp_path / "sharegpt.json"), "ro")
    written = json.loads(Path(outcome.result_dir or "", "result.json").read_text())
    inside = yaml.safe_load(written["config_yaml"])  # the config the container was given
    assert inside["dataset"]["path"] == "/inputs/dataset/sharegpt.json"
    env = [argv[i + 1] for i, flag in enumerate(argv) if flag == "-e"]
    assert "HF_DATASETS_OFFLINE" in env and "HF_HUB_OFFLINE" in env  # by name, as HF_TOKEN


def test_the_pytorch_image_installs_the_datasets_extra() -> None:
    dockerfile = Path(__file__).resolve().parents[2] / "docker" / "Dockerfile.pytorch"
    assert '"/opt/llenergymeasure[pytorch,datasets]"' in dockerfile.read_text(encoding="utf-8")
