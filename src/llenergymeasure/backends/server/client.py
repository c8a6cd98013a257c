"""Stream one request to an OpenAI-compatible server and time it.

The response is server-sent events (``data: {...}`` lines, a blank line after each event,
``data: [DONE]`` at the end). Every event that carries a choice is stamped with the injected
clock as it arrives, with its text and, where the server reports it, the cumulative
``usage.completion_tokens`` (vLLM and SGLang send it on every chunk when asked with
``continuous_usage_stats``; the OpenAI API sends one usage event at the end).

A request that goes wrong is never raised: an HTTP status of 400 or more, a connection
refused or cut, an event that is not JSON or is an error, a timeout (``server.timeout_s`` to
the first byte and between chunks), or a body that ends before a finish reason, each becomes
the ``error`` of what was received so far.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from llenergymeasure.backends.base import first_line

DONE = "[DONE]"
"""The data of the event that ends a stream."""

REASON_CHARS = 200
"""Longest error message kept from a server's answer."""

_TIMEOUTS = {
    "ConnectTimeout": "no connection",
    "ReadTimeout": "nothing received",
    "WriteTimeout": "the request could not be sent",
    "PoolTimeout": "no free connection",
}


class StreamFailure(Exception):
    """The stream said something a client cannot accept (its message is the reason)."""


@dataclass(frozen=True)
class Chunk:
    """One received event with a choice.

    Attributes:
        time_s: when it arrived (the injected clock).
        text: the generated text it carried (may be empty).
        completion_tokens: the server's cumulative output token count, when it sent one.
    """

    time_s: float
    text: str
    completion_tokens: int | None


@dataclass
class Streamed:
    """What one request received, and why it failed (None: it completed).

    Attributes:
        prompt_tokens: the server's ``usage.prompt_tokens``, when it reported one.
        completion_tokens: the server's final ``usage.completion_tokens``, when it sent one.
        finished: a choice carried a finish reason.
    """

    submit_s: float = 0.0
    end_s: float = 0.0
    chunks: list[Chunk] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finished: bool = False
    error: str | None = None


async def stream_request(
    http: httpx.AsyncClient,
    request: httpx.Request,
    clock: Callable[[], float],
    timeout_s: float,
    on_chunk: Callable[[], None] | None = None,
) -> Streamed:
    """Send ``request`` (built, so its encoding is done) and read its stream to the end;
    ``timeout_s`` is the client's timeout (for the reason of a timeout); ``on_chunk`` is
    called as each chunk arrives (the run's progress).

    ``submit_s`` is stamped right before the request is sent, ``end_s`` when the stream ended
    or failed.
    """
    streamed = Streamed()
    streamed.submit_s = clock()
    try:
        response = await http.send(request, stream=True)
        try:
            if response.status_code >= 400:
                streamed.error = http_error(response.status_code, await response.aread())
            else:
                await _read_events(response, streamed, clock, on_chunk)
        finally:
            await response.aclose()
    except httpx.TimeoutException as exc:
        what = _TIMEOUTS.get(type(exc).__name__, "no answer")
        streamed.error = f"timeout: {what} within {timeout_s:g} s (server.timeout_s)"
    except httpx.HTTPError as exc:
        streamed.error = f"connection: {first_line(exc)}"
    except StreamFailure as exc:
        streamed.error = str(exc)
    streamed.end_s = clock()
    if streamed.error is None and not streamed.finished:
        streamed.error = "stream ended before a finish reason"
    return streamed


def http_error(status: int, body: bytes) -> str:
    """``HTTP <status>: <the error message of the body>`` (shortened)."""
    message = body.decode("utf-8", "replace").strip()
    try:
        payload = json.loads(message)
    except ValueError:
        payload = None
    found = error_message(payload) if isinstance(payload, dict) else None
    return f"HTTP {status}: {_short(found or message or 'no body')}"


def error_message(event: dict[str, Any]) -> str | None:
    """The message of an OpenAI error object (``{"error": {"message": ...}}``, or vLLM's
    older ``{"object": "error", "message": ...}``); None when ``event`` is not one."""
    error = event.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if error is not None:
        return str(error)
    if event.get("object") == "error":
        return str(event.get("message") or event)
    return None


async def _read_events(
    response: httpx.Response,
    streamed: Streamed,
    clock: Callable[[], float],
    on_chunk: Callable[[], None] | None,
) -> None:
    """Dispatch each event as its blank line arrives (comment and ``event:`` lines carry
    nothing used); stops at ``[DONE]``."""

    def take(data: list[str]) -> bool:
        n_chunks = len(streamed.chunks)
        done = _dispatch("\n".join(data), streamed, clock())
        if on_chunk is not None and len(streamed.chunks) > n_chunks:
            on_chunk()
        return done

    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))
        elif not line and data:
            if take(data):
                return
            data = []
    if data:
        take(data)


def _dispatch(data: str, streamed: Streamed, now_s: float) -> bool:
    """Take one event into ``streamed``; True at ``[DONE]``.

    Raises:
        StreamFailure: the event is not a JSON object, has no valid shape, or is an error.
    """
    if data.strip() == DONE:
        return True
    event = _parse(data)
    message = error_message(event)
    if message is not None:
        raise StreamFailure(f"error event: {_short(message)}")
    usage = _usage(event, data)
    if usage is not None:
        streamed.prompt_tokens = usage.get("prompt_tokens", streamed.prompt_tokens)
    choices = event.get("choices") or []
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise StreamFailure(f"malformed event: choices is not a list of objects: {_short(data)}")
    if not choices:
        if usage is not None:
            streamed.completion_tokens = usage.get("completion_tokens")
        return False
    choice = choices[0]
    cumulative = usage.get("completion_tokens") if usage is not None else None
    streamed.chunks.append(Chunk(now_s, _choice_text(choice), cumulative))
    if choice.get("finish_reason") is not None:
        streamed.finished = True
    return False


def _parse(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        raise StreamFailure(f"malformed event: not JSON: {_short(data)}") from None
    if not isinstance(event, dict):
        raise StreamFailure(f"malformed event: not a JSON object: {_short(data)}")
    return event


def _usage(event: dict[str, Any], data: str) -> dict[str, int] | None:
    """The event's token counts (None when it has none; a null usage is none)."""
    usage = event.get("usage")
    if usage is None:
        return None
    if not isinstance(usage, dict):
        raise StreamFailure(f"malformed event: usage is not an object: {_short(data)}")
    counts = {key: usage.get(key) for key in ("prompt_tokens", "completion_tokens")}
    if not all(_is_count(value) for value in counts.values() if value is not None):
        raise StreamFailure(f"malformed event: usage counts are not integers: {_short(data)}")
    return {key: value for key, value in counts.items() if value is not None}


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _choice_text(choice: dict[str, Any]) -> str:
    """Generated text of a completions choice (``text``) or a chat delta (``content``, and a
    reasoning model's ``reasoning_content``/``reasoning``)."""
    if "delta" not in choice:
        return str(choice.get("text") or "")
    delta = choice["delta"] or {}
    if not isinstance(delta, dict):
        raise StreamFailure(f"malformed event: delta is not an object: {_short(str(delta))}")
    parts = (delta.get(key) for key in ("reasoning_content", "reasoning", "content"))
    return "".join(str(part) for part in parts if part)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."
