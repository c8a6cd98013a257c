"""The GPU spec table: names as NVML reports them, look-alikes kept apart, dense figures."""

from __future__ import annotations

import pytest

from llenergymeasure.flops import DEVICE_SPECS, find_device_spec
from llenergymeasure.flops.specs import name_words

NVML_NAMES = [
    ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 80GB"),
    ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe 80GB"),
    ("NVIDIA H100 NVL", "NVIDIA H100 NVL 94GB"),
    ("NVIDIA H200", "NVIDIA H200 SXM 141GB"),
    ("NVIDIA H200 NVL", "NVIDIA H200 NVL 141GB"),
    ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 SXM4 80GB"),
    ("NVIDIA A100-SXM4-40GB", "NVIDIA A100 SXM4 40GB"),
    ("NVIDIA A100-SXM-80GB", "NVIDIA A100 SXM4 80GB"),
    ("NVIDIA A100-PCIE-40GB", "NVIDIA A100 PCIe 40GB"),
    ("NVIDIA A100 80GB PCIe", "NVIDIA A100 PCIe 80GB"),
    ("NVIDIA L40S", "NVIDIA L40S"),
    ("NVIDIA L4", "NVIDIA L4"),
    ("NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090"),
    ("NVIDIA A10G", "NVIDIA A10G"),
    ("NVIDIA A10", "NVIDIA A10"),
    ("  nvidia h100 80gb hbm3  ", "NVIDIA H100 SXM5 80GB"),  # case and spacing do not matter
    ("H100-SXM5-80G", "NVIDIA H100 SXM5 80GB"),  # "80G" reads as "80GB"
]


@pytest.mark.parametrize(("gpu_name", "expected"), NVML_NAMES)
def test_nvml_names_find_their_entry(gpu_name: str, expected: str) -> None:
    match = find_device_spec(gpu_name)
    assert match.spec is not None, match.reason
    assert match.spec.name == expected and match.reason is None


NOT_IN_TABLE = [
    ("NVIDIA L40", "not in the spec table"),  # not an L40S
    ("NVIDIA H20", "not in the spec table"),  # not an H200
    ("NVIDIA H800", "not in the spec table"),
    ("NVIDIA GeForce RTX 4090 D", "RTX variant"),  # the cut-down China part
    ("NVIDIA GeForce RTX 4090 Laptop GPU", "RTX variant"),
    ("NVIDIA GeForce RTX 3090", "RTX variant"),
    ("NVIDIA A100", "A100 variant"),  # memory size unknown
    ("NVIDIA H100", "H100 variant"),  # form factor unknown
    ("Tesla T4", "not in the spec table"),
    ("AMD Instinct MI300X", "not in the spec table"),
]


@pytest.mark.parametrize(("gpu_name", "reason"), NOT_IN_TABLE)
def test_unknown_and_ambiguous_names_get_none_with_a_reason(gpu_name: str, reason: str) -> None:
    match = find_device_spec(gpu_name)
    assert match.spec is None
    assert match.reason is not None and reason in match.reason and gpu_name in match.reason


@pytest.mark.parametrize("gpu_name", [None, "", "   "])
def test_no_gpu_means_no_peak(gpu_name: str | None) -> None:
    match = find_device_spec(gpu_name)
    assert match.spec is None and match.reason is not None and "CPU" in match.reason


def test_every_entry_matches_its_own_name_only() -> None:
    for spec in DEVICE_SPECS:
        found = find_device_spec(spec.name)
        assert found.spec is spec, (spec.name, found.reason)


def test_figures_are_dense_and_ordered() -> None:
    for spec in DEVICE_SPECS:
        tflops = spec.peak_tflops
        assert set(tflops) <= {"fp32", "tf32", "fp16", "bf16", "fp8"}
        assert tflops["fp16"] == tflops["bf16"] >= tflops["tf32"] >= tflops["fp32"] > 0
        if "fp8" in tflops:
            assert tflops["fp8"] == pytest.approx(2 * tflops["bf16"], rel=0.02)
        assert spec.memory_bandwidth_gb_s > 0 and spec.source


def test_datasheet_values() -> None:
    h100 = find_device_spec("NVIDIA H100 80GB HBM3").spec
    assert h100 is not None
    assert h100.peak_flops_per_s("bf16") == pytest.approx(1979e12 / 2)  # sparse 1,979 halved
    assert h100.peak_bandwidth_bytes_per_s == pytest.approx(3.35e12)
    a100 = find_device_spec("NVIDIA A100-SXM4-80GB").spec
    assert a100 is not None
    assert a100.peak_flops_per_s("bf16") == pytest.approx(312e12)
    assert a100.peak_flops_per_s("fp8") is None  # Ampere has no FP8 tensor cores
    assert a100.peak_bandwidth_bytes_per_s == pytest.approx(2.039e12)


def test_name_words() -> None:
    assert name_words("NVIDIA A100-SXM4-80GB") == {"NVIDIA", "A100", "SXM4", "80GB"}
