"""`llem run --backend vllm` with no file and no model runs the embedded default on the real vLLM
engine (#18): its vllm section batches 8 (max_num_seqs) and reserves 30 % of memory, so it
starts where vLLM's own 0.9 would not (on CPU that fraction is of RAM).

Runs only where vLLM is installed (``scripts/test-vllm.sh``); one engine start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

vllm = pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

import llenergymeasure as llem  # noqa: E402
from llenergymeasure.cli.defaults import EMBEDDED_BATCH, EMBEDDED_MEMORY  # noqa: E402


def test_the_embedded_default_runs_on_vllm(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llenergymeasure.cli", "run", "--backend", "vllm", "-n", "2",
         "--max-output-tokens", "4", "--sampler", "null", "--out", str(tmp_path), "-q"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    result = llem.load_result(Path(done.stdout.strip().splitlines()[-1]))
    vllm_options = result.config.vllm_options
    assert result.config.name == "smollm2-135m_vllm_default"
    assert vllm_options.max_num_seqs == EMBEDDED_BATCH
    assert vllm_options.gpu_memory_utilization == EMBEDDED_MEMORY["vllm"]["gpu_memory_utilization"]
    assert result.metrics.n_requests == 2 and result.metrics.total_output_tokens > 0
