"""Every pytorch parameter, at every introspected test value, reaches transformers.

The parameters and values come from ``config.introspection`` (no hand-written list). Each
config is loaded and run by the real ``PyTorchBackend``; spies record what it hands to
transformers: the ``from_pretrained`` keyword arguments (with the real ``BitsAndBytesConfig``),
the real ``GenerationConfig`` passed to ``generate``, ``torch.compile``'s arguments, the rows
per ``generate`` call, and the random-weights builder. What this CPU machine cannot execute
(bitsandbytes, flash-attention, offloaded caches) is refused before loading, which
test_pytorch_backend.py covers; here the environment check is bypassed, ``from_pretrained``
returns the tiny model whatever it is asked, and ``generate`` is recorded, not run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from llenergymeasure.backends.pytorch import backend as pytorch_backend  # noqa: E402
from llenergymeasure.backends.pytorch.options import (  # noqa: E402
    BNB_FIELDS,
    DECODER_NAMES,
    DTYPES,
    GENERATION_OPTIONS,
)
from llenergymeasure.config import ExperimentConfig  # noqa: E402
from llenergymeasure.datasets import Prompt  # noqa: E402
from llenergymeasure.parameters import introspection  # noqa: E402

PARAMETERS = introspection.backend_parameters("pytorch")
CASES = [(info, value) for info in PARAMETERS for value in introspection.test_values(info)]
MAX_TOKENS = 3
N_PROMPTS = 4


@dataclass
class Seen:
    """What the backend handed to transformers and torch."""

    load: dict[str, Any] = field(default_factory=dict)
    built: bool = False
    compile: dict[str, Any] | None = None
    generate: list[dict[str, Any]] = field(default_factory=list)

    @property
    def generation(self) -> Any:
        return self.generate[-1]["generation_config"]


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir: Path) -> Any:
    return transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def record_generate(seen: Seen) -> Any:
    """A stand-in for ``model.generate``: records its arguments, drives the timing hooks for
    one step and returns the prompt plus one token per row."""

    def generate(input_ids: Any, **kwargs: Any) -> Any:
        seen.generate.append({"input_ids": input_ids, **kwargs})
        if "streamer" in kwargs:
            kwargs["streamer"].put(input_ids)
            kwargs["streamer"].put(input_ids[:, -1])
        for processor in kwargs.get("logits_processor", []):
            processor(input_ids, torch.zeros(input_ids.shape[0], 8))
        sequences = torch.cat([input_ids, torch.full((input_ids.shape[0], 1), 5)], dim=1)
        if kwargs["generation_config"].return_dict_in_generate:
            return transformers.utils.ModelOutput(sequences=sequences)
        return sequences

    return generate


def run_with_spies(config: ExperimentConfig, model: Any, monkeypatch: pytest.MonkeyPatch) -> Seen:
    seen = Seen()

    def loader(location: str, **kwargs: Any) -> Any:
        seen.load = kwargs
        return copy.deepcopy(model)

    def builder(hf_config: Any, **kwargs: Any) -> Any:
        seen.built = True
        return transformers.AutoModelForCausalLM.from_config(hf_config, **kwargs)

    def compile_spy(fn: Any, **kwargs: Any) -> Any:
        seen.compile = kwargs
        return fn

    monkeypatch.setattr(pytorch_backend, "check_environment", lambda *args: None)
    monkeypatch.setattr(torch, "compile", compile_spy)
    backend = pytorch_backend.PyTorchBackend(model_loader=loader, model_builder=builder)
    backend.load(config)
    backend._model.generate = record_generate(seen)
    prompts = [Prompt(text=f"prompt {i}", token_ids=None, index=i) for i in range(N_PROMPTS)]
    backend.run(backend.prepare(prompts), MAX_TOKENS)
    return seen


def observed(path: str, value: Any, seen: Seen) -> tuple[Any, Any]:
    """(what transformers received for the parameter, what it should have received)."""
    section, _, name = path.partition(".")
    if path == "precision":
        return seen.load["dtype"], DTYPES[value]
    if section == "decoder":
        if name == "ignore_eos":  # EOS is suppressed until the output budget is reached
            return seen.generation.min_new_tokens, MAX_TOKENS
        return getattr(seen.generation, DECODER_NAMES.get(name, name)), value
    return _observed_option(name, value, seen)


def _observed_option(name: str, value: Any, seen: Seen) -> tuple[Any, Any]:
    if name in GENERATION_OPTIONS:
        return getattr(seen.generation, name), value
    if name in BNB_FIELDS:
        got = getattr(seen.load["quantization_config"], name)
        return got, DTYPES[value] if name == "bnb_4bit_compute_dtype" else value
    if name == "torch_compile":
        return seen.compile is not None, value
    if name.startswith("torch_compile_"):
        assert seen.compile is not None
        return seen.compile[name.removeprefix("torch_compile_")], value
    if name == "batch_size":
        return seen.generate[0]["input_ids"].shape[0], min(value, N_PROMPTS)
    if name == "no_weights":
        return seen.built, value
    if name == "model_kwargs":
        return {key: seen.load[key] for key in value}, value
    if name == "extra":
        return {key: getattr(seen.generation, key) for key in value}, value
    if name == "max_memory":
        return {str(key): v for key, v in seen.load[name].items()}, value
    return seen.load[name], value


def test_every_parameter_has_test_values() -> None:
    assert PARAMETERS, "introspection lists no pytorch parameter"
    assert [info.path for info in PARAMETERS if not introspection.test_values(info)] == []


@pytest.mark.parametrize(("info", "value"), CASES, ids=[f"{i.path}={v!r}" for i, v in CASES])
def test_parameter_reaches_transformers(
    info: introspection.ParameterInfo,
    value: Any,
    tiny_model: Any,
    acting_config: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = acting_config("pytorch", info.path, value)
    seen = run_with_spies(config, tiny_model, monkeypatch)
    got, expected = observed(info.path, value, seen)
    assert got == expected
