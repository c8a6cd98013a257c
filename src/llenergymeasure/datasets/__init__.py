"""Prompt sources: the built-in set, JSONL files, synthetic prompts, Hugging Face hub datasets
(AIEnergyScore's, any by name) and ShareGPT conversations, selected by seed; and each request's
output length."""

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
from llenergymeasure.datasets.output_lengths import (
    OutputLengthPlan,
    draw_lengths,
    expected_output_lengths,
    plan_output_lengths,
)

__all__ = [
    "HFTokenizerCodec",
    "OutputLengthPlan",
    "Prompt",
    "PromptSet",
    "SourceLengths",
    "TokenCodec",
    "draw_lengths",
    "expected_output_lengths",
    "length_stats",
    "load_prompt_set",
    "load_prompts",
    "plan_output_lengths",
    "source_lengths",
    "validate_source",
]
