"""The one walk over nested config models: sections are models or unions holding one; containers
of models are leaves."""

from __future__ import annotations

from pydantic import BaseModel

from llenergymeasure.config.models import ExperimentConfig, TensorRTKvCacheConfig
from llenergymeasure.config.walk import model_at, nested_model, walk_fields


class _Inner(BaseModel):
    x: int = 0
    y: str = ""


class _Outer(BaseModel):
    plain: int = 1
    section: _Inner = _Inner()
    optional: _Inner | None = None
    items: list[_Inner] = []
    mapping: dict[str, _Inner] = {}
    choice: int | str = 0


def test_nested_model_is_the_model_or_a_union_member_only() -> None:
    assert nested_model(_Inner) is _Inner
    assert nested_model(_Inner | None) is _Inner
    assert nested_model(int | _Inner) is _Inner
    for annotation in (int, list[_Inner], dict[str, _Inner], int | str, None):
        assert nested_model(annotation) is None


def test_walk_visits_every_field_depth_first_sections_before_their_fields() -> None:
    walked = [(field.path, field.is_leaf) for field in walk_fields(_Outer)]
    assert walked == [
        ("plain", True),
        ("section", False),
        ("section.x", True),
        ("section.y", True),
        ("optional", False),
        ("optional.x", True),
        ("optional.y", True),
        ("items", True),
        ("mapping", True),
        ("choice", True),
    ]


def test_walk_carries_the_chain_of_fields() -> None:
    field = next(f for f in walk_fields(_Outer) if f.path == "optional.y")
    assert field.chain == (_Outer.model_fields["optional"], _Inner.model_fields["y"])
    assert field.info is _Inner.model_fields["y"]
    assert field.section is None
    section = next(f for f in walk_fields(_Outer) if f.path == "optional")
    assert section.section is _Inner


def test_model_at_follows_field_names() -> None:
    assert model_at(_Outer, []) is _Outer
    assert model_at(_Outer, ["optional"]) is _Inner
    assert model_at(ExperimentConfig, ["tensorrt", "kv_cache_config"]) is TensorRTKvCacheConfig
    for parts in (["plain"], ["items"], ["missing"], ["section", "x"], [0]):
        assert model_at(_Outer, parts) is None


def test_the_experiment_walk_reaches_nested_sections() -> None:
    paths = [field.path for field in walk_fields(ExperimentConfig)]
    assert len(paths) == len(set(paths))
    assert paths.index("tensorrt") < paths.index("tensorrt.kv_cache_config")
    assert paths.index("tensorrt.kv_cache_config") < paths.index("tensorrt.kv_cache_config.dtype")
    assert "pytorch.batch_size" in paths and "pytorch.extra" in paths
