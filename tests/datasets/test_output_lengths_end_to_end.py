"""Every output-length mode through ``llem run`` on the embedded model (pytorch, one static
batch): with from_dataset and distribution each request generates exactly its length
(requests.parquet), and the result records the lengths asked for and realised."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hub_fixtures import run_with_dataset

import llenergymeasure as llem
from llenergymeasure.config.models import DatasetConfig
from llenergymeasure.datasets import draw_lengths
from llenergymeasure.results import load_requests

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

QUESTION = "Why do GPUs draw more power when generating longer text?"
ANSWER_TOKENS = (4, 5, 7)  # "energy" is one token of the embedded tokenizer, " energy" too
MAX_OUTPUT_TOKENS = 6  # the 7-token answer is clipped to it


def sharegpt_file(tmp_path: Path) -> str:
    path = tmp_path / "sharegpt.json"
    entries = [
        {"id": str(k), "conversations": [{"from": "human", "value": f"{QUESTION} ({k})"},
                                         {"from": "gpt", "value": " ".join(["energy"] * k)}]}
        for k in ANSWER_TOKENS
    ]  # fmt: skip
    path.write_text(json.dumps(entries), encoding="utf-8")
    return str(path)


def llem_run(tmp_path: Path, dataset: dict[str, Any], seed: int = 42) -> tuple[Any, list[int]]:
    """The result and each request's output tokens (in prompt order) of one ``llem run``."""
    code, output, out = run_with_dataset(
        tmp_path, dataset, max_output_tokens=MAX_OUTPUT_TOKENS, random_seed=seed
    )
    assert code == 0, output
    (folder,) = out.iterdir()
    requests = sorted(load_requests(folder), key=lambda r: r.index)
    return llem.load_result(folder), [r.output_tokens for r in requests]


def test_fixed_generates_up_to_the_cap(tmp_path: Path) -> None:
    result, outputs = llem_run(tmp_path, {"source": "sharegpt", "path": sharegpt_file(tmp_path)})
    lengths = result.lengths
    assert lengths is not None and lengths.output_lengths == "fixed"
    assert lengths.requested_output_tokens is None and lengths.n_clipped == 0
    assert all(0 <= n <= MAX_OUTPUT_TOKENS for n in outputs)
    assert lengths.output_tokens.n == 3 and lengths.output_tokens.mean == sum(outputs) / 3
    assert lengths.input_tokens.mean is not None and lengths.input_tokens.mean > 10


def test_from_dataset_generates_each_reference_answer_length(tmp_path: Path) -> None:
    dataset = {
        "source": "sharegpt",
        "path": sharegpt_file(tmp_path),
        "output_lengths": "from_dataset",
    }
    result, outputs = llem_run(tmp_path, dataset)
    # the seeded selection orders the conversations; each generated its own answer's length
    assert sorted(outputs) == [4, 5, MAX_OUTPUT_TOKENS]
    lengths = result.lengths
    assert lengths is not None and lengths.output_lengths == "from_dataset"
    assert lengths.n_clipped == 1
    assert lengths.notes == [
        "1 of 3 reference answers are longer than max_output_tokens (6): those requests "
        "generated 6 tokens, not their answer's length (raise max_output_tokens to generate "
        "them in full)"
    ]
    assert lengths.output_tokens == lengths.requested_output_tokens
    assert result.metrics.total_output_tokens == 4 + 5 + MAX_OUTPUT_TOKENS


def test_distribution_generates_the_seeded_draws(tmp_path: Path) -> None:
    dataset = {
        "output_lengths": "distribution",
        "output_length_distribution": {"name": "uniform", "mean_tokens": 4, "std_tokens": 1.5},
    }
    result, outputs = llem_run(tmp_path, dataset, seed=18)
    shape = DatasetConfig.model_validate(dataset).output_length_distribution
    assert shape is not None
    drawn = [min(max(n, 1), MAX_OUTPUT_TOKENS) for n in draw_lengths(shape, 3, 18)]
    assert outputs == drawn == [5, 3, 6]  # in prompt order, as drawn for seed 18
    lengths = result.lengths
    assert lengths is not None and lengths.output_lengths == "distribution"
    assert lengths.output_tokens == lengths.requested_output_tokens and lengths.notes == []
