"""The measurement-warning codes: one list, every raised code in it, the README table equal to it.

Codes are raised three ways in ``src/``: as ``WarningCode.<NAME>`` (checked by mypy and below),
as the text of a ``(code, message)`` pair put into a list where the layer is below ``results``
(the decoder's config warnings), and as ``code=`` text. The scan finds the last two by shape.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from llenergymeasure.config import DecoderConfig
from llenergymeasure.energy.nvml import MISMATCH_TOLERANCE
from llenergymeasure.harness.checks import (
    BUSY_BASELINE_PCT,
    GENERATOR_LAG_S,
    GENERATOR_LAG_SHARE,
    MAX_TEMPERATURE_DRIFT_C,
    MIN_ENERGY_SAMPLES,
    MIN_WINDOW_S,
    RATE_SHORTFALL,
    STEADY_MIN_S,
    STEADY_MIN_SHARE,
    UNSATURATED_SHARE,
    config_warnings,
)
from llenergymeasure.results import ExperimentResult, MeasurementWarning
from llenergymeasure.results.warning_codes import WarningCode, warning_code, warning_meaning

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "src" / "llenergymeasure").rglob("*.py"))
README = ROOT / "README.md"
CODE_SHAPE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


def _is_message(node: ast.expr) -> bool:
    """A sentence: an f-string, a concatenation, or text with a space in it."""
    if isinstance(node, (ast.JoinedStr, ast.BinOp)):
        return True
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and " " in node.value


def _text(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _listed_pairs(node: ast.AST) -> Iterator[ast.expr]:
    """The tuples a node puts into a list: ``[(a, b), ...]`` and ``x.append((a, b))``."""
    if isinstance(node, ast.List):
        yield from node.elts
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "append"
        and len(node.args) == 1
    ):
        yield node.args[0]


def _raised(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """``(code, line)`` of every code raised in a module, by text or by enum member name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "WarningCode" and node.attr.isupper():
                yield WarningCode[node.attr].value, node.lineno
        elif isinstance(node, ast.keyword) and node.arg == "code":
            code = _text(node.value)
            if code is not None:
                yield code, node.value.lineno
        for pair in _listed_pairs(node):
            if isinstance(pair, ast.Tuple) and len(pair.elts) == 2:
                code = _text(pair.elts[0])
                if code is not None and CODE_SHAPE.fullmatch(code) and _is_message(pair.elts[1]):
                    yield code, pair.lineno


def _raised_in_src() -> dict[str, list[str]]:
    """Every code raised anywhere in src/, with where."""
    found: dict[str, list[str]] = {}
    for path in SOURCES:
        if path.name == "warning_codes.py":
            continue  # the list itself
        for code, line in _raised(ast.parse(path.read_text(encoding="utf-8"))):
            found.setdefault(code, []).append(f"{path.relative_to(ROOT)}:{line}")
    return found


def test_every_code_raised_in_src_is_listed_and_every_listed_code_is_raised() -> None:
    raised = _raised_in_src()
    listed = {code.value for code in WarningCode}

    unlisted = {code: where for code, where in raised.items() if code not in listed}
    assert not unlisted, f"add these to results.warning_codes.WarningCode: {unlisted}"
    assert set(raised) == listed, f"listed but never raised: {sorted(listed - set(raised))}"
    # The scan sees codes raised as text (the config's), not only enum members.
    assert {"greedy_ignores_sampling", "no_beams_ignores_beam_fields"} <= set(raised)


def test_the_scan_recognises_each_shape_and_skips_pairs_that_are_not_warnings() -> None:
    source = """
found.append(("made_up_code", f"{x} is wrong"))
MeasurementWarning(code="other_code", message="m")
pairs = [("torch_compile_mode", "torch_compile_backend")]
return "not_applicable", "not applicable"
WarningCode.SHORT_WINDOW
"""
    assert sorted(c for c, _ in _raised(ast.parse(source))) == [
        "made_up_code",
        "other_code",
        "short_window",
    ]


def test_each_code_has_a_one_line_meaning_and_unique_text() -> None:
    assert len(WarningCode.__members__) == len(WarningCode)  # no two names share a code
    for code in WarningCode:
        assert CODE_SHAPE.fullmatch(code.value)
        assert code.meaning and "\n" not in code.meaning and not code.meaning.endswith(".")
        assert str(code) == code.value == f"{code}"


def _readme_table() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    start = text.index("| warning | meaning |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        match = re.fullmatch(r"\| `([a-z0-9_]+)` \| (.+) \|", line)
        assert match, f"README warnings table: unexpected row {line!r}"
        rows[match.group(1)] = match.group(2)
    return rows


def test_the_readme_table_lists_exactly_the_codes_with_their_meanings() -> None:
    expected = {code.value: code.meaning for code in WarningCode}
    table = "\n".join(f"| `{c}` | {m} |" for c, m in expected.items())
    assert _readme_table() == expected, f"the README's warnings table should read:\n{table}"


def test_the_readme_gives_the_thresholds_the_checks_use() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    for phrase in (
        f"`short_window` below {MIN_WINDOW_S:g} s",
        f"`too_few_samples` below {MIN_ENERGY_SAMPLES} reads",
        f"`thermal_drift` beyond {MAX_TEMPERATURE_DRIFT_C:g} °C",
        f"`counter_mismatch` beyond {MISMATCH_TOLERANCE:.0%}".replace("%", " %"),
        f"more than {BUSY_BASELINE_PCT:g} % busy",
        f"under {STEADY_MIN_S:g} s or under {_pct(STEADY_MIN_SHARE)} of the measured window",
        f"under {_pct(UNSATURATED_SHARE)} of the cap",
        f"p99 above {GENERATOR_LAG_S * 1e3:g} ms or above {_pct(GENERATOR_LAG_SHARE)} of the "
        "mean scheduled inter-arrival time",
        f"more than {_pct(RATE_SHORTFALL)} below the schedule's own rate",
    ):
        assert phrase in text


def _pct(share: float) -> str:
    """A share as the README writes it: ``0.05`` -> ``5 %``."""
    return f"{share:.0%}".replace("%", " %")


def test_an_unknown_code_from_a_newer_version_still_loads_without_a_meaning() -> None:
    warning = MeasurementWarning.model_validate({"code": "from_the_future", "message": "m"})

    assert warning.code == "from_the_future" and warning.meaning is None
    assert warning_meaning("from_the_future") is None
    assert "warnings" in ExperimentResult.model_fields  # the list holds these as they are


def test_warnings_are_written_with_a_listed_code_and_show_its_meaning() -> None:
    warning = MeasurementWarning.of(WarningCode.THROTTLING, "clocks throttled in 40%")

    assert warning.model_dump() == {"code": "throttling", "message": "clocks throttled in 40%"}
    assert type(warning.model_dump()["code"]) is str
    assert warning.meaning == WarningCode.THROTTLING.meaning


def test_an_unlisted_code_is_refused_where_a_warning_is_made() -> None:
    assert warning_code("short_window") is WarningCode.SHORT_WINDOW
    with pytest.raises(ValueError, match=r"add it to .*WarningCode"):
        warning_code("not_a_code")


def test_config_warnings_become_listed_codes() -> None:
    decoder = DecoderConfig(do_sample=False, temperature=0.7)
    assert [code for code, _ in decoder.warnings()] == ["greedy_ignores_sampling"]

    class Config:
        def config_warnings(self) -> list[tuple[str, str]]:
            return decoder.warnings()

    (warning,) = config_warnings(Config())  # type: ignore[arg-type]
    assert warning.code == "greedy_ignores_sampling" and warning.meaning
