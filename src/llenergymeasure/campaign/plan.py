"""Planning the validation campaign: one trial per (parameter, test value), the study file."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from llenergymeasure.config.dotted import deep_merge, get_dotted, has_dotted
from llenergymeasure.config.loader import did_you_mean
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import ConfigError, LLEMError
from llenergymeasure.parameters import introspection
from llenergymeasure.parameters.docs import matrix_parameters
from llenergymeasure.parameters.introspection import ParameterInfo
from llenergymeasure.parameters.support import (
    BACKEND_HARDWARE,
    Outcome,
)

if TYPE_CHECKING:
    pass


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
        if not info.hardware or not has_dotted(data, info.path):
            continue
        value = get_dotted(data, info.path)
        if _applies(info.hardware, value):
            return f"{info.path}={show_value(value)} needs {info.hardware}; no GPU visible"
    return None


def show_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


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
        plan.untested[path] = f"{show_value(value)}: no valid config: {exc}"
        return
    for target, replacement in substitutions.items():
        if has_dotted(config, target):
            config = introspection.set_parameter(config, target, replacement)
    reason = hardware_requirement(plan.backend, config, gpu_count)
    if reason is not None:
        plan.decided.append(ValueOutcome(path, value, "needs_hardware", reason))
        return
    entry = {k: v for k, v in config.items() if k not in ("model", "backend")}
    problem = _problems(deep_merge(plan.base, entry))[0]
    if problem is not None:
        plan.untested[path] = f"{show_value(value)}: invalid over the campaign base: {problem}"
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
