"""The public surface of llenergymeasure.datasets: changing it must be deliberate."""

from __future__ import annotations

import llenergymeasure.datasets as datasets


def test_public_api_is_exactly_this() -> None:
    assert sorted(datasets.__all__) == [
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
    assert all(hasattr(datasets, name) for name in datasets.__all__)
