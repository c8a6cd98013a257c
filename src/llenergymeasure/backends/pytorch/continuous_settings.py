"""How an experiment maps onto transformers' continuous batching, from the config alone.

The pytorch backend serves ``load.mode: rate`` and ``load.mode: concurrency`` through
continuous batching (:mod:`.continuous`); ``offline`` keeps the static ``generate`` batches.
This module says, without importing torch or transformers, which transformers version that
needs, which settings continuous batching cannot honour (refused, naming the field, before any
model loads) and how many requests it batches.
"""

from __future__ import annotations

from typing import Any

from packaging.version import Version

from llenergymeasure.config.models import SAMPLING_ONLY, ExperimentConfig
from llenergymeasure.errors import ConfigError

CONTINUOUS_BATCHING_SINCE = "5.11.0"
"""The first transformers with the continuous-batching API this backend drives: per-request
streaming (``add_request(streaming=True, eos_token_id=)``) delivered to a handler on the
caller's event loop (``register_result_handler``), and ``ContinuousBatchingConfig`` with
``max_requests_per_batch``. (``init_continuous_batching`` itself dates from 4.53, with
another API.)"""

SAME_TOKEN = "shows logits processors each request's latest token only, not the ones before it"

DECODER_LIMITS: dict[str, tuple[Any, str]] = {
    "num_beams": (1, "has no beam search"),
    "num_beam_groups": (1, "has no beam search"),
    "repetition_penalty": (1.0, "drops the repetition-penalty processor"),
    "encoder_repetition_penalty": (1.0, "drops the encoder-repetition-penalty processor"),
    "no_repeat_ngram_size": (0, SAME_TOKEN),
    "exponential_decay_length_penalty": (None, SAME_TOKEN),
    "guidance_scale": (1.0, "has no unconditional second forward pass"),
    "min_new_tokens": (0, "drops the minimum-length processor"),
    "stop": (None, "has no stop strings"),
}
"""``decoder:`` fields continuous batching cannot honour: the value at which each does nothing
(None: any value acts) and why. ``ignore_eos`` is honoured (the EOS stop is disabled)."""

PYTORCH_LIMITS: dict[str, tuple[Any, str]] = {
    "prompt_lookup_num_tokens": (None, "has no prompt-lookup (assisted) decoding"),
    "prefill_chunk_size": (None, "splits prefills by its own per-step token budget"),
    "cache_implementation": (None, "always uses its own paged KV cache"),
    "use_cache": (True, "always uses its KV cache"),
    "output_scores": (False, "returns token ids only"),
    "return_dict_in_generate": (False, "returns token ids only"),
}
"""``pytorch:`` fields continuous batching cannot honour, as for :data:`DECODER_LIMITS`."""

CONTINUOUS_EXTRA = frozenset(
    {"do_sample", *SAMPLING_ONLY, "suppress_tokens", "renormalize_logits", "remove_invalid_values"}
)
"""``pytorch.extra`` keys continuous batching honours: GenerationConfig settings whose logits
processors read only the scores. It takes no ``generate`` keyword arguments."""


def check_continuous_batching(config: ExperimentConfig, transformers_version: str) -> None:
    """Refuse a load mode the installed transformers or the settings cannot serve.

    Raises:
        ConfigError: transformers older than :data:`CONTINUOUS_BATCHING_SINCE` (naming
            ``load.mode`` and the version needed); a setting continuous batching cannot
            honour, naming the field.
    """
    mode = config.load.mode
    if Version(transformers_version) < Version(CONTINUOUS_BATCHING_SINCE):
        raise ConfigError(
            f"load.mode: {mode} runs the pytorch backend through transformers' continuous "
            f"batching, which needs transformers >= {CONTINUOUS_BATCHING_SINCE} (installed: "
            f"{transformers_version}); pip install 'transformers>={CONTINUOUS_BATCHING_SINCE}', "
            "or use load.mode: offline"
        )
    sections = (
        ("decoder", config.decoder, DECODER_LIMITS),
        ("pytorch", config.pytorch_options, PYTORCH_LIMITS),
    )
    for section, values, limits in sections:
        for name, (inert, why) in limits.items():
            value = getattr(values, name)
            if value is not None and value != inert:
                raise ConfigError(
                    f"{section}.{name}: {value!r} cannot be honoured with load.mode: {mode}: "
                    f"transformers' continuous batching {why}; remove it, or measure it with "
                    "load.mode: offline"
                )
    for key in config.pytorch_options.extra:
        if key not in CONTINUOUS_EXTRA:
            raise ConfigError(
                f"pytorch.extra.{key} cannot be honoured with load.mode: {mode}: transformers' "
                f"continuous batching takes only {', '.join(sorted(CONTINUOUS_EXTRA))} from "
                "pytorch.extra; remove it, or measure it with load.mode: offline"
            )


def requests_in_flight(config: ExperimentConfig) -> int:
    """The most requests the load can have in flight: ``load.max_concurrency``, else all ``n``."""
    return config.load.max_concurrency or config.n


def requests_per_step(config: ExperimentConfig) -> int:
    """The most requests continuous batching runs in one forward pass.

    ``pytorch.batch_size`` set above its default 1 is this limit (transformers'
    ``max_requests_per_batch``, the counterpart of prompts per ``generate`` call); at 1 every
    request in flight may share a step.
    """
    in_flight = requests_in_flight(config)
    size = config.pytorch_options.batch_size
    return min(size, in_flight) if size > 1 else in_flight
