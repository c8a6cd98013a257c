"""Study configuration: a base experiment, a sweep and/or explicit experiments, and how to run them.

A study file is an experiment file with at least one of ``sweep:`` or ``experiments:`` added
(a file with neither is one experiment, not a study)::

    name: batch-sweep              # study name; default: the file's stem
    model: smollm2-135m            # every other top-level key is the base experiment
    n: 20
    max_output_tokens: 32
    pytorch:
      batch_size: 1
    sweep:                         # dotted keys -> lists of values; Cartesian product per backend
      precision: [fp16, bf16]
      pytorch.batch_size: [1, 8]   # scoped: expands only for pytorch experiments
      vllm.max_num_seqs: [64, 256] # scoped to vllm: expands nothing while no experiment uses vllm
    experiments:                   # hand-picked extras, each deep-merged over the base
      - {precision: fp32, pytorch: {batch_size: 4}}
    execution:
      n_cycles: 5
      cycle_order: shuffled

The sweep is resolved at parse time (:attr:`StudyConfig.experiments_resolved`) so that every
invalid point is reported, at once, before anything runs.

Resolution rules:

* Sweep keys are expanded in sorted order (``backend`` first), the last key varying fastest, so
  the order of keys in the YAML does not change the experiments, their order, their names or the
  ``study_design_hash``. The order of *values* in each list is kept.
* ``backend: [...]`` in the sweep gives one Cartesian product per backend; a key whose first
  segment is a backend section (``pytorch``, ``vllm``, ``tensorrt``) joins only its backend's
  product. When the backend is swept (or set by an explicit experiment), the base's sections of
  the other backends are left out of that experiment.
* Sweep points come first, then the explicit ``experiments:`` in list order.
* Duplicates (equal configurations apart from ``name``) are dropped, keeping the first; what was
  dropped is listed in :attr:`StudyConfig.dropped_duplicates` so the CLI can say so.
* Names: ``<prefix>_<label>`` where the prefix is the base's ``name`` (else the study name) and
  the label abbreviates the swept values (``batch-sweep_bf16_bs8``, ``serve_rate-inf``); an
  explicit experiment keeps its own ``name`` if it has one. Names are filesystem-safe
  (:func:`safe_name`) and unique even on case-insensitive filesystems (``-2``, ``-3`` suffixes in
  order); they become directory names.

See :data:`EFFECTIVE_DEFAULTS` for what ``llem run`` does when a file does not say.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from llenergymeasure.config.credentials import check_no_credentials
from llenergymeasure.config.dotted import deep_merge, flatten, has_dotted, set_dotted
from llenergymeasure.config.loader import (
    apply_overrides,
    did_you_mean,
    format_validation_error,
    read_yaml,
)
from llenergymeasure.config.models import BACKEND_NAMES, ExperimentConfig, _Strict
from llenergymeasure.config.walk import walk_fields
from llenergymeasure.errors import ConfigError

CycleOrder = Literal["sequential", "interleaved", "shuffled"]
RunnerName = Literal["local", "docker", "ray"]
ProfileName = Literal["quick", "publication"]

STUDY_KEYS: tuple[str, ...] = ("name", "sweep", "experiments", "execution")
"""Top-level keys of a study file that are not experiment fields."""

BACKEND_SECTIONS: frozenset[str] = frozenset(BACKEND_NAMES)
"""First segments that scope a sweep key to one backend."""

_DEFAULT_BACKEND: str = ExperimentConfig.model_fields["backend"].default


class ExecutionConfig(_Strict):
    """How a study runs its resolved experiments: repetitions, order, pauses and where."""

    n_cycles: int = Field(
        3,
        ge=1,
        description="Times each experiment is measured. Statistics (mean, std, 95% CI) are over "
        "cycles; more cycles narrow the confidence interval. Raising it on --resume adds only "
        "the new cycles (a top-up).",
    )
    target_ci_pct: float | None = Field(
        None,
        gt=0.0,
        description="Keep adding cycles of every configuration (in the cycle order) until the "
        "95% interval half-width of J per output token is within this percentage of the mean "
        "for every configuration, or max_cycles is reached. None = exactly n_cycles.",
    )
    max_cycles: int | None = Field(
        None,
        ge=2,
        description="The most cycles target_ci_pct may run (at least n_cycles). None with "
        "target_ci_pct set = 10 x n_cycles.",
    )
    cycle_order: CycleOrder = Field(
        "interleaved",
        description="Run order of experiments x cycles. 'sequential' = A A A B B B (least "
        "switching, but thermal drift lands on one config), 'interleaved' = A B A B A B "
        "(spreads drift over configs), 'shuffled' = a seeded permutation in every cycle "
        "(also cancels order effects).",
    )
    shuffle_seed: int = Field(
        42, description="Seed of the per-cycle permutation for cycle_order 'shuffled'."
    )
    config_gap_s: float = Field(
        0.0,
        ge=0.0,
        description="Seconds to pause between two experiments so the device cools (idle, "
        "not measured). Unset: the user config's config_gap_s.",
    )
    cycle_gap_s: float = Field(
        0.0,
        ge=0.0,
        description="Seconds to pause between two cycles (idle, not measured). Unset: the user "
        "config's cycle_gap_s.",
    )
    experiment_timeout_s: float = Field(
        3600.0,
        gt=0.0,
        description="Seconds one experiment (model load + warmup + measured window) may take "
        "before its process is killed and the entry recorded as failed.",
    )
    runner: RunnerName = Field(
        "local",
        description="'local' runs each experiment in a fresh subprocess on this machine; "
        "'docker' in a fresh container of the backend's image (docker/Dockerfile.<backend>); "
        "'ray' sends them as tasks to a Ray cluster (needs llenergymeasure[ray]). Unset: the "
        "user config's runner (default 'local').",
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster address for runner 'ray' (None = RAY_ADDRESS or the user "
        "config, else a local Ray instance).",
    )
    profile: ProfileName | None = Field(
        None,
        description="The CLI --profile that filled unset fields (recorded on the result; "
        "None = no profile).",
    )

    @model_validator(mode="after")
    def _ray_address_needs_ray(self) -> ExecutionConfig:
        if self.ray_address is not None and self.runner != "ray":
            raise ValueError(f"ray_address is set but runner is {self.runner!r}, not 'ray'")
        return self

    @model_validator(mode="after")
    def _max_cycles_fits(self) -> ExecutionConfig:
        if self.max_cycles is None:
            return self
        if self.target_ci_pct is None:
            raise ValueError("max_cycles is set but target_ci_pct is not: set both, or neither")
        if self.max_cycles < self.n_cycles:
            raise ValueError(
                f"max_cycles ({self.max_cycles}) is below n_cycles ({self.n_cycles}): the "
                "target adds cycles after the first n_cycles"
            )
        return self

    @property
    def cycle_limit(self) -> int:
        """The most cycles this execution runs: n_cycles, or max_cycles with a target (10 x
        n_cycles when max_cycles is unset, and at least 2: one cycle has no interval)."""
        if self.target_ci_pct is None:
            return self.n_cycles
        return self.max_cycles or max(2, 10 * self.n_cycles)


EFFECTIVE_DEFAULTS: str = (
    "Effective defaults of `llem run`:\n"
    "  llem run                    one experiment (the embedded default), measured once\n"
    "  llem run experiment.yaml    one experiment (no sweep:/experiments:), measured once\n"
    "  llem run study.yaml         every resolved experiment x n_cycles; without execution: "
    f"n_cycles={ExecutionConfig.model_fields['n_cycles'].default}, "
    f"cycle_order={ExecutionConfig.model_fields['cycle_order'].default}, "
    f"config_gap_s={ExecutionConfig.model_fields['config_gap_s'].default:g}, "
    f"cycle_gap_s={ExecutionConfig.model_fields['cycle_gap_s'].default:g}, "
    f"experiment_timeout_s={ExecutionConfig.model_fields['experiment_timeout_s'].default:g}, "
    f"runner={ExecutionConfig.model_fields['runner'].default} (gaps and runner: the user "
    "config's where it sets them; `llem config` shows them)\n"
    "  --profile quick|publication fills only the fields the file leaves unset"
)
"""The one place the CLI's effective defaults are written down (derived from the models)."""

PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "execution.n_cycles": 1,
        "execution.config_gap_s": 0.0,
        "execution.cycle_gap_s": 0.0,
        "warmup.thermal_floor_s": 0.0,
    },
    "publication": {
        "execution.n_cycles": 5,
        "execution.cycle_order": "shuffled",
        "execution.config_gap_s": 60.0,
        "execution.cycle_gap_s": 120.0,
        "warmup.thermal_floor_s": 60.0,
        "baseline.enabled": True,
    },
}
"""CLI ``--profile`` shorthands: dotted study-file keys and the values they fill when unset."""


def apply_profile(raw_study: Mapping[str, Any], profile: str) -> dict[str, Any]:
    """Fill the fields of a raw study mapping that the user left unset from a profile.

    Explicit fields win: a key present in ``raw_study`` (or inherited through an explicit
    experiment or sweep) is never changed. ``execution.profile`` records the profile.

    Raises:
        ConfigError: the profile does not exist (with a did-you-mean).
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}" + did_you_mean(profile, list(PROFILES)))
    result = copy.deepcopy(dict(raw_study))
    settings = {**PROFILES[profile], "execution.profile": profile}
    for dotted, value in settings.items():
        if dotted == "execution.profile" or not has_dotted(result, dotted):
            set_dotted(result, dotted, value, replace_non_mapping=False)
    return result


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep before validation: the swept values and the raw experiment mapping."""

    values: tuple[tuple[str, Any], ...]
    """(dotted key, value) pairs in label order (``backend`` first, then sorted keys)."""
    data: dict[str, Any]
    """The base with this point's values set: the raw input of an ExperimentConfig."""

    def describe(self) -> str:
        """``pytorch.batch_size=8, precision=bf16`` (for error messages)."""
        return ", ".join(f"{key}={_display(value)}" for key, value in self.values)

    def label(self) -> str:
        """Short name fragment of the swept values, e.g. ``bf16_bs8``."""
        return _label(self.values)


def expand_sweep(base: Mapping[str, Any], sweep: Mapping[str, Sequence[Any]]) -> list[SweepPoint]:
    """The Cartesian product of ``sweep`` over ``base``, one product per backend (no validation).

    Backend-scoped keys (first segment in :data:`BACKEND_SECTIONS`) join only the product of their
    backend, so a key scoped to a backend no point uses expands nothing. An empty sweep gives one
    point: the base.
    """
    swept_backend = "backend" in sweep
    backends = list(sweep["backend"]) if swept_backend else [base.get("backend", _DEFAULT_BACKEND)]
    keys = sorted(key for key in sweep if key != "backend")
    points: list[SweepPoint] = []
    for backend in backends:
        applicable = [key for key in keys if _scope(key) in (None, backend)]
        root = _base_for_backend(base, backend) if swept_backend else dict(base)
        for combo in itertools.product(*(sweep[key] for key in applicable)):
            data = copy.deepcopy(root)
            values: list[tuple[str, Any]] = []
            if swept_backend:
                data["backend"] = backend
                values.append(("backend", backend))
            for key, value in zip(applicable, combo, strict=True):
                set_dotted(data, key, copy.deepcopy(value))
                values.append((key, value))
            points.append(SweepPoint(tuple(values), data))
    return points


class StudyConfig(_Strict):
    """A study: a base experiment, a sweep and/or explicit experiments, and the execution protocol.

    Validating one resolves it: :attr:`experiments_resolved` holds the ExperimentConfigs in order.
    Build a new StudyConfig to change the design (mutating ``base`` or ``sweep`` in place does not
    re-resolve; assigning a field does).

    Raises (on validation):
        ConfigError: listing every invalid sweep point, unknown sweep key or empty sweep list.
    """

    name: str = Field(
        ...,
        min_length=1,
        description="Study name: the prefix of experiment names and of the study directory.",
    )
    base: dict[str, Any] = Field(
        default_factory=dict,
        description="Experiment fields shared by every experiment (the study file's top-level "
        "experiment keys).",
    )
    sweep: dict[str, list[Any]] | None = Field(
        None,
        description="Dotted experiment keys -> values to sweep (Cartesian product per backend; "
        "backend-scoped keys expand only for their backend). None = no sweep; {} = the base "
        "once.",
    )
    experiments: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Explicit extra experiments, each deep-merged over the base.",
    )
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    _resolved: list[ExperimentConfig] = PrivateAttr(default_factory=list)
    _dropped: list[str] = PrivateAttr(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("study name must not be blank")
        return value

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> StudyConfig:
        context = info.context if isinstance(info.context, Mapping) else {}
        source = str(context.get("source", "StudyConfig"))
        self._resolved, self._dropped = _resolve_study(self, source)
        return self

    @property
    def experiments_resolved(self) -> list[ExperimentConfig]:
        """Every experiment of the study, validated, de-duplicated and named, in order."""
        return list(self._resolved)

    @property
    def dropped_duplicates(self) -> list[str]:
        """Descriptions of sweep points / explicit experiments dropped as duplicates."""
        return list(self._dropped)

    def design_hash(self) -> str:
        """:func:`study_design_hash` of :attr:`experiments_resolved`."""
        return study_design_hash(self._resolved)


def is_study_data(data: Mapping[str, Any]) -> bool:
    """True when a raw config mapping is a study (it has ``sweep:`` or ``experiments:``)."""
    return "sweep" in data or "experiments" in data


def build_study_config(
    data: Mapping[str, Any], *, source: str = "<study>", profile: str | None = None
) -> StudyConfig:
    """Validate and resolve a raw study mapping (the YAML shape) into a StudyConfig.

    Args:
        data: the study file's mapping: experiment fields (the base) plus ``name``, ``sweep``,
            ``experiments`` and ``execution``.
        source: what to call the origin in error messages (usually the file path).
        profile: a :data:`PROFILES` name whose values fill fields ``data`` leaves unset.

    Raises:
        ConfigError: not a study, unknown profile, or every problem found, by field path and
            sweep point.
    """
    if not is_study_data(data):
        raise ConfigError(
            f"{source}: not a study: a study has sweep: and/or experiments: "
            "(without them the file is one experiment)"
        )
    check_no_credentials(data, source)
    raw = apply_profile(data, profile) if profile is not None else dict(data)
    # YAML `key:` with nothing after it is None; treat it as absent (sweep: None = no sweep).
    envelope: dict[str, Any] = {
        key: raw[key] for key in STUDY_KEYS if key in raw and raw[key] is not None
    }
    envelope["base"] = {key: value for key, value in raw.items() if key not in STUDY_KEYS}
    try:
        return StudyConfig.model_validate(envelope, context={"source": source})
    except ValidationError as exc:
        message = format_validation_error(exc, StudyConfig, source)
        extra = _base_key_problems(envelope["base"])  # reported with the envelope's problems
        raise ConfigError(_report(message, extra)) from None


def load_study_config(
    path: Path,
    overrides: Mapping[str, Any] | None = None,
    profile: str | None = None,
) -> StudyConfig:
    """Load a study YAML file, apply dotted CLI overrides, then fill unset fields from a profile.

    ``name`` defaults to the file's stem. Overrides are applied to the file's mapping (so
    ``pytorch.batch_size`` sets the base and ``execution.n_cycles`` the execution) and count as
    explicit, so a profile does not replace them. Overriding a swept key is an error.

    Raises:
        ConfigError: unreadable file, not a study, a swept key overridden, or invalid content.
    """
    data = read_yaml(path)
    if not is_study_data(data):
        raise ConfigError(
            f"{path}: not a study: a study has sweep: and/or experiments: "
            "(without them the file is one experiment)"
        )
    data.setdefault("name", path.stem)
    if overrides:
        _check_overrides(overrides, data.get("sweep"), str(path))
        data = apply_overrides(data, overrides)
    return build_study_config(data, source=str(path), profile=profile)


def study_design_hash(experiments: Sequence[ExperimentConfig]) -> str:
    """sha256[:16] of the canonical JSON of the resolved experiments, in order.

    Execution settings are not part of it, so a top-up run with more cycles has the same hash.
    """
    canonical = json.dumps(
        [experiment.model_dump(mode="json") for experiment in experiments],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def cycle_schedule(n_experiments: int, execution: ExecutionConfig) -> list[tuple[int, int]]:
    """(experiment_index, cycle_index) pairs in run order.

    ``sequential``: every cycle of experiment 0, then of 1, ...; ``interleaved``: cycle 0 of every
    experiment, then cycle 1, ...; ``shuffled``: like interleaved, but each cycle visits the
    experiments in the permutation of ``random.Random(shuffle_seed + cycle)``. For interleaved and
    shuffled, the schedule for more cycles starts with the schedule for fewer (top-up safe).
    """
    if n_experiments < 0:
        raise ValueError(f"n_experiments must be >= 0, got {n_experiments}")
    experiments = range(n_experiments)
    cycles = range(execution.n_cycles)
    if execution.cycle_order == "sequential":
        return [(e, c) for e in experiments for c in cycles]
    if execution.cycle_order == "interleaved":
        return [(e, c) for c in cycles for e in experiments]
    schedule: list[tuple[int, int]] = []
    for c in cycles:
        order = list(experiments)
        random.Random(execution.shuffle_seed + c).shuffle(order)
        schedule.extend((e, c) for e in order)
    return schedule


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, max_length: int = 100, default: str = "experiment") -> str:
    """A filesystem- and shell-safe form of ``text`` (``[A-Za-z0-9._-]``, no leading dot or dash;
    ``default`` when nothing is left). It names experiments and the result and study
    directories.

    Text longer than ``max_length`` is cut and ends in 8 hex digits of its hash, so distinct long
    names stay distinct; with a timestamp and a collision suffix, a directory name of 100
    characters stays under eCryptfs' 143-byte limit (most filesystems allow 255).
    """
    cleaned = _UNSAFE.sub("-", text).strip("-._") or default
    if len(cleaned) > max_length:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        cleaned = f"{cleaned[: max_length - 9].rstrip('-._')}-{digest}"
    return cleaned


@cache
def experiment_field_paths() -> tuple[str, ...]:
    """Every dotted field path of ExperimentConfig (``n``, ``pytorch``, ``pytorch.batch_size``)."""
    return tuple(field.path for field in walk_fields(ExperimentConfig))


@cache
def _mapping_field_paths() -> tuple[str, ...]:
    """Field paths that accept free-form mappings (``pytorch.extra``): deeper keys are allowed."""
    return tuple(
        field.path
        for field in walk_fields(ExperimentConfig)
        if field.is_leaf and _accepts_dict(field.info.annotation)
    )


# --- resolution ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    description: str
    data: dict[str, Any]
    label: str
    own_name: str | None


def _resolve_study(study: StudyConfig, source: str) -> tuple[list[ExperimentConfig], list[str]]:
    problems = _base_key_problems(study.base) + _sweep_key_problems(study.base, study.sweep or {})
    if problems:
        raise ConfigError(_report(f"Invalid configuration in {source}:", problems))
    candidates = _candidates(study)
    if not candidates:
        raise ConfigError(
            f"{source}: the study has no experiments: give sweep: values or experiments:"
        )
    validated: list[ExperimentConfig] = []
    failures: list[tuple[str, list[str]]] = []
    for candidate in candidates:
        try:
            validated.append(ExperimentConfig.model_validate(candidate.data))
        except ValidationError as exc:
            lines = format_validation_error(exc, ExperimentConfig, source).splitlines()[1:]
            failures.append((candidate.description, [line.strip() for line in lines]))
    if failures:
        header = (
            f"Invalid configuration in {source}: "
            f"{len(failures)} of {len(candidates)} experiments are invalid:"
        )
        raise ConfigError(_report(header, _failure_lines(failures, len(candidates))))
    return _deduplicate_and_name(study, candidates, validated)


def _candidates(study: StudyConfig) -> list[_Candidate]:
    candidates: list[_Candidate] = []
    if study.sweep is not None:
        for number, point in enumerate(expand_sweep(study.base, study.sweep), start=1):
            described = f"point {number} ({point.describe() or 'base'})"
            candidates.append(_Candidate(described, point.data, point.label(), None))
    for index, extra in enumerate(study.experiments):
        backend = extra.get("backend")
        root = _base_for_backend(study.base, backend) if backend is not None else study.base
        data = deep_merge(root, extra)
        leaves = [(key, value) for key, value in flatten(extra).items() if key != "name"]
        label = _label(_label_order(leaves)) or f"exp{index + 1}"
        own = extra.get("name")
        candidates.append(
            _Candidate(f"experiments[{index}]", data, label, str(own) if own else None)
        )
    return candidates


def _deduplicate_and_name(
    study: StudyConfig, candidates: list[_Candidate], validated: list[ExperimentConfig]
) -> tuple[list[ExperimentConfig], list[str]]:
    prefix = str(study.base.get("name") or study.name)
    kept: list[ExperimentConfig] = []
    dropped: list[str] = []
    first_of: dict[str, str] = {}
    used: set[str] = set()
    for candidate, experiment in zip(candidates, validated, strict=True):
        key = json.dumps(experiment.model_dump(mode="json", exclude={"name"}), sort_keys=True)
        if key in first_of:
            dropped.append(f"{candidate.description} duplicates {first_of[key]}")
            continue
        first_of[key] = candidate.description
        parts = [candidate.own_name] if candidate.own_name else [prefix, candidate.label]
        wanted = "_".join(safe_name(part) for part in parts if part)
        name = _unique(safe_name(wanted), used)
        kept.append(experiment.model_copy(update={"name": name}))
    return kept, dropped


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... (case-insensitively unique, for macOS/Windows)."""
    candidate, number = name, 2
    while candidate.casefold() in used:
        candidate = f"{name}-{number}"
        number += 1
    used.add(candidate.casefold())
    return candidate


def _failure_lines(failures: list[tuple[str, list[str]]], total: int) -> list[str]:
    """One line per problem naming its point; a problem shared by every point is listed once."""
    common: list[str] = []
    if total > 1 and len(failures) == total:
        common = [line for line in failures[0][1] if all(line in f[1] for f in failures[1:])]
    lines = [f"every experiment: {line}" for line in common]
    for description, problems in failures:
        lines.extend(f"{description}: {line}" for line in problems if line not in common)
    return lines


def _report(header: str, lines: list[str]) -> str:
    return "\n".join([header, *(f"  {line}" for line in lines)])


def _base_key_problems(base: Mapping[str, Any]) -> list[str]:
    known = list(ExperimentConfig.model_fields)
    return [
        f"{key}: unknown field" + did_you_mean(str(key), [*known, *STUDY_KEYS])
        for key in base
        if key not in known
    ]


def _sweep_key_problems(base: Mapping[str, Any], sweep: Mapping[str, Sequence[Any]]) -> list[str]:
    problems: list[str] = []
    for key, values in sweep.items():
        where = f"sweep.{key}"
        if not values:
            problems.append(f"{where}: empty list; give at least one value")
        if key == "name":
            problems.append(f"{where}: experiment names derive from the swept values; set name:")
        elif key == "backend":
            problems.extend(_backend_value_problems(values))
        elif _scope(key) is not None and _scope(key) not in ExperimentConfig.model_fields:
            continue  # a backend this version does not model; it can only scope, never expand
        elif not _is_known_path(key):
            problems.append(f"{where}: unknown field" + did_you_mean(key, _suggestions(key)))
        else:
            problems.extend(_shape_problems(base, sweep, key))
    return problems


def _backend_value_problems(values: Sequence[Any]) -> list[str]:
    backends = list(BACKEND_NAMES)
    return [
        f"sweep.backend: unknown backend {value!r}" + did_you_mean(str(value), backends)
        for value in values
        if value not in backends
    ]


def _shape_problems(
    base: Mapping[str, Any], sweep: Mapping[str, Sequence[Any]], key: str
) -> list[str]:
    """A key nested under another swept key, or under a base value that is not a mapping."""
    parts = key.split(".")
    node: Any = base
    for depth in range(1, len(parts)):
        parent = ".".join(parts[:depth])
        if parent in sweep:
            return [f"sweep.{key}: overlaps sweep.{parent}; sweep one or the other"]
        node = node.get(parts[depth - 1]) if isinstance(node, Mapping) else None
        if node is not None and not isinstance(node, Mapping):
            return [
                f"sweep.{key}: the base sets {parent} to {node!r}, not a mapping; "
                f"write {parent} as a mapping to sweep inside it"
            ]
    return []


def _is_known_path(key: str) -> bool:
    if key in experiment_field_paths():
        return True
    return any(key.startswith(f"{path}.") for path in _mapping_field_paths())


def _suggestions(key: str) -> list[str]:
    """Sibling paths of ``key`` when its parent exists, else every path."""
    parent = key.rpartition(".")[0]
    siblings = [path for path in experiment_field_paths() if path.rpartition(".")[0] == parent]
    return siblings if parent and siblings else list(experiment_field_paths())


def _check_overrides(
    overrides: Mapping[str, Any], sweep: Mapping[str, Any] | None, source: str
) -> None:
    if not isinstance(sweep, Mapping):
        return
    clashes = [
        f"  {key}: swept by sweep.{swept}; remove it from the sweep to fix it"
        for key, value in overrides.items()
        if value is not None
        for swept in sweep
        if key == swept or key.startswith(f"{swept}.") or swept.startswith(f"{key}.")
    ]
    if clashes:
        raise ConfigError("\n".join([f"Invalid override for {source}:", *clashes]))


# --- raw-mapping helpers ------------------------------------------------------------------------


def _scope(key: str) -> str | None:
    section = key.split(".", 1)[0]
    return section if section in BACKEND_SECTIONS else None


def _base_for_backend(base: Mapping[str, Any], backend: Any) -> dict[str, Any]:
    """The base without the sections of backends other than ``backend``."""
    return {k: v for k, v in base.items() if k not in BACKEND_SECTIONS or k == backend}


def _label_order(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return sorted(pairs, key=lambda pair: (pair[0] != "backend", pair[0]))


# Labels stay short: a few common fields get abbreviations, a few show only their value.
_ABBREVIATIONS = {
    "batch_size": "bs",
    "max_output_tokens": "out",
    "max_input_tokens": "in",
    "temperature": "temp",
    "synthetic_input_tokens": "synin",
    "n_warmup": "warmup",
    "request_rate": "rate",
    "max_concurrency": "conc",
}
_VALUE_ONLY = frozenset({"backend", "precision", "model", "source"})


def _label(values: Sequence[tuple[str, Any]]) -> str:
    return "_".join(_label_part(key, value) for key, value in values)


def _label_part(key: str, value: Any) -> str:
    leaf = key.rsplit(".", 1)[-1]
    if leaf in ("model", "source") and isinstance(value, str):
        value = Path(value.rstrip("/")).name or value  # the last path component is enough
    text = _display(value)
    if leaf in _VALUE_ONLY:
        return text
    abbreviation = _ABBREVIATIONS.get(leaf, leaf.replace("_", "-"))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{abbreviation}{text}"
    return f"{abbreviation}-{text}"


def _display(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # inf, -inf, nan: JSON would say Infinity
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _accepts_dict(annotation: Any) -> bool:
    if annotation is dict or getattr(annotation, "__origin__", None) is dict:
        return True
    return any(_accepts_dict(arg) for arg in get_args(annotation))
