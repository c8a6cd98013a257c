"""Cross-field rules of the parameter models: pure validators with messages naming the fields,
warnings for settings that would not act, and the run-time GPU-count check."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from llenergymeasure.backends.parallel import check_parallel_fits
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.config.models import DecoderConfig, decoder_backends
from llenergymeasure.devices import GpuProbe
from llenergymeasure.errors import ConfigError
from llenergymeasure.harness.checks import config_warnings
from llenergymeasure.parameters import introspection


def make(backend: str = "pytorch", **fields: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"model": "org/m", "backend": backend, **fields})


@pytest.mark.parametrize(
    ("pytorch", "message"),
    [
        ({"load_in_4bit": True, "load_in_8bit": True}, "exclusive"),
        ({"bnb_4bit_quant_type": "nf4"}, r"bnb_4bit_quant_type need pytorch\.load_in_4bit"),
        ({"torch_compile_backend": "eager"}, r"torch_compile_backend is set but"),
        ({"max_memory": {"cpu": "1GiB"}}, r"max_memory needs pytorch\.device_map"),
        ({"model_kwargs": {"torch_dtype": "float16"}}, r"model_kwargs\.torch_dtype .*precision"),
    ],
)
def test_pytorch_rules(pytorch: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make(pytorch=pytorch)


@pytest.mark.parametrize(
    ("decoder", "message"),
    [
        ({"num_beams": 4, "num_beam_groups": 3, "diversity_penalty": 0.5}, "must divide"),
        ({"num_beams": 4, "num_beam_groups": 2}, "needs decoder.diversity_penalty"),
        ({"num_beams": 4, "diversity_penalty": 0.5}, "only acts in group beam search"),
    ],
)
def test_beam_group_rules(decoder: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make(decoder=decoder)


def test_group_beam_search_validates() -> None:
    decoder = {"num_beams": 4, "num_beam_groups": 2, "diversity_penalty": 0.5}
    assert make(decoder=decoder).decoder.num_beam_groups == 2


@pytest.mark.parametrize("name", list(DecoderConfig.model_fields))
def test_unsupported_decoder_field_names_the_backends_that_have_it(name: str) -> None:
    supported = decoder_backends(name)
    path = f"decoder.{name}"
    value = introspection.test_values(introspection.parameter(path))[0]
    decoder = introspection.valid_config_with(supported[0], path, value)["decoder"]
    for backend in [b for b in introspection.BACKENDS if b not in supported]:
        with pytest.raises(ValidationError) as error:
            make(backend, decoder=decoder)
        assert f"decoder.{name} is not supported by backend {backend}" in str(error.value)
        assert ", ".join(supported) in str(error.value)


@pytest.mark.parametrize("backend", ["vllm", "tensorrt"])
def test_dtype_in_extra_points_to_precision(backend: str) -> None:
    with pytest.raises(ValidationError, match=rf"{backend}\.extra\.dtype is modelled"):
        make(backend, **{backend: {"extra": {"dtype": "float16"}}})


def test_tensorrt_beam_width_below_num_beams_is_an_error() -> None:
    with pytest.raises(ValidationError, match=r"exceeds tensorrt\.max_beam_width \(2\)"):
        make("tensorrt", decoder={"num_beams": 4}, tensorrt={"max_beam_width": 2})
    engine = {"runtime": "engine", "build_config": {"max_beam_width": 1}}
    with pytest.raises(ValidationError, match=r"tensorrt\.build_config\.max_beam_width"):
        make("tensorrt", decoder={"num_beams": 2}, tensorrt=engine)


def test_engine_cache_off_needs_the_engine_runtime() -> None:
    with pytest.raises(ValidationError, match="engine_cache applies to runtime: engine"):
        make("tensorrt", tensorrt={"engine_cache": False})


def test_fields_that_would_not_act_are_warned_and_recorded() -> None:
    config = make(decoder={"temperature": 0.7, "top_p": 0.9, "length_penalty": 2.0})
    codes = [code for code, _ in config.config_warnings()]
    assert codes == ["greedy_ignores_sampling", "no_beams_ignores_beam_fields"]
    recorded = config_warnings(config)
    assert "decoder.temperature, decoder.top_p only act when sampling" in recorded[0].message
    assert make(decoder={"do_sample": True, "temperature": 0.7}).config_warnings() == []


def test_parallel_layout_is_checked_against_visible_gpus() -> None:
    check_parallel_fits("vllm", 1, 1, lambda: GpuProbe(False, 0, "no driver"))  # one device
    check_parallel_fits("vllm", 2, 2, lambda: GpuProbe(True, 4))
    with pytest.raises(ConfigError, match=r"needs 2 GPUs, but 0 are visible \(no driver\)"):
        check_parallel_fits("vllm", 2, 1, lambda: GpuProbe(False, 0, "no driver"))
