"""ServerBackend: an OpenAI-compatible inference server measured over HTTP with streaming.

The server (``vllm serve``, SGLang, TGI, ``trtllm-serve``, llama.cpp's server, Ollama) runs
apart, started by the user or by ``server.launch``; llem loads only the model's tokenizer
(the top-level ``model:``) to prepare prompts and count tokens. Each prompt is one streamed
request (``server.api``: ``/v1/completions`` with the prompt as text, or
``/v1/chat/completions`` with one user message the server templates), submitted by the shared
load generator (:func:`llenergymeasure.load.drive`) on an asyncio loop that lives as long as
the backend, with an ``httpx.AsyncClient`` whose connection pool has no limit (the load plan
is the only limit on requests in flight).

Every received chunk is stamped with the injected clock; tokens per chunk come from the
server's usage where it reports it per chunk, else from the tokenizer
(:mod:`.counting`). A request that fails is recorded with its reason (:mod:`.client`); a
run in which every request failed is an error.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from llenergymeasure.backends.base import (
    MemoryReading,
    ProgressCallback,
    TokenizedBackend,
    TokenProgress,
    forced_length_fields,
    forced_lengths,
)
from llenergymeasure.backends.model_shape import model_shape
from llenergymeasure.backends.model_source import ModelSource, check_hub_model, resolve_model
from llenergymeasure.backends.prompts import wants_chat_template
from llenergymeasure.backends.registry import BACKENDS, check_tested_versions
from llenergymeasure.backends.server.auth import auth_headers
from llenergymeasure.backends.server.client import stream_request
from llenergymeasure.backends.server.counting import Counted, to_record
from llenergymeasure.backends.server.identity import ServerIdentity, identify
from llenergymeasure.backends.server.request import (
    API_PATHS,
    added_prefix,
    prompt_text,
    request_body,
    sampling_fields,
)
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.server import ServerConfig
from llenergymeasure.datasets import Prompt
from llenergymeasure.errors import BackendError, ConfigError
from llenergymeasure.flops import TransformerShape
from llenergymeasure.load import LoadPlan, drive
from llenergymeasure.load.schedule import OFFLINE
from llenergymeasure.results.models import ModelInfo
from llenergymeasure.results.records import RequestRecord

if TYPE_CHECKING:
    from llenergymeasure.backends.server.launch import RunningServer

T = TypeVar("T")

FIRST_REASONS = 3
"""How many distinct failure reasons the error of an all-failed run quotes."""

MEMORY_SCOPE = "not measured: the model lives in the server process"


class ServerBackend(TokenizedBackend):
    """Streams every prompt to an OpenAI-compatible server and times every chunk.

    Args:
        clock: monotonic clock in seconds used for every timestamp.
        tokenizer_loader: ``AutoTokenizer.from_pretrained`` unless a test injects one.
        server_log: where a launched server's output goes (default: a new temporary folder's
            ``server.log``); unused without ``server.launch``.
    """

    name = "server"

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        tokenizer_loader: Callable[..., Any] | None = None,
        server_log: Path | None = None,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._tokenizer_loader = tokenizer_loader
        self._server_log = server_log
        self._launcher: RunningServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: httpx.AsyncClient | None = None
        self._identity: ServerIdentity | None = None
        self._info: ModelInfo | None = None
        self._prefix: list[int] = []
        self._texts: dict[tuple[int, ...], str] = {}

    def load(self, config: ExperimentConfig) -> ModelInfo:
        """Load the tokenizer, start the server when ``server.launch`` says so, and ask it
        who it is.

        Whatever fails, a launched server is stopped before the error propagates.

        Raises:
            DependencyError: httpx or transformers outside the tested version range.
            ConfigError: ``server.api_key_env`` names an unset variable; the server refused
                the key; ``model`` is an architecture without a tokenizer.
            BackendError: the server cannot be reached or lists no model.
        """
        try:
            return self._load(config)
        except BaseException:
            self.unload()
            raise

    def _load(self, config: ExperimentConfig) -> ModelInfo:
        import transformers

        check_tested_versions(
            BACKENDS[self.name],
            {"httpx": httpx.__version__, "transformers": transformers.__version__},
        )
        options = config.server_options
        headers = auth_headers(options)
        source = resolve_model(config.model)
        location = _tokenizer_location(source)
        self._tokenizer = self._load_tokenizer(location)
        self._prefix = added_prefix(self._tokenizer)
        if options.api == "completions":
            self._use_template = wants_chat_template(self._tokenizer, config.chat_template)
        if options.launch is not None:
            self._launcher = self._start_server(options)
        url = options.url.rstrip("/")
        timeout = httpx.Timeout(options.timeout_s, pool=None)
        with httpx.Client(headers=headers, timeout=timeout) as http:
            self._identity = identify(http, url, options.model)
        self._loop = asyncio.new_event_loop()
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        self._http = httpx.AsyncClient(
            base_url=url, headers=headers, timeout=timeout, limits=limits
        )
        self._config = config
        shape = model_shape(location)
        self._info = ModelInfo(
            model_id=config.model,
            source_kind=source.kind,
            dtype="auto",
            device=f"server {url}",
            n_parameters=shape.parameters().total if shape is not None else None,
            details=self._details(config, location, shape),
        )
        return self._info

    def _load_tokenizer(self, location: str) -> Any:
        if self._tokenizer_loader is None:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(location)
        return self._tokenizer_loader(location)

    def _start_server(self, options: ServerConfig) -> RunningServer:
        from llenergymeasure.backends.server.launch import start_server

        log_path = self._server_log or Path(tempfile.mkdtemp(prefix="llem-server-")) / "server.log"
        return start_server(options, log_path)

    def _details(
        self, config: ExperimentConfig, location: str, shape: TransformerShape | None
    ) -> dict[str, Any]:
        assert self._identity is not None
        options = config.server_options
        server = self._identity.details()
        if self._launcher is not None:
            server.update(launch=options.launch, log=self._launcher.log_path.name)
        return {
            "location": location,
            "api": options.api,
            "chat_template": "server" if options.api == "chat" else self._use_template,
            "server": server,
            "architecture": shape.as_dict() if shape is not None else None,
        }

    @property
    def concurrency(self) -> int:
        """Requests in flight at most: ``load.max_concurrency``, else every prompt (``n``)."""
        config = self._require_config()
        return config.load.max_concurrency or config.n

    def prepare(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """Token ids per prompt (chat template for ``api: completions`` as ``chat_template``
        says, truncation), and the text each will be sent as."""
        prepared = super().prepare(prompts)
        for ids in prepared:
            self._text(ids)
        return prepared

    def _text(self, ids: Sequence[int]) -> str:
        key = tuple(ids)
        if key not in self._texts:
            self._texts[key] = prompt_text(self._tokenizer, ids, self._prefix)
        return self._texts[key]

    def run(
        self,
        prompts: Sequence[list[int]],
        max_output_tokens: int,
        on_progress: ProgressCallback | None = None,
        load: LoadPlan | None = None,
        output_lengths: Sequence[int] | None = None,
    ) -> list[RequestRecord]:
        """Stream every prompt to the server on ``load`` (None: all at once); one record per
        prompt, in order, failed requests included. With ``output_lengths``, each request's
        body forces its length: ``max_tokens = min_tokens`` and ``ignore_eos`` (vLLM's and
        SGLang's extensions: a server that ignores them may stop earlier, one that refuses
        unknown fields fails every request).

        Raises:
            BackendError: every request failed (the first reasons quoted).
        """
        config = self._require_config()
        if self._loop is None or self._http is None or self._identity is None:
            raise self._not_loaded()
        options = config.server_options
        fields = sampling_fields(config, max_output_tokens)
        lengths = forced_lengths(len(prompts), output_lengths, max_output_tokens)
        http, model, clock = self._http, self._identity.served_model, self._clock
        counted: list[Counted] = []

        async def submit(index: int) -> RequestRecord:
            own = fields if lengths is None else {**fields, **forced_length_fields(lengths[index])}
            body = request_body(options.api, model, self._text(prompts[index]), own)
            request = http.build_request("POST", API_PATHS[options.api], json=body)
            # a chunk is about one token; its count is known only once the stream has ended
            progress = TokenProgress(on_progress, max_output_tokens)
            streamed = await stream_request(
                http, request, clock, options.timeout_s, on_chunk=lambda: progress.add(1)
            )
            counted.append(to_record(index, len(prompts[index]), streamed, self._count_text))
            progress.finish()
            return counted[-1].record

        records = _run_to_end(self._loop, drive(load or OFFLINE, len(prompts), submit, clock))
        self._record_counts(counted)
        _raise_if_all_failed(records, self._identity.url)
        return records

    def _count_text(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _record_counts(self, counted: Sequence[Counted]) -> None:
        """How this run's token counts were found (the last run is the measured window)."""
        if self._info is None:
            return
        details = self._info.details
        details["token_counts"] = _sources(Counter(c.tokens for c in counted if c.tokens))
        details["input_tokens"] = _sources(Counter(c.prompt for c in counted))
        totals = [c for c in counted if c.server_total is not None]
        if totals:
            details["output_tokens_check"] = {
                "requests": len(totals),
                "tokenizer": sum(c.record.output_tokens for c in totals),
                "server usage": sum(c.server_total or 0 for c in totals),
                "note": "chunks counted with the tokenizer; the server reported only totals",
            }
        else:
            details.pop("output_tokens_check", None)

    def reset_peak_memory(self) -> None:
        """Nothing to reset: the model lives in the server process."""

    def peak_memory(self) -> MemoryReading:
        """Not measured: the model's memory is the server process's."""
        return MemoryReading(None, MEMORY_SCOPE)

    def unload(self) -> None:
        """Close the HTTP client and its loop, then stop a launched server.

        Safe to call at any point, also after a failed or partial ``load``.
        """
        try:
            self._close_loop()
        finally:
            launcher, self._launcher = self._launcher, None
            if launcher is not None:
                launcher.stop()

    def _close_loop(self) -> None:
        loop, http = self._loop, self._http
        self._loop, self._http = None, None
        if loop is None:
            return
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            if http is not None:
                loop.run_until_complete(http.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _run_to_end(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on ``loop``; on an interrupt (Ctrl-C) or any error, cancel it and wait
    for its requests to end before re-raising, so nothing is left streaming."""
    task = loop.create_task(work)
    try:
        return loop.run_until_complete(task)
    except BaseException:
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        raise


def _raise_if_all_failed(records: Sequence[RequestRecord], url: str) -> None:
    if not records or not all(r.failed for r in records):
        return
    reasons = list(dict.fromkeys(r.error for r in records if r.error))[:FIRST_REASONS]
    raise BackendError(
        f"every request to the server at {url} failed ({len(records)} of {len(records)}): "
        + "; ".join(reasons)
    )


def _sources(counts: Counter[str]) -> str | None:
    """The one source, or how many requests each covered (None: no request to count)."""
    if len(counts) <= 1:
        return next(iter(counts), None)
    return ", ".join(
        f"{source} for {n} request{'s' if n > 1 else ''}" for source, n in sorted(counts.items())
    )


def _tokenizer_location(source: ModelSource) -> str:
    """Where the tokenizer of ``model:`` loads from (the embedded GGUF: its converted folder).

    Raises:
        ConfigError: ``model`` is an architecture (a config.json without a tokenizer).
    """
    if source.kind == "architecture":
        raise ConfigError(
            f"model '{source.spec}' is an architecture without weights or tokenizer; for "
            "backend server, model: names the weights the server serves (their folder, hub "
            "id or embedded alias), whose tokenizer llem uses"
        )
    if source.kind == "hub":
        check_hub_model(source.location)
    if source.gguf_path is not None:
        from llenergymeasure.backends.pytorch.gguf_cache import converted_folder

        return str(converted_folder(source.gguf_path))
    return source.location
