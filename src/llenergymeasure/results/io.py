"""Write and read result directories.

A run's directory appears whole or not at all: files are written into a hidden staging
directory beside the target, then renamed. An existing directory is never overwritten; a
name collision gets a numeric suffix. :func:`check_out_dir` tells, before anything runs,
whether result directories can be written under a folder at all.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from llenergymeasure.config.study import safe_name
from llenergymeasure.errors import ConfigError, ResultsError, describe_os_error
from llenergymeasure.fileio import fsync_dir, fsync_tree, make_shareable, numbered_paths
from llenergymeasure.results.models import ExperimentResult
from llenergymeasure.results.records import RequestRecord, TelemetrySample

if TYPE_CHECKING:  # pyarrow (a third of a second) loads only when a Parquet file is touched
    import pyarrow as pa

RESULT_FILE = "result.json"
REQUESTS_FILE = "requests.parquet"
TIMESERIES_FILE = "timeseries.parquet"
ENERGY_TIMELINE_FILE = "energy_timeline.parquet"

EnergyPoints = Mapping[str, Sequence[tuple[float, float]]]
"""Per energy domain, ``(t_s, cumulative_j)`` points in time order (an energy timeline)."""


def _request_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("index", pa.int64()),
            ("input_tokens", pa.int64()),
            ("output_tokens", pa.int64()),
            ("submit_s", pa.float64()),
            ("end_s", pa.float64()),
            ("ttft_s", pa.float64()),
            ("e2e_s", pa.float64()),
            ("tpot_s", pa.float64()),
            ("chunk_times_s", pa.list_(pa.float64())),
            ("chunk_tokens", pa.list_(pa.int64())),
            ("scheduled_s", pa.float64()),
            ("slot_wait_s", pa.float64()),
            ("submit_lag_s", pa.float64()),
            ("slo_met", pa.bool_()),
            ("error", pa.string()),
            ("energy_j", pa.float64()),
            ("prefill_energy_j", pa.float64()),
            ("decode_energy_j", pa.float64()),
            ("overhead_energy_j", pa.float64()),
        ]
    )


def _energy_timeline_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("domain", pa.string()), ("t_s", pa.float64()), ("energy_j", pa.float64())])


def _timeseries_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("timestamp_s", pa.float64()),
            ("device", pa.string()),
            ("phase", pa.string()),
            ("power_w", pa.float64()),
            ("temperature_c", pa.float64()),
            ("memory_used_mb", pa.float64()),
            ("utilisation_pct", pa.float64()),
            ("clock_mhz", pa.float64()),
            ("throttle_reasons", pa.string()),
            ("throttled", pa.bool_()),
            ("requests_running", pa.int64()),
            ("requests_waiting", pa.int64()),
            ("kv_cache_usage_pct", pa.float64()),
            ("foreign_cpu_pct", pa.float64()),
            ("foreign_gpu_processes", pa.int64()),
        ]
    )


PROBE_BYTES = 1 << 20
"""What :func:`check_out_dir` writes (and removes) to find a full disk before a run."""


def run_dir_name(label: str, result: ExperimentResult) -> str:
    """``<label>_<UTC timestamp>`` with the label made safe and short (``safe_name``)."""
    return f"{safe_name(label)}_{result.started_at.strftime('%Y%m%dT%H%M%S')}"


def check_out_dir(root: str | os.PathLike[str]) -> None:
    """Fail now, before a model loads, if result directories cannot be written under ``root``.

    Creates nothing that stays: where ``root`` does not exist yet, its nearest existing
    ancestor is checked (and each missing name's length), since a run creates the rest. There
    a hidden directory is made holding a :data:`PROBE_BYTES` file (written and fsynced), then
    removed, so a read-only or full filesystem and a missing permission show up here.

    Raises:
        ConfigError: ``root`` (or an ancestor) is a file, a name is too long for the
            filesystem, or it is read-only, not writable or full; the message names the path.
    """
    target = Path(root).expanduser()
    existing, missing = target, []
    try:
        while not existing.exists() and existing != existing.parent:
            missing.append(existing.name)
            existing = existing.parent
        if not existing.is_dir():
            raise OSError(errno.ENOTDIR, "a file, not a directory", str(existing))
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        for name in missing:
            if len(os.fsencode(name)) > name_max:
                raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), name)
        _probe(existing)
    except OSError as exc:
        where = target if existing == target else f"{target} (in {existing})"
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"cannot write results under {where}: {reason}; choose another output directory "
            "(--out, or out_dir= in Python)"
        ) from None


def _probe(folder: Path) -> None:
    """Make a hidden directory in ``folder`` with a PROBE_BYTES file in it, then remove both."""
    probe = Path(tempfile.mkdtemp(prefix=".llem-probe-", dir=folder))
    try:
        fd = os.open(probe / "probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            block = os.urandom(1 << 16)  # not zeros: a compressing filesystem stores those free
            for _ in range(PROBE_BYTES // len(block)):
                os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def write_experiment(
    result: ExperimentResult,
    records: Sequence[RequestRecord],
    root: Path,
    label: str,
    timeseries: Sequence[TelemetrySample] = (),
    energy_timeline: EnergyPoints | None = None,
    files: Mapping[str, Path] | None = None,
) -> Path:
    """Write ``result.json``, ``requests.parquet`` and (if any) ``timeseries.parquet`` and
    ``energy_timeline.parquet`` into a new directory under ``root``, with a copy of each of
    ``files`` (name in the directory -> file to copy; e.g. a launched server's log).

    Every file and both directories are fsynced before this returns: a caller that records
    the directory as finished (a study's manifest) never points at files a power loss emptied.

    Returns:
        The directory created. ``result.output_dir`` is set to it.

    Raises:
        ResultsError: the directory could not be written.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
        make_shareable(staging)
    except OSError as exc:
        where = describe_os_error(exc, exc.filename or root)
        raise ResultsError(f"cannot create a results directory: {where}") from None
    try:
        write_requests(records, staging / REQUESTS_FILE)
        if timeseries:
            write_timeseries(timeseries, staging / TIMESERIES_FILE)
            result.timeseries_file = TIMESERIES_FILE
        if energy_timeline:
            write_energy_timeline(energy_timeline, staging / ENERGY_TIMELINE_FILE)
            result.energy_timeline_file = ENERGY_TIMELINE_FILE
        for name, source in (files or {}).items():
            shutil.copyfile(source, staging / name)
        # output_dir is where the file is found, set on load; it is not part of the record.
        json_text = result.model_dump_json(indent=2, exclude={"output_dir"})
        (staging / RESULT_FILE).write_text(json_text, encoding="utf-8")
        fsync_tree(staging)
        final = _claim_name(staging, root, run_dir_name(label, result))
        fsync_dir(root)
        result.output_dir = str(final)
        return final
    except OSError as exc:
        where = describe_os_error(exc, exc.filename or root)
        raise ResultsError(f"cannot write results: {where}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _claim_name(staging: Path, root: Path, name: str) -> Path:
    """Rename ``staging`` to ``root/name`` (or ``name_2``, ``name_3``... if taken)."""
    for candidate in numbered_paths(root, name):
        if candidate.exists():
            continue
        try:
            os.rename(staging, candidate)
        except OSError:
            continue  # created by someone else between the check and the rename
        return candidate
    raise ResultsError(f"no free result directory name for {name} under {root}")


def write_requests(records: Sequence[RequestRecord], path: Path) -> None:
    """Write raw per-request records (times relative to the window start) as Parquet."""
    columns = {
        "index": [r.index for r in records],
        "input_tokens": [r.input_tokens for r in records],
        "output_tokens": [r.output_tokens for r in records],
        "submit_s": [r.submit_s for r in records],
        "end_s": [r.end_s for r in records],
        "ttft_s": [r.ttft_s for r in records],
        "e2e_s": [r.e2e_s for r in records],
        "tpot_s": [r.tpot_s for r in records],
        "chunk_times_s": [r.chunk_times_s for r in records],
        "chunk_tokens": [r.chunk_tokens for r in records],
        "scheduled_s": [r.scheduled_s for r in records],
        "slot_wait_s": [r.slot_wait_s for r in records],
        "submit_lag_s": [r.submit_lag_s for r in records],
        "slo_met": [r.slo_met for r in records],
        "error": [r.error for r in records],
        "energy_j": [r.energy_j for r in records],
        "prefill_energy_j": [r.prefill_energy_j for r in records],
        "decode_energy_j": [r.decode_energy_j for r in records],
        "overhead_energy_j": [r.overhead_energy_j for r in records],
    }
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns, schema=_request_schema()), path)


def write_energy_timeline(points: EnergyPoints, path: Path) -> None:
    """Write an energy timeline as Parquet: one row per read, ``domain``, ``t_s`` (seconds
    from the window's start) and ``energy_j`` (cumulative since the sampler started)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [(domain, t_s, energy_j) for domain, line in points.items() for t_s, energy_j in line]
    columns = {
        "domain": [row[0] for row in rows],
        "t_s": [row[1] for row in rows],
        "energy_j": [row[2] for row in rows],
    }
    pq.write_table(pa.table(columns, schema=_energy_timeline_schema()), path)


def load_energy_timeline(path: str | os.PathLike[str]) -> dict[str, list[tuple[float, float]]]:
    """Read a run's energy timeline (a run directory or the Parquet file): per domain, its
    ``(t_s, cumulative_j)`` points in time order.

    Raises:
        ResultsError: the file is missing, unreadable or not an energy timeline.
    """
    file, rows = _read_rows(path, ENERGY_TIMELINE_FILE, "the energy timeline")
    points: dict[str, list[tuple[float, float]]] = {}
    try:
        for row in rows:
            points.setdefault(row["domain"], []).append((row["t_s"], row["energy_j"]))
    except KeyError as exc:
        raise ResultsError(f"{file}: not an energy timeline (no column {exc})") from None
    return {domain: sorted(line) for domain, line in points.items()}


def write_timeseries(samples: Sequence[TelemetrySample], path: Path) -> None:
    """Write telemetry samples (timestamps relative to the window start) as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _timeseries_schema()
    columns = {name: [getattr(s, name) for s in samples] for name in schema.names}
    pq.write_table(pa.table(columns, schema=schema), path)


def load_result(path: str | os.PathLike[str]) -> ExperimentResult:
    """Load an ExperimentResult from a result directory or a ``result.json`` file.

    Raises:
        ResultsError: the path does not hold a readable result.
    """
    file = Path(path)
    if file.is_dir():
        file = file / RESULT_FILE
    if not file.is_file():
        raise ResultsError(f"no result found at {path} (expected a run directory or result.json)")
    try:
        result = ExperimentResult.model_validate_json(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValidationError) as exc:
        raise ResultsError(
            f"{file}: not a readable llenergymeasure result ({unreadable_reason(exc)})"
        ) from None
    result.output_dir = str(file.parent)
    return result


def unreadable_reason(exc: OSError | UnicodeDecodeError | ValidationError) -> str:
    """One short line saying why a JSON file could not be read (never the file's bytes)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where + ': ' if where else ''}{first['msg']}{more}"
    return exc.strerror or str(exc)


def load_requests(path: str | os.PathLike[str]) -> list[RequestRecord]:
    """Read the raw per-request records of a run directory (or a requests.parquet file).

    Files written before a column existed load with its default (``scheduled_s``,
    ``slo_met``, ``error`` and the attributed energies None, ``slot_wait_s`` 0);
    ``submit_lag_s`` is derived, so it is not read.

    Raises:
        ResultsError: the file is missing, unreadable or not a requests table.
    """
    file, rows = _read_rows(path, REQUESTS_FILE, "requests")
    try:
        return [
            RequestRecord(
                index=row["index"],
                input_tokens=row["input_tokens"],
                output_tokens=row["output_tokens"],
                submit_s=row["submit_s"],
                chunk_times_s=list(row["chunk_times_s"]),
                chunk_tokens=list(row["chunk_tokens"]),
                end_s=row["end_s"],
                scheduled_s=row.get("scheduled_s"),
                slot_wait_s=row.get("slot_wait_s") or 0.0,
                slo_met=row.get("slo_met"),
                error=row.get("error"),
                energy_j=row.get("energy_j"),
                prefill_energy_j=row.get("prefill_energy_j"),
                decode_energy_j=row.get("decode_energy_j"),
                overhead_energy_j=row.get("overhead_energy_j"),
            )
            for row in rows
        ]
    except (KeyError, TypeError) as exc:  # a Parquet file, but not one of ours
        raise ResultsError(f"{file}: not a requests table ({type(exc).__name__}: {exc})") from None


def _read_rows(
    path: str | os.PathLike[str], default_name: str, what: str
) -> tuple[Path, list[dict[str, Any]]]:
    """The rows of a Parquet file given as itself or as the run directory holding it.

    Raises:
        ResultsError: the file is missing or not readable Parquet.
    """
    file = Path(path)
    if file.is_dir():
        file = file / default_name
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows: list[dict[str, Any]] = pq.read_table(file).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(f"cannot read {what} from {file}: {exc}") from None
    return file, rows
