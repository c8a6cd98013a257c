"""Exact output lengths per row of one batched ``generate`` call (``dataset.output_lengths``
from_dataset or distribution).

``generate`` takes one ``max_new_tokens`` per call, so each row's length is forced by two hooks
on the whole batch: a logits processor that makes EOS impossible in every row still short of
its length (as ``min_new_tokens`` does for one length), and a stopping criterion that finishes
each row at its length (``generate`` then pads it while the longer rows run on). The call's
``max_new_tokens`` is the batch's longest length, which also bounds speculative (prompt lookup)
steps.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList


class SuppressEosBeforeLength:
    """A logits processor: no EOS in a row until it has generated its length.

    Args:
        lengths: each row's output length.
        prompt_length: the padded prompt length (every row's generated tokens start there).
        eos_ids: the token ids that would end a row.
    """

    def __init__(self, lengths: Sequence[int], prompt_length: int, eos_ids: Collection[int]):
        self._lengths = torch.tensor(list(lengths))
        self._prompt_length = prompt_length
        self._eos_ids = sorted(eos_ids)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Scores with EOS at -inf in the rows short of their length."""
        generated = input_ids.shape[1] - self._prompt_length
        short = self._lengths.to(scores.device) > generated
        if not self._eos_ids or not bool(short.any()):
            return scores
        masked = scores.clone()
        eos = torch.tensor(self._eos_ids, device=scores.device)
        masked[short.nonzero(as_tuple=True)[0][:, None], eos[None, :]] = -torch.inf
        return masked


class StopAtLength(StoppingCriteria):  # type: ignore[misc]
    """A stopping criterion: each row is done once it has generated its length.

    Args:
        lengths: each row's output length.
        prompt_length: the padded prompt length.
    """

    def __init__(self, lengths: Sequence[int], prompt_length: int) -> None:
        self._lengths = torch.tensor(list(lengths))
        self._prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        """A bool per row: True where the row has its length."""
        generated = input_ids.shape[1] - self._prompt_length
        done: torch.Tensor = self._lengths.to(input_ids.device) <= generated
        return done


def forced_length_kwargs(
    extra: dict[str, Any], lengths: Sequence[int], prompt_length: int, eos_ids: Collection[int]
) -> dict[str, Any]:
    """``generate`` keyword arguments that give row ``i`` exactly ``lengths[i]`` new tokens,
    beside the processors and criteria already in ``extra`` (``pytorch.extra``).

    ``min_new_tokens`` is cleared: the forced lengths supersede ``decoder.min_new_tokens`` and
    ``ignore_eos``.
    """
    suppress = SuppressEosBeforeLength(lengths, prompt_length, eos_ids)
    return {
        "logits_processor": LogitsProcessorList([*extra.get("logits_processor", []), suppress]),
        "stopping_criteria": StoppingCriteriaList(
            [*extra.get("stopping_criteria", []), StopAtLength(lengths, prompt_length)]
        ),
        "max_new_tokens": max(lengths),
        "min_new_tokens": None,
    }
