"""J/FLOP, MFU and MBU arithmetic, and every path where a figure is None with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from llenergymeasure.flops import (
    FlopsMetrics,
    TransformerShape,
    canonical_dtype,
    compute_flops_metrics,
    efficiency,
    workload_bytes,
    workload_flops,
)

TINY: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 16,
    "vocab_size": 10,
    "tie_word_embeddings": True,
}
H100 = "NVIDIA H100 80GB HBM3"


@dataclass
class Counts:
    input_tokens: int
    output_tokens: int


RECORDS = [Counts(3, 4), Counts(3, 0)]
FLOPS = 2 * 7696 + 8592  # see test_flops_workload: two prefills of 3 tokens, one 4-token decode


def test_full_arithmetic_on_an_h100() -> None:
    metrics = compute_flops_metrics(TINY, RECORDS, 2.0, 10.0, "bfloat16", H100)
    assert metrics.flops_total == FLOPS
    assert (metrics.flops_prefill, metrics.flops_decode) == (2 * 7696, 8592)
    assert metrics.flops_per_output_token == FLOPS / 4
    assert metrics.energy_per_flop_j == 10.0 / FLOPS
    assert metrics.peak_flops_per_s == pytest.approx(989.5e12)
    assert metrics.mfu == pytest.approx(FLOPS / 2.0 / 989.5e12)
    expected_bytes = workload_bytes(TransformerShape.from_config(TINY), RECORDS, 2.0)
    assert metrics.bytes_moved == expected_bytes
    assert metrics.mbu == pytest.approx(expected_bytes / 2.0 / 3.35e12)
    assert metrics.peak_bandwidth_bytes_per_s == pytest.approx(3.35e12)
    assert metrics.device_spec == "NVIDIA H100 SXM5 80GB" and metrics.dtype == "bf16"
    assert metrics.n_parameters == 1272 and metrics.n_parameters_non_embedding == 1192
    assert metrics.reason is None and metrics.assumption is None


def test_devices_multiply_the_peaks() -> None:
    one = compute_flops_metrics(TINY, RECORDS, 2.0, 10.0, "bf16", H100)
    two = compute_flops_metrics(TINY, RECORDS, 2.0, 10.0, "bf16", H100, n_devices=2)
    assert two.peak_flops_per_s == pytest.approx(2 * (one.peak_flops_per_s or 0))
    assert two.mfu == pytest.approx((one.mfu or 0) / 2)
    assert two.mbu == pytest.approx((one.mbu or 0) / 2)


def test_batch_size_reaches_the_byte_count() -> None:
    shape = TransformerShape.from_config(TINY)
    metrics = compute_flops_metrics(TINY, RECORDS, 1.0, None, "fp32", H100, batch_size=2)
    assert metrics.bytes_moved == workload_bytes(shape, RECORDS, 4.0, batch_size=2)
    assert metrics.peak_flops_per_s == pytest.approx(67e12)  # fp32 = CUDA-core rate


def test_cpu_run_has_flops_and_j_per_flop_but_no_utilisation() -> None:
    metrics = compute_flops_metrics(TINY, RECORDS, 2.0, 5.0, "float32", None)
    assert metrics.flops_total == FLOPS and metrics.energy_per_flop_j == 5.0 / FLOPS
    assert metrics.mfu is None and metrics.mbu is None and metrics.peak_flops_per_s is None
    assert metrics.reason is not None and "mfu, mbu" in metrics.reason and "CPU" in metrics.reason


def test_no_energy_means_no_j_per_flop() -> None:
    metrics = compute_flops_metrics(TINY, RECORDS, 2.0, None, "bf16", H100)
    assert metrics.energy_per_flop_j is None and metrics.mfu is not None
    assert metrics.reason == "energy_per_flop_j: no energy was measured"


def test_dtype_without_a_peak_on_that_gpu() -> None:
    metrics = compute_flops_metrics(TINY, RECORDS, 2.0, 1.0, "fp8", "NVIDIA A100-SXM4-80GB")
    assert metrics.mfu is None and metrics.mbu is not None  # bandwidth does not depend on dtype
    assert metrics.reason is not None and "no fp8 peak" in metrics.reason


def test_unknown_gpu() -> None:
    metrics = compute_flops_metrics(TINY, RECORDS, 2.0, 1.0, "bf16", "NVIDIA L40")
    assert metrics.mfu is None and metrics.mbu is None
    assert metrics.reason is not None and "not in the spec table" in metrics.reason


def test_unknown_dtype() -> None:
    metrics = compute_flops_metrics(TINY, RECORDS, 2.0, 1.0, "auto", H100)
    assert metrics.flops_total == FLOPS  # FLOPs do not depend on the dtype
    assert metrics.mfu is None and metrics.bytes_moved is None and metrics.mbu is None
    assert metrics.reason is not None and "unknown dtype 'auto'" in metrics.reason


def test_zero_duration_and_no_requests() -> None:
    metrics = compute_flops_metrics(TINY, [], 0.0, 1.0, "bf16", H100)
    assert metrics.flops_total == 0 and metrics.flops_per_output_token is None
    assert metrics.energy_per_flop_j is None and metrics.mfu is None and metrics.mbu is None
    assert metrics.reason is not None
    assert "no FLOPs" in metrics.reason and "no duration" in metrics.reason


def test_a_config_that_cannot_be_counted_gives_none_everywhere() -> None:
    metrics = compute_flops_metrics({"model_type": "gpt2"}, RECORDS, 2.0, 1.0, "bf16", H100)
    assert metrics.flops_total is None and metrics.mfu is None and metrics.n_parameters is None
    assert metrics.reason is not None and "cannot be counted" in metrics.reason


def test_efficiency_from_known_totals() -> None:
    metrics = efficiency(
        flops_total=1e15,
        bytes_moved=1e12,
        duration_s=1.0,
        energy_total_j=700.0,
        dtype="torch.bfloat16",
        gpu_name=H100,
    )
    assert metrics.energy_per_flop_j == pytest.approx(7e-13)
    assert metrics.mfu == pytest.approx(1e15 / 989.5e12)
    assert metrics.mbu == pytest.approx(1e12 / 3.35e12)
    assert metrics.achieved_flops_per_s == 1e15 and metrics.achieved_bytes_per_s == 1e12
    missing = efficiency(
        flops_total=1e15,
        bytes_moved=None,
        duration_s=1.0,
        energy_total_j=1.0,
        dtype="bf16",
        gpu_name=H100,
    )
    assert missing.mbu is None and missing.reason == "mbu: no byte count"


def test_a_pretrained_config_object_works_like_its_dict() -> None:
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.LlamaConfig(**{k: v for k, v in TINY.items() if k != "model_type"})
    from_object = compute_flops_metrics(hf_config, RECORDS, 2.0, 1.0, "bf16", H100)
    assert from_object == compute_flops_metrics(TINY, RECORDS, 2.0, 1.0, "bf16", H100)


def test_metrics_round_trip_through_json() -> None:
    metrics = compute_flops_metrics(TINY, RECORDS, 2.0, 1.0, "bf16", None)
    assert FlopsMetrics.model_validate_json(metrics.model_dump_json()) == metrics


def test_workload_flops_agree_with_the_metrics() -> None:
    flops = workload_flops(TransformerShape.from_config(TINY), RECORDS)
    assert flops.total == FLOPS


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("float32", "fp32"),
        ("torch.float16", "fp16"),
        ("BF16", "bf16"),
        ("bfloat16", "bf16"),
        ("tf32", "tf32"),
        ("float8_e4m3fn", "fp8"),
        ("auto", None),
        ("int4", None),
    ],
)
def test_canonical_dtype(name: str, canonical: str | None) -> None:
    assert canonical_dtype(name) == canonical
