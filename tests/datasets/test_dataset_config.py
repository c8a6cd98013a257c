"""The dataset: section's sources and output lengths: which fields each source reads, errors that
name the field, round trips, and the measurement hash of configs that use none of it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from llenergymeasure.config.common import AIENERGYSCORE_DATASET, AIENERGYSCORE_REVISION
from llenergymeasure.config.models import DatasetConfig, ExperimentConfig

LOGNORMAL = {"name": "lognormal", "mean_tokens": 200, "std_tokens": 150}


def _experiment(dataset: Any, **fields: Any) -> ExperimentConfig:
    return ExperimentConfig(model="m", dataset=dataset, **fields)


def _error(dataset: Any, **fields: Any) -> str:
    with pytest.raises(ValidationError) as info:
        _experiment(dataset, **fields)
    return str(info.value)


def test_hub_without_source_is_a_hub_dataset() -> None:
    config = DatasetConfig(hub="org/chats", revision="abc", column="prompt")
    assert config.source == "hub" and config.hub_dataset == "org/chats"
    assert config.prompt_column == "prompt" and not config.has_reference_answers
    assert DatasetConfig(hub="org/chats", revision="abc").prompt_column == "text"
    assert DatasetConfig(hub="org/c", revision="r", output_column="answer").has_reference_answers


def test_aienergyscore_reads_the_pinned_set_by_default() -> None:
    config = _experiment("aienergyscore").dataset
    assert config.hub_dataset == AIENERGYSCORE_DATASET == "AIEnergyScore/text_generation"
    assert config.hub_revision == AIENERGYSCORE_REVISION and config.prompt_column == "text"
    assert DatasetConfig(source="aienergyscore", revision="f" * 40).hub_revision == "f" * 40


def test_sharegpt_reads_conversations_from_a_file_or_the_hub() -> None:
    local = DatasetConfig(source="sharegpt", path="c.json")
    assert local.has_reference_answers and local.hub_dataset is None
    hub = DatasetConfig(source="sharegpt", hub="org/sharegpt", revision="main")
    assert hub.prompt_column == "conversations" and hub.hub_revision == "main"


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({"hub": "org/x"}, r"dataset\.revision is required for the hub dataset 'org/x'"),
        ({"source": "hub"}, r"dataset\.hub is required with source: hub"),
        ({"source": "builtin", "hub": "org/x", "revision": "r"},
         r"dataset\.hub does not apply to source 'builtin'.*without a source means 'hub'"),
        ({"source": "synthetic", "hub": "org/x", "revision": "r"},
         r"dataset\.hub does not apply to source 'synthetic'"),
        ({"source": "p.jsonl", "split": "test"}, r"dataset\.split does not apply to source 'p"),
        ({"source": "builtin", "revision": "r"}, r"dataset\.revision does not apply"),
        ({"source": "aienergyscore", "column": "x"}, r"dataset\.column does not apply to source "
         r"'aienergyscore'; it is read by source 'sharegpt' or 'hub'"),
        ({"source": "aienergyscore", "hub": "org/x", "revision": "r"}, r"dataset\.hub does not"),
        ({"source": "sharegpt"}, r"exactly one of dataset\.path .* and dataset\.hub"),
        ({"source": "sharegpt", "path": "c.json", "hub": "o/x", "revision": "r"}, "exactly one"),
        ({"source": "sharegpt", "path": "c.json", "revision": "r"},
         r"dataset\.revision, dataset\.split and dataset\.column apply to a hub dataset"),
        ({"source": "sharegpt", "hub": "o/x", "revision": "r", "output_column": "a"},
         r"dataset\.output_column does not apply to source 'sharegpt'"),
        ({"hub": "org/x", "revision": "r", "path": "c.json"}, r"dataset\.path does not apply"),
        ({"output_lengths": "distribution"},
         r"dataset\.output_length_distribution is required with output_lengths: distribution"),
        ({"output_length_distribution": LOGNORMAL},
         r"dataset\.output_length_distribution is set but dataset\.output_lengths is 'fixed'"),
        ({"output_lengths": "distribution",
          "output_length_distribution": {"name": "normal", "mean_tokens": 50}},
         r"dataset\.output_length_distribution\.std_tokens is required for name: normal"),
        ({"output_lengths": "distribution",
          "output_length_distribution": {"name": "exponential", "mean_tokens": 5, "std_tokens": 5}},
         r"dataset\.output_length_distribution\.std_tokens cannot be set for name: exponential"),
        ({"output_lengths": "distribution",
          "output_length_distribution": {"name": "gamma", "mean_tokens": 5}},
         r"dataset\.output_length_distribution\.name"),
        ({"output_lengths": "distribution",
          "output_length_distribution": {"name": "uniform", "mean_tokens": 0, "std_tokens": 1}},
         r"dataset\.output_length_distribution\.mean_tokens"),
    ],
)  # fmt: skip
def test_invalid_combinations_name_the_field(dataset: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _experiment(dataset)


def test_drawn_lengths_start_within_max_output_tokens() -> None:
    dataset = {
        "output_lengths": "distribution",
        "output_length_distribution": {**LOGNORMAL, "min_tokens": 64},
    }
    assert "min_tokens (64) exceeds max_output_tokens (32)" in _error(dataset, max_output_tokens=32)
    assert _experiment(dataset, max_output_tokens=64).dataset.output_length_distribution


@pytest.mark.parametrize(
    "dataset",
    [
        {"source": "aienergyscore"},
        {"source": "aienergyscore", "revision": "0" * 40, "split": "train"},
        {"hub": "org/chats", "revision": "main", "split": "test", "column": "q",
         "output_column": "a", "output_lengths": "from_dataset"},
        {"source": "sharegpt", "path": "c.json", "output_lengths": "from_dataset"},
        {"source": "sharegpt", "hub": "org/sg", "revision": "v1", "column": "turns"},
        {"output_lengths": "distribution", "output_length_distribution": LOGNORMAL},
        {"output_lengths": "distribution",
         "output_length_distribution": {"name": "exponential", "mean_tokens": 64}},
    ],
)  # fmt: skip
def test_every_source_round_trips_through_json(dataset: dict[str, Any]) -> None:
    config = _experiment(dataset)
    again = ExperimentConfig.model_validate_json(config.model_dump_json())
    assert again == config
    assert again.measurement_config_hash() == config.measurement_config_hash()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"model": "m"}, "df410ed9ad2ffd16"),
        ({"model": "m", "dataset": "synthetic", "n": 7}, "c16889136826faf5"),
        ({"model": "org/x", "dataset": {"source": "p.jsonl"}, "max_output_tokens": 16},
         "c2bce6f38efcb4d3"),
    ],
)  # fmt: skip
def test_configs_without_the_new_fields_keep_their_hash(
    fields: dict[str, Any], expected: str
) -> None:
    """The hashes these configs had before the hub, ShareGPT and output-length fields existed
    (computed with the previous release): the new fields, unset, are left out of the hash."""
    assert ExperimentConfig(**fields).measurement_config_hash() == expected


@pytest.mark.parametrize(
    "dataset",
    [
        {"source": "aienergyscore"},
        {"hub": "org/x", "revision": "main"},
        {"source": "sharegpt", "path": "c.json"},
        {"output_lengths": "distribution", "output_length_distribution": LOGNORMAL},
    ],
)
def test_setting_a_new_field_changes_the_hash(dataset: dict[str, Any]) -> None:
    base = ExperimentConfig(model="m").measurement_config_hash()
    assert _experiment(dataset).measurement_config_hash() != base
