"""A model's transformer shape, read from its Hugging Face config as transformers reads it, for
the FLOP counts: every backend that loads a model from a folder or a hub id records the same
shape for the same model (the pytorch backend reads it off the loaded model's config)."""

from __future__ import annotations

from typing import Any

from llenergymeasure.flops import ArchitectureError, TransformerShape


def model_shape(location: str) -> TransformerShape | None:
    """The shape of the model at ``location``: a folder holding its ``config.json`` (a GGUF
    model's converted folder) or a hub id (read from the Hugging Face cache once the model is
    there); None when the config cannot be read or is not a transformer this counts."""
    from transformers import AutoConfig

    try:
        return TransformerShape.from_config(AutoConfig.from_pretrained(location))
    except (OSError, ValueError, ArchitectureError):
        return None


def model_architecture(location: str) -> dict[str, Any] | None:
    """:func:`model_shape` as results record it (``ModelInfo.details["architecture"]``)."""
    shape = model_shape(location)
    return shape.as_dict() if shape is not None else None
