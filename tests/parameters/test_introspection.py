"""Introspection lists every parameter of the models, with values the models accept."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from llenergymeasure.config.models import DecoderConfig, ExperimentConfig, field_meta
from llenergymeasure.parameters import introspection as intro


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _expected_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Leaf paths found by walking the models independently of the module under test."""
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        nested = _nested_model(field.annotation)
        if nested is None:
            paths.add(prefix + name)
        else:
            paths |= _expected_paths(nested, f"{prefix}{name}.")
    return paths


def _value_at(config: ExperimentConfig, path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        node = getattr(node, part)
    return node


def _cases() -> list[tuple[str, str, Any]]:
    return [
        (backend, info.path, value)
        for backend in intro.BACKENDS
        for info in intro.parameters(backend)
        for value in intro.test_values(info)
    ]


def test_every_leaf_is_listed_once() -> None:
    paths = [info.path for info in intro.parameters()]
    assert len(paths) == len(set(paths))
    assert set(paths) == _expected_paths(ExperimentConfig)
    for known in ("precision", "decoder.top_k", "vllm.max_num_seqs", "pytorch.batch_size"):
        assert known in paths
    assert "tensorrt.kv_cache_config.enable_block_reuse" in paths


def test_metadata_comes_from_the_field() -> None:
    info = intro.parameter("energy.sample_interval_ms")
    assert info.section == "energy"
    assert info.annotation == "int"
    assert info.default == 100
    assert info.constraints == {"ge": 10, "le": 60_000}
    assert "Polling interval" in info.description
    precision = intro.parameter("precision")
    assert precision.section == "experiment"
    assert precision.constraints["choices"] == ["auto", "fp32", "fp16", "bf16"]
    assert intro.parameter("model").required
    assert not precision.required
    with pytest.raises(KeyError):
        intro.parameter("decoder.nope")


def test_backend_filter_keeps_shared_fields_and_own_section() -> None:
    for backend in intro.BACKENDS:
        listed = intro.parameters(backend)
        assert {info.section for info in listed} & set(intro.BACKENDS) == {backend}
        assert all(backend in info.backends for info in listed)
        own = intro.backend_parameters(backend)
        assert {info.section for info in own} <= {"decoder", backend, "experiment"}
        engine = ["precision"] if backend != "server" else []  # a server chose its own dtype
        assert [info.path for info in own if info.section == "experiment"] == engine
    with pytest.raises(ValueError, match="unknown backend"):
        intro.parameters("onnx")


def test_decoder_backends_follow_the_declared_metadata() -> None:
    for info in intro.parameters():
        if info.section != "decoder":
            continue
        declared = field_meta(DecoderConfig.model_fields[info.path.split(".")[1]]).backends
        assert declared is not None
        assert info.backends == declared


def test_backends_are_inherited_from_the_nearest_declaration() -> None:
    assert intro.parameter("lora.adapter").backends == ("pytorch", "vllm")
    assert intro.parameter("lora.merge_weights").backends == ("pytorch",)
    assert intro.parameter("tensorrt.kv_cache_config.dtype").backends == ("tensorrt",)
    assert intro.parameter("energy.sampler").backends == intro.BACKENDS


def test_declared_requires_are_applied_when_the_plain_setting_fails() -> None:
    # inherited from the enclosing build_config field
    data = intro.valid_config_with("tensorrt", "tensorrt.build_config.max_batch_size", 8)
    assert data["tensorrt"]["runtime"] == "engine"
    data = intro.valid_config_with("pytorch", "decoder.num_beam_groups", 2)
    assert data["decoder"] == {"num_beam_groups": 2, "num_beams": 8, "diversity_penalty": 0.5}


def test_every_backend_parameter_has_test_values() -> None:
    missing = [
        f"{backend}: {info.path}"
        for backend in intro.BACKENDS
        for info in intro.backend_parameters(backend)
        if not intro.test_values(info)
    ]
    assert not missing, "add examples=[...] to these Fields: " + ", ".join(missing)


@pytest.mark.parametrize(("backend", "path", "value"), _cases())
def test_test_value_is_valid_and_not_the_default(backend: str, path: str, value: Any) -> None:
    data = intro.valid_config_with(backend, path, value)
    config = ExperimentConfig.model_validate(data)
    assert _value_at(config, path) != intro.parameter(path).default
    if path != "backend":
        assert config.backend == backend


def test_test_values_are_deterministic_and_inside_bounds() -> None:
    top_p = intro.parameter("decoder.top_p")
    values = intro.test_values(top_p)
    assert values == intro.test_values(top_p)
    assert 1 <= len(values) <= 3
    assert all(0.0 < value <= 1.0 for value in values)
    assert intro.test_values(intro.parameter("vllm.tensor_parallel_size")) == [2, 4]
    assert intro.test_values(intro.parameter("pytorch.torch_compile")) == [True]
    assert intro.test_values(intro.parameter("pytorch.use_cache")) == [True, False]


def test_literal_gives_every_other_choice() -> None:
    assert intro.test_values(intro.parameter("precision")) == ["fp32", "fp16", "bf16"]


def test_set_parameter_copies_and_creates_sections() -> None:
    base = {"model": "m", "pytorch": None, "decoder": {"top_k": 5}}
    result = intro.set_parameter(base, "tensorrt.kv_cache_config.max_tokens", 64)
    result = intro.set_parameter(result, "pytorch.batch_size", 4)
    assert result["tensorrt"] == {"kv_cache_config": {"max_tokens": 64}}
    assert result["pytorch"] == {"batch_size": 4}
    assert base == {"model": "m", "pytorch": None, "decoder": {"top_k": 5}}
    nested = intro.set_parameter(base, "decoder.top_p", 0.5)
    nested["decoder"]["top_k"] = 1
    assert base["decoder"] == {"top_k": 5}


def test_valid_config_with_adds_a_prerequisite() -> None:
    compiled = intro.valid_config_with("pytorch", "pytorch.torch_compile_mode", "default")
    assert compiled["pytorch"]["torch_compile"] is True
    built = intro.valid_config_with("tensorrt", "tensorrt.build_config.max_seq_len", 64)
    assert built["tensorrt"]["runtime"] == "engine"
    plain = intro.valid_config_with("vllm", "vllm.max_num_seqs", 8)
    assert plain == {"model": "smollm2-135m", "backend": "vllm", "vllm": {"max_num_seqs": 8}}


def test_valid_config_with_reports_an_impossible_value() -> None:
    with pytest.raises(ValueError, match=r"pytorch\.batch_size=0 does not validate"):
        intro.valid_config_with("pytorch", "pytorch.batch_size", 0)


def test_test_values_is_not_collected_as_a_test() -> None:
    assert getattr(intro.test_values, "__test__", True) is False
