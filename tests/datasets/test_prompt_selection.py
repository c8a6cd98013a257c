"""Seeded selection: determinism, seed sensitivity, repeats when n exceeds the source."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from pathlib import Path

import pytest

from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.datasets import Prompt, load_prompts

BUILTIN = DatasetConfig(source="builtin")


def _texts(prompts: list[Prompt]) -> list[str]:
    return [str(p.text) for p in prompts]


def _jsonl(tmp_path: Path, count: int) -> DatasetConfig:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(f'{{"prompt": "p{i}"}}\n' for i in range(count)), encoding="utf-8")
    return DatasetConfig(source=str(path))


def test_same_seed_gives_same_prompts_in_same_order() -> None:
    assert _texts(load_prompts(BUILTIN, 40, seed=7)) == _texts(load_prompts(BUILTIN, 40, seed=7))


def test_different_seed_gives_different_order() -> None:
    assert _texts(load_prompts(BUILTIN, 40, seed=7)) != _texts(load_prompts(BUILTIN, 40, seed=8))


def test_selection_does_not_touch_global_random_state() -> None:
    random.seed(123)
    expected = random.random()
    random.seed(123)
    load_prompts(BUILTIN, 10, seed=1)
    assert random.random() == expected


def test_n_up_to_available_samples_without_replacement(tmp_path: Path) -> None:
    prompts = load_prompts(_jsonl(tmp_path, 10), 10, seed=3)
    assert sorted(_texts(prompts)) == sorted(f"p{i}" for i in range(10))
    assert [p.index for p in prompts] == list(range(10))


def test_n_above_available_repeats_in_balanced_passes(tmp_path: Path) -> None:
    prompts = load_prompts(_jsonl(tmp_path, 4), 10, seed=5)
    texts = _texts(prompts)
    counts = Counter(texts)
    assert len(prompts) == 10
    assert set(counts) == {"p0", "p1", "p2", "p3"}
    assert sorted(counts.values()) == [2, 2, 3, 3]
    assert sorted(texts[:4]) == sorted(texts[4:8])  # each pass uses every prompt once
    assert [p.index for p in prompts] == list(range(10))


def test_repeats_never_put_the_same_prompt_twice_in_a_row(tmp_path: Path) -> None:
    config = _jsonl(tmp_path, 3)
    for seed in range(50):
        texts = _texts(load_prompts(config, 30, seed=seed))
        assert all(a != b for a, b in itertools.pairwise(texts))


def test_single_prompt_source_repeats_it(tmp_path: Path) -> None:
    assert _texts(load_prompts(_jsonl(tmp_path, 1), 3, seed=0)) == ["p0", "p0", "p0"]


def test_zero_prompts_is_empty_and_negative_is_rejected() -> None:
    assert load_prompts(BUILTIN, 0, seed=0) == []
    with pytest.raises(ValueError, match="at least 0"):
        load_prompts(BUILTIN, -1, seed=0)


def test_prompt_needs_exactly_one_of_text_and_token_ids() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Prompt(text="hi", token_ids=(1, 2), index=0)
    with pytest.raises(ValueError, match="exactly one"):
        Prompt(text=None, token_ids=None, index=0)
