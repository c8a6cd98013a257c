"""ShareGPT conversations, read as ``vllm bench serve`` reads them.

A ShareGPT file is a JSON list (here also JSON lines) of
``{"id": ..., "conversations": [{"from": "human", "value": "..."}, {"from": "gpt", ...}, ...]}``.
As in vLLM's ``ShareGPTDataset``: entries without ``conversations`` or with fewer than two turns
are dropped; the first turn is the prompt and the second its reference answer (the speakers are
not checked); and while selecting, a conversation is passed over when its prompt or answer is
under 4 tokens, its prompt over 1024, or both together over 2048 (vLLM's
``is_valid_sequence``). vLLM counts with the tokenizer's special tokens (BOS), llem without,
so a conversation within a token of a limit can be judged differently.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llenergymeasure.errors import DatasetError

MIN_TOKENS = 4
MAX_PROMPT_TOKENS = 1024
MAX_TOTAL_TOKENS = 2048


@dataclass(frozen=True)
class Exchange:
    """A conversation's first turn (the prompt) and second (its reference answer)."""

    prompt: str
    answer: str


def within_limits(prompt_tokens: int, answer_tokens: int) -> bool:
    """vLLM's rule for a usable ShareGPT conversation (lengths in tokens)."""
    return (
        prompt_tokens >= MIN_TOKENS
        and answer_tokens >= MIN_TOKENS
        and prompt_tokens <= MAX_PROMPT_TOKENS
        and prompt_tokens + answer_tokens <= MAX_TOTAL_TOKENS
    )


def read_file(path: Path) -> list[Any]:
    """The entries of a ShareGPT file: a JSON list, or one JSON object per line.

    Raises:
        DatasetError: the file is missing, unreadable, or neither form of JSON.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"dataset.path: there is no file at {path.absolute()}.") from None
    except (OSError, ValueError) as exc:  # a directory, permissions, not UTF-8
        reason = getattr(exc, "strerror", None) or exc
        raise DatasetError(f"dataset.path: cannot read {path}: {reason}.") from None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return _json_lines(text, path)
    if not isinstance(whole, list):
        raise DatasetError(
            f"{path}: expected a JSON list of conversations (or one JSON object per line)."
        )
    return whole


def exchanges(entries: Sequence[Any], label: str) -> list[Exchange]:
    """The first two turns of every entry with at least two, in file order.

    Args:
        entries: the file's entries, or a hub dataset's ``conversations`` values wrapped as
            ``{"conversations": value}``.
        label: where the entries come from, for errors.

    Raises:
        DatasetError: an entry is not an object, or one of its first two turns has no text.
    """
    found: list[Exchange] = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DatasetError(f"{label}, entry {number}: expected an object with 'conversations'.")
        turns = entry.get("conversations")
        if isinstance(turns, list) and len(turns) >= 2:
            prompt, answer = (_turn_text(turns[k], label, number, k) for k in (0, 1))
            found.append(Exchange(prompt, answer))
    return found


def _turn_text(turn: Any, label: str, number: int, position: int) -> str:
    value = turn.get("value") if isinstance(turn, dict) else None
    if not isinstance(value, str):
        raise DatasetError(
            f"{label}, entry {number}: turn {position} needs a text 'value' "
            '(as {"from": "human", "value": "..."}).'
        )
    return value


def _json_lines(text: str, path: Path) -> list[Any]:
    entries: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{path}, line {number}: not valid JSON ({exc.msg} at column {exc.colno}); a "
                "ShareGPT file is a JSON list or one JSON object per line."
            ) from None
    return entries
