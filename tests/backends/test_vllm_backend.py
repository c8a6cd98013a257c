"""The vllm backend against a fake vLLM that mirrors the real names (vllm 0.32).

The fake records what reaches ``AsyncEngineArgs``, ``SamplingParams``, ``LoRARequest`` and
``AsyncLLM.generate``, and streams scripted deltas on a scripted clock, so every `vllm:` field,
every decoder field and the per-delta timing are checked without the library. The real engine
runs in ``test_vllm_engine.py`` (``scripts/test-vllm.sh``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

pytest.importorskip("transformers")

from llenergymeasure.backends.model_shape import model_architecture
from llenergymeasure.backends.vllm.api import VllmApi
from llenergymeasure.backends.vllm.backend import ENGINE_SHUTDOWN_GRACE_S, VllmBackend
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.config.models import VllmConfig
from llenergymeasure.devices import GpuProbe
from llenergymeasure.errors import ConfigError, DependencyError
from llenergymeasure.load import LoadPlan
from llenergymeasure.parameters import introspection
from llenergymeasure.testing.modules import modules_installed

# A subset of vllm.engine.arg_utils.AsyncEngineArgs' dataclass fields, names as in vLLM 0.32
# (which no longer has swap_space).
ENGINE_ARG_NAMES = [
    "model", "dtype", "seed", "disable_log_stats", "enable_lora", "max_lora_rank",
    "gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens", "max_model_len",
    "enable_prefix_caching", "enable_chunked_prefill", "kv_cache_dtype", "block_size",
    "tensor_parallel_size", "pipeline_parallel_size", "quantization", "enforce_eager",
    "load_format", "stream_interval", "cpu_offload_gb", "max_loras", "skip_tokenizer_init",
    "kv_cache_memory_bytes", "compilation_config", "speculative_config", "async_scheduling",
    "attention_backend", "enable_expert_parallel", "long_prefill_token_threshold",
    "optimization_level",
]  # fmt: skip
FakeEngineArgs = dataclasses.make_dataclass(
    "AsyncEngineArgs", [(name, Any, dataclasses.field(default=None)) for name in ENGINE_ARG_NAMES]
)


class RequestOutputKind(Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


class FakeSamplingParams:
    """vllm.SamplingParams' signature (the parameters this backend can set, same defaults)."""

    def __init__(
        self,
        n: int = 1,
        presence_penalty: float = 0.0,
        frequency_penalty: float = 0.0,
        repetition_penalty: float = 1.0,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        min_p: float = 0.0,
        seed: int | None = None,
        stop: str | list[str] | None = None,
        ignore_eos: bool = False,
        max_tokens: int | None = 16,
        min_tokens: int = 0,
        detokenize: bool = True,
        output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE,
        _eos_token_id: int | None = None,
    ) -> None:
        self.kwargs = {k: v for k, v in locals().items() if k != "self"}


@dataclass
class FakeLoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str = ""


@dataclass
class Completion:
    token_ids: list[int]


@dataclass
class Metrics:
    first_token_latency: float


@dataclass
class Output:
    outputs: list[Completion]
    finished: bool
    metrics: Metrics | None = None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeEngine:
    """AsyncLLM: ``generate`` streams the scripted deltas, (time, n_tokens, finished)."""

    clock: Clock
    script: list[tuple[float, int, bool]]
    calls: list[dict[str, Any]] = field(default_factory=list)
    shut_down: bool = False
    shutdown_timeout_s: float | None = None

    async def generate(
        self, prompt: Any, sampling_params: Any, request_id: str, **kwargs: Any
    ) -> AsyncIterator[Output]:
        self.calls.append({"prompt": prompt, "params": sampling_params, "id": request_id, **kwargs})
        for at, n_tokens, finished in self.script:
            await asyncio.sleep(0)  # let the other requests run, as the real engine does
            self.clock.now = at
            metrics = Metrics(0.25) if finished else None
            yield Output([Completion(list(range(n_tokens)))], finished, metrics)

    def shutdown(self, timeout: float | None = None) -> None:
        self.shut_down, self.shutdown_timeout_s = True, timeout


class FakeAsyncLLM:
    created: ClassVar[list[Any]] = []
    engine: FakeEngine

    @classmethod
    def from_engine_args(cls, engine_args: Any) -> FakeEngine:
        cls.created.append(engine_args)
        return cls.engine


SCRIPT = [(1.0, 1, False), (1.5, 3, False), (1.75, 1, False), (2.0, 0, True)]


def make_backend(script: list[tuple[float, int, bool]] = SCRIPT) -> tuple[VllmBackend, FakeEngine]:
    clock = Clock()
    engine = FakeEngine(clock, script)
    FakeAsyncLLM.created, FakeAsyncLLM.engine = [], engine
    api = VllmApi(
        version="0.32.0",
        engine_args=FakeEngineArgs,
        async_llm=FakeAsyncLLM,
        sampling_params=FakeSamplingParams,
        delta_output_kind=RequestOutputKind.DELTA,
        tokens_prompt=dict,  # vllm.inputs.TokensPrompt is a TypedDict
        lora_request=FakeLoRARequest,
    )
    return VllmBackend(clock=clock, api=api, gpu_probe=lambda: GpuProbe(True, 8)), engine


def config(model_dir: Path, **fields: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"model": str(model_dir), "backend": "vllm", "chat_template": False, **fields}
    )


def engine_args(backend: VllmBackend, cfg: ExperimentConfig) -> dict[str, Any]:
    backend.load(cfg)
    (args,) = FakeAsyncLLM.created
    return {k: v for k, v in dataclasses.asdict(args).items() if v is not None}


ENGINE_FIELDS = [
    (info.path.removeprefix("vllm."), introspection.test_values(info)[0])
    for info in introspection.backend_parameters("vllm")
    if info.section == "vllm" and info.path != "vllm.extra"
]


def test_every_vllm_field_is_covered() -> None:
    assert {name for name, _ in ENGINE_FIELDS} | {"extra"} == set(VllmConfig.model_fields)


@pytest.mark.parametrize(("name", "value"), ENGINE_FIELDS)
def test_vllm_field_reaches_the_engine_args(tiny_model_dir: Path, name: str, value: Any) -> None:
    backend, _ = make_backend()
    args = engine_args(backend, config(tiny_model_dir, vllm={name: value}))
    assert args[name] == value


def test_engine_args_carry_model_dtype_seed_stats_and_extra(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    cfg = config(
        tiny_model_dir, precision="bf16", random_seed=3, vllm={"extra": {"stream_interval": 1}}
    )
    args = engine_args(backend, cfg)
    assert args["model"] == str(tiny_model_dir.resolve())
    assert args["dtype"] == "bfloat16" and args["seed"] == 3
    assert args["disable_log_stats"] is False and args["stream_interval"] == 1
    assert "enable_lora" not in args


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [("auto", "auto"), ("fp32", "float32"), ("fp16", "float16"), ("bf16", "bfloat16")],
)
def test_precision_maps_to_dtype(tiny_model_dir: Path, precision: str, dtype: str) -> None:
    backend, _ = make_backend()
    assert engine_args(backend, config(tiny_model_dir, precision=precision))["dtype"] == dtype


def test_an_engine_arg_the_installed_vllm_lacks_is_a_config_error(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    cfg = config(tiny_model_dir, vllm={"extra": {"swap_space": 4}})
    with pytest.raises(ConfigError, match=r"swap_space is not an engine argument.*vLLM 0\.32\.0"):
        backend.load(cfg)
    assert FakeAsyncLLM.created == []  # nothing started


def sampling(tiny_model_dir: Path, max_output_tokens: int = 8, **fields: Any) -> dict[str, Any]:
    backend, engine = make_backend()
    backend.load(config(tiny_model_dir, **fields))
    backend.run([[1, 2, 3]], max_output_tokens)
    kwargs: dict[str, Any] = engine.calls[0]["params"].kwargs
    return kwargs


@pytest.mark.parametrize(
    ("decoder", "name", "value"),
    [
        ({"do_sample": True, "temperature": 0.7}, "temperature", 0.7),
        ({"top_k": 20}, "top_k", 20),
        ({"top_p": 0.9}, "top_p", 0.9),
        ({"min_p": 0.05}, "min_p", 0.05),
        ({"repetition_penalty": 1.2}, "repetition_penalty", 1.2),
        ({"min_new_tokens": 4}, "min_tokens", 4),
        ({"min_new_tokens": 50}, "min_tokens", 8),  # capped at max_tokens, as transformers does
    ],
)
def test_decoder_field_reaches_sampling_params(
    tiny_model_dir: Path, decoder: dict[str, Any], name: str, value: Any
) -> None:
    assert sampling(tiny_model_dir, decoder=decoder)[name] == value


def test_sampling_params_stream_deltas_with_seed_and_max_tokens(tiny_model_dir: Path) -> None:
    kwargs = sampling(tiny_model_dir, max_output_tokens=12, random_seed=5)
    assert kwargs["output_kind"] is RequestOutputKind.DELTA
    assert kwargs["max_tokens"] == 12 and kwargs["seed"] == 5
    assert kwargs["temperature"] == 0.0  # greedy (do_sample: false)


@pytest.mark.parametrize("name", ["typical_p", "epsilon_cutoff", "eta_cutoff"])
def test_decoder_field_vllm_lacks_is_a_config_error(tiny_model_dir: Path, name: str) -> None:
    with pytest.raises(ValidationError, match=f"{name} is not supported by backend vllm"):
        config(tiny_model_dir, decoder={"do_sample": True, name: 0.5})


def test_deltas_become_chunks_with_their_token_counts(tiny_model_dir: Path) -> None:
    backend, engine = make_backend()
    backend.load(config(tiny_model_dir))
    progress: list[int] = []
    records = backend.run([[1, 2, 3], [4, 5]], 8, on_progress=progress.append)
    assert [r.index for r in records] == [0, 1]
    assert sum(progress) == 2 * 8 and len(progress) == 2 * 4  # each delta, then the rest of 8
    first = records[0]
    assert first.input_tokens == 3 and records[1].input_tokens == 2
    assert first.chunk_times_s == [1.0, 1.5, 1.75]  # the empty final delta adds no chunk
    assert first.chunk_tokens == [1, 3, 1] and first.output_tokens == 5
    assert first.end_s == 2.0 and first.submit_s == 0.0
    assert first.ttft_s == 1.0 and first.itl_s == [0.5, 0.25]
    assert engine.calls[0]["prompt"] == {"prompt_token_ids": [1, 2, 3]}
    assert engine.calls[0]["id"] != engine.calls[1]["id"]


def test_a_concurrency_cap_submits_each_request_as_a_slot_frees(tiny_model_dir: Path) -> None:
    backend, engine = make_backend()
    backend.load(config(tiny_model_dir))
    records = backend.run([[1, 2, 3], [4, 5]], 8, load=LoadPlan("concurrency", None, 1))
    first, second = records
    assert [call["prompt"] for call in engine.calls] == [
        {"prompt_token_ids": [1, 2, 3]},
        {"prompt_token_ids": [4, 5]},
    ]
    # the second waited on the scripted clock until the first ended at 2.0
    assert second.submit_s == first.end_s == 2.0 and second.slot_wait_s == 2.0
    assert first.slot_wait_s == 0.0 and first.scheduled_s is None


def test_a_schedule_stamps_each_record_with_its_arrival(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    backend.load(config(tiny_model_dir))
    records = backend.run([[1], [2]], 8, load=LoadPlan("rate", (0.0, 0.001), None))
    assert [r.scheduled_s for r in records] == [0.0, 0.001]  # the scripted clock starts at 0
    assert all(r.slot_wait_s == 0.0 for r in records)


def test_engine_ttft_is_kept_for_the_cross_check(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    info = backend.load(config(tiny_model_dir))
    backend.run([[1, 2, 3], [4, 5]], 8)
    check = info.details["ttft_cross_check"]
    assert check["engine_mean_s"] == 0.25 and check["streamed_mean_s"] == 1.0
    assert check["requests"] == 2


def test_lora_enables_lora_and_sends_a_request_per_prompt(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    backend, engine = make_backend()
    args = engine_args(backend, config(tiny_model_dir, lora={"adapter": str(tmp_path)}))
    assert args["enable_lora"] is True and args["max_loras"] == 1
    assert "max_lora_rank" not in args  # no adapter_config.json: vLLM's default
    backend.run([[1], [2]], 4)
    requests = [call["lora_request"] for call in engine.calls]
    assert requests == [FakeLoRARequest("adapter", 1, str(tmp_path.resolve()))] * 2


def test_unload_shuts_the_engine_down(tiny_model_dir: Path) -> None:
    backend, engine = make_backend()
    backend.load(config(tiny_model_dir))
    backend.unload()
    assert engine.shut_down


def test_unload_gives_the_engine_core_time_to_release_its_shared_memory(
    tiny_model_dir: Path,
) -> None:
    # vLLM's 5 s default killed the core while it still waited 5 s for its worker, before it
    # unlinked its message queue: "1 leaked shared_memory objects" at exit (#18)
    backend, engine = make_backend()
    backend.load(config(tiny_model_dir))
    backend.unload()
    assert engine.shutdown_timeout_s == ENGINE_SHUTDOWN_GRACE_S
    assert ENGINE_SHUTDOWN_GRACE_S > 5 + 4  # the worker's grace, then its SIGTERM wait


def test_a_vllm_whose_shutdown_takes_no_timeout_is_shut_down(tiny_model_dir: Path) -> None:
    backend, engine = make_backend()
    backend.load(config(tiny_model_dir))
    calls: list[str] = []
    engine.shutdown = lambda: calls.append("shutdown")  # type: ignore[method-assign]
    backend.unload()
    assert calls == ["shutdown"]


def test_concurrency_is_max_num_seqs(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    backend.load(config(tiny_model_dir, vllm={"max_num_seqs": 3}))
    assert backend.concurrency == 3


def fake_vllm_modules(version: str) -> dict[str, types.ModuleType]:
    """The fakes under the module names ``load_vllm_api`` imports, as ``vllm`` ``version``."""
    names = {
        "vllm": {"__version__": version, "SamplingParams": FakeSamplingParams},
        "vllm.engine": {},
        "vllm.engine.arg_utils": {"AsyncEngineArgs": FakeEngineArgs},
        "vllm.inputs": {"TokensPrompt": dict},
        "vllm.lora": {},
        "vllm.lora.request": {"LoRARequest": FakeLoRARequest},
        "vllm.sampling_params": {"RequestOutputKind": RequestOutputKind},
        "vllm.v1": {},
        "vllm.v1.engine": {},
        "vllm.v1.engine.async_llm": {"AsyncLLM": FakeAsyncLLM},
    }
    modules = {}
    for name, attributes in names.items():
        modules[name] = types.ModuleType(name)
        modules[name].__dict__.update(attributes)
    return modules


def imported_vllm_backend() -> VllmBackend:
    """A backend that imports vLLM itself (``load_vllm_api``): install ``fake_vllm_modules``."""
    _, engine = make_backend()  # a fresh fake engine for FakeAsyncLLM to return
    return VllmBackend(clock=engine.clock, gpu_probe=lambda: GpuProbe(True, 8))


@pytest.mark.parametrize("version", ["0.9.2", "0.33.0", "1.0.0", "dev"])
def test_untested_vllm_version_fails_before_loading(
    version: str, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLEM_ALLOW_UNTESTED", raising=False)
    backend = imported_vllm_backend()
    with (
        modules_installed(fake_vllm_modules(version)),
        pytest.raises(DependencyError) as caught,
    ):
        backend.load(config(tiny_model_dir))
    message = str(caught.value)
    assert f"vllm {version} is outside the tested range >=0.10,<0.33" in message
    assert "LLEM_ALLOW_UNTESTED=1" in message
    assert FakeAsyncLLM.created == []  # refused before the engine starts


def test_untested_vllm_version_loads_with_allow_untested(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLEM_ALLOW_UNTESTED", "1")
    backend = imported_vllm_backend()
    with modules_installed(fake_vllm_modules("0.40.0")):
        info = backend.load(config(tiny_model_dir))
    assert info.details["vllm"] == "0.40.0"  # recorded on the result
    assert "vllm 0.40.0 is outside the tested range" in caplog.text
    assert len(backend.run([[1, 2]], 4)) == 1


@pytest.mark.parametrize("version", ["0.10.0", "0.32.0+cpu", "0.11.1rc2"])
def test_tested_vllm_versions_pass(
    version: str, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLEM_ALLOW_UNTESTED", raising=False)
    with modules_installed(fake_vllm_modules(version)):
        info = imported_vllm_backend().load(config(tiny_model_dir))
    assert info.details["vllm"] == version


def adapter_folder(tmp_path: Path, rank: int) -> Path:
    folder = tmp_path / f"adapter-r{rank}"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank}))
    return folder


@pytest.mark.parametrize(("rank", "slot"), [(1, 1), (4, 8), (8, 8), (16, 16), (100, 128)])
def test_max_lora_rank_follows_the_adapter_rank(
    tiny_model_dir: Path, tmp_path: Path, rank: int, slot: int
) -> None:
    backend, _ = make_backend()
    lora = {"adapter": str(adapter_folder(tmp_path, rank))}
    args = engine_args(backend, config(tiny_model_dir, lora=lora))
    assert args["max_lora_rank"] == slot and args["max_loras"] == 1


def test_lora_slots_given_in_extra_win(tiny_model_dir: Path, tmp_path: Path) -> None:
    backend, _ = make_backend()
    cfg = config(
        tiny_model_dir,
        lora={"adapter": str(adapter_folder(tmp_path, 4))},
        vllm={"extra": {"max_lora_rank": 64, "max_loras": 2}},
    )
    args = engine_args(backend, cfg)
    assert args["max_lora_rank"] == 64 and args["max_loras"] == 2


def test_a_rank_above_vllms_largest_is_a_config_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    backend, _ = make_backend()
    lora = {"adapter": str(adapter_folder(tmp_path, 1024))}
    with pytest.raises(ConfigError, match="r=1024 is above the largest vLLM supports"):
        backend.load(config(tiny_model_dir, lora=lora))
    assert FakeAsyncLLM.created == []


def architecture_config(**fields: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        {"model": "smollm2-135m-arch", "backend": "vllm", "chat_template": False, **fields}
    )


def test_an_architecture_loads_with_dummy_weights_from_a_temporary_folder() -> None:
    backend, _ = make_backend()
    args = engine_args(backend, architecture_config())
    folder = Path(args["model"])
    assert args["load_format"] == "dummy" and "skip_tokenizer_init" not in args
    assert json.loads((folder / "config.json").read_text())["vocab_size"] == 49152
    assert (folder / "tokenizer.json").is_file()  # the embedded SmolLM2 tokenizer
    backend.unload()
    assert not folder.exists()


def test_an_architecture_forces_full_length_and_records_random_weights() -> None:
    backend, engine = make_backend()
    info = backend.load(architecture_config())
    backend.run([[1, 2, 3]], 8)
    assert engine.calls[0]["params"].kwargs["ignore_eos"] is True
    assert info.details["weights"].startswith("random")
    assert info.details["location"].endswith("config.json")
    assert info.details["architecture"]["num_hidden_layers"] == 30
    backend.unload()


def test_the_embedded_model_records_its_architecture_for_the_flop_counts(
    embedded_folder: Path,
) -> None:
    backend, _ = make_backend()  # loads the GGUF's converted folder, as pytorch does
    embedded = {"model": "smollm2-135m", "backend": "vllm", "chat_template": False}
    info = backend.load(ExperimentConfig.model_validate(embedded))
    assert info.details["architecture"] == model_architecture(str(embedded_folder))
    assert info.details["architecture"]["hidden_size"] == 576  # #18: was missing under vLLM
    backend.unload()


def write_bare_architecture(tmp_path: Path) -> Path:
    """A config.json with a vocabulary no shipped tokenizer matches, and no tokenizer beside."""
    path = tmp_path / "bare" / "config.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "vocab_size": 1000,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
            }
        )
    )
    return path


def test_an_architecture_without_tokenizer_runs_on_token_ids(tmp_path: Path) -> None:
    backend, engine = make_backend()
    cfg = architecture_config(
        model=str(write_bare_architecture(tmp_path)), dataset={"source": "synthetic"}
    )
    args = engine_args(backend, cfg)
    assert args["skip_tokenizer_init"] is True and args["load_format"] == "dummy"
    assert not (Path(args["model"]) / "tokenizer.json").exists()
    backend.run([[1, 2, 3]], 8)
    params = engine.calls[0]["params"].kwargs
    assert params["detokenize"] is False and params["ignore_eos"] is True
    backend.unload()


def test_text_prompts_without_tokenizer_are_a_config_error(tmp_path: Path) -> None:
    backend, _ = make_backend()
    cfg = architecture_config(model=str(write_bare_architecture(tmp_path)))
    with pytest.raises(ConfigError, match="dataset: synthetic"):
        backend.load(cfg)
    assert FakeAsyncLLM.created == []


def test_an_architecture_with_another_load_format_is_a_config_error() -> None:
    backend, _ = make_backend()
    with pytest.raises(ConfigError, match=r"vllm\.load_format: 'safetensors'"):
        backend.load(architecture_config(vllm={"load_format": "safetensors"}))
    assert FakeAsyncLLM.created == []


def test_a_failure_after_the_engine_started_shuts_it_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend, engine = make_backend()

    def broken(*_: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(VllmBackend, "_details", broken)
    with pytest.raises(RuntimeError, match="boom"):
        backend.load(architecture_config())
    (args,) = FakeAsyncLLM.created
    assert engine.shut_down and not Path(args.model).exists()
