"""What a reader needs to judge the figures, read from the result files: the environments
measured on, how energy was obtained, and the full text of every warning."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llenergymeasure.errors import ResultsError
from llenergymeasure.reporting.summary import ConfigurationSummary
from llenergymeasure.results.io import load_result
from llenergymeasure.results.models import EnvironmentSnapshot, ExperimentResult


@dataclass
class Environment:
    """One distinct environment and the configurations measured on it."""

    snapshot: EnvironmentSnapshot
    configurations: list[str] = field(default_factory=list)


@dataclass
class EnergyMethod:
    """One energy method as used: its scope, whether it estimates, its notes and bounds."""

    method: str
    scope: list[str]
    is_estimate: bool
    uncertainty_j: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    configurations: list[str] = field(default_factory=list)


@dataclass
class ReportContext:
    """The done results of every configuration, and what they say about themselves."""

    results: dict[str, list[ExperimentResult]]
    environments: list[Environment]
    methods: list[EnergyMethod]
    warnings: dict[str, str]
    unreadable: list[str]


def gather_context(summaries: Sequence[ConfigurationSummary]) -> ReportContext:
    """Load every done cycle's ``result.json`` (unreadable ones are listed, not fatal)."""
    results: dict[str, list[ExperimentResult]] = {}
    unreadable: list[str] = []
    for summary in summaries:
        loaded = results.setdefault(summary.label, [])
        for run_dir in summary.done["result_dir"]:
            try:
                loaded.append(load_result(Path(str(run_dir))))
            except ResultsError as exc:
                unreadable.append(str(exc))
    return ReportContext(
        results=results,
        environments=_environments(results),
        methods=_methods(results),
        warnings=_warning_texts(results),
        unreadable=unreadable,
    )


def _environments(results: dict[str, list[ExperimentResult]]) -> list[Environment]:
    found: dict[str, Environment] = {}
    for label, runs in results.items():
        for run in runs:
            key = json.dumps(_comparable(run.environment), sort_keys=True, default=str)
            env = found.setdefault(key, Environment(run.environment))
            if label not in env.configurations:
                env.configurations.append(label)
    return list(found.values())


def _comparable(snapshot: EnvironmentSnapshot) -> dict[str, object]:
    """The snapshot less what changes from run to run on one machine (current clocks)."""
    data = snapshot.model_dump(mode="json")
    data["gpus"] = [{k: v for k, v in g.items() if k != "sm_clock_mhz"} for g in data["gpus"]]
    return data


def _methods(results: dict[str, list[ExperimentResult]]) -> list[EnergyMethod]:
    found: dict[tuple[str, tuple[str, ...], bool], EnergyMethod] = {}
    for label, runs in results.items():
        for run in runs:
            energy = run.energy
            key = (energy.method, tuple(energy.scope), energy.is_estimate)
            method = found.setdefault(
                key, EnergyMethod(energy.method, list(energy.scope), energy.is_estimate)
            )
            if energy.uncertainty_j is not None:
                method.uncertainty_j.append(energy.uncertainty_j)
            method.notes += [n for n in energy.notes if n not in method.notes]
            if label not in method.configurations:
                method.configurations.append(label)
    return list(found.values())


def _warning_texts(results: dict[str, list[ExperimentResult]]) -> dict[str, str]:
    """Each warning code with the message of its first occurrence."""
    texts: dict[str, str] = {}
    for runs in results.values():
        for run in runs:
            for warning in run.warnings:
                texts.setdefault(warning.code, warning.message)
    return texts
