"""Shared fixtures: the embedded model (converted once per machine) and a tiny random model."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_study_locks(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test gets its own lock directory, so concurrent test runs never contend."""
    monkeypatch.setenv("LLEM_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))


@pytest.fixture(autouse=True)
def _no_user_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The developer's own user config (~/.config/llenergymeasure) never reaches a test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    for variable in ("LLEM_RUNNER", "LLEM_PUE", "LLEM_CONFIG_GAP_S", "LLEM_CYCLE_GAP_S"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="session")
def embedded_folder() -> Path:
    """The embedded SmolLM2 model as a safetensors folder (converted on first use, ~20 s)."""
    pytest.importorskip("transformers")
    from llenergymeasure.testing.models import embedded_model_folder

    return embedded_model_folder()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, embedded_folder: Path) -> Path:
    """A 2-layer random Llama with the embedded model's tokenizer: loads and runs in ms."""
    from llenergymeasure.testing.models import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), embedded_folder)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `gpu`-marked tests cleanly on machines without a CUDA GPU."""
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
