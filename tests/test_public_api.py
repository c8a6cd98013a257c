"""The curated public surface changes only on purpose."""

from __future__ import annotations

import subprocess
import sys

import llenergymeasure as llem

EXPECTED = {
    "BackendError",
    "ConfigError",
    "DatasetError",
    "DependencyError",
    "EnergySamplerError",
    "ExperimentConfig",
    "ExperimentResult",
    "LLEMError",
    "ModelNotFoundError",
    "ResultsError",
    "SamplerUnavailableError",
    "StudyConfig",
    "StudyResult",
    "__version__",
    "load_result",
    "load_results",
    "load_study_result",
    "report",
    "run",
}


def test_all_is_exactly_the_curated_set() -> None:
    assert set(llem.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(llem, name)


def test_errors_form_one_hierarchy_with_exit_codes() -> None:
    assert issubclass(llem.ConfigError, llem.LLEMError)
    assert llem.ConfigError.exit_code == 2 and llem.ModelNotFoundError.exit_code == 2
    assert llem.DatasetError.exit_code == 2 and llem.BackendError.exit_code == 1


def test_importing_the_package_and_cli_help_load_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from llenergymeasure.cli import app\n"
        "import llenergymeasure\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        "assert CliRunner().invoke(app, ['run', '--help']).exit_code == 0\n"
        "assert CliRunner().invoke(app, ['report', '--help']).exit_code == 0\n"
        "heavy = {'torch', 'transformers', 'codecarbon', 'pynvml', 'vllm', 'pandas', 'plotly'}\n"
        "heavy &= set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
