"""Turn what a request received into its :class:`RequestRecord`: tokens per chunk from the
server's usage when it sent a count with every chunk, else counted with the model's tokenizer.

A server that reports cumulative ``usage.completion_tokens`` on every chunk (vLLM and SGLang
with ``continuous_usage_stats``) gives each chunk's exact token count as the difference from
the previous one, including chunks whose text is empty (an end-of-sequence token, text held
back for a stop string). Otherwise each chunk's text is tokenized; a token with no text of
its own (an end-of-sequence token) is then not counted. A final usage event alone gives the
request's total only: it is kept beside the tokenizer's count, so the two can be compared.
Chunks with no tokens are not chunks of output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from llenergymeasure.backends.server.client import Chunk, Streamed
from llenergymeasure.results.records import RequestRecord

TokenSource = Literal["server usage", "tokenizer"]
"""How the output tokens of a request were counted."""

PromptSource = Literal["server usage", "sent"]
"""Where a request's input token count came from: the server's ``usage.prompt_tokens``, or the
prepared ids whose text was sent (for ``api: chat``, before the server's chat template)."""


@dataclass(frozen=True)
class Counted:
    """A request's record and how its token counts were found.

    Attributes:
        tokens: how its output tokens were counted (None: it received no chunk).
        server_total: the server's final ``completion_tokens`` for a request whose chunks
            were counted with the tokenizer (None otherwise, or when it sent none).
    """

    record: RequestRecord
    tokens: TokenSource | None
    prompt: PromptSource
    server_total: int | None


def to_record(
    index: int, sent_tokens: int, streamed: Streamed, count_text: Callable[[str], int]
) -> Counted:
    """The record of request ``index`` (failed ones keep the chunks they received)."""
    counts, source = chunk_counts(streamed.chunks, count_text)
    kept = [(chunk.time_s, n) for chunk, n in zip(streamed.chunks, counts, strict=True) if n > 0]
    record = RequestRecord(
        index=index,
        input_tokens=streamed.prompt_tokens if streamed.prompt_tokens is not None else sent_tokens,
        output_tokens=sum(n for _, n in kept),
        submit_s=streamed.submit_s,
        chunk_times_s=[t for t, _ in kept],
        chunk_tokens=[n for _, n in kept],
        end_s=streamed.end_s,
        error=streamed.error,
    )
    return Counted(
        record,
        source if streamed.chunks else None,
        "server usage" if streamed.prompt_tokens is not None else "sent",
        streamed.completion_tokens if source == "tokenizer" else None,
    )


def chunk_counts(
    chunks: Sequence[Chunk], count_text: Callable[[str], int]
) -> tuple[list[int], TokenSource]:
    """Output tokens per chunk, and how they were counted."""
    if chunks and all(chunk.completion_tokens is not None for chunk in chunks):
        counts, previous = [], 0
        for chunk in chunks:
            total = chunk.completion_tokens or 0
            counts.append(max(0, total - previous))
            previous = max(previous, total)
        return counts, "server usage"
    return [count_text(chunk.text) if chunk.text else 0 for chunk in chunks], "tokenizer"
