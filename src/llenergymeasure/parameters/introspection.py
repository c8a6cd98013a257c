"""Introspection over the experiment models: every parameter with its metadata and test values.

The Pydantic models indexed by :mod:`llenergymeasure.config.models` are the single source of
truth; this module walks them (:func:`llenergymeasure.config.walk.walk_fields`) so the reference
docs, the support matrix, CLI help and the per-parameter tests all derive from one declaration.
Per-field metadata is read with :func:`llenergymeasure.config.field_meta.field_meta`:

- ``backends``: the backends a field applies to (inherited by nested fields; a field of a backend
  section belongs to that backend; otherwise every backend).
- ``unit``, ``hardware``: shown in the docs.
- ``requires``: ``{"dotted.path": value}`` prerequisites a validator demands before this field
  may be set (inherited by nested fields); :func:`valid_config_with` applies them.
"""

from __future__ import annotations

import copy
import functools
import math
import operator
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from llenergymeasure.config.base import BACKEND_NAMES
from llenergymeasure.config.dotted import set_dotted
from llenergymeasure.config.field_meta import FieldMeta, field_meta
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.config.walk import ModelField, model_at, walk_fields

__all__ = [
    "BACKENDS",
    "REQUIRED",
    "ParameterInfo",
    "backend_parameters",
    "base_config",
    "parameter",
    "parameters",
    "section_description",
    "set_parameter",
    "study_parameters",
    "test_values",
    "valid_config_with",
]

BACKENDS: tuple[str, ...] = BACKEND_NAMES
"""Backend names in declaration order (:data:`llenergymeasure.config.base.BACKEND_NAMES`)."""

_MAX_VALUES = 3


class _Required:
    """Marker default of a field that has none (the user must set it)."""

    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()
"""The ``default`` of a parameter that has no default."""


@dataclass(frozen=True)
class ParameterInfo:
    """One leaf parameter of an experiment config, with the metadata its Field declares."""

    path: str
    section: str
    annotation: str
    default: Any
    description: str
    constraints: dict[str, Any]
    backends: tuple[str, ...]
    unit: str | None
    hardware: str | None
    examples: tuple[Any, ...]

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is REQUIRED


# --- walking the models ---------------------------------------------------------------------


def _leaves_of(model: type[BaseModel]) -> Iterator[ModelField]:
    return (field for field in walk_fields(model) if field.is_leaf)


@functools.cache
def _leaves() -> tuple[ModelField, ...]:
    return tuple(_leaves_of(ExperimentConfig))


def _leaf(path: str) -> ModelField:
    for leaf in _leaves():
        if leaf.path == path:
            return leaf
    raise KeyError(path)


def _metas(chain: tuple[FieldInfo, ...]) -> list[FieldMeta]:
    """The metadata of each field of the chain, outermost first."""
    return [field_meta(field) for field in chain]


def _backends(leaf: ModelField) -> tuple[str, ...]:
    declared = [meta.backends for meta in _metas(leaf.chain) if meta.backends is not None]
    if declared:
        return tuple(name for name in BACKENDS if name in declared[-1])
    section = leaf.path.split(".", 1)[0]
    if section in BACKENDS and "." in leaf.path:
        return (section,)
    return BACKENDS


def _requires(chain: tuple[FieldInfo, ...]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for meta in _metas(chain):
        merged.update(meta.requires)
    return merged


# --- describing one field -------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    """A readable type: ``int | None``, ``'eager' | 'sdpa'``, ``dict[str, Any]``."""
    if annotation is type(None):
        return "None"
    if annotation is Any:
        return "Any"
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(arg) for arg in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(arg) for arg in get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


def _choices(annotation: Any) -> list[Any]:
    """The literal values anywhere in ``annotation`` (Literal members, also inside unions)."""
    origin = get_origin(annotation)
    if origin is Literal:
        return list(get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return [value for arg in get_args(annotation) for value in _choices(arg)]
    return []


_BOUND_NAMES = {
    annotated_types.Ge: "ge",
    annotated_types.Gt: "gt",
    annotated_types.Le: "le",
    annotated_types.Lt: "lt",
    annotated_types.MinLen: "min_length",
    annotated_types.MaxLen: "max_length",
}


def _constraints(field: FieldInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in field.metadata:
        name = _BOUND_NAMES.get(type(item))
        if name is not None:
            found[name] = getattr(item, name)
    members = _members(field.annotation)
    if all(get_origin(member) is Literal for member in members):
        found["choices"] = _choices(field.annotation)
    return found


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.get_default(call_default_factory=True, validated_data={})
    if field.default is PydanticUndefined:
        return REQUIRED
    return field.default


def _info(leaf: ModelField, top: str = "experiment") -> ParameterInfo:
    field = leaf.info
    meta = field_meta(field)
    return ParameterInfo(
        path=leaf.path,
        section=leaf.path.split(".", 1)[0] if "." in leaf.path else top,
        annotation=_type_name(field.annotation),
        default=_default(field),
        description=" ".join((field.description or "").split()),
        constraints=_constraints(field),
        backends=_backends(leaf),
        unit=meta.unit,
        hardware=meta.hardware,
        examples=tuple(field.examples or ()),
    )


# --- public listing -------------------------------------------------------------------------


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def parameters(backend: str | None = None) -> list[ParameterInfo]:
    """Every leaf parameter of an experiment config, in declaration order.

    Args:
        backend: keep only the parameters that apply to this backend (shared fields it
            supports plus its own section); None keeps all.
    """
    infos = [_info(leaf) for leaf in _leaves()]
    if backend is None:
        return infos
    _check_backend(backend)
    return [info for info in infos if backend in info.backends]


def backend_parameters(backend: str) -> list[ParameterInfo]:
    """The energy/throughput parameters of one backend: precision, the decoder fields it
    supports and every leaf of its own section."""
    return [
        info
        for info in parameters(backend)
        if info.path == "precision" or info.section in ("decoder", backend)
    ]


def study_parameters() -> list[ParameterInfo]:
    """The keys a study file adds to an experiment file: name, sweep, experiments, execution.*
    (section "study" for the top-level ones)."""
    return [_info(leaf, "study") for leaf in _leaves_of(StudyConfig) if leaf.path != "base"]


def section_description(scope: str, root: type[BaseModel] = ExperimentConfig) -> str:
    """The docstring of the model at dotted ``scope`` ("" = ``root``), on one line.

    Raises:
        KeyError: ``scope`` does not lead to a nested model.
    """
    model = model_at(root, scope.split(".") if scope else ())
    if model is None:
        raise KeyError(scope)
    return " ".join((model.__doc__ or "").split("\n\n")[0].split())


def parameter(path: str) -> ParameterInfo:
    """The parameter at a dotted path.

    Raises:
        KeyError: no parameter has that path.
    """
    return _info(_leaf(path))


# --- test values ----------------------------------------------------------------------------


def _members(annotation: Any) -> list[Any]:
    """The non-None members of a union (or the annotation itself)."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return [arg for arg in get_args(annotation) if arg is not type(None)]
    return [annotation]


def _int_candidates(default: Any) -> list[int]:
    if isinstance(default, int) and not isinstance(default, bool) and default != 0:
        return [default * 2, default + 1, default * 4]
    return [8, 64, 1, 0]


def _float_candidates(default: Any, constraints: Mapping[str, Any]) -> list[float]:
    low = constraints.get("ge", constraints.get("gt"))
    high = constraints.get("le", constraints.get("lt"))
    if low is not None and high is not None:
        span = high - low
        return [low + span * 0.5, low + span * 0.9, low + span * 0.1]
    if isinstance(default, (int, float)) and default:
        return [default * 2, default / 2]
    start = low if low is not None else 0.0
    return [start + 0.5, start + 1.5]


_BOUND_CHECKS: dict[str, Callable[[float, float], bool]] = {
    "ge": operator.ge,
    "gt": operator.gt,
    "le": operator.le,
    "lt": operator.lt,
}


def _within(value: float, constraints: Mapping[str, Any]) -> bool:
    return all(
        check(value, constraints[name])
        for name, check in _BOUND_CHECKS.items()
        if name in constraints
    )


def _derived(member: Any, info: ParameterInfo) -> list[Any]:
    """Candidate values for one member type of the annotation (before filtering)."""
    if get_origin(member) is Literal:
        return list(get_args(member))
    if member is bool:
        return [True, False]
    if member is int:
        return [v for v in _int_candidates(info.default) if _within(v, info.constraints)]
    if member is float:
        values = _float_candidates(info.default, info.constraints)
        return [round(v, 6) for v in values if math.isfinite(v) and _within(v, info.constraints)]
    return []


def test_values(info: ParameterInfo) -> list[Any]:
    """1-3 valid values that differ from the default (all non-default choices of a Literal).

    Examples declared on the field come first; then values derived from the type and its
    constraints (literal choices, both booleans, numbers inside the bounds). Free strings and
    mappings without ``examples`` give an empty list. Deterministic.
    """
    members = _members(_leaf(info.path).info.annotation)
    candidates = list(info.examples)
    for member in members:
        candidates.extend(_derived(member, info))
    values: list[Any] = []
    for value in candidates:
        if _is_new(value, info.default, values):
            values.append(value)
    every_choice = not info.examples and all(get_origin(m) is Literal for m in members)
    return values if every_choice else values[:_MAX_VALUES]


test_values.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported


def _is_new(value: Any, default: Any, seen: list[Any]) -> bool:
    same_as = [default, *seen]
    return not any(value == other and type(value) is type(other) for other in same_as)


# --- building configs -----------------------------------------------------------------------


def base_config(backend: str) -> dict[str, Any]:
    """The smallest valid raw experiment dict for ``backend`` (the embedded model)."""
    _check_backend(backend)
    return {"model": "smollm2-135m", "backend": backend}


def set_parameter(config_dict: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of a raw experiment dict with the dotted ``path`` set to ``value``.

    Missing or None sections on the way are created as empty mappings.
    """
    result = copy.deepcopy(dict(config_dict))
    set_dotted(result, path, copy.deepcopy(value))
    return result


def _problem(data: Mapping[str, Any]) -> str | None:
    """Pydantic's error text for ``data``, or None when it validates."""
    try:
        ExperimentConfig.model_validate(dict(data))
    except ValidationError as exc:
        return str(exc)
    return None


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


def _sibling_fixes(path: str, backend: str) -> Iterator[tuple[str, Any]]:
    """Single (path, value) changes near ``path`` to try when a validator rejects it.

    Nearest first: siblings in the same model, then in each enclosing model up to the root.
    """
    parts = path.split(".")
    infos = parameters(backend)
    for depth in range(len(parts) - 1, -1, -1):
        scope = ".".join(parts[:depth])
        for info in infos:
            parent = _parent(info.path)
            if parent == scope and info.path != path:
                for value in test_values(info):
                    yield info.path, value


def valid_config_with(backend: str, path: str, value: Any) -> dict[str, Any]:
    """A raw experiment dict for ``backend`` with ``path`` set to ``value`` that validates.

    Prerequisites are added when a validator rejects the plain setting: first the field's
    declared ``requires`` mapping (inherited from enclosing fields), else the first single
    nearby change (a sibling parameter set to one of its test values) that makes it valid.

    Raises:
        ValueError: nothing tried validates; the message carries pydantic's errors.
    """
    data = _with_required_siblings(set_parameter(base_config(backend), path, value), path)
    required = _requires(_leaf(path).chain)
    if required and _problem(data) is not None:
        for prerequisite, needed in required.items():
            data = set_parameter(data, prerequisite, needed)
    for attempt in _attempts(data, path, backend):
        if _problem(attempt) is None:
            return attempt
    raise ValueError(f"{path}={value!r} does not validate for {backend}: {_problem(data)}")


def _with_required_siblings(data: dict[str, Any], path: str) -> dict[str, Any]:
    """Fill the required fields of the sections ``path`` lies in (e.g. lora.adapter) with
    their first test value, so setting one field of a section does not fail on another."""
    scopes = {_parent(path)} - {""}
    for info in parameters():
        parent = _parent(info.path)
        values = test_values(info)
        if info.required and parent in scopes and info.path != path and values:
            data = set_parameter(data, info.path, values[0])
    return data


def _attempts(data: dict[str, Any], path: str, backend: str) -> Iterator[dict[str, Any]]:
    yield data
    for sibling, candidate in _sibling_fixes(path, backend):
        yield set_parameter(data, sibling, candidate)
