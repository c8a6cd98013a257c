"""Every decoder field the server backend has, at every introspected test value, reaches the
request body the in-test server receives. Fields and values come from
``config.introspection``; nothing is listed by hand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("transformers")

from llenergymeasure.backends.server.backend import ServerBackend
from llenergymeasure.backends.server.request import REQUEST_NAMES
from llenergymeasure.config.server import ServerConfig
from llenergymeasure.parameters import introspection
from llenergymeasure.testing.fake_openai_server import FakeOpenAIServer

DECODER = [i for i in introspection.backend_parameters("server") if i.section == "decoder"]
CASES = [(info, value) for info in DECODER for value in introspection.test_values(info)]
MAX_TOKENS = 4


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(output_tokens=1) as fake:
        yield fake


def observed(name: str, value: Any, body: dict[str, Any]) -> tuple[Any, Any]:
    """(what the request carried for decoder field ``name``, what it should have carried)."""
    if name == "do_sample":  # greedy is temperature 0; sampling leaves the server's default
        return body.get("temperature") != 0.0, value
    if name == "min_new_tokens":  # capped at max_tokens, as vLLM requires
        return body["min_tokens"], min(value, MAX_TOKENS)
    return body[REQUEST_NAMES.get(name, name)], value


def test_every_decoder_field_has_test_values() -> None:
    assert {info.path for info in DECODER} >= {"decoder.temperature", "decoder.stop"}
    assert [info.path for info in DECODER if not introspection.test_values(info)] == []


@pytest.mark.parametrize(("info", "value"), CASES, ids=[f"{i.path}={v!r}" for i, v in CASES])
def test_decoder_field_reaches_the_request_body(
    info: introspection.ParameterInfo,
    value: Any,
    server: FakeOpenAIServer,
    acting_config: Any,
) -> None:
    config = acting_config("server", info.path, value)
    config = config.model_copy(update={"server": ServerConfig(url=server.url)})
    backend = ServerBackend()
    backend.load(config)
    try:
        backend.run([[1, 2, 3]], MAX_TOKENS)
    finally:
        backend.unload()
    body = server.generation_bodies()[-1]
    got, expected = observed(info.path.removeprefix("decoder."), value, body)
    assert got == expected
