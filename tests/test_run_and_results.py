"""End to end through the library on a tiny model: result files, round trip, never overwrite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import llenergymeasure as llem
from llenergymeasure.results import load_requests
from llenergymeasure.results.io import RESULT_FILE

pytest.importorskip("transformers")


def tiny(model_dir: Path, **fields: Any) -> dict[str, Any]:
    return {
        "model": str(model_dir),
        "n": 6,
        "max_output_tokens": 5,
        "chat_template": False,
        "warmup": {"n_warmup": 1, "max_output_tokens": 2},
        "energy": {"sampler": "null"},
        "pytorch": {"batch_size": 4},
        **fields,
    }


def test_run_writes_a_result_that_round_trips(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = llem.run(tiny(tiny_model_dir), out_dir=tmp_path)
    folder = Path(result.output_dir or "")
    assert folder.parent == tmp_path and (folder / RESULT_FILE).is_file()

    loaded = llem.load_result(folder)
    assert loaded == result
    assert loaded.metrics.n_requests == 6 and loaded.metrics.total_output_tokens > 0
    assert loaded.measurement_method == "null" and loaded.energy_total_j is None
    assert {w.code for w in loaded.warnings} >= {"no_energy_source", "short_window"}
    # an offline run: no serving section, and the null sampler keeps no energy timeline
    assert loaded.serving is None and loaded.energy_timeline_file is None

    timeseries = pq.read_table(folder / "timeseries.parquet").to_pylist()
    assert loaded.timeseries_file == "timeseries.parquet" and timeseries
    assert {"load", "warmup", "window"} <= {row["phase"] for row in timeseries}
    assert {row["device"] for row in timeseries} == {"cpu", "contention"}
    assert loaded.telemetry is not None and loaded.telemetry.devices == ["cpu"]

    records = load_requests(folder)
    assert sum(r.output_tokens for r in records) == loaded.metrics.total_output_tokens
    assert all(0 <= r.submit_s < r.end_s <= loaded.metrics.duration_s + 1e-6 for r in records)
    assert all(r.scheduled_s is None and r.slo_met is None for r in records)


def test_loading_tolerates_missing_and_unknown_fields(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = llem.run(tiny(tiny_model_dir, n=2), out_dir=tmp_path)
    file = Path(result.output_dir or "") / RESULT_FILE
    data = json.loads(file.read_text())
    del data["timeseries_file"]
    data["field_from_the_future"] = 1
    file.write_text(json.dumps(data))
    assert llem.load_result(file).timeseries_file is None


def test_two_runs_never_overwrite(tiny_model_dir: Path, tmp_path: Path) -> None:
    first = llem.run(tiny(tiny_model_dir, n=2, name="same"), out_dir=tmp_path)
    second = llem.run(tiny(tiny_model_dir, n=2, name="same"), out_dir=tmp_path)
    assert first.output_dir != second.output_dir
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 2
    assert not any(p.name.startswith(".staging") for p in tmp_path.iterdir())


def test_load_result_of_a_missing_path_is_a_results_error(tmp_path: Path) -> None:
    with pytest.raises(llem.ResultsError, match="no result found"):
        llem.load_result(tmp_path / "nothing")
