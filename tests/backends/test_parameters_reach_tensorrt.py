"""Every tensorrt parameter, at every introspected test value, reaches TensorRT-LLM's objects.

TensorRT-LLM cannot run here: the shipped fake ``tensorrt_llm`` records the ``LLM`` /
``KvCacheConfig`` / ``BuildConfig`` (and its ``plugin_config``) / ``QuantConfig`` /
``SamplingParams`` each config produces. Parameters and values come from
``config.introspection``; nothing is listed by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

from llenergymeasure.backends.base import DTYPE_NAMES
from llenergymeasure.backends.tensorrt.args import DECODER_TO_SAMPLING
from llenergymeasure.devices import GpuProbe
from llenergymeasure.parameters import introspection
from llenergymeasure.testing.fake_tensorrt_llm import (
    FakeTrtLlm,
    FakeTrtLlmSpec,
    install_fake_tensorrt_llm,
)

PARAMETERS = introspection.backend_parameters("tensorrt")
CASES = [(info, value) for info in PARAMETERS for value in introspection.test_values(info)]
MAX_TOKENS = 4


@pytest.fixture
def fake() -> Iterator[FakeTrtLlm]:
    with install_fake_tensorrt_llm(FakeTrtLlmSpec(token_delay_s=0.0)) as installed:
        yield installed


def observed(path: str, value: Any, fake: FakeTrtLlm) -> tuple[Any, Any]:
    """(what TensorRT-LLM received for the parameter, what it should have received)."""
    runtime, llm = fake.llm_calls[-1]
    section, _, name = path.partition(".")
    if path == "precision":
        return llm["dtype"], DTYPE_NAMES[value]
    if section == "decoder":
        return _observed_decoder(name, value, fake.sampling_params[-1])
    group, _, leaf = name.partition(".")
    if group == "kv_cache_config":
        return fake.kv_cache_configs[-1][leaf], value
    if group == "quant_config":
        got = fake.quant_configs[-1][leaf]
        return getattr(got, "name", got), value
    if leaf == "plugin_config":
        plugins = llm["build_config"].plugin_config
        return {key: getattr(plugins, key) for key in value}, value
    if group == "build_config":
        return getattr(llm["build_config"], leaf), value
    return _observed_llm(name, value, runtime, llm, fake)


def _observed_decoder(name: str, value: Any, params: dict[str, Any]) -> tuple[Any, Any]:
    if name == "do_sample":  # sampling = not forced to top_k=1 (greedy)
        return params.get("top_k") != 1, value
    if name == "num_beams":
        return (params["use_beam_search"], params["best_of"]), (True, value)
    if name == "early_stopping":
        return params["early_stopping"], int(value)
    return params[DECODER_TO_SAMPLING[name]], value


def _observed_llm(
    name: str, value: Any, runtime: str, llm: dict[str, Any], fake: FakeTrtLlm
) -> tuple[Any, Any]:
    if name == "runtime":
        return runtime, value
    if name == "engine_cache":  # off: the built engine is not saved for reuse
        return bool(fake.saves), value
    if name == "extra":
        return {key: llm[key] for key in value}, value
    return llm[name], value


def test_every_parameter_has_test_values() -> None:
    assert PARAMETERS, "introspection lists no tensorrt parameter"
    assert [info.path for info in PARAMETERS if not introspection.test_values(info)] == []


@pytest.mark.parametrize(("info", "value"), CASES, ids=[f"{i.path}={v!r}" for i, v in CASES])
def test_parameter_reaches_tensorrt_llm(
    info: introspection.ParameterInfo,
    value: Any,
    fake: FakeTrtLlm,
    acting_config: Any,
    tmp_path: Path,
) -> None:
    from llenergymeasure.backends.tensorrt.backend import TensorRTBackend

    backend = TensorRTBackend(engine_root=tmp_path, gpu_probe=lambda: GpuProbe(True, 64))
    backend.load(acting_config("tensorrt", info.path, value))
    backend.run([[1, 2, 3]], MAX_TOKENS)
    got, expected = observed(info.path, value, fake)
    assert got == expected
