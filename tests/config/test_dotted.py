"""The one home of the dotted-key helpers: merge, flatten, lookup and set on raw mappings."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from llenergymeasure.config.dotted import (
    deep_copy,
    deep_merge,
    flatten,
    get_dotted,
    has_dotted,
    set_dotted,
)

# --- deep_copy ----------------------------------------------------------------------------------


def test_deep_copy_shares_nothing_and_makes_nested_mappings_dicts() -> None:
    source: dict[str, Any] = {"a": MappingProxyType({"b": [1, 2]})}
    copied = deep_copy(source)
    assert copied == {"a": {"b": [1, 2]}}
    assert type(copied["a"]) is dict
    copied["a"]["b"].append(3)
    assert source["a"]["b"] == [1, 2]


# --- deep_merge ---------------------------------------------------------------------------------


def test_merge_keeps_siblings_at_every_depth() -> None:
    base = {"model": "m", "pytorch": {"batch_size": 1, "attn": {"impl": "sdpa", "window": 4}}}
    extra = {"pytorch": {"attn": {"impl": "eager"}}}
    assert deep_merge(base, extra) == {
        "model": "m",
        "pytorch": {"batch_size": 1, "attn": {"impl": "eager", "window": 4}},
    }


def test_merge_replaces_non_mapping_leaves_whatever_they_are() -> None:
    base = {"a": {"b": 1}, "c": [1, 2], "d": 5, "e": {"f": 1}}
    extra = {"a": 3, "c": [9], "d": {"x": 1}, "e": None}
    assert deep_merge(base, extra) == {"a": 3, "c": [9], "d": {"x": 1}, "e": None}


def test_merge_with_an_empty_mapping_keeps_the_base_section() -> None:
    assert deep_merge({"a": {"b": 1}}, {"a": {}}) == {"a": {"b": 1}}


def test_merge_changes_neither_input_and_shares_nothing_with_them() -> None:
    base: dict[str, Any] = {"a": {"b": [1]}}
    extra: dict[str, Any] = {"a": {"c": [2]}, "d": {"e": 1}}
    merged = deep_merge(base, extra)
    merged["a"]["b"].append(9)
    merged["a"]["c"].append(9)
    merged["d"]["e"] = 2
    assert base == {"a": {"b": [1]}}
    assert extra == {"a": {"c": [2]}, "d": {"e": 1}}


# --- flatten ------------------------------------------------------------------------------------


def test_flatten_gives_dotted_leaves_in_insertion_order() -> None:
    flat = flatten({"b": 1, "a": {"y": None, "x": {"z": [1]}}})
    assert list(flat.items()) == [("b", 1), ("a.y", None), ("a.x.z", [1])]


def test_flatten_keeps_an_empty_mapping_as_a_leaf() -> None:
    assert flatten({"a": {}, "b": {"c": {}}}) == {"a": {}, "b.c": {}}


def test_flatten_with_a_prefix() -> None:
    assert flatten({"a": {"b": 1}, "c": 2}, "config") == {"config.a.b": 1, "config.c": 2}
    assert flatten({}, "config") == {}


# --- get_dotted / has_dotted --------------------------------------------------------------------

DATA: dict[str, Any] = {"a": {"b": {"c": 1}, "n": None}, "s": "text"}


def test_get_finds_nested_values_and_none() -> None:
    assert get_dotted(DATA, "a.b.c") == 1
    assert get_dotted(DATA, "a.b") == {"c": 1}
    assert get_dotted(DATA, "a.n") is None


@pytest.mark.parametrize("missing", ["x", "a.x", "a.b.c.d", "a.n.x", "s.x"])
def test_a_missing_key_raises_key_error_naming_the_whole_key(missing: str) -> None:
    with pytest.raises(KeyError) as caught:
        get_dotted(DATA, missing)
    assert caught.value.args == (missing,)
    assert not has_dotted(DATA, missing)


def test_has_counts_a_none_value_as_present() -> None:
    assert has_dotted(DATA, "a.n")
    assert has_dotted(DATA, "a.b.c")


# --- set_dotted ---------------------------------------------------------------------------------


def test_set_creates_intermediate_mappings_and_keeps_siblings() -> None:
    data: dict[str, Any] = {"a": {"keep": 1}}
    set_dotted(data, "a.b.c", 2)
    set_dotted(data, "top", None)
    assert data == {"a": {"keep": 1, "b": {"c": 2}}, "top": None}


def test_set_replaces_a_none_on_the_way() -> None:
    data: dict[str, Any] = {"a": None}
    set_dotted(data, "a.b", 1, replace_non_mapping=False)
    assert data == {"a": {"b": 1}}


def test_set_replaces_a_non_mapping_on_the_way_unless_told_not_to() -> None:
    replaced: dict[str, Any] = {"a": 3}
    set_dotted(replaced, "a.b", 1)
    assert replaced == {"a": {"b": 1}}
    kept: dict[str, Any] = {"a": 3}
    set_dotted(kept, "a.b", 1, replace_non_mapping=False)
    assert kept == {"a": 3}


def test_set_then_get_round_trips() -> None:
    data: dict[str, Any] = {}
    set_dotted(data, "x.y.z", [1])
    assert get_dotted(data, "x.y.z") == [1]
    assert flatten(data) == {"x.y.z": [1]}
