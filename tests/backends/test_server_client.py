"""The server backend's stream reader and token counting on exact bodies (httpx's mock
transport): what server-sent events it accepts, what it refuses, and how chunks count."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx
import pytest

from llenergymeasure.backends.server.client import Chunk, Streamed, http_error, stream_request
from llenergymeasure.backends.server.counting import chunk_counts, to_record


def streamed(body: bytes, status: int = 200) -> Streamed:
    """Stream ``body`` as the answer to one request; the clock ticks 1 s per reading."""
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    clock = itertools.count().__next__

    async def go() -> Streamed:
        async with httpx.AsyncClient(transport=transport, base_url="http://server/v1") as http:
            request = http.build_request("POST", "/completions", json={})
            return await stream_request(http, request, lambda: float(clock()), 5.0)

    return asyncio.run(go())


def event(choices: list[dict[str, Any]], usage: Any = "absent") -> str:
    payload: dict[str, Any] = {"object": "text_completion", "choices": choices}
    if usage != "absent":
        payload["usage"] = usage
    return f"data: {json.dumps(payload)}\n\n"


def text(value: str, finish: str | None = None) -> dict[str, Any]:
    return {"index": 0, "text": value, "finish_reason": finish}


def test_comments_event_names_and_unspaced_data_are_accepted() -> None:
    body = (
        ": keep-alive\n\n"
        "event: completion\n" + event([text("Hello")]).replace("data: ", "data:")
        + event([text(" world", "stop")], usage=None)
        + "data: [DONE]\n\n"
    )  # fmt: skip
    got = streamed(body.encode())
    assert got.error is None and got.finished
    assert [(c.time_s, c.text) for c in got.chunks] == [(1.0, "Hello"), (2.0, " world")]
    assert got.submit_s == 0.0 and got.end_s == 4.0  # [DONE] read at 3, the end stamped after


def test_a_last_event_without_its_blank_line_still_counts() -> None:
    got = streamed(event([text("Hi", "length")]).rstrip("\n").encode())
    assert got.error is None and [c.text for c in got.chunks] == ["Hi"]


def test_the_final_usage_event_gives_the_totals() -> None:
    body = event([text("a", "stop")]) + event([], usage={
        "prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9,
    }) + "data: [DONE]\n\n"  # fmt: skip
    got = streamed(body.encode())
    assert (got.prompt_tokens, got.completion_tokens) == (7, 2)
    assert got.chunks[0].completion_tokens is None


def test_chat_deltas_count_reasoning_and_content() -> None:
    choice = {"index": 0, "delta": {"reasoning_content": "think", "content": " say"},
              "finish_reason": "stop"}  # fmt: skip
    got = streamed(event([choice]).encode())
    assert [c.text for c in got.chunks] == ["think say"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('data: {"object": "error", "message": "bad prompt"}\n\n', "error event: bad prompt"),
        ('data: {"choices": {"text": "x"}}\n\n', "malformed event: choices is not a list"),
        ('data: {"choices": [], "usage": {"completion_tokens": "2"}}\n\n',
         "malformed event: usage counts are not integers"),
        ('data: {"choices": [], "usage": 3}\n\n', "malformed event: usage is not an object"),
        ("data: [1, 2]\n\n", "malformed event: not a JSON object"),
        ('data: {"choices": [{"delta": "x"}]}\n\n', "malformed event: delta is not an object"),
        (event([text("a")]), "stream ended before a finish reason"),
    ],
)  # fmt: skip
def test_events_a_client_cannot_accept_fail_the_request(body: str, reason: str) -> None:
    got = streamed(body.encode())
    assert got.error is not None and got.error.startswith(reason)


def test_an_http_error_quotes_the_bodys_message_or_text() -> None:
    assert streamed(b'{"error": {"message": "model x not found"}}', 404).error == (
        "HTTP 404: model x not found"
    )
    assert http_error(502, b"<html>Bad gateway</html>") == "HTTP 502: <html>Bad gateway</html>"
    assert http_error(503, b"") == "HTTP 503: no body"
    assert len(http_error(500, b"x" * 1000)) < 220


def test_per_chunk_usage_counts_tokens_without_text() -> None:
    chunks = [Chunk(1.0, "", 0), Chunk(2.0, "Hi", 2), Chunk(3.0, "", 3)]  # the last: an EOS
    assert chunk_counts(chunks, len) == ([0, 2, 1], "server usage")


def test_without_usage_on_every_chunk_the_tokenizer_counts_each_text() -> None:
    chunks = [Chunk(1.0, "ab", 2), Chunk(2.0, "cde", None), Chunk(3.0, "", None)]
    assert chunk_counts(chunks, len) == ([2, 3, 0], "tokenizer")


def test_a_record_keeps_only_chunks_with_tokens_and_the_servers_prompt_count() -> None:
    got = Streamed(submit_s=0.5, end_s=4.0, prompt_tokens=9, completion_tokens=5, finished=True,
                   chunks=[Chunk(1.0, "", None), Chunk(2.0, "abc", None)])  # fmt: skip
    counted = to_record(3, 12, got, len)
    record = counted.record
    assert (record.index, record.input_tokens, record.output_tokens) == (3, 9, 3)
    assert record.chunk_times_s == [2.0] and record.chunk_tokens == [3] and record.end_s == 4.0
    assert (counted.tokens, counted.prompt, counted.server_total) == (
        "tokenizer",
        "server usage",
        5,
    )
    sent = to_record(0, 12, Streamed(error="HTTP 500: x"), len)
    assert sent.record.input_tokens == 12 and sent.prompt == "sent" and sent.tokens is None
