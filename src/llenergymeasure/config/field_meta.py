"""Typed per-field metadata of the config models: which backends a field applies to, the native
API it maps to, its prerequisites, unit and hardware needs.

A field declares it once, as ``Field(..., json_schema_extra=FieldMeta(...))``. Pydantic calls
the :class:`FieldMeta` while building the JSON Schema, so the schemas carry the same keys
(``backends``, ``native``, ``requires``, ``unit``, ``hardware``, ``since``, ``until``) for editors
and ``llem config --schema``; Python readers (introspection, docs, validators) use
:func:`field_meta` and get the typed object back, never a loose dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llenergymeasure.config.base import BACKEND_NAMES, BackendName

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

__all__ = ["FieldMeta", "RequiredValue", "field_meta"]

RequiredValue = bool | int | float | str
"""A value a prerequisite (``requires``) sets."""


@dataclass(frozen=True)
class FieldMeta:
    """Metadata of one config field (every attribute optional).

    Attributes:
        backends: the backends whose API has the field, or None to inherit it (nested fields
            take the nearest enclosing declaration; a field of a backend section belongs to
            that backend; otherwise every backend).
        native: backend -> the library's own name for the setting.
        requires: ``{"dotted.path": value}`` settings a validator demands before this field
            may be set (inherited by nested fields); introspection applies them.
        unit: unit of a number (``tokens``, ``bytes``, ``fraction``...).
        hardware: hardware some or all values need (``bf16: NVIDIA Ampere or newer``).
        since: the first library version with the setting.
        until: the library version that removed it.
    """

    backends: tuple[BackendName, ...] | None = None
    native: Mapping[str, str] = field(default_factory=dict)
    requires: Mapping[str, RequiredValue] = field(default_factory=dict)
    unit: str | None = None
    hardware: str | None = None
    since: str | None = None
    until: str | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.backends or ()).union(self.native).difference(BACKEND_NAMES))
        if unknown:
            raise ValueError(f"FieldMeta names unknown backends: {', '.join(unknown)}")

    def as_json(self) -> dict[str, Any]:
        """The declared (non-empty) attributes as JSON Schema keywords."""
        values: dict[str, Any] = {
            "backends": list(self.backends) if self.backends is not None else None,
            "native": dict(self.native) or None,
            "requires": dict(self.requires) or None,
            "unit": self.unit,
            "hardware": self.hardware,
            "since": self.since,
            "until": self.until,
        }
        return {key: value for key, value in values.items() if value is not None}

    def __call__(self, schema: dict[str, Any]) -> None:
        """Add the metadata to the field's JSON Schema (pydantic's ``json_schema_extra`` hook)."""
        schema.update(self.as_json())


_NONE = FieldMeta()


def field_meta(info: FieldInfo) -> FieldMeta:
    """The metadata a field declares (an empty :class:`FieldMeta` when it declares none).

    Raises:
        TypeError: the field's ``json_schema_extra`` is something other than a FieldMeta (a
            plain dict would bypass the typed declaration).
    """
    extra = info.json_schema_extra
    if extra is None:
        return _NONE
    if not isinstance(extra, FieldMeta):
        raise TypeError(
            f"declare field metadata as json_schema_extra=FieldMeta(...), not {extra!r}"
        )
    return extra
