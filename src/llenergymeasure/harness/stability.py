"""Wait, after warmup, until device temperature and power have settled."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llenergymeasure.config.models import WarmupConfig
from llenergymeasure.results.records import TelemetrySample
from llenergymeasure.telemetry import TelemetryPoller


def is_stable(samples: Sequence[TelemetrySample], settings: WarmupConfig) -> bool | None:
    """Whether every device's temperature and power stayed within tolerance.

    Returns None when the samples carry neither temperature nor power (e.g. CPU telemetry),
    so stability cannot be judged.
    """
    by_device: dict[str, list[TelemetrySample]] = {}
    for sample in samples:
        by_device.setdefault(sample.device, []).append(sample)
    verdicts = [_device_stable(rows, settings) for rows in by_device.values()]
    judged = [v for v in verdicts if v is not None]
    return all(judged) if judged else None


def _device_stable(rows: Sequence[TelemetrySample], settings: WarmupConfig) -> bool | None:
    temps = [r.temperature_c for r in rows if r.temperature_c is not None]
    power = [r.power_w for r in rows if r.power_w is not None]
    if len(temps) < 2 and len(power) < 2:
        return None
    temp_ok = len(temps) < 2 or max(temps) - min(temps) < settings.stabilise_temperature_c
    mean_power = sum(power) / len(power) if power else 0.0
    power_ok = (
        len(power) < 2
        or mean_power <= 0
        or (max(power) - min(power)) / mean_power * 100 < settings.stabilise_power_pct
    )
    return temp_ok and power_ok


def wait_until_stable(
    poller: TelemetryPoller,
    settings: WarmupConfig,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> bool | None:
    """Poll until stable or ``stabilise_timeout_s`` passes.

    Returns:
        True when stable, False on timeout, None when stability cannot be judged (or the
        wait is disabled).
    """
    if settings.stabilise_timeout_s <= 0:
        return None
    started = clock()
    while True:
        now = clock()
        verdict = is_stable(poller.since(now - settings.stabilise_window_s), settings)
        if now - started >= settings.stabilise_timeout_s:
            return verdict
        # Judge only a full window: a short span always looks flat.
        if now - started >= settings.stabilise_window_s and verdict is not False:
            return verdict
        sleep(min(1.0, settings.stabilise_window_s / 5))
