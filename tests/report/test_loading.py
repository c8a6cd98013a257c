"""llem.load_results: one row per experiment × cycle from any mix of paths, values exactly as
in result.json, older files' missing fields as null, clear errors for bad paths."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import Written

import llenergymeasure as llem
from llenergymeasure.errors import ConfigError
from llenergymeasure.reporting.loading import METRIC_PATHS, dig


def same(frame_value: Any, json_value: Any) -> bool:
    if json_value is None:
        return frame_value is None or (isinstance(frame_value, float) and math.isnan(frame_value))
    return bool(frame_value == json_value)


def test_values_round_trip_from_result_json(written: Written) -> None:
    frame = llem.load_results([written.study, written.experiment_a, written.experiment_b])
    done = frame[frame["status"] == "done"]
    assert len(done) == 7  # 3 + 2 study cycles, 2 experiments
    for _, row in done.iterrows():
        raw = json.loads((Path(row["result_dir"]) / "result.json").read_text())
        for column, path in METRIC_PATHS.items():
            assert same(row[column], dig(raw, path)), (column, row[column], dig(raw, path))
        assert row["warning_codes"] == ",".join(w["code"] for w in raw["warnings"])
        batch_size = dig(raw, ("config", "pytorch", "batch_size"))
        assert same(row.get("config.pytorch.batch_size"), batch_size)


def test_one_row_per_experiment_and_cycle_with_identity(written: Written) -> None:
    frame = llem.load_results([written.study, written.experiment_b])
    assert list(frame["configuration"]) == ["demo_bs1"] * 3 + ["demo_bs8"] * 3 + ["solo_b"]
    assert list(frame["cycle_index"]) == [0, 1, 2, 0, 1, 2, 0]
    failed = frame[frame["status"] == "failed"].iloc[0]
    assert (failed["configuration"], failed["cycle_index"], failed["error"]) == (
        "demo_bs8",
        1,
        "RuntimeError: boom",
    )
    assert math.isnan(failed["energy_total_j"])
    assert frame["timeseries_file"].iloc[-1] == str(written.experiment_b / "timeseries.parquet")
    assert frame["experiment_index"].iloc[-1] is __import__("pandas").NA


def test_folders_and_files_are_searched_in_any_mix(written: Written) -> None:
    from_parent = llem.load_results(written.study.parent)  # study + solo/ (two experiments)
    from_files = llem.load_results(
        [written.study / "results.parquet", str(written.experiment_a / "result.json")]
    )
    assert len(from_parent) == 8 and set(from_parent["configuration"]) >= {"solo_a", "solo_b"}
    assert list(from_files["configuration"]).count("solo_a") == 1 and len(from_files) == 7


def test_fields_missing_from_older_results_load_as_null(written: Written) -> None:
    file = written.experiment_a / "result.json"
    data = json.loads(file.read_text())
    del data["telemetry"], data["flops"], data["metrics"]["ttft"]["p99_s"]
    data["a_field_from_the_future"] = {"x": 1}
    file.write_text(json.dumps(data))
    row = llem.load_results(written.experiment_a).iloc[0]
    for column in ("telemetry_mean_power_w", "mfu", "ttft_p99_s"):
        assert row[column] is None or math.isnan(row[column])
    assert row["energy_total_j"] == 20.0


def test_same_experiment_names_in_two_places_get_distinct_labels(
    written: Written, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "elsewhere" / written.experiment_b.name
    shutil.copytree(written.experiment_b, copy)
    frame = llem.load_results([written.experiment_b, copy])
    assert frame["configuration"].nunique() == 2
    assert all("/" in label for label in frame["configuration"])


def test_bad_paths_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or directory"):
        llem.load_results(tmp_path / "missing")
    (tmp_path / "empty" / ".staging-x").mkdir(parents=True)
    (tmp_path / "empty" / ".staging-x" / "result.json").write_text("{}")
    with pytest.raises(ConfigError, match="no results found"):
        llem.load_results(tmp_path / "empty")
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "manifest.json").write_text("{}")
    with pytest.raises(ConfigError, match="--resume"):
        llem.load_results(tmp_path / "unfinished")
    with pytest.raises(ConfigError, match="no results given"):
        llem.load_results([])
