"""How much of each library's energy/throughput-relevant API the config models expose.

Curated data: for every backend, the library parameters that change energy or throughput of
single-node text generation, each mapped to the config path that sets it (``None`` = not
modelled; it can still be passed through the section's ``extra:``). The lists were built from
the libraries themselves: vLLM 0.32 ``dataclasses.fields(EngineArgs)`` and ``SamplingParams``;
transformers 5.x ``GenerationConfig``, ``from_pretrained`` keyword arguments and
``BitsAndBytesConfig``; TensorRT-LLM 1.x ``llmapi/llm_args.py`` (``LlmArgs``/``TorchLlmArgs``,
``KvCacheConfig``, ``QuantConfig``), ``builder.BuildConfig`` and ``SamplingParams`` (mirrored by
``llenergymeasure.testing.fake_tensorrt_llm``).

Left out on purpose: logging, tracing and metrics switches; tokenizer, revision and download
options; multimodal, pooling, reasoning-parser and structured-output options; multi-node
addressing (master_addr, ranks, ports); output-shaping fields (logprobs, return_* flags,
detokenize) other than those that add measurable per-token work; and model-specific knobs
(Mamba/MoE kernels).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COVERAGE", "LibraryCoverage", "LibraryParameter", "coverage_for"]


@dataclass(frozen=True)
class LibraryParameter:
    """One library API parameter and the config path that sets it (None: not modelled)."""

    name: str
    path: str | None


@dataclass(frozen=True)
class LibraryCoverage:
    """The relevant API of one backend's library and how much of it is modelled."""

    backend: str
    library: str
    target: float
    parameters: tuple[LibraryParameter, ...]

    @property
    def modelled(self) -> tuple[LibraryParameter, ...]:
        """The parameters a config path sets."""
        return tuple(p for p in self.parameters if p.path is not None)

    @property
    def missing(self) -> tuple[LibraryParameter, ...]:
        """The relevant parameters with no config path (settable only through ``extra``)."""
        return tuple(p for p in self.parameters if p.path is None)

    @property
    def ratio(self) -> float:
        """Modelled ÷ relevant, in [0, 1]."""
        return len(self.modelled) / len(self.parameters)


def _mapped(entries: dict[str, str | None]) -> tuple[LibraryParameter, ...]:
    return tuple(LibraryParameter(name, path) for name, path in entries.items())


_TRANSFORMERS: dict[str, str | None] = {
    "from_pretrained.dtype": "precision",
    "from_pretrained.attn_implementation": "pytorch.attn_implementation",
    "from_pretrained.device_map": "pytorch.device_map",
    "from_pretrained.max_memory": "pytorch.max_memory",
    "from_pretrained.low_cpu_mem_usage": "pytorch.low_cpu_mem_usage",
    "BitsAndBytesConfig.load_in_4bit": "pytorch.load_in_4bit",
    "BitsAndBytesConfig.load_in_8bit": "pytorch.load_in_8bit",
    "BitsAndBytesConfig.bnb_4bit_compute_dtype": "pytorch.bnb_4bit_compute_dtype",
    "BitsAndBytesConfig.bnb_4bit_quant_type": "pytorch.bnb_4bit_quant_type",
    "BitsAndBytesConfig.bnb_4bit_use_double_quant": "pytorch.bnb_4bit_use_double_quant",
    "torch.compile(model)": "pytorch.torch_compile",
    "torch.compile.mode": "pytorch.torch_compile_mode",
    "torch.compile.backend": "pytorch.torch_compile_backend",
    "generate(batch of input_ids)": "pytorch.batch_size",
    "GenerationConfig.max_new_tokens": "max_output_tokens",
    "GenerationConfig.min_new_tokens": "decoder.min_new_tokens",
    "GenerationConfig.do_sample": "decoder.do_sample",
    "GenerationConfig.temperature": "decoder.temperature",
    "GenerationConfig.top_k": "decoder.top_k",
    "GenerationConfig.top_p": "decoder.top_p",
    "GenerationConfig.min_p": "decoder.min_p",
    "GenerationConfig.typical_p": "decoder.typical_p",
    "GenerationConfig.epsilon_cutoff": "decoder.epsilon_cutoff",
    "GenerationConfig.eta_cutoff": "decoder.eta_cutoff",
    "GenerationConfig.repetition_penalty": "decoder.repetition_penalty",
    "GenerationConfig.encoder_repetition_penalty": "decoder.encoder_repetition_penalty",
    "GenerationConfig.no_repeat_ngram_size": "decoder.no_repeat_ngram_size",
    "GenerationConfig.length_penalty": "decoder.length_penalty",
    "GenerationConfig.diversity_penalty": "decoder.diversity_penalty",
    "GenerationConfig.num_beams": "decoder.num_beams",
    "GenerationConfig.num_beam_groups": "decoder.num_beam_groups",
    "GenerationConfig.early_stopping": "decoder.early_stopping",
    "GenerationConfig.exponential_decay_length_penalty": (
        "decoder.exponential_decay_length_penalty"
    ),
    "GenerationConfig.guidance_scale": "decoder.guidance_scale",
    "GenerationConfig.low_memory": "decoder.low_memory",
    "GenerationConfig.stop_strings": "decoder.stop",
    "GenerationConfig.use_cache": "pytorch.use_cache",
    "GenerationConfig.cache_implementation": "pytorch.cache_implementation",
    "GenerationConfig.output_scores": "pytorch.output_scores",
    "GenerationConfig.prompt_lookup_num_tokens": "pytorch.prompt_lookup_num_tokens",
    "GenerationConfig.prefill_chunk_size": "pytorch.prefill_chunk_size",
    "generate(assistant_model=...)": None,
}

_SAMPLING: dict[str, str | None] = {
    "SamplingParams.max_tokens": "max_output_tokens",
    "SamplingParams.min_tokens": "decoder.min_new_tokens",
    "SamplingParams.temperature": "decoder.temperature",
    "SamplingParams.top_k": "decoder.top_k",
    "SamplingParams.top_p": "decoder.top_p",
    "SamplingParams.min_p": "decoder.min_p",
    "SamplingParams.repetition_penalty": "decoder.repetition_penalty",
    "SamplingParams.presence_penalty": "decoder.presence_penalty",
    "SamplingParams.frequency_penalty": "decoder.frequency_penalty",
    "SamplingParams.stop": "decoder.stop",
    "SamplingParams.ignore_eos": "decoder.ignore_eos",
    "SamplingParams.seed": "random_seed",
}
"""SamplingParams fields vLLM and TensorRT-LLM share (same names and meaning)."""

_VLLM: dict[str, str | None] = {
    "EngineArgs.dtype": "precision",
    "EngineArgs.seed": "vllm.seed",
    "EngineArgs.max_model_len": "vllm.max_model_len",
    "EngineArgs.gpu_memory_utilization": "vllm.gpu_memory_utilization",
    "EngineArgs.kv_cache_memory_bytes": "vllm.kv_cache_memory_bytes",
    "EngineArgs.max_num_seqs": "vllm.max_num_seqs",
    "EngineArgs.max_num_batched_tokens": "vllm.max_num_batched_tokens",
    "EngineArgs.enable_prefix_caching": "vllm.enable_prefix_caching",
    "EngineArgs.enable_chunked_prefill": "vllm.enable_chunked_prefill",
    "EngineArgs.long_prefill_token_threshold": "vllm.long_prefill_token_threshold",
    "EngineArgs.kv_cache_dtype": "vllm.kv_cache_dtype",
    "EngineArgs.block_size": "vllm.block_size",
    "EngineArgs.tensor_parallel_size": "vllm.tensor_parallel_size",
    "EngineArgs.pipeline_parallel_size": "vllm.pipeline_parallel_size",
    "EngineArgs.data_parallel_size": None,
    "EngineArgs.enable_expert_parallel": "vllm.enable_expert_parallel",
    "EngineArgs.quantization": "vllm.quantization",
    "EngineArgs.enforce_eager": "vllm.enforce_eager",
    "EngineArgs.compilation_config": "vllm.compilation_config",
    "EngineArgs.optimization_level": "vllm.optimization_level",
    "EngineArgs.attention_backend": "vllm.attention_backend",
    "EngineArgs.async_scheduling": "vllm.async_scheduling",
    "EngineArgs.load_format": "vllm.load_format",
    "EngineArgs.cpu_offload_gb": "vllm.cpu_offload_gb",
    "EngineArgs.speculative_config": "vllm.speculative_config",
    "EngineArgs.enable_lora": "lora.adapter",
    **_SAMPLING,
}

_TENSORRT: dict[str, str | None] = {
    "LLM(backend)": "tensorrt.runtime",
    "LlmArgs.dtype": "precision",
    "LlmArgs.tensor_parallel_size": "tensorrt.tensor_parallel_size",
    "LlmArgs.pipeline_parallel_size": "tensorrt.pipeline_parallel_size",
    "LlmArgs.max_batch_size": "tensorrt.max_batch_size",
    "LlmArgs.max_num_tokens": "tensorrt.max_num_tokens",
    "LlmArgs.max_input_len": "tensorrt.max_input_len",
    "LlmArgs.max_seq_len": "tensorrt.max_seq_len",
    "LlmArgs.max_beam_width": "tensorrt.max_beam_width",
    "LlmArgs.enable_chunked_prefill": "tensorrt.enable_chunked_prefill",
    "LlmArgs.speculative_config": "tensorrt.speculative_config",
    "LlmArgs.scheduler_config": "tensorrt.scheduler_config",
    "TorchLlmArgs.cuda_graph_config": "tensorrt.cuda_graph_config",
    "TorchLlmArgs.disable_overlap_scheduler": "tensorrt.disable_overlap_scheduler",
    "TorchLlmArgs.attn_backend": "tensorrt.attn_backend",
    "TorchLlmArgs.torch_compile_config": "tensorrt.torch_compile_config",
    "KvCacheConfig.free_gpu_memory_fraction": "tensorrt.kv_cache_config.free_gpu_memory_fraction",
    "KvCacheConfig.max_tokens": "tensorrt.kv_cache_config.max_tokens",
    "KvCacheConfig.enable_block_reuse": "tensorrt.kv_cache_config.enable_block_reuse",
    "KvCacheConfig.tokens_per_block": "tensorrt.kv_cache_config.tokens_per_block",
    "KvCacheConfig.dtype": "tensorrt.kv_cache_config.dtype",
    "KvCacheConfig.host_cache_size": "tensorrt.kv_cache_config.host_cache_size",
    "QuantConfig.quant_algo": "tensorrt.quant_config.quant_algo",
    "QuantConfig.kv_cache_quant_algo": "tensorrt.quant_config.kv_cache_quant_algo",
    "QuantConfig.group_size": "tensorrt.quant_config.group_size",
    "QuantConfig.smoothquant_val": "tensorrt.quant_config.smoothquant_val",
    "BuildConfig.max_input_len": "tensorrt.build_config.max_input_len",
    "BuildConfig.max_seq_len": "tensorrt.build_config.max_seq_len",
    "BuildConfig.max_batch_size": "tensorrt.build_config.max_batch_size",
    "BuildConfig.max_num_tokens": "tensorrt.build_config.max_num_tokens",
    "BuildConfig.max_beam_width": "tensorrt.build_config.max_beam_width",
    "BuildConfig.opt_batch_size": "tensorrt.build_config.opt_batch_size",
    "BuildConfig.opt_num_tokens": "tensorrt.build_config.opt_num_tokens",
    "BuildConfig.strongly_typed": "tensorrt.build_config.strongly_typed",
    "BuildConfig.weight_sparsity": "tensorrt.build_config.weight_sparsity",
    "BuildConfig.weight_streaming": "tensorrt.build_config.weight_streaming",
    "BuildConfig.use_refit": "tensorrt.build_config.use_refit",
    "BuildConfig.use_strip_plan": "tensorrt.build_config.use_strip_plan",
    "BuildConfig.plugin_config": "tensorrt.build_config.plugin_config",
    **_SAMPLING,
    "SamplingParams.length_penalty": "decoder.length_penalty",
    "SamplingParams.no_repeat_ngram_size": "decoder.no_repeat_ngram_size",
    "SamplingParams.use_beam_search/n": "decoder.num_beams",
    "SamplingParams.early_stopping": "decoder.early_stopping",
}

COVERAGE: tuple[LibraryCoverage, ...] = (
    LibraryCoverage("pytorch", "transformers 5.x + torch", 0.95, _mapped(_TRANSFORMERS)),
    LibraryCoverage("vllm", "vLLM 0.10-0.32", 0.90, _mapped(_VLLM)),
    LibraryCoverage("tensorrt", "TensorRT-LLM 1.x", 0.95, _mapped(_TENSORRT)),
)
"""One entry per backend, in backend order."""


def coverage_for(backend: str) -> LibraryCoverage:
    """The coverage entry of ``backend``.

    Raises:
        KeyError: no entry for that backend.
    """
    for entry in COVERAGE:
        if entry.backend == backend:
            return entry
    raise KeyError(backend)
