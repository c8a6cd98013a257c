"""Peak dense compute and memory bandwidth of common NVIDIA GPUs, from the vendor's datasheets.

Every figure is *dense* (no 2:4 structured sparsity): where a datasheet prints only the sparse
figure (marked "*" / "with sparsity"), the value here is half of it. Compute is in TFLOP/s by
the dtype of the matrix inputs:

- ``fp32``: the CUDA-core FP32 rate. PyTorch runs fp32 matmuls there by default
  (``torch.backends.cuda.matmul.allow_tf32`` is False unless a user enables it).
- ``tf32``: the tensor-core rate for fp32 inputs when TF32 is enabled.
- ``fp16`` / ``bf16``: tensor cores with FP32 accumulation (what cuBLAS uses for PyTorch).
- ``fp8``: tensor cores (Hopper and Ada only), FP32 accumulation.

Memory bandwidth is in GB/s (10^9 bytes per second), as printed.

Names are matched as NVML reports them (``nvmlDeviceGetName``), e.g. "NVIDIA H100 80GB HBM3",
"NVIDIA A100-SXM4-80GB", "NVIDIA GeForce RTX 4090": the name is split into upper-case words at
any non-alphanumeric character, and each entry lists the words it needs and the words that rule it
out. Words are compared whole, so an H20 is not an H200, an L40 not an L40S, and an A10 not an
A100 or an A10G. A name that matches no entry, or more than one, gets no spec and a reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# Sources (all NVIDIA product datasheets unless noted; "/2" = dense half of a sparse figure):
_H100_DATASHEET = "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM / PCIe / NVL columns)"
_H200_DATASHEET = "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM / NVL columns)"
_A100_DATASHEET = "NVIDIA A100 Tensor Core GPU datasheet (40GB/80GB, PCIe/SXM columns)"
_L40S_DATASHEET = "NVIDIA L40S GPU datasheet"
_L4_DATASHEET = "NVIDIA L4 Tensor Core GPU datasheet"
_ADA_WHITEPAPER = "NVIDIA Ada GPU Architecture whitepaper, Appendix A (GeForce RTX 4090)"
_A10_DATASHEET = "NVIDIA A10 Tensor Core GPU datasheet"
_A10G_SOURCE = (
    "no NVIDIA datasheet exists for the AWS-only A10G; figures as published in Baseten, "
    "'NVIDIA A10 vs A10G for ML model inference' (2023); lower confidence than the others"
)


@dataclass(frozen=True)
class DeviceSpec:
    """Peak figures of one GPU model.

    Attributes:
        name: the model, with its form factor and memory where those change the figures.
        peak_tflops: dense peak by dtype (fp32, tf32, fp16, bf16, fp8), TFLOP/s.
        memory_bandwidth_gb_s: peak memory bandwidth, GB/s.
        source: where the figures come from.
        requires: words the NVML name must contain (all of them).
        excludes: words that rule the entry out.
        requires_any: at least one of these words must appear (when not empty).
    """

    name: str
    peak_tflops: Mapping[str, float]
    memory_bandwidth_gb_s: float
    source: str
    requires: frozenset[str]
    excludes: frozenset[str] = field(default_factory=frozenset)
    requires_any: frozenset[str] = field(default_factory=frozenset)

    def peak_flops_per_s(self, dtype: str) -> float | None:
        """Dense peak in FLOP/s for a canonical dtype, or None where the GPU has no such rate."""
        tflops = self.peak_tflops.get(dtype)
        return None if tflops is None else tflops * 1e12

    @property
    def peak_bandwidth_bytes_per_s(self) -> float:
        """Peak memory bandwidth in bytes per second."""
        return self.memory_bandwidth_gb_s * 1e9

    def matches(self, words: frozenset[str]) -> bool:
        """Whether a name split into ``words`` names this GPU."""
        return (
            self.requires <= words
            and not (self.excludes & words)
            and (not self.requires_any or bool(self.requires_any & words))
        )


def _spec(
    name: str,
    tflops: dict[str, float],
    bandwidth_gb_s: float,
    source: str,
    requires: str,
    excludes: str = "",
    requires_any: str = "",
) -> DeviceSpec:
    return DeviceSpec(
        name=name,
        peak_tflops=tflops,
        memory_bandwidth_gb_s=bandwidth_gb_s,
        source=source,
        requires=frozenset(requires.split()),
        excludes=frozenset(excludes.split()),
        requires_any=frozenset(requires_any.split()),
    )


_HOPPER_VARIANTS = "PCIE NVL"
_NOT_GEFORCE_4090 = "D LAPTOP MOBILE MAX Q"

DEVICE_SPECS: tuple[DeviceSpec, ...] = (
    # H100 SXM5 80GB HBM3: FP32 67; TF32 989*/2; BF16 and FP16 1,979*/2; FP8 3,958*/2; 3.35 TB/s.
    # NVML: "NVIDIA H100 80GB HBM3" (the SXM part; the PCIe card is HBM2e and says "PCIe").
    _spec(
        "NVIDIA H100 SXM5 80GB",
        {"fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5, "fp8": 1979.0},
        3350.0,
        _H100_DATASHEET,
        requires="H100",
        excludes=_HOPPER_VARIANTS,
        requires_any="SXM SXM5 HBM3",
    ),
    # H100 PCIe 80GB HBM2e: FP32 51; TF32 756*/2; BF16 and FP16 1,513*/2; FP8 3,026*/2; 2 TB/s.
    _spec(
        "NVIDIA H100 PCIe 80GB",
        {"fp32": 51.0, "tf32": 378.0, "fp16": 756.5, "bf16": 756.5, "fp8": 1513.0},
        2000.0,
        _H100_DATASHEET,
        requires="H100 PCIE",
    ),
    # H100 NVL 94GB: FP32 60; TF32 835*/2; BF16 and FP16 1,671*/2; FP8 3,341*/2; 3.9 TB/s.
    _spec(
        "NVIDIA H100 NVL 94GB",
        {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5, "fp8": 1670.5},
        3900.0,
        _H100_DATASHEET,
        requires="H100 NVL",
    ),
    # H200 SXM 141GB HBM3e: same compute as H100 SXM (FP32 67; TF32 989*; BF16/FP16 1,979*;
    # FP8 3,958*), 4.8 TB/s. NVML: "NVIDIA H200".
    _spec(
        "NVIDIA H200 SXM 141GB",
        {"fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5, "fp8": 1979.0},
        4800.0,
        _H200_DATASHEET,
        requires="H200",
        excludes=_HOPPER_VARIANTS,
    ),
    # H200 NVL 141GB: FP32 60; TF32 835*/2; BF16 and FP16 1,671*/2; FP8 3,341*/2; 4.8 TB/s.
    _spec(
        "NVIDIA H200 NVL 141GB",
        {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5, "fp8": 1670.5},
        4800.0,
        _H200_DATASHEET,
        requires="H200 NVL",
    ),
    # A100 (all four): FP32 19.5; TF32 156 (312*); BF16 and FP16 312 (624*); no FP8.
    # Bandwidth: 40GB PCIe 1,555; 80GB PCIe 1,935; 40GB SXM 1,555; 80GB SXM 2,039 GB/s.
    # NVML: "NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB",
    # "NVIDIA A100 80GB PCIe".
    _spec(
        "NVIDIA A100 SXM4 40GB",
        {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0},
        1555.0,
        _A100_DATASHEET,
        requires="A100 40GB",
        excludes="PCIE",
    ),
    _spec(
        "NVIDIA A100 SXM4 80GB",
        {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0},
        2039.0,
        _A100_DATASHEET,
        requires="A100 80GB",
        excludes="PCIE",
    ),
    _spec(
        "NVIDIA A100 PCIe 40GB",
        {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0},
        1555.0,
        _A100_DATASHEET,
        requires="A100 40GB PCIE",
    ),
    _spec(
        "NVIDIA A100 PCIe 80GB",
        {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0},
        1935.0,
        _A100_DATASHEET,
        requires="A100 80GB PCIE",
    ),
    # L40S: FP32 91.6; TF32 183 (366*); BF16 and FP16 362.05 (733*); FP8 733 (1,466*); 864 GB/s.
    _spec(
        "NVIDIA L40S",
        {"fp32": 91.6, "tf32": 183.0, "fp16": 362.05, "bf16": 362.05, "fp8": 733.0},
        864.0,
        _L40S_DATASHEET,
        requires="L40S",
    ),
    # L4: FP32 30.3; TF32 120*/2; BF16 and FP16 242*/2; FP8 485*/2; 300 GB/s.
    _spec(
        "NVIDIA L4",
        {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0, "bf16": 121.0, "fp8": 242.5},
        300.0,
        _L4_DATASHEET,
        requires="L4",
    ),
    # GeForce RTX 4090: FP32 82.6; TF32 82.6; FP16 and BF16 with FP32 accumulate 165.2; FP8 with
    # FP32 accumulate 330.3 (dense columns); 1,008 GB/s. "RTX 4090 D" (China) and laptop parts
    # are different chips.
    _spec(
        "NVIDIA GeForce RTX 4090",
        {"fp32": 82.6, "tf32": 82.6, "fp16": 165.2, "bf16": 165.2, "fp8": 330.3},
        1008.0,
        _ADA_WHITEPAPER,
        requires="RTX 4090",
        excludes=_NOT_GEFORCE_4090,
    ),
    # A10: FP32 31.2; TF32 62.5 (125*); BF16 and FP16 125 (250*); 600 GB/s.
    _spec(
        "NVIDIA A10",
        {"fp32": 31.2, "tf32": 62.5, "fp16": 125.0, "bf16": 125.0},
        600.0,
        _A10_DATASHEET,
        requires="A10",
    ),
    # A10G (AWS G5): FP32 31.52; TF32 35; BF16 and FP16 70; 600 GB/s (same memory as the A10).
    _spec(
        "NVIDIA A10G",
        {"fp32": 31.52, "tf32": 35.0, "fp16": 70.0, "bf16": 70.0},
        600.0,
        _A10G_SOURCE,
        requires="A10G",
    ),
)

_FAMILIES = ("H100", "H200", "A100", "RTX")
_SIZE = re.compile(r"^(\d+)G$")


@dataclass(frozen=True)
class SpecMatch:
    """The spec-table entry for a GPU name, or None and why."""

    spec: DeviceSpec | None
    reason: str | None = None


def name_words(gpu_name: str) -> frozenset[str]:
    """Upper-case words of a GPU name; "80G" is read as "80GB"."""
    words = set()
    for word in re.split(r"[^A-Za-z0-9]+", gpu_name.upper()):
        if word:
            size = _SIZE.match(word)
            words.add(f"{size.group(1)}GB" if size else word)
    return frozenset(words)


def find_device_spec(gpu_name: str | None) -> SpecMatch:
    """The spec-table entry for a GPU as NVML names it.

    Args:
        gpu_name: e.g. "NVIDIA H100 80GB HBM3"; None when the run had no GPU.

    Returns:
        The entry, or ``spec=None`` with the reason (CPU, unknown GPU, ambiguous variant).
    """
    if gpu_name is None or not gpu_name.strip():
        return SpecMatch(
            None,
            "no GPU (CPU run): the peak table covers NVIDIA GPUs only, and CPU peaks vary "
            "too much with SKU, clocks and vector units to tabulate",
        )
    words = name_words(gpu_name)
    matches = [spec for spec in DEVICE_SPECS if spec.matches(words)]
    if len(matches) == 1:
        return SpecMatch(matches[0])
    if len(matches) > 1:
        names = ", ".join(spec.name for spec in matches)
        return SpecMatch(None, f"GPU '{gpu_name}' matches several spec-table entries ({names})")
    family = next((f for f in _FAMILIES if f in words), None)
    if family is not None:
        return SpecMatch(
            None,
            f"GPU '{gpu_name}' is a {family} variant the spec table does not have (or its form "
            "factor or memory size cannot be told from the name)",
        )
    known = ", ".join(spec.name for spec in DEVICE_SPECS)
    return SpecMatch(None, f"GPU '{gpu_name}' is not in the spec table (known: {known})")
