"""Inference backends behind one protocol, found through a lazy registry."""

from llenergymeasure.backends.base import Backend, MemoryReading
from llenergymeasure.backends.registry import BACKENDS, backend_status, create_backend

__all__ = [
    "BACKENDS",
    "Backend",
    "MemoryReading",
    "backend_status",
    "create_backend",
]
