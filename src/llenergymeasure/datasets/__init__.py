"""Prompt sources: the built-in set, JSONL files and synthetic prompts, selected by seed."""

from llenergymeasure.datasets.loader import (
    HFTokenizerCodec,
    Prompt,
    TokenCodec,
    load_prompts,
    validate_source,
)

__all__ = ["HFTokenizerCodec", "Prompt", "TokenCodec", "load_prompts", "validate_source"]
