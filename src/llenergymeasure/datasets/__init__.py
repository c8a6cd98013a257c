"""Prompt sources: the built-in set, JSONL files, synthetic prompts, Hugging Face hub datasets
(AIEnergyScore's, any by name) and ShareGPT conversations, selected by seed."""

from llenergymeasure.datasets.lengths import SourceLengths, length_stats, source_lengths
from llenergymeasure.datasets.loader import (
    HFTokenizerCodec,
    Prompt,
    PromptSet,
    TokenCodec,
    load_prompt_set,
    load_prompts,
    validate_source,
)

__all__ = [
    "HFTokenizerCodec",
    "Prompt",
    "PromptSet",
    "SourceLengths",
    "TokenCodec",
    "length_stats",
    "load_prompt_set",
    "load_prompts",
    "source_lengths",
    "validate_source",
]
