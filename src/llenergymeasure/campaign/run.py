"""Running the validation campaign end to end, and its command line."""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llenergymeasure.campaign.collect import Collected, collect, merge, verified_on
from llenergymeasure.campaign.plan import (
    REFERENCE,
    CampaignError,
    Plan,
    ValueOutcome,
    campaign_parameters,
    plan_campaign,
    write_study,
)
from llenergymeasure.errors import LLEMError
from llenergymeasure.parameters import introspection
from llenergymeasure.parameters.docs import SUPPORT_FILE, write_docs
from llenergymeasure.parameters.introspection import ParameterInfo
from llenergymeasure.parameters.support import (
    SupportOutcome,
    load_support,
    save_support,
)
from llenergymeasure.results.models import EnvironmentSnapshot

if TYPE_CHECKING:
    pass


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
