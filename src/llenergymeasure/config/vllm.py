"""The vllm section: engine arguments of the vLLM backend (names as in vLLM's EngineArgs)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from llenergymeasure.config.base import _Strict
from llenergymeasure.config.field_meta import FieldMeta


class VllmConfig(_Strict):
    """Engine arguments of the vllm backend (names as in vLLM's EngineArgs).

    The weight dtype is the top-level ``precision`` (EngineArgs.dtype). Not modelled:
    ``swap_space`` (the V1 engine this backend drives preempts by recomputation and never
    swaps; vLLM 0.32 removed the argument), CUDA-graph capture limits (see
    ``compilation_config``).
    """

    gpu_memory_utilization: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="Fraction of device memory vLLM may use (weights + KV cache). A larger KV "
        "cache admits more concurrent sequences: higher throughput per joule.",
        json_schema_extra=FieldMeta(unit="fraction"),
    )
    kv_cache_memory_bytes: int | None = Field(
        None,
        ge=1,
        description="KV-cache size in bytes, instead of deriving it from "
        "gpu_memory_utilization (recent vLLM; refused by name where the installed EngineArgs "
        "lacks it).",
        json_schema_extra=FieldMeta(unit="bytes", since="vLLM 0.11"),
        examples=[1 << 30],
    )
    max_num_seqs: int | None = Field(
        None,
        ge=1,
        description="Most sequences batched per step (bounds concurrency). Higher = more "
        "throughput per joule until memory or compute saturates.",
        json_schema_extra=FieldMeta(unit="sequences"),
    )
    max_num_batched_tokens: int | None = Field(
        None,
        ge=1,
        description="Most tokens processed per engine step (prefill chunk budget).",
        json_schema_extra=FieldMeta(unit="tokens"),
    )
    max_model_len: int | None = Field(
        None,
        ge=1,
        description="Context length limit (smaller = more room for KV cache).",
        json_schema_extra=FieldMeta(unit="tokens"),
        examples=[1024],
    )
    long_prefill_token_threshold: int | None = Field(
        None,
        ge=0,
        description="Prompts longer than this count as long prefills, which the scheduler "
        "limits per step (with chunked prefill) so decodes are not starved (0 = off).",
        json_schema_extra=FieldMeta(unit="tokens"),
    )
    enable_prefix_caching: bool | None = Field(
        None, description="Reuse KV cache across prompts sharing a prefix (saves prefill energy)."
    )
    enable_chunked_prefill: bool | None = Field(
        None,
        description="Split long prefills into chunks interleaved with decode steps (smoother "
        "inter-token latency, similar throughput).",
    )
    kv_cache_dtype: str = Field(
        "auto",
        description="KV-cache dtype: auto, fp8, fp8_e4m3, fp8_e5m2. fp8 halves KV memory (more "
        "concurrent sequences); needs Hopper/Ada (or newer) NVIDIA GPUs.",
        examples=["fp8"],
        json_schema_extra=FieldMeta(hardware="fp8: NVIDIA Ada/Hopper or newer"),
    )
    block_size: int | None = Field(
        None,
        ge=1,
        description="KV-cache block size in tokens.",
        examples=[32],
        json_schema_extra=FieldMeta(unit="tokens"),
    )
    tensor_parallel_size: int = Field(
        1,
        ge=1,
        description="GPUs per model replica (tensor parallel). tensor_parallel_size x "
        "pipeline_parallel_size must not exceed the visible GPUs (checked when loading).",
        json_schema_extra=FieldMeta(hardware="that many NVIDIA GPUs"),
    )
    pipeline_parallel_size: int = Field(
        1,
        ge=1,
        description="Pipeline stages (GPUs).",
        json_schema_extra=FieldMeta(hardware="that many NVIDIA GPUs"),
    )
    quantization: str | None = Field(
        None,
        description="vLLM quantization method (awq, gptq, fp8, bitsandbytes, ...), or None = "
        "from the checkpoint. fp8 needs Ada/Hopper; awq/gptq need a pre-quantised checkpoint.",
        examples=["fp8"],
        json_schema_extra=FieldMeta(hardware="fp8: NVIDIA Ada/Hopper or newer"),
    )
    enforce_eager: bool = Field(
        False,
        description="Disable CUDA graphs (slower decode: more CPU launch overhead per token; "
        "faster start-up).",
    )
    compilation_config: dict[str, Any] | None = Field(
        None,
        description="vLLM CompilationConfig fields (torch.compile and CUDA-graph settings, "
        "e.g. cudagraph_capture_sizes): fewer or no graphs = more launch overhead per token.",
        examples=[{"cudagraph_capture_sizes": [1, 2, 4]}],
    )
    optimization_level: int | None = Field(
        None,
        ge=0,
        le=3,
        description="vLLM's -O level: 0 = no torch.compile and no CUDA graphs (fast start, "
        "slow decode) up to 3 (most compilation). Recent vLLM; refused by name where the "
        "installed EngineArgs lacks it.",
        json_schema_extra=FieldMeta(since="vLLM 0.11"),
    )
    cpu_offload_gb: float | None = Field(
        None,
        ge=0.0,
        description="GiB of weights per GPU kept in CPU memory and streamed in every forward "
        "pass: fits bigger models, at much lower throughput and higher energy per token.",
        json_schema_extra=FieldMeta(unit="GiB"),
    )
    speculative_config: dict[str, Any] | None = Field(
        None,
        description="Speculative decoding (vLLM SpeculativeConfig fields: method "
        "ngram/eagle/medusa/draft model, num_speculative_tokens, ...): several tokens per "
        "target forward pass when drafts are accepted (lower latency; energy depends on the "
        "acceptance rate).",
        examples=[{"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_max": 3}],
    )
    async_scheduling: bool | None = Field(
        None,
        description="Overlap CPU scheduling with GPU execution (less GPU idle time per step; "
        "recent vLLM, refused by name where the installed EngineArgs lacks it).",
    )
    attention_backend: str | None = Field(
        None,
        description="Attention kernel backend (e.g. FLASH_ATTN, FLASHINFER, TRITON_ATTN; "
        "CPU_ATTN on CPU). Recent vLLM; older versions read the VLLM_ATTENTION_BACKEND "
        "environment variable instead.",
        examples=["FLASH_ATTN"],
        json_schema_extra=FieldMeta(since="vLLM 0.11"),
    )
    enable_expert_parallel: bool | None = Field(
        None,
        description="Mixture-of-experts models: shard experts across GPUs (expert parallel) "
        "instead of tensor-parallel slicing.",
        json_schema_extra=FieldMeta(hardware="several NVIDIA GPUs, MoE model"),
    )
    load_format: str | None = Field(
        None,
        description="Weight loading format; 'dummy' = random weights, no download.",
        examples=["dummy"],
    )
    seed: int | None = Field(None, description="Engine seed (default: random_seed).")
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Further EngineArgs passed through as they are (checked against the "
        "installed vLLM's EngineArgs). Not modelled on purpose: swap_space (never used by the "
        "V1 engine; gone from EngineArgs in vLLM 0.32) and dtype (use precision).",
        examples=[{"disable_sliding_window": True}],
    )
