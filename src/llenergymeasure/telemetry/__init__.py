"""Telemetry: a background poller recording device state over the whole experiment."""

from llenergymeasure.telemetry.poller import (
    CpuTelemetrySource,
    GpuTelemetrySource,
    TelemetryPoller,
    TelemetrySource,
    default_sources,
    summarise,
)

__all__ = [
    "CpuTelemetrySource",
    "GpuTelemetrySource",
    "TelemetryPoller",
    "TelemetrySource",
    "default_sources",
    "summarise",
]
