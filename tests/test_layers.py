"""The package's layers: every import between subpackages runs down the declared order.

The order is written down here, once; the README's layout section repeats it (checked below).
A module may import from its own subpackage and from any lower layer, never from its own
layer's other members or from above. Imports inside functions and under ``TYPE_CHECKING``
count too: a deferred import that only hides a cycle is still a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "llenergymeasure"
README = Path(__file__).resolve().parents[1] / "README.md"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("_version", "errors"),
    ("paths", "fileio"),
    ("config",),
    ("devices", "flops"),
    ("results",),
    ("datasets", "energy", "load", "telemetry"),
    ("backends",),
    ("estimate", "harness"),
    ("study",),
    ("parameters", "reporting"),
    ("api",),
    ("cli",),
    ("testing",),
    ("campaign",),
    ("__init__",),  # the package facade: `import llenergymeasure as llem`
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _unit_of_file(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return "__init__" if parts == ("__init__",) else parts[0]


def _module_of_file(path: Path) -> str:
    parts = ("llenergymeasure", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit_of_module(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "llenergymeasure":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _is_submodule(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def _imported(node: ast.Import | ast.ImportFrom, path: Path) -> Iterator[str]:
    """The project modules an import statement loads (relative imports resolved)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    module = node.module or ""
    if node.level:
        package = _module_of_file(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        base = package[: len(package) - node.level + 1]
        module = ".".join([*base, module] if module else base)
    if module == "llenergymeasure":  # `from llenergymeasure import devices` loads devices
        for alias in node.names:
            yield f"llenergymeasure.{alias.name}" if _is_submodule(alias.name) else module
        return
    yield module


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for module in _imported(node, path):
                unit = _unit_of_module(module)
                if unit is not None:
                    yield node.lineno, unit


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_subpackage_has_a_layer() -> None:
    units = {_unit_of_file(path) for path in SOURCES}
    assert units - set(RANK) == set(), "declare the new subpackage in LAYERS"
    assert set(RANK) - units == set(), "LAYERS names a subpackage that no longer exists"


def test_imports_follow_the_layer_order() -> None:
    violations = []
    for path in SOURCES:
        own = _unit_of_file(path)
        for line, target in _imports(path):
            if target != own and RANK[target] >= RANK[own]:
                where = path.relative_to(PACKAGE.parent)
                violations.append(
                    f"{where}:{line}: {own} (layer {RANK[own]}) imports {target} "
                    f"(layer {RANK[target]})"
                )
    assert violations == [], "imports against the layer order:\n" + "\n".join(violations)


def test_readme_states_the_order() -> None:
    order = " → ".join("/".join(units) for units in LAYERS[:-1])
    assert order in README.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from llenergymeasure.harness import runner\n", "harness"),
        ("def f():\n    from llenergymeasure.api import run\n", "api"),
        ("if TYPE_CHECKING:\n    import llenergymeasure.cli\n", "cli"),
        ("from llenergymeasure import study\n", "study"),
        ("from .. import api\n", "api"),
    ],
)
def test_checker_sees_every_kind_of_import(source: str, expected: str) -> None:
    """The checker itself: module-level, deferred, TYPE_CHECKING and package-relative imports."""
    fake = PACKAGE / "results" / "_layer_probe.py"  # parsed as if it lived in results/
    node_units = [
        _unit_of_module(module)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for module in _imported(node, fake)
    ]
    assert expected in node_units
    assert RANK[expected] > RANK["results"]  # each of these would be reported from results/
