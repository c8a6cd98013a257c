"""The shipped prompt set: size, variety, length spread and that it loads through the API."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources

from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.datasets import load_prompts, validate_source


def _builtin_rows() -> list[dict[str, str]]:
    text = (resources.files("llenergymeasure.datasets") / "data" / "builtin.jsonl").read_text(
        encoding="utf-8"
    )
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_builtin_has_at_least_120_distinct_prompts() -> None:
    rows = _builtin_rows()
    texts = [row["prompt"] for row in rows]
    assert len(rows) >= 120
    assert len(set(texts)) == len(texts)
    assert all(text.strip() == text and text for text in texts)


def test_builtin_categories_are_varied_and_roughly_balanced() -> None:
    counts = Counter(row["category"] for row in _builtin_rows())
    assert {"factual", "explanation", "summarization", "code", "reasoning", "creative"} <= set(
        counts
    )
    assert counts["long_context"] >= 10
    assert max(counts.values()) <= 2 * min(counts.values())


def test_builtin_has_at_least_ten_long_prompts_within_bounds() -> None:
    words = [len(row["prompt"].split()) for row in _builtin_rows()]
    long_ones = [w for w in words if w >= 400]
    assert len(long_ones) >= 10
    assert max(words) <= 1500
    assert sum(1 for w in words if w <= 20) >= 20  # plenty of short prompts too


def test_builtin_loads_through_load_prompts_with_categories() -> None:
    prompts = load_prompts(DatasetConfig(source="builtin"), n=len(_builtin_rows()), seed=0)
    assert len({p.text for p in prompts}) == len(prompts)
    assert all(p.token_ids is None and p.category for p in prompts)


def test_validate_source_accepts_builtin_and_synthetic() -> None:
    validate_source(DatasetConfig(source="builtin"))
    validate_source(DatasetConfig(source="synthetic"))
