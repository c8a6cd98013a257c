"""What every config section shares: the strict base model and the backend names."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

__all__ = ["BACKEND_NAMES", "BackendName"]

BackendName = Literal["pytorch", "vllm", "tensorrt"]
"""An inference backend; each has a config section of the same name."""

BACKEND_NAMES: tuple[BackendName, ...] = get_args(BackendName)
"""Every backend name, in declaration order (the one list; derived from :data:`BackendName`)."""


class _Strict(BaseModel):
    """Base for config sections: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
