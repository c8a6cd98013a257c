"""Every vllm parameter, at every introspected test value, reaches vLLM's real objects.

Run in the vLLM environment (scripts/test-vllm.sh; marked ``vllm``). No engine starts: the
backend's own ``engine_kwargs`` / ``sampling_kwargs`` build the real ``AsyncEngineArgs`` and
``SamplingParams`` of the installed vLLM exactly as ``VllmBackend`` does, and the test reads
each value back from them. Parameters and values come from ``config.introspection``.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip("vllm")

from vllm.engine.arg_utils import AsyncEngineArgs  # noqa: E402

from llenergymeasure.backends.base import DTYPE_NAMES  # noqa: E402
from llenergymeasure.backends.vllm.options import (  # noqa: E402
    SAMPLING_NAMES,
    check_engine_kwargs,
    engine_kwargs,
    sampling_kwargs,
)
from llenergymeasure.parameters import introspection  # noqa: E402

PARAMETERS = introspection.backend_parameters("vllm")
CASES = [(info, value) for info in PARAMETERS for value in introspection.test_values(info)]
ENGINE_ARGS = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
SAMPLING_ARGS = {n for n in inspect.signature(vllm.SamplingParams).parameters if n[0] != "_"}
MAX_TOKENS = 16


def read_back(target: Any, expected: Any) -> Any:
    """``target`` as comparable with ``expected``: a mapping is read key by key (vLLM turns
    some dicts into config objects)."""
    if isinstance(expected, dict):
        return {key: read_back(_item(target, key), value) for key, value in expected.items()}
    return target


def _item(target: Any, key: str) -> Any:
    return target[key] if isinstance(target, dict) else getattr(target, key)


def observed(path: str, value: Any, args: Any, params: Any) -> tuple[Any, Any]:
    """(what vLLM received for the parameter, what it should have received)."""
    section, _, name = path.partition(".")
    if path == "precision":
        return args.dtype, DTYPE_NAMES[value]
    if section == "decoder":
        if name == "do_sample":  # sampling = not forced to temperature 0 (greedy)
            return params.temperature > 0, value
        if name == "min_new_tokens":  # capped at max_tokens, as transformers does
            return params.min_tokens, min(value, MAX_TOKENS)
        return getattr(params, SAMPLING_NAMES.get(name, name)), value
    if name == "extra":
        return {key: getattr(args, key) for key in value}, value
    return read_back(getattr(args, name), value), value


def test_every_parameter_has_test_values() -> None:
    assert PARAMETERS, "introspection lists no vllm parameter"
    assert [info.path for info in PARAMETERS if not introspection.test_values(info)] == []


@pytest.mark.parametrize(("info", "value"), CASES, ids=[f"{i.path}={v!r}" for i, v in CASES])
def test_parameter_reaches_vllm(
    info: introspection.ParameterInfo, value: Any, acting_config: Any
) -> None:
    config = acting_config("vllm", info.path, value)
    kwargs = engine_kwargs(config, "/models/any")
    check_engine_kwargs(kwargs, ENGINE_ARGS, vllm.__version__)
    args = AsyncEngineArgs(**kwargs)
    params = vllm.SamplingParams(**sampling_kwargs(config, MAX_TOKENS, SAMPLING_ARGS))
    got, expected = observed(info.path, value, args, params)
    assert got == expected
