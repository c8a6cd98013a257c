"""CLI exit codes and messages: 0 ok, 1 run failure, 2 bad config/usage; no tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llenergymeasure._version import __version__
from llenergymeasure.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def assert_clean_usage_error(code: int, output: str, out_dir: Path, *needles: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in output
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_version() -> None:
    assert invoke("--version") == (0, f"llem {__version__}\n")


def test_unknown_model_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, output = invoke("run", "--model", "no-such-org/no-such-model", "--out", str(tmp_path))
    assert_clean_usage_error(code, output, tmp_path, "no-such-org/no-such-model")


def test_misspelt_key_exits_2_with_did_you_mean(tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text("model: m\nmax_output_token: 4\n")
    code, output = invoke("run", str(config), "--out", str(tmp_path / "out"))
    assert_clean_usage_error(code, output, tmp_path / "out", "did you mean 'max_output_tokens'")


def test_negative_n_exits_2(tmp_path: Path) -> None:
    code, output = invoke("run", "--model", "m", "-n", "-3", "--out", str(tmp_path))
    assert_clean_usage_error(code, output, tmp_path, "-n (n): ")


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    code, output = invoke("run", str(tmp_path / "absent.yaml"), "--out", str(tmp_path / "o"))
    assert_clean_usage_error(code, output, tmp_path / "o", "config file not found")


def test_broken_jsonl_line_exits_2(tmp_path: Path) -> None:
    data = tmp_path / "prompts.jsonl"
    data.write_text('{"prompt": "fine"}\n{"prompt": broken\n')
    code, output = invoke(
        "run", "--model", "smollm2-135m", "--dataset", str(data), "--out", str(tmp_path / "o")
    )
    assert_clean_usage_error(code, output, tmp_path / "o", "line 2")


def test_unavailable_backend_library_is_exit_1_with_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llenergymeasure.backends import registry

    spec = registry.BACKENDS["pytorch"]
    monkeypatch.setitem(
        registry.BACKENDS,
        "pytorch",
        spec.__class__("pytorch", spec.target, ("absent_lib",), "do X"),
    )
    code, output = invoke("run", "--model", "m", "--sampler", "null", "--out", str(tmp_path))
    assert code == 1 and "absent_lib" in output and "do X" in output


def test_run_prints_the_table_and_writes_results(tiny_model_dir: Path, tmp_path: Path) -> None:
    args = [
        "run",
        "--model",
        str(tiny_model_dir),
        "-n",
        "3",
        "--max-output-tokens",
        "3",
        "--sampler",
        "null",
        "--out",
        str(tmp_path),
    ]
    code, output = invoke(*args)
    assert code == 0, output
    assert "output tokens/s" in output and "TTFT" in output and "results:" in output
    code, quiet = invoke(*args, "-q")
    assert code == 0 and Path(quiet.strip()).is_dir()
    assert len(list(tmp_path.iterdir())) == 2


def test_config_command_reports_backends_and_samplers() -> None:
    code, output = invoke("config")
    assert code == 0
    assert "pytorch" in output and "null" in output and "auto →" in output


def test_config_schema_is_json() -> None:
    import json

    code, output = invoke("config", "--schema")
    assert code == 0 and "max_output_tokens" in json.loads(output)["properties"]


def test_embedded_default_runs_end_to_end(tmp_path: Path, embedded_folder: Path) -> None:
    """`llem run` with no file and no model measures the embedded SmolLM2 (small n here)."""
    code, output = invoke(
        "run", "-n", "4", "--max-output-tokens", "6", "--batch-size", "2", "--out", str(tmp_path)
    )
    assert code == 0, output
    import llenergymeasure as llem

    (folder,) = tmp_path.iterdir()
    result = llem.load_result(folder)
    assert result.model.source_kind == "embedded" and result.config.model == "smollm2-135m"
    assert result.metrics.total_output_tokens > 0 and result.metrics.output_tokens_per_s
    assert result.metrics.ttft.mean_s and result.metrics.itl.mean_s
    assert result.measurement_method in {"rapl", "codecarbon", "null"}
    assert result.metrics.ttft.mean_s < result.metrics.e2e_latency.mean_s


def test_untested_library_version_is_refused_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llenergymeasure.backends import registry

    spec = registry.BACKENDS["pytorch"]
    untested = registry.BackendSpec(
        spec.name, spec.target, spec.requires, spec.install_hint, (("torch", "<1.0"),)
    )
    monkeypatch.setitem(registry.BACKENDS, "pytorch", untested)
    code, output = invoke("run", "--model", "m", "--sampler", "null", "--out", str(tmp_path))
    assert code == 1 and "outside the tested range <1.0" in output
    monkeypatch.setenv("LLEM_ALLOW_UNTESTED", "1")
    registry.check_tested_versions(untested, {"torch": "2.13.0"})  # no error when allowed
