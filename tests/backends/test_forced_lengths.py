"""Forced output lengths (``dataset.output_lengths`` from_dataset or distribution) in every
backend: request ``i`` generates exactly ``output_lengths[i]`` tokens, whatever the model's
EOS says.

pytorch is run for real on a tiny model whose EOS is made near certain (``sequence_bias``), per
row of one static batch and through continuous batching; TensorRT-LLM against its shipped fake,
the server backend against the in-test OpenAI server and vLLM against the fake engine of
``test_vllm_backend``, each of whose EOS comes early unless the request ignores it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

from test_vllm_backend import config as vllm_config
from test_vllm_backend import make_backend as make_vllm_backend

from llenergymeasure.backends.base import forced_lengths
from llenergymeasure.backends.pytorch.backend import PyTorchBackend
from llenergymeasure.backends.pytorch.records import batch_records
from llenergymeasure.backends.server.backend import ServerBackend
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.datasets import Prompt
from llenergymeasure.devices import GpuProbe
from llenergymeasure.errors import BackendError
from llenergymeasure.load import plan_load
from llenergymeasure.testing.fake_openai_server import FakeOpenAIServer
from llenergymeasure.testing.fake_tensorrt_llm import (
    FakeTrtLlm,
    FakeTrtLlmSpec,
    install_fake_tensorrt_llm,
)
from llenergymeasure.testing.models import tiny_experiment

LENGTHS = [2, 5, 3]
EOS = 2  # the embedded tokenizer's EOS, which the tiny model shares (and pads with)
EOS_FIRST = {"sequence_bias": [[[EOS], 100.0]]}  # EOS wins every step unless masked


def pytorch_backend(model_dir: Path, **fields: Any) -> PyTorchBackend:
    backend = PyTorchBackend()
    backend.load(ExperimentConfig.model_validate(tiny_experiment(model_dir, **fields)))
    return backend


def texts(n: int) -> list[Prompt]:
    return [Prompt(text="word " * (i + 2), token_ids=None, index=i) for i in range(n)]


def test_a_static_batch_gives_each_row_its_own_length_despite_eos(tiny_model_dir: Path) -> None:
    backend = pytorch_backend(tiny_model_dir, pytorch={"batch_size": 3, "extra": EOS_FIRST})
    try:
        prompts = backend.prepare(texts(3))
        unforced = backend.run(prompts, 6)
        progress: list[int] = []
        forced = backend.run(prompts, 6, on_progress=progress.append, output_lengths=LENGTHS)
    finally:
        backend.unload()
    assert [r.output_tokens for r in unforced] == [0, 0, 0]  # EOS first: the bias acts
    assert [r.output_tokens for r in forced] == LENGTHS
    for record, length in zip(forced, LENGTHS, strict=True):
        assert record.chunk_tokens == [1] * length and len(record.chunk_times_s) == length
        assert record.end_s == record.chunk_times_s[-1]
    assert sum(progress) == 3 * 6  # the batch's share of the progress, as for fixed lengths


def test_forced_rows_stop_at_their_length_and_padding_is_not_counted() -> None:
    pad = 0  # a pad id that is not EOS: what follows a forced row's end is not output
    generated = [[7, 8, pad, pad, pad], [7, 8, 9, 10, 11], [7, 8, 9, pad, pad]]
    steps = [1.0, 2.0, 3.0, 4.0, 5.0]
    records = batch_records([0, 1, 2], [4, 4, 4], generated, {EOS}, 0.5, steps, LENGTHS)
    assert [r.output_tokens for r in records] == LENGTHS
    assert [r.end_s for r in records] == [2.0, 5.0, 3.0]


def test_continuous_batching_gives_each_request_its_length(tiny_model_dir: Path) -> None:
    load = {"mode": "concurrency", "max_concurrency": 2}
    backend = pytorch_backend(tiny_model_dir, n=3, max_output_tokens=6, load=load)
    try:
        records = backend.run(
            backend.prepare(texts(3)), 6, load=plan_load(backend._require_config().load, 3, 0),
            output_lengths=LENGTHS,
        )  # fmt: skip
    finally:
        backend.unload()
    assert [r.output_tokens for r in records] == LENGTHS
    assert [sum(r.chunk_tokens) for r in records] == LENGTHS


def test_lengths_must_match_the_prompts_and_the_cap() -> None:
    assert forced_lengths(2, None, 8) is None
    assert forced_lengths(2, (3, 8), 8) == [3, 8]
    with pytest.raises(BackendError, match="3 output lengths for 2 prompts"):
        forced_lengths(2, [1, 2, 3], 8)
    with pytest.raises(BackendError, match="max_output_tokens = 8"):
        forced_lengths(2, [0, 9], 8)


@pytest.fixture
def early_eos_trt() -> Iterator[FakeTrtLlm]:
    with install_fake_tensorrt_llm(FakeTrtLlmSpec(token_delay_s=0.0001, output_tokens=1)) as fake:
        yield fake


def test_tensorrt_sampling_params_force_each_length(
    early_eos_trt: FakeTrtLlm, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from llenergymeasure.backends.tensorrt.backend import TensorRTBackend

    backend = TensorRTBackend(engine_root=tmp_path, gpu_probe=lambda: GpuProbe(True, 8))
    backend.load(ExperimentConfig.model_validate(
        {"model": str(tiny_model_dir), "backend": "tensorrt", "chat_template": False}
    ))  # fmt: skip
    try:
        unforced = backend.run([[1, 2], [3, 4], [5, 6]], 6)
        early_eos_trt.sampling_params.clear()
        forced = backend.run([[1, 2], [3, 4], [5, 6]], 6, output_lengths=LENGTHS)
    finally:
        backend.unload()
    assert [r.output_tokens for r in unforced] == [1, 1, 1]  # the fake's EOS
    assert [r.output_tokens for r in forced] == LENGTHS
    asked = {
        (p["max_tokens"], p["min_tokens"], p["ignore_eos"]) for p in early_eos_trt.sampling_params
    }
    assert asked == {(length, length, True) for length in LENGTHS}


def test_the_server_request_body_forces_each_length(embedded_folder: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_folder)
    with FakeOpenAIServer(models=("smollm2",), output_tokens=1) as server:
        cfg = ExperimentConfig.model_validate({
            "model": "smollm2-135m", "backend": "server", "n": 3, "max_output_tokens": 6,
            "server": {"url": server.url},
        })  # fmt: skip
        backend = ServerBackend(tokenizer_loader=lambda location: tokenizer)
        backend.load(cfg)
        try:
            prompts = backend.prepare(texts(3))
            unforced = backend.run(prompts, 6)
            forced = backend.run(prompts, 6, output_lengths=LENGTHS)
        finally:
            backend.unload()
        bodies = server.generation_bodies()[3:]
    assert [r.output_tokens for r in unforced] == [1, 1, 1]  # the server's EOS
    assert [r.output_tokens for r in forced] == LENGTHS
    by_length = sorted((b["max_tokens"], b["min_tokens"], b["ignore_eos"]) for b in bodies)
    assert by_length == sorted((length, length, True) for length in LENGTHS)


def test_vllm_sampling_params_force_each_length(tiny_model_dir: Path) -> None:
    backend, engine = make_vllm_backend()
    backend.load(vllm_config(tiny_model_dir, decoder={"min_new_tokens": 1}))
    backend.run([[1], [2], [3]], 6, output_lengths=LENGTHS)
    asked = {call["id"].rsplit("-", 1)[1]: call["params"].kwargs for call in engine.calls}
    for index, length in enumerate(LENGTHS):
        kwargs = asked[str(index)]
        assert (kwargs["max_tokens"], kwargs["min_tokens"], kwargs["ignore_eos"]) == (
            length, length, True)  # fmt: skip
    engine.calls.clear()
    backend.run([[1], [2]], 6)
    assert {call["params"].kwargs["max_tokens"] for call in engine.calls} == {6}
    assert not any(call["params"].kwargs["ignore_eos"] for call in engine.calls)
