"""Generate the configuration docs from the models: reference, support matrix, JSON Schemas.

Run ``python scripts/generate_docs.py`` (or ``python -m llenergymeasure.parameters.docs``) after
changing a model; ``--check`` only reports stale files (exit 1), as the freshness test does.
Outputs (relative to the docs folder): ``config-reference.md``, ``parameter-support-matrix.md``
and ``schema/{experiment,study}.schema.json``. Input: ``parameter-support.json`` (the outcomes
of the validation campaign, see :mod:`llenergymeasure.parameters.support`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.parameters import introspection
from llenergymeasure.parameters.coverage import COVERAGE, LibraryCoverage
from llenergymeasure.parameters.introspection import BACKENDS, REQUIRED, ParameterInfo
from llenergymeasure.parameters.schema import SCHEMAS
from llenergymeasure.parameters.support import (
    Outcome,
    SupportOutcome,
    SupportTable,
    load_support,
    static_status,
    write_text_atomic,
)

__all__ = [
    "MATRIX_FILE",
    "REFERENCE_FILE",
    "REGENERATE_COMMAND",
    "SUPPORT_FILE",
    "format_constraints",
    "format_value",
    "generated_files",
    "main",
    "matrix_parameters",
    "render_matrix",
    "render_reference",
    "stale_files",
    "write_docs",
]

REFERENCE_FILE = "config-reference.md"
MATRIX_FILE = "parameter-support-matrix.md"
SUPPORT_FILE = "parameter-support.json"
REGENERATE_COMMAND = "python scripts/generate_docs.py"

_HEADER = (
    "<!-- Generated from src/llenergymeasure/config by `{command}`; do not edit by hand. -->\n"
)
_BOUNDS = {
    "ge": "≥ {}",
    "gt": "> {}",
    "le": "≤ {}",
    "lt": "< {}",
    "min_length": "length ≥ {}",
    "max_length": "length ≤ {}",
}
_SYMBOLS: dict[Outcome | None, str] = {
    "supported": "✅",
    "supported_with_warnings": "⚠️",
    "fails": "❌",
    "needs_hardware": "🖥️",
    "not_applicable": "—",
    None: "○",
}
_WORDS: dict[Outcome | None, str] = {
    "supported": "supported",
    "supported_with_warnings": "supported with warnings",
    "fails": "fails",
    "needs_hardware": "needs hardware",
    "not_applicable": "not applicable",
    None: "modelled, not yet verified",
}
_MESSAGE_CHARS = 120


# --- formatting one value -------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A default or example as it would appear in YAML: ``auto``, ``null``, ``true``, ``{}``."""
    if value is REQUIRED:
        return "required"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def format_constraints(info: ParameterInfo) -> str:
    """Bounds and lengths as ``≥ 1, ≤ 100`` (choices are shown by the type)."""
    return ", ".join(
        template.format(info.constraints[name])
        for name, template in _BOUNDS.items()
        if name in info.constraints
    )


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{_cell(text)}`" if text else ""


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return [_row(header), _row("---" for _ in header), *(_row(row) for row in rows)]


def _backends_text(info: ParameterInfo) -> str:
    return "all" if info.backends == BACKENDS else ", ".join(info.backends)


# --- config reference -----------------------------------------------------------------------


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


def _grouped(infos: Sequence[ParameterInfo]) -> dict[str, list[ParameterInfo]]:
    groups: dict[str, list[ParameterInfo]] = {}
    for info in infos:
        groups.setdefault(_parent(info.path), []).append(info)
    return groups


def _parameter_row(info: ParameterInfo) -> list[str]:
    return [
        _code(info.path),
        _code(info.annotation),
        _code(format_value(info.default)),
        _cell(format_constraints(info)),
        _cell(info.unit or ""),
        _cell(_backends_text(info)),
        _cell(info.hardware or ""),
        _cell(info.description),
    ]


_PARAMETER_HEADER = (
    "Parameter",
    "Type",
    "Default",
    "Constraints",
    "Unit",
    "Backends",
    "Hardware",
    "Description",
)


def _sections(infos: Sequence[ParameterInfo], root: Any, top_title: str) -> list[str]:
    lines: list[str] = []
    for scope, members in _grouped(infos).items():
        title = top_title if not scope else f"`{scope}:`"
        lines += ["", f"### {title}", "", introspection.section_description(scope, root), ""]
        lines += _table(_PARAMETER_HEADER, (_parameter_row(info) for info in members))
    return lines


def _coverage_summary(coverage: Sequence[LibraryCoverage]) -> list[str]:
    rows = [
        [
            entry.backend,
            entry.library,
            str(len(entry.modelled)),
            str(len(entry.parameters)),
            f"{entry.ratio:.0%}",
            f"≥ {entry.target:.0%}",
            "yes" if entry.ratio >= entry.target else "no",
        ]
        for entry in coverage
    ]
    header = ("Backend", "Library", "Modelled", "Relevant", "Coverage", "Aim", "Met")
    lines = [
        "## Coverage of each library's API",
        "",
        "Modelled parameters ÷ the library parameters that change energy or throughput (curated "
        "in `src/llenergymeasure/parameters/coverage.py`; the full mapping is at the end).",
        "",
        *_table(header, rows),
    ]
    for entry in coverage:
        if entry.missing:
            names = ", ".join(_code(p.name) for p in entry.missing)
            lines += ["", f"Not modelled for {entry.backend} (pass through `extra:`): {names}."]
    return lines


def _coverage_mapping(coverage: Sequence[LibraryCoverage]) -> list[str]:
    lines = ["", "## Library parameter mapping"]
    for entry in coverage:
        rows = [
            [_code(p.name), _code(p.path) if p.path else "not modelled"] for p in entry.parameters
        ]
        lines += ["", f"### {entry.backend} ({entry.library})", ""]
        lines += _table(("Library parameter", "Config path"), rows)
    return lines


def render_reference(coverage: Sequence[LibraryCoverage] = COVERAGE) -> str:
    """The text of ``docs/config-reference.md``."""
    lines = [
        _HEADER.format(command=REGENERATE_COMMAND),
        "# Configuration reference",
        "",
        "Every parameter of an experiment file, generated from the Pydantic models (the single "
        "source of truth). Dotted paths are the YAML nesting (`decoder.top_k` is `top_k:` under "
        "`decoder:`) and the keys of a study's `sweep:`. A backend section (`pytorch:`, `vllm:`, "
        "`tensorrt:`) is only allowed with its backend. See also: "
        f"[parameter support per backend]({MATRIX_FILE}), the JSON Schemas in "
        "[schema/](schema/) (`llem config --schema`), `llem config --params BACKEND`, and "
        "complete examples in [../examples/](../examples/).",
        "",
        *_coverage_summary(coverage),
        "",
        "## Experiment parameters",
        *_sections(introspection.parameters(), ExperimentConfig, "Top level"),
        "",
        "## Study files",
        "",
        "A study file is an experiment file (the base) plus the keys below; `sweep:` keys are "
        "the dotted paths above.",
        *_sections(introspection.study_parameters(), StudyConfig, "Top level (study)"),
        *_coverage_mapping(coverage),
    ]
    return "\n".join(lines) + "\n"


# --- support matrix -------------------------------------------------------------------------


def matrix_parameters() -> list[ParameterInfo]:
    """The rows of the support matrix: every backend's parameters and the LoRA section."""
    wanted = {
        info.path for backend in BACKENDS for info in introspection.backend_parameters(backend)
    }
    return [
        info for info in introspection.parameters() if info.path in wanted or info.section == "lora"
    ]


def _short(message: str | None) -> str:
    text = " ".join((message or "").split())
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"


def _outcome_cell(outcome: SupportOutcome) -> str:
    parts = [_SYMBOLS[outcome.outcome], _WORDS[outcome.outcome]]
    if outcome.message and outcome.outcome != "supported":
        parts.append(_short(outcome.message))
    parts.append(f"({outcome.verified_on}, {outcome.date.isoformat()})")
    return _cell(" ".join(parts))


def _matrix_cell(info: ParameterInfo, backend: str, support: SupportTable) -> str:
    recorded = support.get(backend, info.path)
    if recorded is not None:
        return _outcome_cell(recorded)
    status, note = static_status(info, backend)
    if status == "not_applicable":
        return _SYMBOLS[status]
    return _cell(f"{_SYMBOLS[status]} {note}")


def _details(rows: Sequence[ParameterInfo], support: SupportTable) -> list[str]:
    lines: list[str] = []
    for info in rows:
        for backend in BACKENDS:
            recorded = support.get(backend, info.path)
            if recorded is not None and recorded.message:
                values = ", ".join(format_value(v) for v in recorded.values)
                lines.append(
                    f"- `{info.path}` on {backend} ({recorded.outcome}; values {values}): "
                    f"{' '.join(recorded.message.split())}"
                )
    return ["", "## Messages", "", *lines] if lines else []


def render_matrix(support: SupportTable) -> str:
    """The text of ``docs/parameter-support-matrix.md`` from recorded outcomes."""
    rows = matrix_parameters()
    cells = len(rows) * len(BACKENDS)
    verified = sum(support.get(b, info.path) is not None for info in rows for b in BACKENDS)
    legend = " · ".join(f"{symbol} {_WORDS[name]}" for name, symbol in _SYMBOLS.items())
    table = _table(
        ("Parameter", *BACKENDS),
        ([_code(info.path), *(_matrix_cell(info, b, support) for b in BACKENDS)] for info in rows),
    )
    lines = [
        _HEADER.format(command=REGENERATE_COMMAND),
        "# Parameter support matrix",
        "",
        "Each parameter of each backend: what happened when its test values "
        "(`llenergymeasure.parameters.introspection.test_values`) ran, and where. Outcomes come "
        f"from [{SUPPORT_FILE}]({SUPPORT_FILE}), written by the validation campaign; "
        f"{verified} of {cells} cells have one. A cell without one shows what the models "
        "alone say. Parameter details: [config-reference.md](config-reference.md).",
        "",
        f"Legend: {legend}.",
        "",
        *table,
        *_details(rows, support),
    ]
    return "\n".join(lines) + "\n"


# --- files ----------------------------------------------------------------------------------


def generated_files(docs_dir: Path) -> dict[str, str]:
    """Every generated file's path relative to ``docs_dir`` and its expected text."""
    support = load_support(docs_dir / SUPPORT_FILE)
    files = {
        REFERENCE_FILE: render_reference(),
        MATRIX_FILE: render_matrix(support),
    }
    for name, build in SCHEMAS.items():
        files[f"schema/{name}.schema.json"] = (
            json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        )
    return files


def stale_files(docs_dir: Path) -> list[str]:
    """The generated files that are missing or differ from what the models produce."""
    return _differing(docs_dir, generated_files(docs_dir))


def _differing(docs_dir: Path, expected: dict[str, str]) -> list[str]:
    return [
        relative
        for relative, text in expected.items()
        if not (docs_dir / relative).is_file()
        or (docs_dir / relative).read_text(encoding="utf-8") != text
    ]


def write_docs(docs_dir: Path) -> list[str]:
    """(Re)write the stale generated files atomically; returns what changed."""
    expected = generated_files(docs_dir)
    changed = _differing(docs_dir, expected)
    for relative in changed:
        write_text_atomic(docs_dir / relative, expected[relative])
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: regenerate (default) or ``--check``; exit 1 when ``--check`` finds stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs-dir", type=Path, default=Path("docs"))
    parser.add_argument("--check", action="store_true", help="report stale files, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.docs_dir)
        for relative in stale:
            print(f"stale: {args.docs_dir / relative} (run: {REGENERATE_COMMAND})")
        return 1 if stale else 0
    for relative in write_docs(args.docs_dir):
        print(f"wrote {args.docs_dir / relative}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
