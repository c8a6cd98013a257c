"""The server backend against the in-test OpenAI-compatible server: what it loads and records
about the server, what each request carries, and the records of a run."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llenergymeasure.backends.server.backend import MEMORY_SCOPE, ServerBackend
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.datasets import Prompt, load_prompts
from llenergymeasure.errors import BackendError, ConfigError
from llenergymeasure.load import LoadPlan
from llenergymeasure.testing.fake_openai_server import WORDS, FakeOpenAIServer, prompt_token_count
from llenergymeasure.testing.load_checks import peak_in_flight

pytest.importorskip("transformers")
pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def tokenizer(embedded_folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_folder)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(models=("smollm2", "other")) as fake:
        yield fake


def config(url: str, server: dict[str, Any] | None = None, **fields: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "model": "smollm2-135m",
        "backend": "server",
        "n": 3,
        "max_output_tokens": 5,
        **fields,
        "server": {"url": url, **(server or {})},
    })  # fmt: skip


def loaded(cfg: ExperimentConfig, tokenizer: Any) -> ServerBackend:
    backend = ServerBackend(tokenizer_loader=lambda location: tokenizer)
    backend.load(cfg)
    return backend


def prompts_of(cfg: ExperimentConfig, backend: ServerBackend) -> list[Prompt]:
    return load_prompts(cfg.dataset, cfg.n, cfg.random_seed, codec=backend.codec)


def run(cfg: ExperimentConfig, tokenizer: Any, **kwargs: Any) -> tuple[ServerBackend, list[Any]]:
    """Load, prepare ``cfg``'s prompts and run them (the backend stays loaded)."""
    backend = loaded(cfg, tokenizer)
    prepared = backend.prepare(
        load_prompts(cfg.dataset, cfg.n, cfg.random_seed, codec=backend.codec)
    )
    return backend, backend.run(prepared, cfg.max_output_tokens, **kwargs)


def test_load_records_the_servers_identity_and_the_first_listed_model(
    server: FakeOpenAIServer, embedded_folder: Path
) -> None:
    backend = ServerBackend()  # the real tokenizer loader: the embedded alias's converted folder
    info = backend.load(config(server.url + "/"))
    try:
        assert info.details["server"] == {
            "url": server.url,
            "served_model": "smollm2",
            "models": ["smollm2", "other"],
            "version": "0.0.1-fake",
            "server_header": "fake-openai/1.0",
        }
        assert info.source_kind == "embedded" and info.details["location"] == str(embedded_folder)
        assert info.details["architecture"]["num_hidden_layers"] == 30
        assert info.n_parameters is not None and 100e6 < info.n_parameters < 200e6
        assert backend.codec.encode("hello world")  # the model's tokenizer
    finally:
        backend.unload()


def test_server_model_is_the_name_every_request_carries(
    server: FakeOpenAIServer, tokenizer: Any
) -> None:
    backend, _ = run(config(server.url, {"model": "other"}), tokenizer)
    backend.unload()
    assert {body["model"] for body in server.generation_bodies()} == {"other"}


def test_a_served_name_the_server_does_not_list_is_used_with_a_warning(
    server: FakeOpenAIServer, tokenizer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    backend = loaded(config(server.url, {"model": "adapter"}), tokenizer)
    backend.unload()
    assert "server.model 'adapter' is not among the models" in caplog.text


def test_completions_carry_the_decoder_fields_the_api_has(
    server: FakeOpenAIServer, tokenizer: Any
) -> None:
    decoder = {
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "min_new_tokens": 10,
        "stop": ["\n\n"],
        "ignore_eos": True,
    }
    backend, _ = run(config(server.url, decoder=decoder, random_seed=7), tokenizer)
    backend.unload()
    body = server.generation_bodies()[0]
    assert {k: v for k, v in body.items() if k != "prompt"} == {
        "model": "smollm2",
        "max_tokens": 5,
        "seed": 7,
        "temperature": 0.7,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "min_tokens": 5,  # capped at max_tokens, as vLLM requires
        "stop": ["\n\n"],
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }


def test_greedy_is_temperature_zero_without_sampling_fields(
    server: FakeOpenAIServer, tokenizer: Any
) -> None:
    backend, _ = run(config(server.url, decoder={"top_p": 0.9}), tokenizer)
    backend.unload()
    body = server.generation_bodies()[0]
    assert body["temperature"] == 0.0 and "top_p" not in body


@pytest.mark.parametrize("chat_template", [False, True])
@pytest.mark.parametrize(
    "dataset", ["builtin", {"source": "synthetic", "synthetic_input_tokens": 40}]
)
def test_the_prompt_text_sent_tokenizes_back_to_the_prepared_ids(
    server: FakeOpenAIServer, tokenizer: Any, chat_template: bool, dataset: Any
) -> None:
    cfg = config(server.url, chat_template=chat_template, dataset=dataset, max_input_tokens=24)
    backend = loaded(cfg, tokenizer)
    prepared = backend.prepare(
        load_prompts(cfg.dataset, cfg.n, cfg.random_seed, codec=backend.codec)
    )
    records = backend.run(prepared, 5)
    backend.unload()
    sent = {body["prompt"] for body in server.generation_bodies()}
    assert sent == {tokenizer.decode(ids) for ids in prepared}
    for text in sent:
        assert tokenizer(text)["input_ids"] in prepared
        # synthetic prompts are token ids, used as they are (no template), as on every backend
        assert ("<|im_start|>" in text) == (chat_template and dataset == "builtin")
    assert all(len(ids) <= 24 for ids in prepared)
    # the server's count wins over the count sent
    assert {r.input_tokens for r in records} == {
        prompt_token_count("completions", {"prompt": text}) for text in sent
    }


def test_chat_sends_one_user_message_with_the_raw_prompt(
    server: FakeOpenAIServer, tokenizer: Any
) -> None:
    cfg = config(server.url, {"api": "chat"}, chat_template=True)
    backend, records = run(cfg, tokenizer)
    info_details = backend._info.details if backend._info else {}
    backend.unload()
    prompts = load_prompts(cfg.dataset, cfg.n, cfg.random_seed)
    bodies = server.generation_bodies()
    assert all(set(body) >= {"messages", "max_tokens", "stream"} for body in bodies)
    assert {body["messages"][0]["content"] for body in bodies} == {p.text for p in prompts}
    assert all(len(body["messages"]) == 1 and body["messages"][0]["role"] == "user"
               for body in bodies)  # fmt: skip
    assert info_details["chat_template"] == "server"
    assert [r.output_tokens for r in records] == [5, 5, 5]


def test_the_api_key_goes_as_a_bearer_token(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_TEST_KEY", "sekret")
    with FakeOpenAIServer(api_key="sekret") as server:
        backend, records = run(config(server.url, {"api_key_env": "LLEM_TEST_KEY"}), tokenizer)
        backend.unload()
    assert not any(r.failed for r in records)
    assert {r.headers.get("Authorization") for r in server.received} == {"Bearer sekret"}


def test_an_unset_api_key_variable_is_a_config_error_naming_the_field(
    server: FakeOpenAIServer, tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLEM_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"server\.api_key_env .*LLEM_TEST_KEY.* not set"):
        loaded(config(server.url, {"api_key_env": "LLEM_TEST_KEY"}), tokenizer)
    assert server.received == []


def test_a_refused_api_key_is_a_config_error(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_TEST_KEY", "wrong")
    with (
        FakeOpenAIServer(api_key="right") as server,
        pytest.raises(ConfigError, match=r"refused the API key \(HTTP 401: invalid API key\)"),
    ):
        loaded(config(server.url, {"api_key_env": "LLEM_TEST_KEY"}), tokenizer)


def test_a_server_that_does_not_answer_is_a_backend_error(tokenizer: Any) -> None:
    server = FakeOpenAIServer().start()
    url = server.url
    server.stop()
    with pytest.raises(BackendError, match=r"cannot reach the server at .*server\.launch"):
        loaded(config(url), tokenizer)


def test_an_architecture_model_is_refused(server: FakeOpenAIServer) -> None:
    cfg = config(server.url).model_copy(update={"model": "smollm2-135m-arch"})
    with pytest.raises(ConfigError, match="architecture without weights"):
        ServerBackend().load(cfg)


def test_chunks_are_timed_and_counted_from_the_servers_usage(tokenizer: Any) -> None:
    with FakeOpenAIServer(tokens_per_chunk=2, token_delay_s=0.002) as server:
        backend, records = run(config(server.url), tokenizer)
        details = backend._info.details if backend._info else {}
        backend.unload()
    for record in records:
        assert record.chunk_tokens == [2, 2, 1] and record.output_tokens == 5
        assert record.submit_s < record.chunk_times_s[0] <= record.chunk_times_s[-1] <= record.end_s
        assert record.chunk_times_s == sorted(record.chunk_times_s) and not record.failed
    assert details["token_counts"] == "server usage" and details["input_tokens"] == "server usage"
    assert "output_tokens_check" not in details


def test_without_usage_chunks_are_counted_with_the_tokenizer(tokenizer: Any) -> None:
    with FakeOpenAIServer(tokens_per_chunk=2, usage="none") as server:
        backend, records = run(config(server.url), tokenizer)
        details = backend._info.details if backend._info else {}
        backend.unload()
    texts = [WORDS[0] + WORDS[1], WORDS[2] + WORDS[3], WORDS[4]]
    expected = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert all(r.chunk_tokens == expected for r in records)
    assert details["token_counts"] == "tokenizer" and details["input_tokens"] == "sent"
    assert "output_tokens_check" not in details
    cfg = config("http://127.0.0.1:1/v1")
    prompts = load_prompts(cfg.dataset, cfg.n, cfg.random_seed)
    sent = [len(tokenizer.apply_chat_template(
        [{"role": "user", "content": p.text}], add_generation_prompt=True, tokenize=True,
        return_dict=False)) for p in prompts]  # fmt: skip
    assert [r.input_tokens for r in records] == sent


def test_a_final_usage_alone_is_kept_beside_the_tokenizer_count(tokenizer: Any) -> None:
    with FakeOpenAIServer(usage="final") as server:
        backend, records = run(config(server.url), tokenizer)
        details = backend._info.details if backend._info else {}
        backend.unload()
    assert details["token_counts"] == "tokenizer" and details["input_tokens"] == "server usage"
    check = details["output_tokens_check"]
    assert check["requests"] == 3 and check["server usage"] == 15
    assert check["tokenizer"] == sum(r.output_tokens for r in records)


def test_progress_is_reported_per_chunk(server: FakeOpenAIServer, tokenizer: Any) -> None:
    done: list[int] = []
    backend, _ = run(config(server.url), tokenizer, on_progress=done.append)
    backend.unload()
    assert sum(done) == 3 * 5 and len(done) > 3  # as chunks arrive, of n x max_output_tokens


def test_a_concurrency_cap_holds_the_requests_in_flight(tokenizer: Any) -> None:
    with FakeOpenAIServer(token_delay_s=0.005) as server:
        backend, records = run(
            config(server.url, n=6), tokenizer, load=LoadPlan("concurrency", None, 2)
        )
        backend.unload()
    assert peak_in_flight(records) == 2
    assert sum(r.slot_wait_s > 0 for r in records) >= 3  # four waited for a slot, at least
    assert all(r.scheduled_s is None and not r.failed for r in records)


def test_a_schedule_submits_each_request_at_its_arrival(
    server: FakeOpenAIServer, tokenizer: Any
) -> None:
    plan = LoadPlan("rate", (0.0, 0.02, 0.04), None)
    backend, records = run(config(server.url), tokenizer, load=plan)
    backend.unload()
    scheduled = [r.scheduled_s for r in records]
    assert all(s is not None for s in scheduled)
    assert [round(b - a, 6) for a, b in itertools.pairwise(scheduled)] == [0.02] * 2
    assert all(r.submit_s >= (r.scheduled_s or 0) for r in records)
    assert [r.index for r in sorted(records, key=lambda r: r.submit_s)] == [0, 1, 2]


def test_memory_is_the_servers(server: FakeOpenAIServer, tokenizer: Any) -> None:
    backend = loaded(config(server.url, n=4, load={"mode": "concurrency", "max_concurrency": 2}),
                     tokenizer)  # fmt: skip
    backend.reset_peak_memory()
    assert backend.peak_memory().peak_mb is None and backend.peak_memory().scope == MEMORY_SCOPE
    assert backend.concurrency == 2
    backend.unload()
    uncapped = loaded(config(server.url, n=4), tokenizer)
    assert uncapped.concurrency == 4
    uncapped.unload()
