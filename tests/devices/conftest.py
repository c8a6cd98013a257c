"""Fixtures for the device layer: a clock the test moves, and no CUDA_VISIBLE_DEVICES leak."""

from __future__ import annotations

import pytest

from llenergymeasure.testing.fake_energy import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now_s=50.0)


@pytest.fixture(autouse=True)
def _all_devices_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set CUDA_VISIBLE_DEVICES themselves; the machine's value must not leak in."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
