"""The load: section: modes, their fields, and errors that name the field."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from llenergymeasure.config.models import ExperimentConfig, LoadConfig


def _config(**load: Any) -> ExperimentConfig:
    return ExperimentConfig(model="m", n=20, load=load)


def test_the_default_is_offline_and_keeps_the_hash_of_a_config_without_the_section() -> None:
    config = ExperimentConfig(model="m")
    assert config.load == LoadConfig() and not config.load.is_serving
    dumped = config.model_dump(mode="json")
    del dumped["load"]
    assert config.measurement_config_hash() == ExperimentConfig(**dumped).measurement_config_hash()
    assert _config(mode="rate", request_rate=2).measurement_config_hash() != (
        config.measurement_config_hash()
    )


@pytest.mark.parametrize("rate", ["inf", "Infinity", yaml.safe_load(".inf"), math.inf])
def test_an_infinite_rate_is_accepted_and_round_trips_through_json(rate: Any) -> None:
    config = _config(mode="rate", request_rate=rate)
    assert config.load.request_rate == math.inf and config.load.finite_rate is None
    text = config.model_dump_json()
    assert json.loads(text)["load"]["request_rate"] == "Infinity"
    assert ExperimentConfig.model_validate_json(text).load.request_rate == math.inf


@pytest.mark.parametrize(
    ("load", "named"),
    [
        ({"mode": "rate"}, "load.request_rate is required with mode: rate"),
        ({"mode": "concurrency"}, "load.max_concurrency is required with mode: concurrency"),
        ({"mode": "concurrency", "max_concurrency": 4, "request_rate": 2}, "load.request_rate"),
        ({"mode": "concurrency", "max_concurrency": 4, "arrival": "gamma"}, "load.arrival"),
        ({"max_concurrency": 4}, "load.max_concurrency needs mode: rate or concurrency"),
        ({"mode": "rate", "request_rate": 2, "burstiness": 0.5}, "load.burstiness"),
        ({"mode": "rate", "request_rate": 0}, "request_rate"),
        ({"mode": "concurrency", "max_concurrency": 21}, "load.max_concurrency (21) exceeds n"),
        ({"slo": {}}, "set at least one of ttft_ms"),
        ({"slo": {"ttft_ms": -1}}, "ttft_ms"),
        ({"mode": "burst"}, "mode"),
    ],
)
def test_invalid_combinations_are_errors_that_name_the_field(
    load: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError, match=named.replace("(", r"\(").replace(")", r"\)")):
        _config(**load)


def test_gamma_takes_a_burstiness_and_rate_mode_an_optional_cap() -> None:
    config = _config(
        mode="rate", request_rate=4, arrival="gamma", burstiness=0.5, max_concurrency=3
    )
    assert (config.load.burstiness, config.load.max_concurrency) == (0.5, 3)
    assert config.load.finite_rate == 4


def test_slo_targets_are_listed_by_name() -> None:
    config = _config(slo={"ttft_ms": 200, "e2e_ms": 2000})
    assert config.load.slo is not None
    assert config.load.slo.targets_ms() == {"ttft_ms": 200.0, "e2e_ms": 2000.0}
