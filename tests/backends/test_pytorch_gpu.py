"""GPU-only checks of the pytorch backend (skipped without CUDA)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llenergymeasure.config import ExperimentConfig
from llenergymeasure.datasets import Prompt


@pytest.mark.gpu
def test_runs_on_cuda_with_bf16_and_reports_cuda_peak_memory(tiny_model_dir: Path) -> None:
    from llenergymeasure.backends.pytorch.backend import PyTorchBackend

    backend = PyTorchBackend()
    info = backend.load(ExperimentConfig(model=str(tiny_model_dir), chat_template=False))
    assert info.device.startswith("cuda") and info.dtype == "bfloat16"
    backend.reset_peak_memory()
    prepared = backend.prepare([Prompt(text="hello", token_ids=None, index=0)])
    records = backend.run(prepared, max_output_tokens=4)
    memory = backend.peak_memory()
    assert records[0].output_tokens > 0
    assert memory.peak_mb and memory.peak_mb > 0 and "cuda" in memory.scope
