"""Map an experiment config onto transformers' ``from_pretrained`` kwargs and GenerationConfig.

Pure functions of the config (and of transformers' own classes): the backend and the tests that
prove every parameter reaches transformers share this one derivation.
"""

from __future__ import annotations

import copy
import importlib.util
from typing import Any

import torch
from transformers import BitsAndBytesConfig, GenerationConfig

from llenergymeasure.backends.pytorch.version_checks import check_transformers_version
from llenergymeasure.config.models import ExperimentConfig, PyTorchConfig
from llenergymeasure.errors import ConfigError, DependencyError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

DECODER_NAMES = {"stop": "stop_strings"}
"""Decoder fields whose GenerationConfig attribute has another name (the rest keep theirs)."""

RUN_TIME_DECODER = ("ignore_eos",)
"""Decoder fields applied per ``generate`` call (they depend on ``max_output_tokens``)."""

GENERATION_OPTIONS = (
    "prompt_lookup_num_tokens",
    "prefill_chunk_size",
    "cache_implementation",
    "use_cache",
    "output_scores",
    "return_dict_in_generate",
)
"""``pytorch:`` fields that are GenerationConfig attributes of the same name."""

BNB_FIELDS = (
    "load_in_8bit",
    "load_in_4bit",
    "bnb_4bit_compute_dtype",
    "bnb_4bit_quant_type",
    "bnb_4bit_use_double_quant",
)
"""``pytorch:`` fields that are BitsAndBytesConfig arguments of the same name."""


def load_kwargs(config: ExperimentConfig, dtype: torch.dtype) -> dict[str, Any]:
    """Keyword arguments for ``from_pretrained``: dtype, the set load fields, quantisation,
    then ``model_kwargs``."""
    options = config.pytorch_options
    kwargs: dict[str, Any] = {"dtype": dtype}
    for name in ("attn_implementation", "device_map", "low_cpu_mem_usage"):
        if getattr(options, name) is not None:
            kwargs[name] = getattr(options, name)
    if options.max_memory is not None:
        kwargs["max_memory"] = {_device_key(k): v for k, v in options.max_memory.items()}
    quantization = quantization_config(options)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    kwargs.update(options.model_kwargs)
    return kwargs


def _device_key(key: str) -> str | int:
    """accelerate names GPUs by index: '0' -> 0; 'cpu', 'disk', 'cuda:1' stay as they are."""
    return int(key) if key.isdigit() else key


def quantization_config(options: PyTorchConfig) -> BitsAndBytesConfig | None:
    """The bitsandbytes config when 4- or 8-bit loading is on, else None."""
    if not (options.load_in_4bit or options.load_in_8bit):
        return None
    kwargs: dict[str, Any] = {
        name: getattr(options, name) for name in BNB_FIELDS if getattr(options, name) is not None
    }
    if options.bnb_4bit_compute_dtype is not None:
        kwargs["bnb_4bit_compute_dtype"] = DTYPES[options.bnb_4bit_compute_dtype]
    return BitsAndBytesConfig(**kwargs)


def generation_config(
    base: GenerationConfig, config: ExperimentConfig, max_output_tokens: int, pad_token_id: Any
) -> tuple[GenerationConfig, dict[str, Any]]:
    """The model's generation config updated with the decoder and ``pytorch:`` fields.

    ``ignore_eos`` becomes a minimum length equal to the output budget (EOS suppressed until
    then, as vLLM's ignore_eos); ``stop`` becomes ``stop_strings``.

    Returns:
        The new GenerationConfig (``base`` is not changed) and the keyword arguments for
        ``generate`` beside it: the ``pytorch.extra`` entries that are not GenerationConfig
        attributes.
    """
    options = config.pytorch_options
    updates: dict[str, Any] = {"max_new_tokens": max_output_tokens, "pad_token_id": pad_token_id}
    for name, value in config.decoder.set_fields().items():
        if name not in RUN_TIME_DECODER:
            updates[DECODER_NAMES.get(name, name)] = value
    if config.decoder.ignore_eos:
        updates["min_new_tokens"] = max_output_tokens
    for name in GENERATION_OPTIONS:
        if getattr(options, name) is not None:
            updates[name] = getattr(options, name)
    generation = copy.deepcopy(base)
    generation.update(**updates)
    unused = generation.update(**options.extra)
    return generation, unused


def check_environment(config: ExperimentConfig, transformers_version: str, cuda: bool) -> None:
    """Refuse, before loading, settings this machine or transformers version cannot honour.

    Raises:
        ConfigError: bitsandbytes quantisation without a CUDA GPU; what
            :func:`~.version_checks.check_transformers_version` refuses for the installed
            transformers.
        DependencyError: bitsandbytes quantisation without the bitsandbytes package.
    """
    options = config.pytorch_options
    if options.load_in_4bit or options.load_in_8bit:
        name = "load_in_4bit" if options.load_in_4bit else "load_in_8bit"
        if not cuda:
            raise ConfigError(
                f"pytorch.{name} (bitsandbytes) needs an NVIDIA GPU with CUDA, and none is "
                "visible here; remove it or run on a GPU machine"
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise DependencyError(
                f"pytorch.{name} needs the bitsandbytes package: pip install bitsandbytes"
            )
    check_transformers_version(config, transformers_version)


LOAD_ONLY = ("load_in_8bit", "load_in_4bit", "max_memory", "low_cpu_mem_usage")
"""``pytorch:`` fields that only ``from_pretrained`` takes (not a random-weights build)."""


def check_random_weights(config: ExperimentConfig) -> None:
    """Refuse loading options a model built from its config (random weights) cannot take.

    Raises:
        ConfigError: naming the first such field that is set.
    """
    options = config.pytorch_options
    for name in LOAD_ONLY:
        if getattr(options, name) not in (None, False):
            raise ConfigError(
                f"pytorch.{name} applies when loading trained weights; model '{config.model}' "
                "is built with random weights (no_weights / an architecture): remove it"
            )
