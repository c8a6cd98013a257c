"""Inference backends behind one protocol, found through a lazy registry."""

from llenergymeasure.backends.base import Backend, MemoryReading, RequestRecord
from llenergymeasure.backends.registry import BACKENDS, backend_status, create_backend

__all__ = [
    "BACKENDS",
    "Backend",
    "MemoryReading",
    "RequestRecord",
    "backend_status",
    "create_backend",
]
