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
    from llenergymeasure.backends.model_source import DEFAULT_EMBEDDED_MODEL, resolve_model
    from llenergymeasure.backends.pytorch.gguf_cache import converted_folder

    gguf_path = resolve_model(DEFAULT_EMBEDDED_MODEL).gguf_path
    assert gguf_path is not None
    return converted_folder(gguf_path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, embedded_folder: Path) -> Path:
    """A 2-layer random Llama with the embedded model's tokenizer: loads and runs in ms."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(embedded_folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


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
