"""Start-up stays light: `import llenergymeasure`, `llem --help` and `llem --version` load no
heavy library and build no config model; the lazy facade still offers every public name.

Each check runs in a fresh interpreter and reads its ``sys.modules`` at exit (timings live in
benchmarks/startup.py, not here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import llenergymeasure as llem

HEAVY = {"torch", "transformers", "pyarrow", "pandas", "plotly", "vllm", "pynvml", "codecarbon"}

# Runs `llem` exactly as the console script does (llenergymeasure.cli:main), then writes the
# exit code and the loaded modules to the file named by the last argument.
_LLEM = """
import json, sys
report = sys.argv.pop()
sys.argv = ["llem", *sys.argv[1:]]
from llenergymeasure.cli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
with open(report, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def _llem(args: list[str], tmp_path: Path) -> tuple[int, set[str], str]:
    """Exit code, loaded modules and stdout of `llem ARGS` in a fresh interpreter."""
    report = tmp_path / "modules.json"
    out = subprocess.run(
        [sys.executable, "-c", _LLEM, *args, str(report)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    data = json.loads(report.read_text(encoding="utf-8"))
    return data["code"], set(data["modules"]), out.stdout


def _imported_by(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def _project(modules: set[str]) -> set[str]:
    return {m for m in modules if m == "llenergymeasure" or m.startswith("llenergymeasure.")}


def test_importing_the_package_loads_nothing_but_the_version() -> None:
    modules = _imported_by("import llenergymeasure")
    assert HEAVY & modules == set()
    assert _project(modules) == {"llenergymeasure", "llenergymeasure._version"}
    assert "pydantic" not in modules


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_llem_help_and_version_load_no_heavy_library_and_no_config(
    args: list[str], tmp_path: Path
) -> None:
    code, modules, _ = _llem(args, tmp_path)
    assert code == 0
    assert HEAVY & modules == set()
    # the config models (Pydantic schema building) load only when a command needs them
    assert not any(m.startswith("llenergymeasure.config") for m in modules)
    assert "pydantic" not in modules


@pytest.mark.parametrize("command", ["run", "config", "report"])
def test_command_help_loads_no_heavy_library(command: str, tmp_path: Path) -> None:
    code, modules, stdout = _llem([command, "--help"], tmp_path)
    assert code == 0 and "Usage" in stdout
    assert HEAVY & modules == set()


def test_run_help_takes_option_help_from_the_config_fields(tmp_path: Path) -> None:
    from llenergymeasure.config.models import ExperimentConfig

    _, _, stdout = _llem(["run", "--help"], tmp_path)
    description = ExperimentConfig.model_fields["max_output_tokens"].description or ""
    words = description.split()[:3]
    assert words and " ".join(words) in " ".join(stdout.replace("│", " ").split())


def test_llem_version_prints_the_version(tmp_path: Path) -> None:
    code, _, stdout = _llem(["--version"], tmp_path)
    assert code == 0
    assert stdout.strip() == f"llem {llem.__version__}"


def test_every_public_name_resolves_lazily() -> None:
    code = (
        "import llenergymeasure as llem\n"
        "from llenergymeasure import *\n"
        "names = {name: getattr(llem, name) for name in llem.__all__}\n"
        "assert set(llem.__all__) <= set(dir(llem))\n"
        "assert names['run'] is run and names['ExperimentConfig'] is ExperimentConfig\n"
        "assert issubclass(llem.ConfigError, llem.LLEMError)"
    )
    modules = _imported_by(code)
    assert "llenergymeasure.api" in modules  # `llem.run` really imported it


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        _ = llem.not_a_name  # type: ignore[attr-defined]
    assert not hasattr(llem, "also_not_a_name")
