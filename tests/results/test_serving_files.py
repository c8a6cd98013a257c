"""requests.parquet with the serving columns, files written before them, and
energy_timeline.parquet."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llenergymeasure.errors import ResultsError
from llenergymeasure.results.io import (
    load_energy_timeline,
    load_requests,
    write_energy_timeline,
    write_requests,
)
from llenergymeasure.results.records import RequestRecord

SERVED = [
    RequestRecord(0, 12, 2, 0.003, [0.2, 0.3], [1, 1], 0.3, scheduled_s=0.0, slo_met=True),
    RequestRecord(
        1, 9, 3, 0.9, [1.1, 1.2], [2, 1], 1.2, scheduled_s=0.25, slot_wait_s=0.6, slo_met=False
    ),
    RequestRecord(2, 9, 0, 1.0, [], [], 1.0),  # no schedule, not judged
]


def test_serving_columns_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "requests.parquet"
    write_requests(SERVED, path)

    assert load_requests(path) == SERVED
    rows = pq.read_table(path).to_pylist()
    assert [r["submit_lag_s"] for r in rows] == pytest.approx([0.003, 0.05, None])
    assert [r["slo_met"] for r in rows] == [True, False, None]
    assert [r["slot_wait_s"] for r in rows] == [0.0, 0.6, 0.0]


def test_a_requests_file_from_before_the_serving_columns_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "requests.parquet"
    write_requests(SERVED, path)
    old = pq.read_table(path).drop_columns(
        ["scheduled_s", "slot_wait_s", "submit_lag_s", "slo_met"]
    )
    pq.write_table(old, path)

    loaded = load_requests(path)
    assert [r.scheduled_s for r in loaded] == [None] * 3
    assert [r.slot_wait_s for r in loaded] == [0.0] * 3
    assert [r.slo_met for r in loaded] == [None] * 3
    assert [r.chunk_times_s for r in loaded] == [r.chunk_times_s for r in SERVED]


def test_the_energy_timeline_round_trips_per_domain(tmp_path: Path) -> None:
    points = {"gpu:0": [(0.0, 0.0), (0.1, 30.0), (0.2, 61.0)], "gpu:1": [(0.0, 0.0), (0.15, 20.0)]}
    path = tmp_path / "energy_timeline.parquet"
    write_energy_timeline(points, path)

    assert pq.read_table(path).column_names == ["domain", "t_s", "energy_j"]
    assert load_energy_timeline(tmp_path) == points


def test_a_missing_or_foreign_energy_timeline_is_a_results_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="cannot read the energy timeline"):
        load_energy_timeline(tmp_path)
    pq.write_table(pa.table({"x": [1]}), tmp_path / "energy_timeline.parquet")
    with pytest.raises(ResultsError, match="not an energy timeline"):
        load_energy_timeline(tmp_path)
