"""The tensorrt backend against the shipped fake ``tensorrt_llm`` (TensorRT-LLM cannot run here).

Every field of the `tensorrt:` section reaches its constructor (``LLM`` / ``KvCacheConfig`` /
``BuildConfig`` / ``QuantConfig``), parametrised from the config models' fields; the decoder
reaches ``SamplingParams``; the engine cache key moves with every build option and the version;
a cache hit skips the build; streamed chunks flow into TTFT/ITL through ``llenergymeasure.run``.
"""

from __future__ import annotations

import errno
import os
import tempfile
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic.fields import FieldInfo

import llenergymeasure as llem
from llenergymeasure.backends.model_shape import model_architecture
from llenergymeasure.backends.tensorrt.args import (
    LLM_FIELDS,
    engine_cache_key,
    model_identity,
)
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.config.models import (
    TORCH_RUNTIME_ONLY,
    TensorRTBuildConfig,
    TensorRTConfig,
    TensorRTKvCacheConfig,
    TensorRTQuantConfig,
)
from llenergymeasure.devices import GpuProbe
from llenergymeasure.errors import BackendError, ConfigError, DependencyError
from llenergymeasure.testing.fake_tensorrt_llm import (
    FakeTrtLlm,
    FakeTrtLlmSpec,
    install_fake_tensorrt_llm,
)

pytest.importorskip("transformers")


def sample_value(info: FieldInfo, variant: int = 0) -> Any:
    """A valid non-default value for a config field, derived from its annotation."""
    if info.examples:
        return info.examples[variant % len(info.examples)]
    annotation = info.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = args[0]
        args = list(typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Literal:
        choices = [c for c in typing.get_args(annotation) if c != info.default]
        return choices[variant % len(choices)]
    if annotation is bool:
        return not info.default if isinstance(info.default, bool) else [True, False][variant % 2]
    if annotation is int:
        return 3 + variant
    if annotation is float:
        return 0.5 + 0.1 * variant
    if annotation is str:
        return ["fp8", "auto"][variant % 2]
    raise AssertionError(f"no sample value for {annotation}")


def fields_of(model: type[Any]) -> list[str]:
    return list(model.model_fields)


@pytest.fixture
def fake() -> Iterator[FakeTrtLlm]:
    with install_fake_tensorrt_llm(FakeTrtLlmSpec(token_delay_s=0.0001)) as installed:
        yield installed


@pytest.fixture
def engine_root(tmp_path: Path) -> Path:
    return tmp_path / "engines"


def make_config(model_dir: Path, tensorrt: dict[str, Any], **fields: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {
            "model": str(model_dir),
            "backend": "tensorrt",
            "chat_template": False,
            "tensorrt": tensorrt,
            **fields,
        }
    )


def load(model_dir: Path, engine_root: Path, tensorrt: dict[str, Any], **fields: Any) -> Any:
    from llenergymeasure.backends.tensorrt.backend import TensorRTBackend

    backend = TensorRTBackend(engine_root=engine_root, gpu_probe=lambda: GpuProbe(True, 8))
    info = backend.load(make_config(model_dir, tensorrt, **fields))
    return backend, info


@pytest.mark.parametrize(
    ("runtime", "name"),
    [
        (runtime, name)
        for runtime in ("pytorch", "engine")
        for name in LLM_FIELDS
        if runtime == "pytorch" or name not in TORCH_RUNTIME_ONLY
    ],
)
def test_each_llm_field_reaches_llm(
    name: str, runtime: str, fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    value = sample_value(TensorRTConfig.model_fields[name])
    load(tiny_model_dir, engine_root, {"runtime": runtime, name: value})
    used_runtime, kwargs = fake.llm_calls[-1]
    assert used_runtime == runtime and kwargs[name] == value


@pytest.mark.parametrize("name", TORCH_RUNTIME_ONLY)
def test_pytorch_runtime_fields_are_refused_with_the_engine_runtime(name: str) -> None:
    value = sample_value(TensorRTConfig.model_fields[name])
    with pytest.raises(ValueError, match=f"tensorrt.{name} only apply to runtime: pytorch"):
        TensorRTConfig.model_validate({"runtime": "engine", name: value})


def test_every_tensorrt_field_is_routed() -> None:
    routed = set(LLM_FIELDS) | {
        "runtime",
        "kv_cache_config",
        "quant_config",
        "build_config",
        "engine_cache",
        "extra",
    }
    assert routed == set(TensorRTConfig.model_fields)


@pytest.mark.parametrize("name", fields_of(TensorRTKvCacheConfig))
def test_each_kv_cache_field_reaches_kv_cache_config(
    name: str, fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    value = sample_value(TensorRTKvCacheConfig.model_fields[name])
    load(tiny_model_dir, engine_root, {"kv_cache_config": {name: value}})
    assert fake.kv_cache_configs[-1] == {name: value}
    assert fake.llm_calls[-1][1]["kv_cache_config"] is not None


@pytest.mark.parametrize(
    "name", [n for n in fields_of(TensorRTBuildConfig) if n != "plugin_config"]
)
def test_each_build_field_reaches_build_config(
    name: str, fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    value = sample_value(TensorRTBuildConfig.model_fields[name])
    load(tiny_model_dir, engine_root, {"runtime": "engine", "build_config": {name: value}})
    assert fake.build_configs[-1] == {name: value}
    runtime, kwargs = fake.llm_calls[-1]
    assert runtime == "engine" and getattr(kwargs["build_config"], name) == value


@pytest.mark.parametrize("name", fields_of(TensorRTQuantConfig))
def test_each_quant_field_reaches_quant_config(
    name: str, fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    value = sample_value(TensorRTQuantConfig.model_fields[name])
    load(tiny_model_dir, engine_root, {"runtime": "engine", "quant_config": {name: value}})
    recorded = fake.quant_configs[-1]
    assert set(recorded) == {name} and getattr(recorded[name], "name", recorded[name]) == value
    assert fake.llm_calls[-1][1]["quant_config"] is not None


def test_tokens_per_block_is_baked_into_the_engine(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    load(
        tiny_model_dir,
        engine_root,
        {"runtime": "engine", "kv_cache_config": {"tokens_per_block": 64}},
    )
    assert fake.llm_calls[-1][1]["build_config"].plugin_config.tokens_per_block == 64
    assert "kv_cache_config" not in fake.llm_calls[-1][1]


def test_precision_and_extra_reach_llm(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    load(tiny_model_dir, engine_root, {"extra": {"trust_remote_code": True}}, precision="bf16")
    kwargs = fake.llm_calls[-1][1]
    assert kwargs["dtype"] == "bfloat16" and kwargs["trust_remote_code"] is True


def test_kv_field_the_installed_version_lacks_is_a_config_error(
    tiny_model_dir: Path, engine_root: Path
) -> None:
    with (
        install_fake_tensorrt_llm(FakeTrtLlmSpec(kv_cache_tokens_per_block=False)),
        pytest.raises(ConfigError, match=r"tokens_per_block.*1\.0\.0"),
    ):
        load(tiny_model_dir, engine_root, {"kv_cache_config": {"tokens_per_block": 64}})


def test_invalid_extra_argument_is_a_backend_error(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    with pytest.raises(BackendError, match="invalid argument: no_such_arg"):
        load(tiny_model_dir, engine_root, {"extra": {"no_such_arg": 1}})


def test_decoder_reaches_sampling_params(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    decoder = {
        "do_sample": True,
        "temperature": 0.7,
        "top_k": 20,
        "top_p": 0.9,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
        "no_repeat_ngram_size": 3,
        "min_new_tokens": 2,
    }
    backend, _ = load(tiny_model_dir, engine_root, {}, decoder=decoder, random_seed=7)
    backend.run([[1, 2, 3]], 6)
    params = fake.sampling_params[-1]
    expected = {k: v for k, v in decoder.items() if k not in ("do_sample", "min_new_tokens")}
    assert params.items() >= expected.items()
    assert params["min_tokens"] == 2 and params["max_tokens"] == 6 and params["seed"] == 7
    assert params["return_perf_metrics"] is True


def test_greedy_is_top_k_1(fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path) -> None:
    backend, _ = load(tiny_model_dir, engine_root, {})
    backend.run([[1, 2, 3]], 4)
    assert fake.sampling_params[-1]["top_k"] == 1


def test_decoder_field_without_equivalent_is_a_config_error(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    with pytest.raises(ValidationError, match="typical_p is not supported by backend tensorrt"):
        load(tiny_model_dir, engine_root, {}, decoder={"typical_p": 0.9})
    assert fake.llm_calls == []


def test_plugin_config_is_set_on_the_build_config(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    plugins = {"use_paged_context_fmha": True, "gemm_plugin": "float16"}
    load(
        tiny_model_dir,
        engine_root,
        {"runtime": "engine", "build_config": {"plugin_config": plugins}},
    )
    built = fake.llm_calls[-1][1]["build_config"].plugin_config
    assert built.use_paged_context_fmha is True and built.gemm_plugin == "float16"


def test_unknown_plugin_is_a_config_error(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    options = {"runtime": "engine", "build_config": {"plugin_config": {"warp_drive": True}}}
    with pytest.raises(ConfigError, match=r"plugin_config\.warp_drive is not a PluginConfig field"):
        load(tiny_model_dir, engine_root, options)


def test_beam_search_raises_the_beam_width(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    backend, _ = load(tiny_model_dir, engine_root, {}, decoder={"num_beams": 3})
    backend.run([[1, 2]], 4)
    assert fake.llm_calls[-1][1]["max_beam_width"] == 3
    params = fake.sampling_params[-1]
    assert params["use_beam_search"] is True and params["best_of"] == 3 and params["n"] == 1


def test_parallel_layout_beyond_the_visible_gpus_is_refused(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    from llenergymeasure.backends.tensorrt.backend import TensorRTBackend

    backend = TensorRTBackend(engine_root=engine_root, gpu_probe=lambda: GpuProbe(True, 2))
    config = make_config(tiny_model_dir, {"tensor_parallel_size": 2, "pipeline_parallel_size": 2})
    with pytest.raises(ConfigError, match=r"needs 4 GPUs, but 2 are visible"):
        backend.load(config)
    assert fake.llm_calls == []


def test_streamed_chunks_become_records(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    backend, info = load(tiny_model_dir, engine_root, {})
    done: list[int] = []
    records = backend.run([[1, 2, 3], [4, 5]], 9, on_progress=done.append)
    assert [r.index for r in records] == [0, 1]
    assert sorted(done) == sorted([1, 1, 3, 1, 2, 1] * 2)  # each chunk's tokens, of 2 x 9
    for record in records:
        # the fake's chunk pattern 1, 1, 3, 1, 2, 1: several tokens per chunk sometimes
        assert record.chunk_tokens == [1, 1, 3, 1, 2, 1] and record.output_tokens == 9
        assert record.submit_s < record.chunk_times_s[0] <= record.end_s
        assert record.chunk_times_s == sorted(record.chunk_times_s)
    check = info.details["ttft_cross_check"]
    # Both requests' streamed TTFT was compared with the engine's; the summary is consistent
    # (how far apart they are depends on the machine's load, so it is not bounded here).
    assert check["requests"] == check["with_engine_timing"] == 2
    assert check["max_abs_diff_s"] >= abs(check["median_streamed_minus_engine_s"])


def test_cross_check_notes_missing_perf_metrics(tiny_model_dir: Path, engine_root: Path) -> None:
    with install_fake_tensorrt_llm(FakeTrtLlmSpec(perf_metrics=False, token_delay_s=0.0)):
        backend, info = load(tiny_model_dir, engine_root, {})
        backend.run([[1, 2, 3]], 3)
    assert info.details["ttft_cross_check"]["with_engine_timing"] == 0
    assert "no request_perf_metrics" in info.details["ttft_cross_check"]["note"]


# ---- engine cache -----------------------------------------------------------------------------


def key_for(tensorrt: dict[str, Any], version: str = "1.0.0", precision: str = "auto") -> str:
    options = TensorRTConfig.model_validate({"runtime": "engine", **tensorrt})
    identity = {"path": "/m", "content_sha256": "abc"}
    return engine_cache_key(version, identity, options, precision)  # type: ignore[arg-type]


def test_cache_key_is_stable() -> None:
    assert key_for({}) == key_for({}) == key_for({"max_batch_size": 4, "extra": {"x": 1}})


@pytest.mark.parametrize("name", fields_of(TensorRTBuildConfig))
def test_cache_key_changes_with_each_build_option(name: str) -> None:
    info = TensorRTBuildConfig.model_fields[name]
    first = key_for({"build_config": {name: sample_value(info, 0)}})
    second = key_for({"build_config": {name: sample_value(info, 1)}})
    assert len({key_for({}), first, second}) == 3


def test_cache_key_changes_with_version_dtype_quant_and_model() -> None:
    base = key_for({})
    assert key_for({}, version="1.1.0") != base
    assert key_for({}, precision="fp16") != base
    assert key_for({"quant_config": {"quant_algo": "FP8"}}) != base
    assert key_for({"kv_cache_config": {"tokens_per_block": 64}}) != base
    assert key_for({"tensor_parallel_size": 2}) != base


def test_model_identity_follows_content(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"a": 1}')
    first = model_identity(str(tmp_path), "local_dir", None)
    (tmp_path / "config.json").write_text('{"a": 2}')
    assert model_identity(str(tmp_path), "local_dir", None) != first
    assert model_identity("org/m", "hub", "v2") == {"hub_id": "org/m", "revision": "v2"}


def test_cache_hit_skips_the_build(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    options = {"runtime": "engine", "build_config": {"max_batch_size": 4}}
    _, first = load(tiny_model_dir, engine_root, options)
    assert first.details["engine_cache"] == "miss" and "engine_build_s" in first.details
    assert fake.builds == 1 and len(fake.saves) == 1
    _, second = load(tiny_model_dir, engine_root, options)
    assert second.details["engine_cache"] == "hit" and "engine_load_s" in second.details
    assert fake.builds == 1 and fake.engine_loads == 1
    assert fake.llm_calls[-1][1]["model"] == second.details["engine_dir"]
    _, third = load(tiny_model_dir, engine_root, {**options, "build_config": {"max_batch_size": 8}})
    assert third.details["engine_cache"] == "miss" and fake.builds == 2


def test_engine_cache_off_builds_every_time(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    for _ in range(2):
        load(tiny_model_dir, engine_root, {"runtime": "engine", "engine_cache": False})
    assert fake.builds == 2 and fake.saves == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_an_unwritable_engine_cache_is_a_backend_error(
    fake: FakeTrtLlm,
    tiny_model_dir: Path,
    engine_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
) -> None:
    """A full, read-only or forbidden engine cache is one line naming it, not an OSError."""

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise OSError(code, os.strerror(code), str(engine_root))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(
        BackendError, match=rf"engine cache: {engine_root}: .*{errno.errorcode[code]}"
    ):
        load(tiny_model_dir, engine_root, {"runtime": "engine"})


# ---- versions, config rules -------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.21.0", "2.0.0", "garbage"])
def test_version_outside_range_fails_before_loading(
    version: str, tiny_model_dir: Path, engine_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLEM_ALLOW_UNTESTED", raising=False)
    with (
        install_fake_tensorrt_llm(FakeTrtLlmSpec(version=version)) as installed,
        pytest.raises(DependencyError) as caught,
    ):
        load(tiny_model_dir, engine_root, {})
    message = str(caught.value)
    assert f"tensorrt_llm {version} is outside the tested range >=1.0,<2" in message
    assert "LLEM_ALLOW_UNTESTED=1" in message
    assert installed.llm_calls == []


def test_untested_version_loads_with_allow_untested(
    tiny_model_dir: Path,
    engine_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through the registry, as ``llem run`` creates it: both version checks let 2.1 pass."""
    from llenergymeasure.backends import create_backend

    monkeypatch.setenv("LLEM_ALLOW_UNTESTED", "1")
    with install_fake_tensorrt_llm(FakeTrtLlmSpec(version="2.1.0")) as installed:
        backend = create_backend(
            "tensorrt", engine_root=engine_root, gpu_probe=lambda: GpuProbe(True, 8)
        )
        info = backend.load(make_config(tiny_model_dir, {}))
        backend.unload()
    assert info.details["tensorrt_llm"] == "2.1.0" and len(installed.llm_calls) == 1
    assert "tensorrt_llm 2.1.0 is outside the tested range" in caplog.text


@pytest.mark.parametrize("version", ["1.0.0rc4", "1.0.0", "1.2.0"])
def test_versions_in_range_load(version: str, tiny_model_dir: Path, engine_root: Path) -> None:
    with install_fake_tensorrt_llm(FakeTrtLlmSpec(version=version)):
        _, info = load(tiny_model_dir, engine_root, {})
    assert info.details["tensorrt_llm"] == version


def test_the_model_records_its_architecture_for_the_flop_counts(
    fake: FakeTrtLlm, tiny_model_dir: Path, engine_root: Path
) -> None:
    _, info = load(tiny_model_dir, engine_root, {})
    assert info.details["architecture"] == model_architecture(str(tiny_model_dir))
    assert info.details["architecture"]["num_hidden_layers"] == 2


@pytest.mark.parametrize(
    ("tensorrt", "message"),
    [
        ({"quant_config": {"quant_algo": "FP8"}}, "needs runtime: engine"),
        ({"build_config": {"max_batch_size": 2}}, "needs runtime: engine"),
        ({"runtime": "engine", "kv_cache_config": {"dtype": "fp8"}}, "kv_cache_quant_algo"),
    ],
)
def test_runtime_specific_options_are_config_errors(
    tensorrt: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        make_config(tmp_path, tensorrt)


# ---- through the real harness -----------------------------------------------------------------


def test_stream_timestamps_flow_into_ttft_and_itl(
    fake: FakeTrtLlm, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_CACHE_DIR", str(tmp_path / "cache"))
    result = llem.run(
        {
            "model": str(tiny_model_dir),
            "backend": "tensorrt",
            "n": 4,
            "max_output_tokens": 8,
            "chat_template": False,
            "warmup": {"n_warmup": 1, "max_output_tokens": 2},
            "energy": {"sampler": "null"},
            "tensorrt": {"runtime": "engine", "build_config": {"max_batch_size": 4}},
        },
        out_dir=tmp_path / "results",
    )
    assert isinstance(result, llem.ExperimentResult)
    metrics = result.metrics
    assert metrics.n_requests == 4 and metrics.total_output_tokens == 32
    assert metrics.ttft.mean_s is not None and metrics.ttft.mean_s > 0
    assert metrics.itl.mean_s is not None and metrics.itl.mean_s > 0
    assert result.model.details["engine_cache"] == "miss"
    assert result.model.details["ttft_cross_check"]["with_engine_timing"] == 4
    assert fake.requests == 4 + 4  # a warmup batch of `concurrency` (4), then the window
