"""Map an experiment config onto vLLM engine arguments and SamplingParams (pure functions).

Nothing here imports vLLM: the names the installed version accepts are passed in, so the
mapping is testable without the library and every unsupported field is reported by name.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from llenergymeasure.backends.base import DTYPE_NAMES
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import ConfigError

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM's ``max_lora_rank`` accepts (``vllm.config.lora.MaxLoRARanks``)."""

# Decoder fields with a SamplingParams parameter of another name (the rest keep their name).
SAMPLING_NAMES = {"min_new_tokens": "min_tokens"}


def engine_kwargs(
    config: ExperimentConfig,
    location: str,
    *,
    architecture: bool = False,
    tokenizer: bool = True,
    lora_rank: int | None = None,
) -> dict[str, Any]:
    """Engine arguments: the ``vllm:`` fields that are set, model, dtype, LoRA, then ``extra``.

    The engine seed defaults to ``random_seed``; stats stay on so the engine's own
    first-token times can cross-check the streamed ones. An ``architecture`` (a folder with a
    config.json and no weights) loads with ``load_format="dummy"``; without a ``tokenizer``,
    vLLM skips tokenizer initialisation (prompts arrive as token ids). With LoRA, one adapter
    slot is reserved (``max_loras=1``) sized to the adapter's ``lora_rank`` (rounded up to a
    rank vLLM accepts); ``extra`` can override both.

    Raises:
        ConfigError: an architecture with a ``load_format`` other than dummy; a LoRA rank
            above the largest vLLM supports.
    """
    options = config.vllm_options
    kwargs: dict[str, Any] = {
        "model": location,
        "dtype": DTYPE_NAMES[config.precision],
        "seed": config.random_seed,
        "disable_log_stats": False,
    }
    for name in type(options).model_fields:
        value = getattr(options, name)
        if name != "extra" and value is not None:
            kwargs[name] = value
    if config.lora is not None:
        kwargs["enable_lora"] = True
        kwargs["max_loras"] = 1
        if lora_rank is not None:
            kwargs["max_lora_rank"] = lora_rank_slot(lora_rank)
    if architecture:
        if options.load_format not in (None, "dummy"):
            raise ConfigError(
                f"vllm.load_format: '{options.load_format}' cannot load model '{config.model}', "
                "an architecture without weights; leave it unset (or 'dummy': random weights)"
            )
        kwargs["load_format"] = "dummy"
        if not tokenizer:
            kwargs["skip_tokenizer_init"] = True
    kwargs.update(options.extra)
    return kwargs


def adapter_rank(adapter_folder: Path) -> int | None:
    """The rank ``r`` in a PEFT adapter's ``adapter_config.json`` (None when not readable)."""
    try:
        rank = json.loads((adapter_folder / "adapter_config.json").read_text()).get("r")
    except (OSError, ValueError, AttributeError):
        return None  # vLLM reports a folder that is not an adapter when it loads it
    return rank if isinstance(rank, int) and not isinstance(rank, bool) else None


def lora_rank_slot(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds an adapter of ``rank``.

    Raises:
        ConfigError: the rank is above vLLM's largest.
    """
    for slot in LORA_RANKS:
        if rank <= slot:
            return slot
    raise ConfigError(
        f"lora.adapter: its rank r={rank} is above the largest vLLM supports ({LORA_RANKS[-1]})"
    )


def check_engine_kwargs(kwargs: dict[str, Any], accepted: Collection[str], version: str) -> None:
    """Reject engine arguments the installed vLLM does not know.

    Raises:
        ConfigError: naming each unknown argument and the installed version.
    """
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"vllm: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not an engine "
            f"argument of the installed vLLM {version} (AsyncEngineArgs); remove "
            f"{'it' if len(unknown) == 1 else 'them'} or install a vLLM version that has "
            f"{'it' if len(unknown) == 1 else 'them'}"
        )


def sampling_kwargs(
    config: ExperimentConfig,
    max_tokens: int,
    accepted: Collection[str],
    *,
    forced_length: bool = False,
    detokenize: bool = True,
) -> dict[str, Any]:
    """SamplingParams arguments from the shared decoder fields.

    Greedy decoding (``do_sample: false``) is temperature 0 in vLLM; sampling fields are then
    left out, as with transformers' greedy ``generate``. The seed is ``random_seed``;
    ``min_new_tokens`` becomes ``min_tokens``, capped at ``max_tokens`` (short warmup runs).
    ``forced_length`` (random weights) sets ``ignore_eos``, so every request generates
    ``max_tokens``; ``detokenize=False`` when the engine has no tokenizer.

    Raises:
        ConfigError: a set decoder field that vLLM's SamplingParams does not have.
    """
    decoder = config.decoder
    kwargs: dict[str, Any] = {"max_tokens": max_tokens, "seed": config.random_seed}
    unsupported = []
    for name, value in decoder.set_fields().items():
        if name == "do_sample":
            continue
        target = SAMPLING_NAMES.get(name, name)
        if target not in accepted:
            unsupported.append(name)
        kwargs[target] = value
    if unsupported:
        raise ConfigError(
            f"decoder: {', '.join(unsupported)} not supported by vLLM's SamplingParams; "
            "remove them for backend vllm"
        )
    if not decoder.do_sample:
        kwargs["temperature"] = 0.0
    if "min_tokens" in kwargs:
        # vLLM rejects min_tokens > max_tokens; transformers simply stops at the maximum.
        kwargs["min_tokens"] = min(kwargs["min_tokens"], max_tokens)
    if forced_length:
        kwargs["ignore_eos"] = True
    if not detokenize:
        kwargs["detokenize"] = False
    return kwargs
