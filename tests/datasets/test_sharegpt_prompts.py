"""ShareGPT conversations as vllm bench serve reads them: the first turn is the prompt, the
second its reference answer (counted in tokens), short and long conversations are passed over,
and the walk follows vLLM's seeded shuffle."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.datasets import load_prompt_set, load_prompts, validate_source
from llenergymeasure.datasets.sharegpt import within_limits
from llenergymeasure.errors import DatasetError


class WordCodec:
    """One token per whitespace-separated word."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, text: str) -> list[int]:
        self.calls += 1
        return [len(word) for word in text.split()]


def words(count: int, tag: str = "w") -> str:
    return " ".join(f"{tag}{k}" for k in range(count))


def conversation(number: int, prompt_words: int = 5, answer_words: int = 6) -> dict[str, Any]:
    return {
        "id": f"c{number}",
        "conversations": [
            {"from": "human", "value": f"q{number} " + words(prompt_words - 1)},
            {"from": "gpt", "value": words(answer_words, "a")},
            {"from": "human", "value": "a later turn, never used"},
        ],
    }


def write(tmp_path: Path, entries: list[Any], *, lines: bool = False) -> DatasetConfig:
    path = tmp_path / ("c.jsonl" if lines else "c.json")
    text = "".join(json.dumps(e) + "\n" for e in entries) if lines else json.dumps(entries)
    path.write_text(text, encoding="utf-8")
    return DatasetConfig(source="sharegpt", path=str(path))


def test_first_turn_is_the_prompt_and_second_the_answer_length(tmp_path: Path) -> None:
    config = write(tmp_path, [conversation(0, prompt_words=5, answer_words=9)])
    (prompt,) = load_prompts(config, 1, seed=0, codec=WordCodec())
    assert prompt.text == "q0 w0 w1 w2 w3" and prompt.output_tokens == 9
    assert prompt.token_ids is None and prompt.index == 0


def test_json_lines_read_like_a_json_list(tmp_path: Path) -> None:
    entries = [conversation(k) for k in range(6)]
    as_list = load_prompts(write(tmp_path, entries), 4, seed=3, codec=WordCodec())
    as_lines = load_prompts(write(tmp_path, entries, lines=True), 4, seed=3, codec=WordCodec())
    assert as_list == as_lines


def test_conversations_with_fewer_than_two_turns_are_dropped_like_vllm(tmp_path: Path) -> None:
    """Speakers are not checked (vLLM takes turns 0 and 1 as they come)."""
    gpt_first = {"conversations": [{"from": "gpt", "value": words(5, "g")},
                                   {"from": "human", "value": words(5, "h")}]}  # fmt: skip
    entries = [
        {"id": "none"},
        {"conversations": []},
        {"conversations": [{"from": "human", "value": words(5)}]},
        gpt_first,
        conversation(1),
    ]
    result = load_prompt_set(write(tmp_path, entries), 2, seed=0, codec=WordCodec())
    assert {p.text for p in result.prompts} == {words(5, "g"), "q1 " + words(4)}
    assert (result.info.n_rows, result.info.n_usable, result.info.n_pruned) == (5, 2, 0)
    assert result.info.source == "sharegpt" and result.info.name.endswith("c.json")


@pytest.mark.parametrize(
    ("prompt", "answer", "kept"),
    [(4, 4, True), (3, 50, False), (50, 3, False), (1024, 1024, True), (1025, 4, False),
     (1000, 1049, False), (1000, 1048, True)],
)  # fmt: skip
def test_vllm_length_rule(prompt: int, answer: int, kept: bool) -> None:
    assert within_limits(prompt, answer) is kept


def test_selection_walks_vllms_shuffle_and_passes_over_out_of_limit_ones(tmp_path: Path) -> None:
    """The prompts vllm bench serve samples for the same seed: ``random.seed(seed);
    random.shuffle(conversations)``, then the first n within its limits."""
    sizes = [(5, 6), (2, 6), (5, 2), (1100, 5), (7, 9), (5, 5), (30, 3), (9, 12), (6, 6), (8, 4)]
    entries = [conversation(k, p, a) for k, (p, a) in enumerate(sizes)]
    config = write(tmp_path, entries)
    for seed in (0, 1, 7):
        shuffled = list(entries)
        random.seed(seed)
        random.shuffle(shuffled)
        fits = [e for e in shuffled if within_limits(*sizes[int(e["id"][1:])])]
        expected = [e["conversations"][0]["value"] for e in fits[:4]]
        result = load_prompt_set(config, 4, seed=seed, codec=WordCodec())
        assert [p.text for p in result.prompts] == expected
        visited = shuffled.index(fits[3]) + 1
        assert result.info.n_pruned == visited - 4


def test_only_the_conversations_visited_are_tokenized(tmp_path: Path) -> None:
    codec = WordCodec()
    load_prompts(write(tmp_path, [conversation(k) for k in range(200)]), 3, seed=0, codec=codec)
    assert codec.calls == 6  # prompt and answer of the three taken, each once


def test_more_prompts_than_usable_conversations_reuse_them(tmp_path: Path) -> None:
    entries = [conversation(0), conversation(1, prompt_words=2), conversation(2)]
    prompts = load_prompts(write(tmp_path, entries), 7, seed=5, codec=WordCodec())
    texts = [p.text for p in prompts]
    assert len(texts) == 7 and set(texts) == {"q0 " + words(4), "q2 " + words(4)}
    assert all(a != b for a, b in itertools.pairwise(texts))
    assert [p.index for p in prompts] == list(range(7))


def test_seed_decides_the_selection(tmp_path: Path) -> None:
    config = write(tmp_path, [conversation(k) for k in range(40)])
    first = load_prompts(config, 10, seed=1, codec=WordCodec())
    assert first == load_prompts(config, 10, seed=1, codec=WordCodec())
    assert first != load_prompts(config, 10, seed=2, codec=WordCodec())


def test_no_conversation_within_the_limits_is_an_error(tmp_path: Path) -> None:
    config = write(tmp_path, [conversation(0, prompt_words=2), conversation(1, answer_words=1)])
    with pytest.raises(DatasetError, match=r"None of the 2 conversations .* vLLM's ShareGPT"):
        load_prompts(config, 1, seed=0, codec=WordCodec())


def test_reference_lengths_need_the_tokenizer(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="needs the model's tokenizer"):
        load_prompts(write(tmp_path, [conversation(0)]), 1, seed=0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"conversations": []}', r"expected a JSON list of conversations"),
        ('[{"conversations": []}]\n{', r"line 2: not valid JSON"),
        ('["text"]', r"entry 0: expected an object with 'conversations'"),
        ('[{"conversations": [{"from": "human"}, {"value": "x"}]}]', r"entry 0: turn 0 needs a "),
        ('[{"conversations": [{"value": "x"}, {"value": 3}]}]', r"entry 0: turn 1 needs a text"),
        ("[]", r"holds no conversation with at least two turns"),
    ],
)
def test_malformed_files_are_errors_naming_the_entry(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        validate_source(DatasetConfig(source="sharegpt", path=str(path)))


def test_a_missing_file_names_the_field_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    with pytest.raises(DatasetError, match=rf"dataset\.path: there is no file at {missing}"):
        validate_source(DatasetConfig(source="sharegpt", path=str(missing)))


def test_from_dataset_needs_reference_answers() -> None:
    config = DatasetConfig(source="builtin", output_lengths="from_dataset")
    message = r"from_dataset uses each prompt's reference answer, and source 'builtin' has none"
    with pytest.raises(DatasetError, match=message):
        validate_source(config)
    with pytest.raises(DatasetError, match=message):
        load_prompts(config, 1, seed=0)
