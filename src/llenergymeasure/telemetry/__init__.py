"""Telemetry: a background poller recording device state over the whole experiment, and
other work on the machine."""

from llenergymeasure.telemetry.contention import CONTENTION_DEVICE, ContentionSource
from llenergymeasure.telemetry.poller import (
    CpuTelemetrySource,
    GpuTelemetrySource,
    TelemetryPoller,
    TelemetrySource,
    default_sources,
    summarise,
)

__all__ = [
    "CONTENTION_DEVICE",
    "ContentionSource",
    "CpuTelemetrySource",
    "GpuTelemetrySource",
    "TelemetryPoller",
    "TelemetrySource",
    "default_sources",
    "summarise",
]
