"""Per-field metadata is one typed declaration: read back by field_meta, written into the JSON
Schema under the same keys."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import BaseModel, Field

from llenergymeasure.config.base import BACKEND_NAMES, BackendName
from llenergymeasure.config.field_meta import FieldMeta, field_meta
from llenergymeasure.config.models import DecoderConfig, ExperimentConfig, decoder_backends
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.config.walk import walk_fields


class _Probe(BaseModel):
    plain: int = 0
    tagged: int = Field(
        0,
        json_schema_extra=FieldMeta(
            backends=("vllm",),
            native={"vllm": "EngineArgs.tagged"},
            requires={"vllm.other": True},
            unit="tokens",
        ),
    )


def test_backend_names_come_from_the_literal() -> None:
    assert BACKEND_NAMES == get_args(BackendName) == ("pytorch", "vllm", "tensorrt", "server")


def test_field_meta_reads_the_declaration_back() -> None:
    meta = field_meta(_Probe.model_fields["tagged"])
    assert meta.backends == ("vllm",)
    assert meta.requires == {"vllm.other": True}
    assert meta.unit == "tokens" and meta.hardware is None
    assert field_meta(_Probe.model_fields["plain"]) == FieldMeta()


def test_the_json_schema_carries_the_declared_keys_only() -> None:
    tagged = _Probe.model_json_schema()["properties"]["tagged"]
    assert tagged["backends"] == ["vllm"]
    assert tagged["native"] == {"vllm": "EngineArgs.tagged"}
    assert tagged["requires"] == {"vllm.other": True}
    assert tagged["unit"] == "tokens"
    assert not {"hardware", "since", "until"} & set(tagged)
    assert FieldMeta().as_json() == {}


def test_a_plain_dict_is_refused() -> None:
    class Loose(BaseModel):
        value: int = Field(0, json_schema_extra={"unit": "tokens"})

    with pytest.raises(TypeError, match="FieldMeta"):
        field_meta(Loose.model_fields["value"])


def test_unknown_backend_names_are_refused() -> None:
    with pytest.raises(ValueError, match="onnx"):
        FieldMeta(native={"onnx": "Session.run"})


@pytest.mark.parametrize("root", [ExperimentConfig, StudyConfig])
def test_every_model_field_declares_metadata_through_field_meta(root: type[BaseModel]) -> None:
    for field in walk_fields(root):
        extra = field.info.json_schema_extra
        assert extra is None or isinstance(extra, FieldMeta), field.path


def test_every_decoder_field_names_its_backends() -> None:
    for name in DecoderConfig.model_fields:
        assert set(decoder_backends(name)) <= set(BACKEND_NAMES)
        assert decoder_backends(name)
        assert set(field_meta(DecoderConfig.model_fields[name]).native) == set(
            decoder_backends(name)
        )
