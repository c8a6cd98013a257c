"""Telemetry: a background poller recording device state over the whole experiment."""

from llenergymeasure.telemetry.poller import (
    CpuTelemetrySource,
    TelemetryPoller,
    TelemetrySample,
    TelemetrySource,
    summarise,
)

__all__ = [
    "CpuTelemetrySource",
    "TelemetryPoller",
    "TelemetrySample",
    "TelemetrySource",
    "summarise",
]
