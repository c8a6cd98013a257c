"""How big a model is, found without loading it (and without importing torch).

The embedded model and the shipped architectures are read from their ``config.json``; a local
folder from its ``config.json`` (its ``torch_dtype`` too); a ``.gguf`` file from its metadata
(the ``gguf`` package); a hub id from the local Hugging Face cache only: nothing is fetched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llenergymeasure.backends.architectures import architecture_config
from llenergymeasure.backends.model_source import EMBEDDED_ALIASES, resolve_model
from llenergymeasure.errors import LLEMError
from llenergymeasure.flops.architecture import TransformerShape


@dataclass(frozen=True)
class ModelFacts:
    """What is known about a model's size before loading it.

    Attributes:
        shape: the transformer's shape (None when unknown).
        n_parameters: parameter count (None when unknown).
        stored_dtype: the dtype its config names (``torch_dtype``), e.g. ``bfloat16``.
        source: where the figures came from, or why they are unknown.
    """

    shape: TransformerShape | None
    n_parameters: int | None
    stored_dtype: str | None
    source: str

    @property
    def known(self) -> bool:
        """Whether the size is known."""
        return self.n_parameters is not None


def model_facts(spec: str) -> ModelFacts:
    """The size of the model ``spec`` names (a ``model:`` value), never loading or fetching it."""
    try:
        source = resolve_model(spec)
    except LLEMError as exc:
        return ModelFacts(None, None, None, f"unknown ({exc})")
    if source.kind == "embedded":
        alias = EMBEDDED_ALIASES.get(spec.lower(), spec.lower())
        return _from_config_file(architecture_config(f"{alias}-arch"), "embedded model")
    if source.kind == "architecture":
        return _from_config_file(Path(source.location), "architecture config.json")
    if source.kind == "local_dir":
        return _from_config_file(Path(source.location) / "config.json", "config.json")
    if source.kind == "gguf" and source.gguf_path is not None:
        return _from_gguf(source.gguf_path)
    return _from_hub_cache(source.location)


def _from_config_file(path: Path, label: str) -> ModelFacts:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return ModelFacts(None, None, None, f"unknown (cannot read {path}: {exc})")
    return _from_config(config, label)


def _from_config(config: dict[str, Any], label: str) -> ModelFacts:
    try:
        shape = TransformerShape.from_config(config)
    except LLEMError as exc:
        return ModelFacts(None, None, None, f"unknown ({label}: {exc})")
    dtype = config.get("torch_dtype") or config.get("dtype")
    return ModelFacts(shape, shape.parameters().total, dtype, label)


def _from_hub_cache(repo_id: str) -> ModelFacts:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return ModelFacts(None, None, None, "unknown (huggingface_hub is not installed)")
    cached = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(cached, str):
        return ModelFacts(None, None, None, "unknown (not in the local cache)")
    return _from_config_file(Path(cached), "config.json in the Hugging Face cache")


_GGUF_KEYS = {
    "hidden_size": "embedding_length",
    "num_hidden_layers": "block_count",
    "num_attention_heads": "attention.head_count",
    "num_key_value_heads": "attention.head_count_kv",
    "intermediate_size": "feed_forward_length",
    "vocab_size": "vocab_size",
}


def _from_gguf(path: Path) -> ModelFacts:
    """Shape from the GGUF metadata, parameters from its tensor table (weights stay on disk)."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        arch = _gguf_value(reader, "general.architecture")
        config: dict[str, Any] = {"model_type": arch}
        for key, suffix in _GGUF_KEYS.items():
            config[key] = _gguf_value(reader, f"{arch}.{suffix}")
        n_parameters = sum(int(tensor.n_elements) for tensor in reader.tensors)
    except Exception as exc:  # a missing package or an unreadable file: size unknown
        return ModelFacts(None, None, None, f"unknown (cannot read GGUF metadata: {exc})")
    facts = _from_config(config, "GGUF metadata")
    return ModelFacts(facts.shape, n_parameters, None, facts.source)


def _gguf_value(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None or not field.data:
        return None
    value = field.parts[field.data[0]]
    if str(getattr(value, "dtype", "")) == "uint8":
        return bytes(value).decode("utf-8")
    return value.tolist()[0]
