"""Architecture-only models for vLLM: a folder it loads with ``load_format="dummy"``.

A shipped ``<name>-arch`` or a path to a ``config.json`` has no weights. vLLM builds such a
model with random weights from a folder holding ``config.json``; this module writes that folder
(a temporary one, removed at unload) with the tokenizer the pytorch backend would pick for the
same model (its own beside the config, else the embedded SmolLM2 one when the vocabulary
matches). With no tokenizer at all, vLLM runs with ``skip_tokenizer_init`` on the token ids of
synthetic prompts. Output length is forced (``ignore_eos``), as for pytorch's random models.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llenergymeasure.backends.model_source import ModelSource
from llenergymeasure.config.models import ExperimentConfig

FORCED_OUTPUT = "forced: ignore_eos, every request generates max_output_tokens"


@dataclass
class ArchitectureFolder:
    """The folder vLLM loads, the tokenizer llem uses, and what to record about both.

    Attributes:
        folder: temporary folder with ``config.json`` (and tokenizer files when there is one).
        tokenizer: a transformers tokenizer, or a ``TokenIdTokenizer`` when there is none.
        has_tokenizer: whether vLLM can load a tokenizer from ``folder``.
        details: notes for the result (weights, tokenizer, output length, architecture).
    """

    folder: Path
    tokenizer: Any
    has_tokenizer: bool
    details: dict[str, Any]

    def remove(self) -> None:
        """Delete the temporary folder."""
        shutil.rmtree(self.folder, ignore_errors=True)


def architecture_folder(
    config: ExperimentConfig, source: ModelSource, tokenizer_loader: Callable[..., Any]
) -> ArchitectureFolder:
    """Write a loadable folder for the architecture ``source`` (a ``config.json``).

    Raises:
        ConfigError: text prompts but no tokenizer; an unreadable config.
    """
    from llenergymeasure.backends.pytorch.no_weights import (
        TokenIdTokenizer,
        random_model_tokenizer,
    )
    from llenergymeasure.flops import architecture_summary

    hf_config, tokenizer, note = random_model_tokenizer(
        config, source, source.location, tokenizer_loader
    )
    folder = Path(tempfile.mkdtemp(prefix="llem-vllm-arch-"))
    try:
        shutil.copyfile(source.location, folder / "config.json")
        has_tokenizer = not isinstance(tokenizer, TokenIdTokenizer)
        if has_tokenizer:
            tokenizer.save_pretrained(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    details = {
        "weights": "random (vLLM load_format=dummy: built from the config, nothing downloaded)",
        "tokenizer": note,
        "output_length": FORCED_OUTPUT,
        "architecture": architecture_summary(hf_config),
    }
    return ArchitectureFolder(folder, tokenizer, has_tokenizer, details)
