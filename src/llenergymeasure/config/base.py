"""What every config section shares: the strict base model and the backend names."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

__all__ = ["BACKEND_NAMES", "ENGINE_BACKENDS", "BackendName"]

BackendName = Literal["pytorch", "vllm", "tensorrt", "server"]
"""An inference backend; each has a config section of the same name. ``server`` measures an
OpenAI-compatible HTTP server instead of running an engine in-process."""

BACKEND_NAMES: tuple[BackendName, ...] = get_args(BackendName)
"""Every backend name, in declaration order (the one list; derived from :data:`BackendName`)."""

ENGINE_BACKENDS: tuple[BackendName, ...] = ("pytorch", "vllm", "tensorrt")
"""The backends that run an inference library in-process (all but ``server``)."""


class _Strict(BaseModel):
    """Base for config sections: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
