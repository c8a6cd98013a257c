"""Fixtures for the energy samplers: a fake powercap tree and a clock the test moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.testing.fake_energy import FakeClock, FakePowercapTree


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now_s=100.0)


@pytest.fixture
def tree(tmp_path: Path) -> FakePowercapTree:
    """Two packages, each with core and dram subzones, plus a psys zone."""
    return FakePowercapTree(tmp_path / "powercap", packages=2, psys=True)
