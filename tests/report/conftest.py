"""The report tests' result directories (see report_fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import Written, write_all


@pytest.fixture
def written(tmp_path: Path) -> Written:
    """A 2 × 3 study (one failed cycle) and experiments solo_a (no telemetry), solo_b."""
    return write_all(tmp_path)
