"""Load results into one pandas DataFrame: one row per experiment × cycle.

Built on the files runs already write: an experiment directory's ``result.json`` and a study
directory's ``results.parquet`` (its entries, statuses and ``config.*`` columns), with each done
entry's metrics read from its ``result.json``. Paths may be experiment directories, study
directories, ``result.json`` / ``results.parquet`` files, or folders holding any of these
(searched recursively, following symbolic links but never into a folder already seen; hidden
folders such as staging directories are skipped). Fields a result does not have (written by an
older version) load as null. A file that cannot be read (corrupt, truncated) skips its run or
study with a note naming it, and the rest load.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llenergymeasure.config.dotted import flatten  # results.parquet's own rule
from llenergymeasure.errors import ConfigError, ResultsError
from llenergymeasure.reporting.deps import require
from llenergymeasure.results.io import RESULT_FILE, load_result
from llenergymeasure.results.study import STUDY_RESULT_FILE, STUDY_TABLE_FILE
from llenergymeasure.study.manifest import MANIFEST_FILE, result_dirs

UNREADABLE = "unreadable"
"""Key of ``DataFrame.attrs`` listing the runs and studies skipped as unreadable (one line each)."""

# Metric columns (units in the names) -> where each value sits in result.json.
METRIC_PATHS: dict[str, tuple[str, ...]] = {
    "energy_total_j": ("energy", "energy_total_j"),
    "energy_adjusted_j": ("energy", "energy_adjusted_j"),
    "energy_uncertainty_j": ("energy", "uncertainty_j"),
    "energy_duration_s": ("energy", "duration_s"),
    "energy_sample_count": ("energy", "sample_count"),
    "energy_method": ("energy", "method"),
    "energy_is_estimate": ("energy", "is_estimate"),
    "baseline_power_w": ("energy", "baseline_power_w"),
    "co2_kg": ("energy", "co2_kg"),
    "measurement_method": ("measurement_method",),
    "energy_per_output_token_j": ("metrics", "energy_per_output_token_j"),
    "energy_per_output_token_adjusted_j": ("metrics", "energy_per_output_token_adjusted_j"),
    "energy_per_request_j": ("metrics", "energy_per_request_j"),
    "energy_per_request_adjusted_j": ("metrics", "energy_per_request_adjusted_j"),
    "energy_per_total_token_j": ("metrics", "energy_per_total_token_j"),
    "energy_per_total_token_adjusted_j": ("metrics", "energy_per_total_token_adjusted_j"),
    "energy_per_1k_requests_wh": ("metrics", "energy_per_1k_requests_wh"),
    "energy_per_1k_requests_adjusted_wh": ("metrics", "energy_per_1k_requests_adjusted_wh"),
    # the energy attribution (null without an energy timeline)
    "prefill_energy_j": ("attribution", "prefill_energy_j"),
    "decode_energy_j": ("attribution", "decode_energy_j"),
    "overhead_energy_j": ("attribution", "overhead_energy_j"),
    "energy_per_prompt_token_j": ("attribution", "energy_per_prompt_token_j"),
    "energy_per_decode_token_j": ("attribution", "energy_per_decode_token_j"),
    "request_energy_mean_j": ("attribution", "per_request", "mean_j"),
    "request_energy_median_j": ("attribution", "per_request", "median_j"),
    "request_energy_p95_j": ("attribution", "per_request", "p95_j"),
    "output_tokens_per_s": ("metrics", "output_tokens_per_s"),
    "input_tokens_per_s": ("metrics", "input_tokens_per_s"),
    "requests_per_s": ("metrics", "requests_per_s"),
    "duration_s": ("metrics", "duration_s"),
    "n_requests": ("metrics", "n_requests"),
    "n_failed_requests": ("metrics", "n_failed"),
    "error_rate": ("metrics", "error_rate"),
    "total_input_tokens": ("metrics", "total_input_tokens"),
    "total_output_tokens": ("metrics", "total_output_tokens"),
    "peak_memory_mb": ("metrics", "peak_memory_mb"),
    **{
        f"{name}_{stat}_s": ("metrics", key, f"{stat}_s")
        for name, key in (
            ("ttft", "ttft"),
            ("itl", "itl"),
            ("tpot", "tpot"),
            ("e2e", "e2e_latency"),
        )
        for stat in ("mean", "median", "p95", "p99")
    },
    # serving runs (load.mode rate or concurrency); null for offline ones
    "load_mode": ("serving", "mode"),
    "request_rate_rps": ("serving", "requested_rate_rps"),
    "scheduled_rate_rps": ("serving", "scheduled_rate_rps"),
    "achieved_rate_rps": ("serving", "achieved_rate_rps"),
    "max_concurrency": ("serving", "max_concurrency"),
    "submit_lag_p99_s": ("serving", "submit_lag", "p99_s"),
    "mean_in_flight": ("serving", "mean_in_flight"),
    "steady_state_duration_s": ("serving", "steady_state", "duration_s"),
    "steady_state_energy_j": ("serving", "steady_state", "energy_j"),
    "steady_state_energy_per_request_j": ("serving", "steady_state", "energy_per_request_j"),
    "steady_state_energy_per_output_token_j": (
        "serving",
        "steady_state",
        "energy_per_output_token_j",
    ),
    "steady_state_output_tokens_per_s": ("serving", "steady_state", "output_tokens_per_s"),
    "steady_state_note": ("serving", "steady_state_note"),
    "steady_state_energy_note": ("serving", "steady_state", "energy_note"),
    "goodput_rps": ("serving", "goodput", "goodput_rps"),
    "good_fraction": ("serving", "goodput", "good_fraction"),
    "energy_per_good_request_j": ("serving", "goodput", "energy_per_good_request_j"),
    "telemetry_mean_power_w": ("telemetry", "mean_power_w"),
    "telemetry_max_power_w": ("telemetry", "max_power_w"),
    "telemetry_max_temperature_c": ("telemetry", "max_temperature_c"),
    "telemetry_temperature_drift_c": ("telemetry", "temperature_drift_c"),
    "telemetry_mean_utilisation_pct": ("telemetry", "mean_utilisation_pct"),
    "flops_total": ("flops", "flops_total"),
    "energy_per_flop_j": ("flops", "energy_per_flop_j"),
    "mfu": ("flops", "mfu"),
    "mbu": ("flops", "mbu"),
    "model_load_s": ("timings", "model_load_s"),
    "warmup_s": ("timings", "warmup_s"),
    "window_s": ("timings", "window_s"),
    "device": ("model", "device"),
    "dtype": ("model", "dtype"),
    "llem_version": ("llem_version",),
    "schema_version": ("schema_version",),
    "measurement_config_hash": ("measurement_config_hash",),
    "started_at": ("started_at",),
}

IDENTITY_COLUMNS = (
    "configuration",
    "study_dir",
    "experiment_index",
    "experiment_name",
    "cycle_index",
    "status",
    "error",
    "result_dir",
)


@dataclass(frozen=True)
class Source:
    """A study directory or an experiment's ``result.json`` found among the given paths."""

    kind: Literal["study", "experiment"]
    path: Path


def load_results(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> Any:
    """Load experiments and studies into one DataFrame, one row per experiment × cycle.

    Args:
        paths: experiment directories, study directories, ``result.json`` or
            ``results.parquet`` files, or folders holding them, in any mix.

    Returns:
        A pandas DataFrame. Identity columns: ``configuration`` (a label unique per
        configuration: a study's experiment, or one experiment directory), ``study_dir``,
        ``experiment_index``, ``experiment_name``, ``cycle_index``, ``status``, ``error``,
        ``result_dir`` (absolute). Config fields as ``config.<dotted.path>`` columns. Metric
        columns with the unit in the name (``energy_total_j``, ``output_tokens_per_s``,
        ``ttft_p95_s``, ...; see :data:`METRIC_PATHS`; every energy denominator raw and
        idle-adjusted; the energy attribution's ``prefill_energy_j``, ``decode_energy_j``,
        ``overhead_energy_j``, ``energy_per_prompt_token_j``, ``energy_per_decode_token_j``
        and ``request_energy_{mean,median,p95}_j``, null without one; ``n_requests`` counts the
        completed requests, ``n_failed_requests`` and ``error_rate`` the failed ones; a serving
        run's load and steady-state figures as ``load_mode``, ``request_rate_rps`` (inf = all
        at once), ``steady_state_*``, ``goodput_rps``..., null for an offline run),
        ``warning_codes``
        (comma-separated), ``timeseries_file`` (absolute, or null). Failed or pending study
        entries have null metrics. ``frame.attrs["unreadable"]`` lists what was skipped
        because a file could not be read (a standalone run, a study's ``results.parquet``, or
        one done cycle's ``result.json``), one line each naming the file.

    Raises:
        ConfigError: a path does not exist, or holds no results (exit 2).
        DependencyError: pandas is not installed.
        ResultsError: every result found is unreadable (each named).
    """
    pd = require("pandas")
    rows: list[dict[str, Any]] = []
    unreadable: list[str] = []
    for source in find_sources(paths):
        try:
            if source.kind == "study":
                rows.extend(_study_rows(source.path, unreadable))
            else:
                rows.append(_run_row(source.path))
        except ResultsError as exc:
            unreadable.append(str(exc))
    if not rows:
        raise ResultsError("nothing readable to report: " + "; ".join(unreadable))
    frame = pd.DataFrame(rows)
    frame["configuration"] = configuration_labels(rows)
    frame["experiment_index"] = frame["experiment_index"].astype("Int64")
    first = [c for c in IDENTITY_COLUMNS if c in frame.columns]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    frame.attrs[UNREADABLE] = unreadable
    return frame


def find_sources(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Source]:
    """Every study directory and experiment result among ``paths``, in the order given.

    Raises:
        ConfigError: a path does not exist or holds no results.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise ConfigError("no results given: pass experiment or study directories")
    sources: list[Source] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise ConfigError(f"{path}: no such file or directory")
        found = list(_sources_in(path, set()))
        if not found:
            raise ConfigError(
                f"{path}: no results found (expected an experiment directory with "
                f"{RESULT_FILE}, a study directory with {STUDY_TABLE_FILE}, or such a file)"
            )
        sources.extend(s for s in found if s not in sources)
    return sources


def _sources_in(path: Path, seen: set[Path]) -> Iterator[Source]:
    """The sources in ``path``; ``seen`` holds the real paths of the folders already searched,
    so a symbolic link back up the tree (``self -> .``, ``parent -> ..``) ends the descent."""
    if path.is_file():
        if path.name in (STUDY_TABLE_FILE, STUDY_RESULT_FILE, MANIFEST_FILE):
            yield from _sources_in(path.parent, seen)
        else:
            yield Source("experiment", path.resolve())
        return
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a dangling link or a loop of links
        return
    if real in seen:
        return
    seen.add(real)
    if (path / RESULT_FILE).is_file():
        yield Source("experiment", (path / RESULT_FILE).resolve())
    elif (path / STUDY_TABLE_FILE).is_file():
        yield Source("study", path.resolve())
    elif (path / MANIFEST_FILE).is_file():
        raise ConfigError(
            f"{path}: study without {STUDY_TABLE_FILE} (interrupted?): finish it with "
            f"`llem run STUDY.yaml --resume {path}`"
        )
    else:
        runs = _study_runs(path)
        for child in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if runs is not None and (child / RESULT_FILE).is_file() and child.resolve() not in runs:
                continue  # no entry points to it (an interrupted study's): not a study result
            yield from _sources_in(child, seen)


def _study_runs(folder: Path) -> set[Path] | None:
    """The runs of the study whose ``runs/`` folder ``folder`` is (None if it is not one)."""
    if not (folder.parent / MANIFEST_FILE).is_file():
        return None
    return result_dirs(folder.parent)


def _run_row(result_file: Path) -> dict[str, Any]:
    """One row for a standalone experiment: identity, flattened config, metrics."""
    data = load_result(result_file).model_dump(mode="json")
    run_dir = result_file.parent
    return {
        "study_dir": None,
        "experiment_index": None,
        "experiment_name": data["config"].get("name") or run_dir.name,
        "cycle_index": 0,
        "status": "done",
        "error": None,
        "result_dir": str(run_dir),
        **flatten(data["config"], "config"),
        **_metrics(data, run_dir),
    }


def _study_rows(study_dir: Path, unreadable: list[str]) -> list[dict[str, Any]]:
    """The rows of a study's ``results.parquet``, metrics taken from each done run's
    ``result.json`` (a cycle whose file is unreadable is left out and noted in ``unreadable``).

    Raises:
        ResultsError: ``results.parquet`` cannot be read.
    """
    pa = require("pyarrow")
    pq = require("pyarrow.parquet")
    file = study_dir / STUDY_TABLE_FILE
    try:
        table = pq.read_table(file).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(f"{file}: not a readable study table ({exc})") from None
    rows = []
    for entry in table:
        row = {key: value for key, value in entry.items() if key.startswith("config.")}
        run_dir = study_dir / entry["result_dir"] if entry.get("result_dir") else None
        row.update(
            study_dir=str(study_dir),
            experiment_index=entry.get("experiment_index"),
            experiment_name=entry.get("experiment_name"),
            cycle_index=entry.get("cycle_index"),
            status=entry.get("status"),
            error=entry.get("error"),
            result_dir=str(run_dir) if run_dir is not None else None,
        )
        if entry.get("status") == "done" and run_dir is not None:
            try:
                row.update(_metrics(load_result(run_dir).model_dump(mode="json"), run_dir))
            except ResultsError as exc:
                unreadable.append(str(exc))
                continue
        rows.append(row)
    return rows


def _metrics(data: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    values = {name: dig(data, path) for name, path in METRIC_PATHS.items()}
    values["warning_codes"] = ",".join(w["code"] for w in data.get("warnings") or [])
    timeseries = data.get("timeseries_file")
    values["timeseries_file"] = str(run_dir / timeseries) if timeseries else None
    return values


def dig(data: Mapping[str, Any], path: Sequence[str]) -> Any:
    """The value at ``path`` in nested mappings, or None where any step is missing."""
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def configuration_key(row: Mapping[str, Any]) -> str:
    """What identifies a configuration: a study's experiment, or one result directory."""
    if row.get("study_dir"):
        return f"{row['study_dir']}#{row['experiment_index']}"
    return str(row["result_dir"])


def configuration_labels(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """A short label per row's configuration: the experiment's name where that is unique,
    else (for the clashing ones) qualified by the study or run directory, then its parent."""
    keys = list(dict.fromkeys(configuration_key(r) for r in rows))
    candidates = {configuration_key(r): _candidates(r) for r in rows}
    level = dict.fromkeys(keys, 0)
    for _ in range(3):
        labels = {k: candidates[k][min(level[k], 2)] for k in keys}
        clashing = [k for k in keys if list(labels.values()).count(labels[k]) > 1]
        for key in clashing:
            level[key] += 1
    labels = {k: candidates[k][min(level[k], 2)] for k in keys}
    return [labels[configuration_key(r)] for r in rows]


def _candidates(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """Ever longer labels: the experiment name, then with its directory, then its parent."""
    name = str(row["experiment_name"])
    if row.get("study_dir"):
        study = Path(str(row["study_dir"]))
        return name, f"{study.name}/{name}", f"{study.parent.name}/{study.name}/{name}"
    run_dir = Path(str(row["result_dir"]))
    return name, run_dir.name, f"{run_dir.parent.name}/{run_dir.name}"
