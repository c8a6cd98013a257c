"""scripts/gpu_smoke.py: the backend comparison runs here in its degraded CPU mode.

Without a GPU the script refuses unless ``--allow-cpu``; then every installed backend (pytorch
here, tensorrt on the shipped fake) runs on the same small model and one table prints tokens/s,
TTFT, ITL and J/token side by side, with a line for each backend not installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from llenergymeasure.devices import get_gpus
from llenergymeasure.testing import install_fake_tensorrt_llm

pytest.importorskip("transformers")
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_smoke.py"
pytestmark = pytest.mark.skipif(bool(get_gpus()), reason="checks the no-GPU behaviour")


@pytest.fixture
def gpu_smoke() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_it_stops_unless_allowed(
    gpu_smoke: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gpu_smoke.main([]) == 2
    assert "--allow-cpu" in capsys.readouterr().err


def test_allow_cpu_compares_the_installed_backends(
    gpu_smoke: ModuleType,
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))
    arguments = [
        "--allow-cpu", "--compare-model", str(tiny_model_dir), "--compare-prompts", "4",
        "--compare-batch", "2", "--max-output-tokens", "4", "--input-tokens", "8",
        "--out", str(tmp_path / "results"),
    ]  # fmt: skip
    with install_fake_tensorrt_llm():
        assert gpu_smoke.main(arguments) == 0
    output = capsys.readouterr().out
    lines = output.splitlines()
    (header,) = [line for line in lines if line.split()[:1] == ["backend"]]
    assert header.split()[2:6] == ["tok/s", "TTFT", "ms", "ITL"]
    rows = {line.split()[0]: line for line in lines[lines.index(header) + 1 :]}
    assert set(rows) >= {"pytorch", "tensorrt"}
    assert "tensorrt_llm 1.0.0" in rows["tensorrt"]
    for backend in ("pytorch", "tensorrt"):
        cells = rows[backend].split()
        tokens_per_s, ttft_ms, itl_ms = (float(cells[i]) for i in (-6, -5, -4))
        assert tokens_per_s > 0 and ttft_ms > 0 and itl_ms > 0
    if importlib.util.find_spec("vllm") is None:
        assert "vllm: skipped, not installed" in output
    assert len(list((tmp_path / "results").iterdir())) == len(rows)  # a result per backend
