"""Translate what torch and transformers raise into llenergymeasure's errors (the boundary).

Loading and generating can fail with many vendor types; each becomes a ``ConfigError`` when the
configuration is at fault (an unknown ``pytorch.model_kwargs`` key), a ``BackendError`` that
says which memory ran out and what to lower, or a ``BackendError`` keeping the original type
and message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from llenergymeasure.backends.base import first_line
from llenergymeasure.backends.model_source import ModelSource
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import BackendError, ConfigError, LLEMError, ModelNotFoundError

OUT_OF_MEMORY_MESSAGES = ("out of memory", "not enough memory", "can't allocate memory")
"""Lower-cased message parts of a RuntimeError that reports exhausted memory (CUDA, MPS, the
CPU allocator)."""

_UNEXPECTED_KWARG = re.compile(r"unexpected keyword argument '([^']+)'")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` reports exhausted GPU or CPU memory."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m in text for m in OUT_OF_MEMORY_MESSAGES)


def memory_kind(exc: BaseException, device_type: str) -> str:
    """``"GPU"`` or ``"CPU"``: which memory an out-of-memory error is about."""
    if isinstance(exc, MemoryError):
        return "CPU"
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "cuda" in str(exc).lower():
        return "GPU"
    return "CPU" if device_type == "cpu" else "GPU"


def load_error(
    exc: Exception, config: ExperimentConfig, source: ModelSource, device_type: str
) -> LLEMError:
    """The error to raise for ``exc``, raised while loading ``source``'s model and tokenizer.

    Args:
        exc: what torch, transformers or accelerate raised.
        config: the experiment being loaded.
        source: where the model comes from (a hub id that fails to load is not found).
        device_type: where the model was going (``"cuda"`` or ``"cpu"``).
    """
    if is_out_of_memory(exc):
        return BackendError(
            f"{memory_kind(exc, device_type)} memory ran out while loading model "
            f"'{source.spec}' ({first_line(exc)}); use a smaller precision (now "
            f"{config.precision}), 8- or 4-bit loading (pytorch.load_in_8bit / load_in_4bit) "
            "or a smaller model"
        )
    if isinstance(exc, TypeError):
        key = unknown_model_kwarg(exc, config.pytorch_options.model_kwargs)
        if key is not None:
            return ConfigError(
                f"pytorch.model_kwargs.{key}: neither from_pretrained nor the model accepts it "
                f"({first_line(exc)}); remove it or correct its name"
            )
    if isinstance(exc, (OSError, ValueError)) and source.kind == "hub":
        return ModelNotFoundError(
            f"model '{source.spec}' could not be loaded from the Hugging Face hub or its "
            f"local cache ({first_line(exc)}); check the id, your network, or HF_TOKEN"
        )
    return BackendError(f"model '{source.spec}' failed to load: {_described(exc)}")


def unknown_model_kwarg(exc: TypeError, model_kwargs: Mapping[str, Any]) -> str | None:
    """The ``model_kwargs`` key a TypeError names as an unexpected keyword argument, if any."""
    match = _UNEXPECTED_KWARG.search(str(exc))
    return match[1] if match is not None and match[1] in model_kwargs else None


def generate_error(exc: Exception, config: ExperimentConfig, device_type: str) -> BackendError:
    """The error to raise for ``exc``, raised by ``generate`` on a model on ``device_type``."""
    if is_out_of_memory(exc):
        return BackendError(
            f"{memory_kind(exc, device_type)} memory ran out while generating "
            f"({first_line(exc)}); lower pytorch.batch_size (now "
            f"{config.pytorch_options.batch_size}), max_output_tokens (now "
            f"{config.max_output_tokens}) or max_input_tokens (now {config.max_input_tokens}), "
            f"or use a smaller precision (now {config.precision})"
        )
    return BackendError(f"transformers generate failed: {_described(exc)}")


def _described(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"
