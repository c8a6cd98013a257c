"""Fixtures shared by the backend tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config import ExperimentConfig
from llenergymeasure.config.models import DecoderConfig, field_meta
from llenergymeasure.parameters import introspection

ActingConfig = Callable[[str, str, Any], ExperimentConfig]


def _declared_requires(path: str) -> dict[str, Any]:
    section, _, name = path.partition(".")
    if section != "decoder":
        return {}
    return dict(field_meta(DecoderConfig.model_fields[name]).requires)


@pytest.fixture
def acting_config(tiny_model_dir: Path) -> ActingConfig:
    """``(backend, path, value)`` -> a config on the tiny model where the value *acts*.

    ``introspection.valid_config_with`` adds prerequisites only when validation fails; a
    decoder field that merely would not act (sampling fields under greedy decoding, beam fields
    without beams: a config warning) also gets its declared ``requires``, so that the value
    has to reach the library call.
    """

    def build(backend: str, path: str, value: Any) -> ExperimentConfig:
        data = introspection.valid_config_with(backend, path, value)
        data.update(model=str(tiny_model_dir), chat_template=False)
        config = ExperimentConfig.model_validate(data)
        if config.config_warnings():
            for prerequisite, needed in _declared_requires(path).items():
                data = introspection.set_parameter(data, prerequisite, needed)
            config = ExperimentConfig.model_validate(data)
        assert config.config_warnings() == [], f"{path}={value!r} would not act"
        return config

    return build
