"""Model resolution: embedded aliases, local folders and GGUF files, hub ids, and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.backends import model_source
from llenergymeasure.backends.model_source import EmbeddedModel, resolve_model
from llenergymeasure.errors import ConfigError, DependencyError, ModelNotFoundError


def test_embedded_alias_finds_the_gguf_inside_the_package() -> None:
    pytest.importorskip("transformers")
    source = resolve_model("SmolLM2-135M-Instruct")
    assert source.kind == "embedded"
    assert source.gguf_path is not None and source.gguf_path.is_file()


def test_missing_embedded_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        model_source.EMBEDDED_MODELS,
        "ghost",
        EmbeddedModel("ghost-pkg", "ghost_pkg_absent", "g.gguf", "pip install ghost-pkg"),
    )
    with pytest.raises(DependencyError, match="pip install ghost-pkg"):
        resolve_model("ghost")


def test_local_folder_and_gguf_file(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_model(str(tmp_path)).kind == "local_dir"
    gguf = resolve_model(str(tmp_path / "m.gguf"))
    assert (gguf.kind, gguf.gguf_file, gguf.location) == ("gguf", "m.gguf", str(tmp_path))


@pytest.mark.parametrize("spec", ["./missing-folder", "/no/such/model", "x.gguf", "bad id!"])
def test_missing_paths_and_malformed_ids_are_model_not_found(spec: str) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(spec)
    assert isinstance(info.value, ConfigError)  # exit code 2
    assert spec in str(info.value)


def test_hub_ids_pass_through() -> None:
    assert resolve_model("HuggingFaceTB/SmolLM2-135M").kind == "hub"
