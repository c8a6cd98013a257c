"""Map the ``tensorrt:`` and ``decoder:`` config sections to TensorRT-LLM constructor arguments.

Pure functions of the config (no tensorrt_llm import), so tests and the engine cache key share
one derivation: every field of the config models is read by iterating ``model_fields``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from llenergymeasure.backends.base import DTYPE_NAMES
from llenergymeasure.config.models import (
    SAMPLING_ONLY,
    DecoderConfig,
    ExperimentConfig,
    Precision,
    TensorRTConfig,
    decoder_backends,
)

LLM_FIELDS = (
    "max_batch_size",
    "max_num_tokens",
    "max_input_len",
    "max_seq_len",
    "max_beam_width",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "enable_chunked_prefill",
    "speculative_config",
    "scheduler_config",
    "cuda_graph_config",
    "disable_overlap_scheduler",
    "attn_backend",
    "torch_compile_config",
)
"""TensorRTConfig fields that are ``LLM(...)`` keyword arguments of the same name."""

NOT_LLM_FIELDS = ("runtime", "kv_cache_config", "quant_config", "build_config", "engine_cache")
"""TensorRTConfig fields handled separately (``extra`` is merged last)."""

DECODER_TO_SAMPLING = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "repetition_penalty": "repetition_penalty",
    "no_repeat_ngram_size": "no_repeat_ngram_size",
    "min_new_tokens": "min_tokens",
    "length_penalty": "length_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "stop": "stop",
    "ignore_eos": "ignore_eos",
}
"""DecoderConfig field -> SamplingParams field of the same meaning (TensorRT-LLM's name)."""

DECODER_CONVERTED = ("do_sample", "num_beams", "early_stopping")
"""Decoder fields whose SamplingParams form differs (see ``sampling_kwargs``)."""

QUANT_ALGO_FIELDS = ("quant_algo", "kv_cache_quant_algo")
"""QuantConfig fields given as QuantAlgo member names (the others are plain values)."""


def set_fields(section: Any) -> dict[str, Any]:
    """The fields of a config section that are not None, by their (native) names."""
    return {
        name: getattr(section, name)
        for name in type(section).model_fields
        if getattr(section, name) is not None
    }


def beam_width(num_beams: int | None, configured: int | None) -> int | None:
    """The max beam width to build/serve: the configured one, raised to ``num_beams``."""
    if (num_beams or 1) <= 1:
        return configured
    return max(configured or 1, num_beams or 1)


def llm_kwargs(
    options: TensorRTConfig, precision: Precision, num_beams: int | None = None
) -> dict[str, Any]:
    """Plain ``LLM(...)`` keyword arguments (without the config objects and ``model``)."""
    unhandled = set(TensorRTConfig.model_fields) - set(LLM_FIELDS) - set(NOT_LLM_FIELDS)
    if unhandled != {"extra"}:  # a new field must be routed somewhere explicitly
        raise AssertionError(f"TensorRTConfig fields without a route: {sorted(unhandled)}")
    kwargs: dict[str, Any] = {"dtype": DTYPE_NAMES[precision]}
    kwargs.update({name: getattr(options, name) for name in LLM_FIELDS})
    kwargs["max_beam_width"] = beam_width(num_beams, options.max_beam_width)
    return {name: value for name, value in kwargs.items() if value is not None}


def kv_cache_kwargs(options: TensorRTConfig) -> dict[str, Any]:
    """``KvCacheConfig(...)`` arguments; with the engine runtime ``tokens_per_block`` is built
    into the engine instead (BuildConfig.plugin_config)."""
    kwargs = set_fields(options.kv_cache_config)
    if options.runtime == "engine":
        kwargs.pop("tokens_per_block", None)
    return kwargs


def build_kwargs(options: TensorRTConfig, num_beams: int | None = None) -> dict[str, Any]:
    """``BuildConfig(...)`` arguments: every set field of ``tensorrt.build_config`` (the
    ``plugin_config`` entries are set on the built object, see ``plugin_settings``) with the
    beam width raised to ``num_beams``."""
    kwargs = set_fields(options.build_config)
    kwargs.pop("plugin_config")
    width = beam_width(num_beams, options.build_config.max_beam_width)
    if width is not None:
        kwargs["max_beam_width"] = width
    return kwargs


def plugin_settings(options: TensorRTConfig) -> dict[str, Any]:
    """``BuildConfig.plugin_config`` attributes to set: the ``plugin_config`` passthrough and
    the engine-baked ``kv_cache_config.tokens_per_block``."""
    settings = dict(options.build_config.plugin_config)
    if options.kv_cache_config.tokens_per_block is not None:
        settings["tokens_per_block"] = options.kv_cache_config.tokens_per_block
    return settings


def quant_kwargs(options: TensorRTConfig) -> dict[str, Any]:
    """``QuantConfig(...)`` arguments (algorithms as QuantAlgo member names)."""
    return set_fields(options.quant_config) if options.quant_config is not None else {}


def sampling_kwargs(config: ExperimentConfig, max_tokens: int) -> dict[str, Any]:
    """``SamplingParams(...)`` from the shared decoder section (native names).

    Greedy decoding (``do_sample: false``) is ``top_k=1`` and, as in transformers, the
    sampling-only fields do not apply (a config warning says so). ``num_beams`` > 1 is beam
    search (``use_beam_search=True, best_of=num_beams``); ``early_stopping`` is TensorRT-LLM's
    integer flag (1/0).
    """
    decoder = config.decoder
    routed = set(DECODER_TO_SAMPLING) | set(DECODER_CONVERTED)
    supported = {
        name for name in DecoderConfig.model_fields if "tensorrt" in decoder_backends(name)
    }
    if routed != supported:  # a decoder field the tensorrt backend claims must be routed
        raise AssertionError(f"decoder fields without a route: {supported ^ routed}")
    kwargs: dict[str, Any] = {
        "max_tokens": max_tokens,
        "seed": config.random_seed,
        "return_perf_metrics": True,
        "detokenize": False,
    }
    for name, value in decoder.set_fields().items():
        native = DECODER_TO_SAMPLING.get(name)
        if native is not None and (decoder.do_sample or name not in SAMPLING_ONLY):
            kwargs[native] = value
    if decoder.early_stopping is not None:
        kwargs["early_stopping"] = int(decoder.early_stopping)
    if (decoder.num_beams or 1) > 1:
        kwargs.update(use_beam_search=True, best_of=decoder.num_beams, n=1)
    if not decoder.do_sample:
        kwargs["top_k"] = 1
    return kwargs


def model_identity(location: str, source_kind: str, revision: str | None) -> dict[str, Any]:
    """What identifies the weights an engine is built from.

    A local folder: its resolved path plus the sha256 of its ``config.json`` and weight index
    files, and the name and size of every weight file. A hub id: the id and revision.
    """
    if source_kind == "hub":
        return {"hub_id": location, "revision": revision or "main"}
    folder = Path(location).resolve()
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.json")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for pattern in ("*.safetensors", "*.bin", "*.pt"):
        for path in sorted(folder.glob(pattern)):
            digest.update(f"{path.name}:{path.stat().st_size}".encode())
    return {"path": str(folder), "content_sha256": digest.hexdigest()}


def engine_cache_key(
    version: str,
    identity: dict[str, Any],
    options: TensorRTConfig,
    precision: Precision,
    num_beams: int | None = None,
) -> str:
    """sha256 over everything a built engine depends on.

    Every field of ``tensorrt.build_config`` (set or not) enters by name, as do quantisation,
    dtype, parallelism, the engine-baked ``tokens_per_block``, the model identity and the
    TensorRT-LLM version.
    """
    payload = {
        "tensorrt_llm": version,
        "model": identity,
        "dtype": DTYPE_NAMES[precision],
        "quant_config": options.quant_config.model_dump() if options.quant_config else None,
        "build_config": options.build_config.model_dump(),
        "max_beam_width": build_kwargs(options, num_beams).get("max_beam_width"),
        "tokens_per_block": options.kv_cache_config.tokens_per_block,
        "tensor_parallel_size": options.tensor_parallel_size,
        "pipeline_parallel_size": options.pipeline_parallel_size,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
