"""The pytorch backend against real transformers on a tiny random model.

Every field of the `pytorch:` section, `model_kwargs`, `extra` and the decoder reaches
`from_pretrained` / `generate`: spies wrap the real calls and record their arguments.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from llenergymeasure.backends.pytorch.backend import PyTorchBackend  # noqa: E402
from llenergymeasure.config import ExperimentConfig  # noqa: E402
from llenergymeasure.datasets import Prompt  # noqa: E402
from llenergymeasure.errors import ConfigError, DependencyError, ModelNotFoundError  # noqa: E402


class Spy:
    """Wraps a real callable and records the keyword arguments of each call."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.target(*args, **kwargs)


def make_backend(**clock: Any) -> tuple[PyTorchBackend, Spy]:
    model_spy = Spy(transformers.AutoModelForCausalLM.from_pretrained)
    backend = PyTorchBackend(model_loader=model_spy, **clock)
    return backend, model_spy


def config(model_dir: Path, **fields: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"model": str(model_dir), **fields})


def text_prompts(*texts: str) -> list[Prompt]:
    return [Prompt(text=t, token_ids=None, index=i) for i, t in enumerate(texts)]


def spy_generate(backend: PyTorchBackend) -> Spy:
    model = backend._model  # the loaded transformers model
    spy = Spy(model.generate)
    model.generate = spy
    return spy


LOAD_FIELDS = [
    ("attn_implementation", "eager", "attn_implementation", "eager"),
    ("attn_implementation", "sdpa", "attn_implementation", "sdpa"),
    ("device_map", "cpu", "device_map", "cpu"),
    ("model_kwargs", {"low_cpu_mem_usage": True}, "low_cpu_mem_usage", True),
]


@pytest.mark.parametrize(("field", "value", "kwarg", "expected"), LOAD_FIELDS)
def test_load_fields_reach_from_pretrained(
    tiny_model_dir: Path, field: str, value: Any, kwarg: str, expected: Any
) -> None:
    backend, spy = make_backend()
    backend.load(config(tiny_model_dir, pytorch={field: value}))
    assert spy.calls[-1][kwarg] == expected
    if field == "attn_implementation":
        assert backend._model.config._attn_implementation == value


@pytest.mark.parametrize(
    ("precision", "dtype"), [("fp32", "float32"), ("bf16", "bfloat16"), ("auto", "float32")]
)
def test_precision_sets_the_loaded_dtype(tiny_model_dir: Path, precision: str, dtype: str) -> None:
    backend, spy = make_backend()
    info = backend.load(config(tiny_model_dir, precision=precision))
    assert str(spy.calls[-1]["dtype"]) == f"torch.{dtype}"
    assert info.dtype == dtype and str(backend._model.dtype) == f"torch.{dtype}"


def test_torch_compile_wraps_forward_with_the_mode(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_compile(fn: Any, mode: str | None = None) -> Any:
        seen["mode"] = mode
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    backend, _ = make_backend()
    backend.load(
        config(tiny_model_dir, pytorch={"torch_compile": True, "torch_compile_mode": "default"})
    )
    assert seen == {"mode": "default"}


GENERATE_FIELDS = [
    ("decoder", {"do_sample": True}, "do_sample", True),
    ("decoder", {"do_sample": True, "temperature": 0.5}, "temperature", 0.5),
    ("decoder", {"do_sample": True, "top_k": 7}, "top_k", 7),
    ("decoder", {"do_sample": True, "top_p": 0.9}, "top_p", 0.9),
    ("decoder", {"do_sample": True, "min_p": 0.05}, "min_p", 0.05),
    ("decoder", {"do_sample": True, "typical_p": 0.8}, "typical_p", 0.8),
    ("decoder", {"do_sample": True, "epsilon_cutoff": 0.001}, "epsilon_cutoff", 0.001),
    ("decoder", {"do_sample": True, "eta_cutoff": 0.001}, "eta_cutoff", 0.001),
    ("decoder", {"repetition_penalty": 1.3}, "repetition_penalty", 1.3),
    ("decoder", {"no_repeat_ngram_size": 2}, "no_repeat_ngram_size", 2),
    ("decoder", {"min_new_tokens": 3}, "min_new_tokens", 3),
    ("pytorch", {"use_cache": False}, "use_cache", False),
    ("pytorch", {"extra": {"num_beams": 1}}, "num_beams", 1),
]


@pytest.mark.parametrize(("section", "values", "kwarg", "expected"), GENERATE_FIELDS)
def test_generate_fields_reach_the_generation_config(
    tiny_model_dir: Path, section: str, values: dict[str, Any], kwarg: str, expected: Any
) -> None:
    backend, _ = make_backend()
    backend.load(config(tiny_model_dir, **{section: values}, max_output_tokens=4))
    spy = spy_generate(backend)
    records = backend.run(backend.prepare(text_prompts("Hello there")), max_output_tokens=4)
    assert getattr(spy.calls[-1]["generation_config"], kwarg) == expected
    assert records[0].output_tokens <= 4


def test_batch_size_sets_rows_per_generate_call(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    backend.load(config(tiny_model_dir, pytorch={"batch_size": 2}))
    spy = spy_generate(backend)
    backend.run(backend.prepare(text_prompts("a", "b b", "c c c")), max_output_tokens=2)
    assert [call["input_ids"].shape[0] for call in spy.calls] == [2, 1]


def test_left_padding_and_truncation(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    backend.load(
        config(tiny_model_dir, chat_template=False, max_input_tokens=5, pytorch={"batch_size": 2})
    )
    spy = spy_generate(backend)
    records = backend.run(
        backend.prepare(text_prompts("one", "one two three four five six seven")), 2
    )
    ids, mask = spy.calls[0]["input_ids"], spy.calls[0]["attention_mask"]
    assert ids.shape[1] == 5  # the long prompt was truncated to max_input_tokens
    assert mask[0, 0] == 0 and mask[0, -1] == 1  # the short one is padded on the left
    assert records[1].input_tokens == 5 and records[0].input_tokens == int(mask[0].sum())


def test_chat_template_auto_wraps_prompts(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    backend.load(config(tiny_model_dir, chat_template="auto"))
    spy = spy_generate(backend)
    backend.run(backend.prepare(text_prompts("Hi")), 1)
    text = backend._tokenizer.decode(spy.calls[0]["input_ids"][0])
    assert "<|im_start|>user\nHi<|im_end|>" in text and text.endswith("assistant\n")


def test_chat_template_true_without_template_is_a_config_error(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    backend._tokenizer_loader = lambda *a, **k: _without_template(
        transformers.AutoTokenizer.from_pretrained(*a, **k)
    )
    with pytest.raises(ConfigError, match="no chat template"):
        backend.load(config(tiny_model_dir, chat_template=True))


def _without_template(tokenizer: Any) -> Any:
    tokenizer.chat_template = None
    return tokenizer


class ForceEosAt(transformers.LogitsProcessor):  # type: ignore[misc]
    """Row i emits token 100 until step stop[i], then EOS: a known output length per row."""

    def __init__(self, stops: list[int], eos: int) -> None:
        self.stops, self.eos, self.step = stops, eos, 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        scores[:] = -float("inf")
        for row, stop in enumerate(self.stops):
            scores[row, self.eos if self.step >= stop else 100] = 0.0
        self.step += 1
        return scores


def test_exact_token_counts_and_step_timing_in_a_batch(tiny_model_dir: Path) -> None:
    ticks = itertools.count()
    backend, _ = make_backend(clock=lambda: float(next(ticks)))
    cfg = config(tiny_model_dir, pytorch={"batch_size": 3}, chat_template=False)
    backend.load(cfg)
    eos = backend._tokenizer.eos_token_id
    backend._config = cfg.model_copy(
        update={
            "pytorch": cfg.pytorch_options.model_copy(
                update={"extra": {"logits_processor": [ForceEosAt([2, 5, 0], eos)]}}
            )
        }
    )
    a, b, c = backend.run(backend.prepare(text_prompts("x", "y y", "z")), max_output_tokens=8)

    # EOS and the padding after it are not counted; max_new_tokens is never assumed
    assert [a.output_tokens, b.output_tokens, c.output_tokens] == [2, 5, 0]
    # clock: submit=t0, prompt put=t1 (ignored), step k at t2+k
    assert a.submit_s == 0.0 and a.ttft_s == 2.0
    assert a.itl_s == [1.0] and b.itl_s == [1.0] * 4
    assert a.end_s == 4.0  # the step at which its EOS appeared
    assert b.end_s == 7.0 and c.ttft_s is None


def test_unknown_hub_model_is_model_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backend = PyTorchBackend()
    with pytest.raises(ModelNotFoundError, match="no-such-org/no-such-model"):
        backend.load(ExperimentConfig(model="no-such-org/no-such-model"))


def test_beam_search_is_timed_through_the_logits_hook(tiny_model_dir: Path) -> None:
    ticks = itertools.count()
    backend, _ = make_backend(clock=lambda: float(next(ticks)))
    backend.load(config(tiny_model_dir, decoder={"num_beams": 2, "ignore_eos": True}))
    spy = spy_generate(backend)
    (record,) = backend.run(backend.prepare(text_prompts("Hello")), max_output_tokens=3)
    assert "streamer" not in spy.calls[-1]  # transformers refuses a streamer with beams
    assert spy.calls[-1]["generation_config"].num_beams == 2
    assert record.output_tokens == 3 and len(record.chunk_times_s) == 3
    assert record.itl_s == [1.0, 1.0]  # one tick per beam-search step


def test_ignore_eos_runs_every_row_to_the_budget(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    backend.load(config(tiny_model_dir, pytorch={"batch_size": 2}, decoder={"ignore_eos": True}))
    spy = spy_generate(backend)
    records = backend.run(backend.prepare(text_prompts("a", "b")), max_output_tokens=5)
    assert spy.calls[-1]["generation_config"].min_new_tokens == 5
    assert [r.output_tokens for r in records] == [5, 5]


def test_stop_strings_reach_generate_with_the_tokenizer(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    backend.load(config(tiny_model_dir, decoder={"stop": ["\n\n"]}))
    spy = spy_generate(backend)
    backend.run(backend.prepare(text_prompts("Hi")), max_output_tokens=2)
    assert spy.calls[-1]["generation_config"].stop_strings == ["\n\n"]
    assert spy.calls[-1]["tokenizer"] is backend._tokenizer


def test_dict_output_still_gives_token_counts(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    options = {"return_dict_in_generate": True, "output_scores": True}
    backend.load(config(tiny_model_dir, pytorch=options, decoder={"ignore_eos": True}))
    (record,) = backend.run(backend.prepare(text_prompts("Hi")), max_output_tokens=3)
    assert record.output_tokens == 3


def test_compile_backend_reaches_torch_compile(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_compile(fn: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    backend, _ = make_backend()
    backend.load(
        config(tiny_model_dir, pytorch={"torch_compile": True, "torch_compile_backend": "eager"})
    )
    assert seen == {"mode": None, "backend": "eager"}


def test_bitsandbytes_without_cuda_is_a_config_error(tiny_model_dir: Path) -> None:
    backend, spy = make_backend()
    with pytest.raises(ConfigError, match=r"pytorch.load_in_4bit .*needs an NVIDIA GPU"):
        backend.load(config(tiny_model_dir, pytorch={"load_in_4bit": True}))
    assert spy.calls == []  # refused before anything loads


def test_a_field_the_installed_transformers_dropped_is_refused(tiny_model_dir: Path) -> None:
    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers 4.x still honours low_cpu_mem_usage")
    backend, _ = make_backend()
    with pytest.raises(ConfigError, match=r"pytorch.low_cpu_mem_usage is not acted on"):
        backend.load(config(tiny_model_dir, pytorch={"low_cpu_mem_usage": True}))


def test_random_weights_refuse_loading_options(tiny_model_dir: Path) -> None:
    backend, _ = make_backend()
    options = {"no_weights": True, "device_map": "cpu", "max_memory": {"cpu": "1GiB"}}
    with pytest.raises(ConfigError, match=r"pytorch.max_memory applies when loading"):
        backend.load(config(tiny_model_dir, pytorch=options))


def test_untested_transformers_is_refused_unless_allowed(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(transformers, "__version__", "6.1.0")
    monkeypatch.delenv("LLEM_ALLOW_UNTESTED", raising=False)
    with pytest.raises(DependencyError, match=r"transformers 6\.1\.0 is outside the tested"):
        make_backend()[0].load(config(tiny_model_dir))
    monkeypatch.setenv("LLEM_ALLOW_UNTESTED", "1")
    info = make_backend()[0].load(config(tiny_model_dir))
    assert info.details["transformers"] == "6.1.0"
    assert "transformers 6.1.0 is outside the tested range" in caplog.text
