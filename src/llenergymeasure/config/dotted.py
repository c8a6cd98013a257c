"""Nested mappings addressed by dotted keys (``pytorch.batch_size``): the one home of these rules.

Config files, CLI overrides, sweeps, profiles, the user config, the dry-run display and the
results table all read and write raw nested mappings by dotted key. Each operation is defined
once here, so they agree on what a leaf, a missing key and a merge are:

- a *leaf* is any value that is not a non-empty mapping; an empty mapping is a leaf (so
  flattening loses nothing: ``{"a": {}}`` flattens to ``{"a": {}}``, not to ``{}``);
- a dotted key is *present* only when every part names a key of a mapping on the way; a
  non-mapping in the way (``None`` included) means the key is missing;
- merging is recursive only where both sides hold a mapping; anything else is replaced.

Results are fresh plain dicts: no caller's input is modified or shared, except by
:func:`set_dotted`, which writes in place by design.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``data`` in which every nested mapping is a plain ``dict``.

    Plain dicts (rather than ``copy.deepcopy``'s same-type copies) are what :func:`set_dotted`
    writes into.
    """
    return {key: _copy_value(value) for key, value in data.items()}


def _copy_value(value: Any) -> Any:
    return deep_copy(value) if isinstance(value, Mapping) else copy.deepcopy(value)


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` laid over ``base``, as a new dict (neither input is changed).

    Where both hold a mapping under the same key, the two are merged the same way, so siblings
    from ``base`` survive. Otherwise the value from ``extra`` replaces the one in ``base``,
    whatever either is: a scalar, a list (lists are not concatenated), ``None`` or an empty
    mapping (``{"a": {"b": 1}}`` merged with ``{"a": {}}`` keeps ``b``; merged with
    ``{"a": None}`` gives ``{"a": None}``).
    """
    merged = deep_copy(base)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = _copy_value(value)
    return merged


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The leaves of ``data`` under their dotted keys, in depth-first insertion order.

    An empty mapping is a leaf and keeps its key (``{"a": {}, "b": {"c": 1}}`` gives
    ``{"a": {}, "b.c": 1}``); a caller that wants only scalar settings filters those out.

    Args:
        data: the nested mapping.
        prefix: a dotted key to put in front of every key (``"config"`` gives ``config.a.b``);
            ``""`` for none.
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def get_dotted(data: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``a.b.c`` in the nested mapping ``data`` (``None`` is a value).

    Raises:
        KeyError: ``dotted`` (the whole key) when a part is missing or a non-mapping is in the
            way.
    """
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def has_dotted(data: Mapping[str, Any], dotted: str) -> bool:
    """Whether ``a.b.c`` is present in ``data`` (see :func:`get_dotted`; a ``None`` value is)."""
    try:
        get_dotted(data, dotted)
    except KeyError:
        return False
    return True


def set_dotted(
    data: dict[str, Any], dotted: str, value: Any, *, replace_non_mapping: bool = True
) -> None:
    """Set ``a.b.c`` in ``data`` in place, creating the mappings on the way.

    A missing part or a ``None`` on the way becomes an empty dict; siblings are kept. Any other
    value on the way that is not a dict (``a: 3``) is replaced by one, or, with
    ``replace_non_mapping=False``, left as it is and nothing is set, so validation can report
    it. Copy a mapping with :func:`deep_copy` first to be sure its nested mappings are dicts.
    """
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.get(part)
        if child is None or (not isinstance(child, dict) and replace_non_mapping):
            child = {}
            node[part] = child
        elif not isinstance(child, dict):
            return
        node = child
    node[leaf] = value
