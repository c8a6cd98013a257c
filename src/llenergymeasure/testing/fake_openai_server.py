"""A small OpenAI-compatible streaming server for tests: ``/v1/models``, ``/v1/completions``,
``/v1/chat/completions`` (server-sent events), ``/version`` and ``/metrics``, on 127.0.0.1.

It streams like ``vllm serve``: one chunk per ``tokens_per_chunk`` generated tokens, the
finish reason on the last one, per-chunk cumulative ``usage`` when the request asks for
``stream_options.continuous_usage_stats``, a final usage chunk (empty ``choices``) when it asks
for ``include_usage``, then ``data: [DONE]``. Knobs make it slow or faulty, per request (by
arrival order) or for all of them; every request it receives is kept (path, headers, body), so
a test can check what a client sent.

    with FakeOpenAIServer(token_delay_s=0.01) as server:
        ...  # server.url is "http://127.0.0.1:<port>/v1"

Run it as a process (for launch tests): ``python -m llenergymeasure.testing.fake_openai_server
--port 8123``; it prints ``ready <url>`` once it listens.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Fault = Literal[
    "http_500", "cut", "malformed", "error_event", "slow_first_byte", "stall", "no_finish"
]
"""How one request goes wrong: ``http_500`` answers 500 with an OpenAI error body; ``cut``
closes the connection after the first chunk (an incomplete chunked body); ``malformed`` sends
an event that is not JSON after the first chunk; ``error_event`` sends a vLLM-style
``{"error": ...}`` event after the first chunk; ``slow_first_byte`` waits ``stall_s`` before
answering at all; ``stall`` waits ``stall_s`` after the first chunk; ``no_finish`` ends the
body cleanly after the first chunk, without a finish reason or ``[DONE]``."""

WORDS = (" the", " energy", " of", " a", " model", " is", " measured", " here")
"""The text of generated tokens, in turn: common words (one token each in most tokenizers)."""


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class FakeOpenAIServer:
    """An in-process OpenAI-compatible server; start it with ``with`` (or ``start()``).

    Attributes:
        models: the served model names ``/v1/models`` lists.
        token_delay_s: pause before each chunk.
        tokens_per_chunk: generated tokens per streamed chunk.
        output_tokens: where each request's EOS comes (default: none, so its
            ``max_tokens``); a request with ``ignore_eos`` runs on to ``max_tokens``, one
            with ``min_tokens`` at least to those (vLLM's extensions).
        usage: which of ``stream_options`` it honours: "per_chunk" both (as vLLM, SGLang),
            "final" only ``include_usage`` (as the OpenAI API), "none" neither.
        fault: what goes wrong with every generation request (None: nothing).
        faults: what goes wrong with the n-th generation request received (0-based).
        stall_s: how long ``slow_first_byte`` and ``stall`` wait.
        api_key: the Bearer token generation requests need (None: any).
        version: what ``/version`` answers (None: 404).
        server_header: the ``Server`` response header.
        metrics_text: the Prometheus text ``/metrics`` answers (None: 404).
    """

    models: Sequence[str] = ("fake-model",)
    token_delay_s: float = 0.0
    tokens_per_chunk: int = 1
    output_tokens: int | None = None
    usage: Literal["per_chunk", "final", "none"] = "per_chunk"
    fault: Fault | None = None
    faults: Mapping[int, Fault] = field(default_factory=dict)
    stall_s: float = 2.0
    api_key: str | None = None
    version: str | None = "0.0.1-fake"
    server_header: str = "fake-openai/1.0"
    metrics_text: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    received: list[ReceivedRequest] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _generations: int = field(default=0, repr=False)
    _bound_port: int | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The API base URL, ending in /v1 (still the same after ``stop``)."""
        if self._bound_port is None:
            raise RuntimeError("the fake server has not started; start() it first")
        return f"http://{self.host}:{self._bound_port}/v1"

    def generation_bodies(self) -> list[dict[str, Any]]:
        """The bodies of the generation requests received, in arrival order."""
        return [r.body for r in self.received if r.body is not None and r.method == "POST"]

    def start(self) -> FakeOpenAIServer:
        """Listen and serve in a background thread."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._bound_port = int(self._httpd.server_address[1])
        threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening (requests still streaming end with their connections)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _keep(self, request: ReceivedRequest) -> Fault | None:
        """Record a request; the fault of a generation request (by arrival order)."""
        with self._lock:
            self.received.append(request)
            if request.method != "POST":
                return None
            number = self._generations
            self._generations += 1
        return self.faults.get(number, self.fault)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeOpenAIServer

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError):  # a client that closed its connection
            super().handle()

    def version_string(self) -> str:
        return self.fake.server_header

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``received`` instead."""

    def do_GET(self) -> None:
        self.fake._keep(ReceivedRequest("GET", self.path, dict(self.headers), None))
        if self.path.startswith("/v1/") and not self._authorised():
            self._json(401, _error("invalid API key", 401))
        elif self.path == "/v1/models":
            data = [
                {"id": name, "object": "model", "owned_by": "fake"} for name in self.fake.models
            ]
            self._json(200, {"object": "list", "data": data})
        elif self.path == "/version" and self.fake.version is not None:
            self._json(200, {"version": self.fake.version})
        elif self.path == "/metrics" and self.fake.metrics_text is not None:
            self._send(200, self.fake.metrics_text.encode(), "text/plain; version=0.0.4")
        elif self.path == "/health":
            self._send(200, b"", "text/plain")
        else:
            self._json(404, _error(f"no route {self.path}", 404))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        fault = self.fake._keep(ReceivedRequest("POST", self.path, dict(self.headers), body))
        api = {"/v1/completions": "completions", "/v1/chat/completions": "chat"}.get(self.path)
        if api is None:
            self._json(404, _error(f"no route {self.path}", 404))
        elif not self._authorised():
            self._json(401, _error("invalid API key", 401))
        elif fault == "http_500":
            self._json(500, _error("the engine is overloaded", 500))
        elif not body.get("stream"):
            self._json(400, _error("this fake server only streams", 400))
        else:
            self._stream(api, body, fault)

    def _authorised(self) -> bool:
        """The API key, when the server has one, came as a Bearer token (as vLLM guards
        every /v1 route)."""
        key = self.fake.api_key
        return key is None or self.headers.get("Authorization") == f"Bearer {key}"

    def _stream(self, api: str, body: dict[str, Any], fault: Fault | None) -> None:
        # faults mid-stream act once the first generated text is out (chat sends a role first)
        fault_at = 2 if api == "chat" else 1
        try:
            if fault == "slow_first_byte":
                time.sleep(self.fake.stall_s)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for number, event in enumerate(_events(self.fake, api, body)):
                if number == fault_at and fault is not None and self._fault_mid_stream(fault):
                    return
                self._chunk(event)
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
            self.close_connection = True

    def _fault_mid_stream(self, fault: Fault) -> bool:
        """Act on ``fault`` after the first chunk; True when the stream ends here."""
        if fault == "cut":
            self.wfile.flush()
            self.close_connection = True
            return True
        if fault == "no_finish":
            self._chunk(b"")
            return True
        if fault == "stall":
            time.sleep(self.fake.stall_s)
        elif fault == "malformed":
            self._chunk(b'data: {"choices": [{"text": "oops"\n\n')
        elif fault == "error_event":
            self._chunk(_sse(_error("CUDA out of memory while decoding", 500)))
        return False

    def _chunk(self, data: bytes) -> None:
        """One chunk of a chunked body (empty: the terminating chunk)."""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _output_tokens(fake: FakeOpenAIServer, body: dict[str, Any]) -> int:
    """Tokens one request generates, as vLLM's server: up to ``max_tokens``, ending at the
    fake's EOS (``output_tokens``) unless ``ignore_eos``, and not before ``min_tokens``."""
    limit = int(body["max_tokens"])
    if fake.output_tokens is None or body.get("ignore_eos"):
        return limit
    return min(limit, max(fake.output_tokens, int(body.get("min_tokens") or 0)))


def _events(fake: FakeOpenAIServer, api: str, body: dict[str, Any]) -> Iterator[bytes]:
    """The SSE events of one streamed generation, paced by ``token_delay_s``."""
    total = _output_tokens(fake, body)
    options = body.get("stream_options") or {}
    include_usage = fake.usage != "none" and bool(options.get("include_usage"))
    continuous = (
        fake.usage == "per_chunk" and include_usage and bool(options.get("continuous_usage_stats"))
    )
    prompt_tokens = prompt_token_count(api, body)
    base = {"id": "cmpl-fake", "created": 0, "model": body.get("model")}
    if api == "chat":
        yield _sse({**base, "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        ], **({"usage": _usage(prompt_tokens, 0)} if continuous else {})})  # fmt: skip
    done = 0
    while done < total:
        time.sleep(fake.token_delay_s)
        size = min(fake.tokens_per_chunk, total - done)
        text = "".join(WORDS[(done + k) % len(WORDS)] for k in range(size))
        done += size
        finish = "length" if done == total else None
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if api == "chat":
            choice["delta"] = {"content": text}
        else:
            choice["text"] = text
        event: dict[str, Any] = {**base, "object": _object(api), "choices": [choice]}
        if continuous:
            event["usage"] = _usage(prompt_tokens, done)
        yield _sse(event)
    if include_usage:
        yield _sse({**base, "object": _object(api), "choices": [],
                    "usage": _usage(prompt_tokens, done)})  # fmt: skip
    yield b"data: [DONE]\n\n"


def prompt_token_count(api: str, body: dict[str, Any]) -> int:
    """The prompt tokens this fake reports: a token-id prompt's length, else the words of the
    prompt text (chat: of every message, plus 3 per message for a template)."""
    if api == "chat":
        return sum(len(str(m.get("content", "")).split()) + 3 for m in body.get("messages", []))
    prompt = body.get("prompt", "")
    return len(prompt) if isinstance(prompt, list) else len(str(prompt).split())


def _object(api: str) -> str:
    return "chat.completion.chunk" if api == "chat" else "text_completion"


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _error(message: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "type": "fake_error", "code": code}}


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until interrupted (``--port``, ``--model``, ``--token-delay-s``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--token-delay-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(models=(args.model,), token_delay_s=args.token_delay_s,
                              port=args.port).start()  # fmt: skip
    print(f"ready {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
