"""The one walk over the fields of nested config models, by dotted path.

A field is a *section* when its annotation is a model or a union holding one (``X | None``);
its fields follow it, under ``section.``. Containers of models (``list[X]``, ``dict[str, X]``)
are leaves: their items have no dotted path. Introspection, the study loader's key checks and
error messages all walk the models this way.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

__all__ = ["ModelField", "model_at", "nested_model", "walk_fields"]


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model class ``annotation`` is, or the first one among its union members."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            found = nested_model(member)
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class ModelField:
    """One field met on the walk."""

    path: str
    """Dotted path from the root model (``tensorrt.kv_cache_config.dtype``)."""
    chain: tuple[FieldInfo, ...]
    """The fields leading here, outermost first; the last is this field."""
    section: type[BaseModel] | None
    """The model this field holds (its fields follow it on the walk); None for a leaf."""

    @property
    def info(self) -> FieldInfo:
        """This field's own FieldInfo."""
        return self.chain[-1]

    @property
    def is_leaf(self) -> bool:
        """True when the field holds no nested model."""
        return self.section is None


def walk_fields(model: type[BaseModel]) -> Iterator[ModelField]:
    """Every field of ``model`` and of its sections, depth first in declaration order; a
    section comes before its own fields."""
    yield from _walk(model, "", ())


def _walk(
    model: type[BaseModel], prefix: str, chain: tuple[FieldInfo, ...]
) -> Iterator[ModelField]:
    for name, info in model.model_fields.items():
        here = ModelField(f"{prefix}{name}", (*chain, info), nested_model(info.annotation))
        yield here
        if here.section is not None:
            yield from _walk(here.section, f"{here.path}.", here.chain)


def model_at(model: type[BaseModel], parts: Sequence[object]) -> type[BaseModel] | None:
    """The section model reached by following the field names ``parts`` from ``model``
    (``model`` itself for none); None when a part is not a field name or not a section."""
    current: type[BaseModel] | None = model
    for part in parts:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        current = nested_model(current.model_fields[part].annotation)
    return current
