"""`llem run --dry-run`: what would run, its memory against the device, and roughly how long.

Validates and resolves the config (every experiment of a study) and makes the checks a run
makes before loading a model (each prompt source, the output directory); then prints each
prompt source's lengths (in words; synthetic prompts in tokens) and each experiment's
effective settings (those that differ from the defaults), its load plan (how
requests reach the engine: mode, rate and arrival process or concurrency cap, SLO targets,
when the last request is scheduled to arrive), its weights + KV-cache estimate against the
visible device's memory, a rough duration, and the backend libraries a local run would refuse.
Loads no model and imports no torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from llenergymeasure.backends import backend_status
from llenergymeasure.backends.registry import untested_allowed, untested_versions
from llenergymeasure.config.dotted import flatten
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import ExecutionConfig, StudyConfig, cycle_schedule
from llenergymeasure.config.user_config import (
    default_results_dir,
    load_user_config,
    study_execution_defaults,
)
from llenergymeasure.datasets import expected_output_lengths, source_lengths
from llenergymeasure.errors import ConfigError
from llenergymeasure.estimate import Estimate, estimate_experiment, gaps_s, probe_device
from llenergymeasure.estimate.model_facts import model_facts
from llenergymeasure.harness.save import result_label
from llenergymeasure.load import plan_load
from llenergymeasure.reporting.layout import Column, FittedTable
from llenergymeasure.results.io import check_out_dir

_HEADLINE = ("name", "model", "backend")


def dry_run(
    config: ExperimentConfig | StudyConfig,
    console: Console,
    *,
    as_json: bool,
    out_dir: Path | None = None,
    resume: Path | None = None,
) -> None:
    """Print the plan for ``config`` (rich tables, or JSON with ``as_json``).

    Raises:
        ConfigError: what a run would refuse before loading a model: a prompt source missing
            or malformed, an output directory that cannot be written (exit 2).
    """
    plan = build_plan(config, out_dir=out_dir, resume=resume)
    if as_json:
        print(json.dumps(plan, indent=2))
    else:
        _print_plan(plan, console)


def build_plan(
    config: ExperimentConfig | StudyConfig,
    *,
    out_dir: Path | None = None,
    resume: Path | None = None,
) -> dict[str, Any]:
    """The dry-run plan as JSON-ready data: experiments (each with its load plan, its
    ``output_lengths`` (:func:`llenergymeasure.datasets.expected_output_lengths`) and its
    estimate), ``prompt_sources`` (per distinct dataset section its description and length
    statistics, :meth:`llenergymeasure.datasets.SourceLengths.as_dict`), device, runner,
    total time, and ``problems``: the backend libraries a local
    run would refuse (not installed, or outside the tested range) — listed, not raised, since
    a plan is often made on another machine than the one that will measure.

    Args:
        config: the validated experiment or study.
        out_dir: the run's ``--out`` (default: the user config's results directory).
        resume: the study directory a ``--resume`` would continue (checked instead).

    Raises:
        ConfigError: a prompt source is missing, unreachable or malformed, or results cannot
            be written where the run would write them (the same checks a run makes first).
        DependencyError: a hub dataset without the ``datasets`` library.
    """
    user = load_user_config().config
    if isinstance(config, StudyConfig):
        experiments = config.experiments_resolved
        execution = study_execution_defaults(config.execution, user)
        name, kind = config.name, "study"
    else:
        experiments, execution = [config], None
        name, kind = result_label(config), "experiment"
    sources = [  # checks each source as a run does first, and reads its lengths
        source_lengths(dataset).as_dict()
        for dataset in {e.dataset.model_dump_json(): e.dataset for e in experiments}.values()
    ]
    check_out_dir(resume or out_dir or default_results_dir(user))
    device = probe_device()
    facts = cache(model_facts)  # a study's experiments usually share one model
    estimates = [estimate_experiment(e, device, facts) for e in experiments]
    varying, shared = _settings(experiments)
    runner = execution.runner if execution is not None else user.runner
    return {
        "kind": kind,
        "name": name,
        "runner": runner,
        "problems": _library_problems(experiments) if runner == "local" else [],
        "execution": execution.model_dump(mode="json") if execution is not None else None,
        "device": asdict(device),
        "shared_settings": shared,
        "experiments": [
            {
                **_headline(e),
                "settings": settings,
                "load": load_plan(e),
                "output_lengths": expected_output_lengths(
                    e.dataset, e.n, e.random_seed, e.max_output_tokens
                ),
                "estimate": estimate.as_dict(),
            }
            for e, settings, estimate in zip(experiments, varying, estimates, strict=True)
        ],
        "prompt_sources": sources,
        "total_time_s": _total_time_s(estimates, execution),
        "cycle_limit": execution.cycle_limit if execution is not None else None,
        "max_total_time_s": _max_total_time_s(estimates, execution),
        "dropped_duplicates": config.dropped_duplicates if isinstance(config, StudyConfig) else [],
    }


def _library_problems(experiments: list[ExperimentConfig]) -> list[str]:
    """Per backend used, what would stop a local run before loading: its libraries not
    installed, or installed outside the tested range without ``LLEM_ALLOW_UNTESTED=1``
    (metadata only, nothing imported)."""
    problems = []
    for backend in dict.fromkeys(e.backend for e in experiments):
        status = backend_status(backend)
        if not status.installed:
            problems.append(f"backend '{backend}' is not installed here: {status.install_hint}")
            continue
        if not untested_allowed():
            problems += untested_versions(backend, status.versions)
        if backend == "pytorch":
            problems += _transformers_problems(experiments, status.versions)
    return problems


def _transformers_problems(
    experiments: list[ExperimentConfig], versions: Mapping[str, str | None]
) -> list[str]:
    """What the installed transformers would refuse in a pytorch experiment (the checks the
    run makes before loading: removed fields, continuous batching under a serving load), once
    per distinct reason."""
    from llenergymeasure.backends.pytorch.version_checks import check_transformers_version

    installed = versions.get("transformers")
    problems: dict[str, None] = {}
    for experiment in experiments:
        if experiment.backend != "pytorch" or not installed:
            continue
        try:
            check_transformers_version(experiment, installed)
        except ConfigError as exc:
            problems[f"{result_label(experiment)}: {exc}"] = None
    return list(problems)


def _headline(experiment: ExperimentConfig) -> dict[str, Any]:
    """The name (what the run names its result directory), model and backend."""
    return {
        "name": result_label(experiment),
        "model": experiment.model,
        "backend": experiment.backend,
    }


def load_plan(experiment: ExperimentConfig) -> dict[str, Any]:
    """How the measured window submits its requests: ``mode``; in rate mode ``request_rate``
    (``"Infinity"`` = all at once), ``arrival`` (and ``burstiness`` for gamma); any
    ``max_concurrency``; ``slo_ms`` targets; and ``expected_duration_s``, when the last of the
    ``n`` requests is scheduled to arrive (the window lasts at least this), or None where the
    duration depends on the engine (offline and concurrency modes)."""
    load = experiment.load
    plan: dict[str, Any] = {"mode": load.mode}
    if load.mode == "rate":
        plan["request_rate"] = _json_ready(load.request_rate)
        plan["arrival"] = load.arrival
        if load.arrival == "gamma":
            plan["burstiness"] = load.burstiness
    if load.max_concurrency is not None:
        plan["max_concurrency"] = load.max_concurrency
    if load.slo is not None:
        plan["slo_ms"] = load.slo.targets_ms()
    schedule = plan_load(load, experiment.n, experiment.random_seed)
    plan["expected_duration_s"] = schedule.expected_duration_s
    return plan


def _json_ready(value: float | None) -> float | str | None:
    """A float JSON can hold: inf as ``"Infinity"``, as result files write it."""
    return "Infinity" if value is not None and math.isinf(value) else value


def _settings(experiments: list[ExperimentConfig]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The non-default settings every experiment shares, and per experiment the value of each
    setting that is not the same everywhere (defaults included, so a column reads across).
    Values are as the config's JSON writes them (a request rate of inf as ``"Infinity"``)."""
    full = [_fields(json.loads(e.model_dump_json())) for e in experiments]
    changed = [_fields(json.loads(e.model_dump_json(exclude_defaults=True))) for e in experiments]
    keys = [k for k in dict.fromkeys(k for c in changed for k in c) if k not in _HEADLINE]
    shared = {k: full[0].get(k) for k in keys if all(f.get(k) == full[0].get(k) for f in full)}
    varying = [k for k in keys if k not in shared]
    return [{k: f.get(k) for k in varying if k in f} for f in full], shared


def _fields(dumped: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted field -> value, less empty sections: a section set with no fields of its own
    shows through its fields in the full dump, not as a ``section={}`` setting."""
    return {key: value for key, value in flatten(dumped).items() if value != {}}


def _total_time_s(estimates: list[Estimate], execution: ExecutionConfig | None) -> float:
    """Every run's estimate plus the study's gaps (experiments of unknown size count 0)."""
    if execution is None:
        return sum(e.time_s or 0.0 for e in estimates)
    schedule = cycle_schedule(len(estimates), execution)
    runs = sum(estimates[index].time_s or 0.0 for index, _ in schedule)
    return runs + gaps_s(schedule, execution.config_gap_s, execution.cycle_gap_s)


def _max_total_time_s(estimates: list[Estimate], execution: ExecutionConfig | None) -> float | None:
    """The time if ``execution.target_ci_pct`` adds every cycle it may (None without one)."""
    if execution is None or execution.target_ci_pct is None:
        return None
    most = execution.model_copy(update={"n_cycles": execution.cycle_limit})
    return _total_time_s(estimates, most)


def _print_plan(plan: dict[str, Any], console: Console) -> None:
    console.print(_title(plan), soft_wrap=True, highlight=False)
    for dropped in plan["dropped_duplicates"]:
        console.print(f"[yellow]note[/]: dropped duplicate {escape(dropped)}")
    if plan["shared_settings"]:
        console.print(f"[bold]settings[/]: {escape(_compact(plan['shared_settings']))}")
    table, same = _table(plan)
    if same:
        console.print(f"[bold]same for every experiment[/]: {same}", soft_wrap=True)
    console.print(table)
    for source in plan["prompt_sources"]:
        console.print(f"[bold]prompts[/]: {escape(source['summary'])}", soft_wrap=True)
    _print_output_lengths(plan["experiments"], console)
    unknown = sum(e["estimate"]["time_s"] is None for e in plan["experiments"])
    caveat = f"; without the {unknown} of unknown size" if unknown else ""
    if plan["max_total_time_s"] is not None:
        caveat += (
            f"; up to {_duration(plan['max_total_time_s'])} if the target adds all "
            f"{plan['cycle_limit']} cycles"
        )
    console.print(
        f"[bold]estimated time[/]: {_duration(plan['total_time_s'])} (rough, often off by 2x"
        f"{caveat})"
    )
    unfit = [e["name"] for e in plan["experiments"] if e["estimate"]["fits"] is False]
    if unfit:
        console.print(
            f"[bold red]does not fit[/] the device's memory: {escape(', '.join(unfit))}",
            soft_wrap=True,
        )
    for problem in plan["problems"]:
        console.print(f"[bold red]a run here would stop[/]: {escape(problem)}", soft_wrap=True)
    console.print("[dim]dry run: nothing was loaded or run[/]")


def _print_output_lengths(experiments: list[dict[str, Any]], console: Console) -> None:
    """One line per distinct output-length plan, naming its experiments when they differ."""
    by_summary: dict[str, list[str]] = {}
    for experiment in experiments:
        by_summary.setdefault(experiment["output_lengths"]["summary"], []).append(
            str(experiment["name"])
        )
    for summary, names in by_summary.items():
        which = f" ({', '.join(names)})" if len(by_summary) > 1 else ""
        console.print(f"[bold]output lengths{escape(which)}[/]: {escape(summary)}", soft_wrap=True)


def _title(plan: dict[str, Any]) -> str:
    device = plan["device"]
    memory = _size(device["memory_bytes"]) + (" RAM" if device["kind"] == "cpu" else "")
    where = f"{device['name']} ({memory})"
    if device["kind"] == "gpu" and device["count"] > 1:
        where = f"{device['count']} x {where}"
    head = f"[bold]llem run --dry-run[/] · {plan['kind']} {escape(str(plan['name']))}"
    execution = plan["execution"]
    if execution is not None:
        head += (
            f" · {len(plan['experiments'])} experiments × {execution['n_cycles']} cycles "
            f"({execution['cycle_order']}, gaps {execution['config_gap_s']:g}/"
            f"{execution['cycle_gap_s']:g} s)"
        )
        if execution["target_ci_pct"] is not None:
            head += (
                f", more until J/token is within ±{execution['target_ci_pct']:g} % "
                f"(95% interval; at most {plan['cycle_limit']} cycles)"
            )
    return f"{head} · runner {plan['runner']} · device {escape(where)}"


_COLUMNS = ("#", "experiment", "backend", "model", "settings", "load", "params", "weights",
            "KV cache", "need / device", "fits", "time")  # fmt: skip
_ALWAYS_SHOWN = {"#", "experiment", "settings"}


def _table(plan: dict[str, Any]) -> tuple[FittedTable, str]:
    """The per-experiment table, and a line for the columns equal in every row (kept narrow);
    no load column when every experiment is offline (a batch, as without ``load:``)."""
    rows = [_row(number, experiment) for number, experiment in
            enumerate(plan["experiments"], start=1)]  # fmt: skip
    hidden = {"load"} if all(e["load"]["mode"] == "offline" for e in plan["experiments"]) else set()
    if len(rows) == 1:
        return _vertical(rows[0], hidden), ""
    constant = {
        column for index, column in enumerate(_COLUMNS)
        if len(rows) > 1 and column not in _ALWAYS_SHOWN and len({r[index] for r in rows}) == 1
    } - hidden  # fmt: skip
    shown = [index for index, column in enumerate(_COLUMNS) if column not in constant | hidden]
    columns = [Column(_COLUMNS[index], wrap=_COLUMNS[index] in _WRAPPED) for index in shown]
    table = FittedTable("", columns, [[row[index] for index in shown] for row in rows], keys=2)
    same = " · ".join(f"{column} {rows[0][_COLUMNS.index(column)]}" for column in _COLUMNS
                      if column in constant)  # fmt: skip
    return table, escape(same)


_WRAPPED = ("settings", "model", "load")
"""Columns whose cells may wrap between words; names and figures never wrap."""


def _vertical(row: list[str], hidden: set[str]) -> FittedTable:
    """One experiment: a column of labelled values reads better than one wide row."""
    labelled = [[column, value] for column, value in zip(_COLUMNS[1:], row[1:], strict=True)
                if column not in hidden]  # fmt: skip
    return FittedTable("", [Column(""), Column("", wrap=True)], labelled, show_header=False)


def _row(number: int, experiment: Mapping[str, Any]) -> list[str]:
    estimate = experiment["estimate"]
    return [
        str(number), str(experiment["name"]), experiment["backend"], experiment["model"],
        _compact(experiment["settings"]), load_text(experiment["load"]), _params(estimate),
        _size(estimate["weights_bytes"]), _size(estimate["kv_cache_bytes"]), _need(estimate),
        _fits(estimate["fits"]), _duration(estimate["time_s"]),
    ]  # fmt: skip


def load_text(load: Mapping[str, Any]) -> str:
    """A load plan in words: ``rate 4 req/s, poisson arrivals; SLO ttft_ms 200; lasts ≥ 9.6 s
    (last arrival)``, ``concurrency: 4 in flight; duration depends on the engine``."""
    mode = load["mode"]
    if mode == "offline":
        return "offline: every prompt at once"
    duration = load["expected_duration_s"]
    if mode == "concurrency":
        text = f"concurrency: {load['max_concurrency']} in flight"
    elif load["request_rate"] == "Infinity":
        text, duration = "rate inf: every request at once", None  # no schedule to wait for
    else:
        text = f"rate {load['request_rate']:g} req/s, {load['arrival']} arrivals"
        text += f" (burstiness {load['burstiness']:g})" if "burstiness" in load else ""
    if mode == "rate" and load.get("max_concurrency") is not None:
        text += f", at most {load['max_concurrency']} in flight"
    if "slo_ms" in load:
        text += "; SLO " + ", ".join(f"{name} {ms:g}" for name, ms in load["slo_ms"].items())
    if duration is None:
        return f"{text}; duration depends on the engine"
    return f"{text}; lasts ≥ {duration:.3g} s (last arrival)"


def _compact(settings: Mapping[str, Any], separator: str = ", ") -> str:
    return separator.join(f"{k}={json.dumps(v)}" for k, v in settings.items()) or "—"


def _params(estimate: Mapping[str, Any]) -> str:
    count = estimate["n_parameters"]
    if count is None:
        return str(estimate["model_source"])
    return f"{count / 1e9:.3g} B" if count >= 1e9 else f"{count / 1e6:.3g} M"


def _need(estimate: Mapping[str, Any]) -> str:
    need = _size(estimate["per_device_bytes"])
    if estimate["devices_used"] > 1:
        need += f" x {estimate['devices_used']}"
    return f"{need} / {_size(estimate['budget_bytes'])}"


def _fits(fits: bool | None) -> str:
    return {True: "yes", False: "no", None: "?"}[fits]


def _size(value: float | None) -> str:
    if value is None:
        return "?"
    if value >= 2**30:
        return f"{value / 2**30:.3g} GiB"
    return f"{value / 2**20:.3g} MiB"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
