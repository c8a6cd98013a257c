"""``backend: tensorrt`` end to end through the CLI on the fake TensorRT-LLM.

``LLEM_FAKE_TENSORRT=1 python -m llenergymeasure.testing run ...`` installs the shipped fake as
``tensorrt_llm`` in the ``llem`` process: streamed chunk timestamps become TTFT/ITL in the
result and the per-request file, and a second run with the same build options reuses the saved
engine (a cache hit on the result).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import llenergymeasure as llem
from llenergymeasure.results import load_requests
from llenergymeasure.testing import FAKE_TENSORRT_ENV, fake_tensorrt_from_spec

pytest.importorskip("transformers")

N_PROMPTS = 3
MAX_OUTPUT_TOKENS = 6


def experiment(model_dir: Path) -> dict[str, Any]:
    return {
        "model": str(model_dir),
        "backend": "tensorrt",
        "n": N_PROMPTS,
        "max_output_tokens": MAX_OUTPUT_TOKENS,
        "chat_template": False,
        "warmup": {"n_warmup": 1, "max_output_tokens": 2, "thermal_floor_s": 0},
        "baseline": {"enabled": False},
        "energy": {"sampler": "null"},
        "tensorrt": {"runtime": "engine", "build_config": {"max_batch_size": 4}},
    }


def llem_run_on_the_fake(config: Path, out: Path, cache: Path) -> Path:
    """One ``llem run`` through the fakes' entry point; returns the result folder."""
    environment = {**os.environ, FAKE_TENSORRT_ENV: "1", "LLEM_CACHE_DIR": str(cache)}
    completed = subprocess.run(
        [sys.executable, "-m", "llenergymeasure.testing", "run", str(config), "--out",
         str(out), "--quiet"],
        capture_output=True, text=True, env=environment, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr + completed.stdout
    assert "Traceback" not in completed.stderr
    return Path(completed.stdout.strip().splitlines()[-1])


def test_llem_run_with_the_fake_tensorrt(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(experiment(tiny_model_dir)))
    cache = tmp_path / "cache"

    first = llem.load_result(llem_run_on_the_fake(config, tmp_path / "out", cache))
    second_folder = llem_run_on_the_fake(config, tmp_path / "out", cache)
    second = llem.load_result(second_folder)

    assert first.model.details["engine_cache"] == "miss"
    assert second.model.details["engine_cache"] == "hit"
    assert first.model.details["engine_cache_key"] == second.model.details["engine_cache_key"]
    assert second.model.details["tensorrt_llm"] == "1.0.0"
    metrics = second.metrics
    assert metrics.total_output_tokens == N_PROMPTS * MAX_OUTPUT_TOKENS
    assert metrics.ttft.mean_s is not None and metrics.itl.mean_s is not None
    assert 0 < metrics.ttft.mean_s < metrics.e2e_latency.mean_s
    for record in load_requests(second_folder):
        assert sum(record.chunk_tokens) == record.output_tokens == MAX_OUTPUT_TOKENS
        assert len(record.chunk_times_s) > 1  # the fake streams several chunks per request
        assert record.ttft_s == pytest.approx(record.chunk_times_s[0] - record.submit_s)
        assert len(record.itl_s) == len(record.chunk_times_s) - 1


def test_spec_is_1_or_a_json_object_of_fields() -> None:
    assert fake_tensorrt_from_spec("1").spec.version == "1.0.0"
    custom = fake_tensorrt_from_spec(json.dumps({"version": "1.1.0", "chunk_pattern": [2]}))
    assert custom.spec.version == "1.1.0" and custom.spec.chunk_pattern == (2,)
    with pytest.raises(ValueError, match="unknown fake TensorRT-LLM field"):
        fake_tensorrt_from_spec('{"speed": 3}')
    with pytest.raises(ValueError, match="1 or a JSON object"):
        fake_tensorrt_from_spec("[1]")
