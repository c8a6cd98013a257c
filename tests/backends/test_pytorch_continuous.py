"""The pytorch backend under a serving load: transformers' continuous batching on a tiny model.

Requests go through the shared load generator; every streamed delivery is one timed chunk;
settings continuous batching cannot honour are refused, naming the field, before a model loads.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from llenergymeasure.backends.pytorch.backend import PyTorchBackend  # noqa: E402
from llenergymeasure.backends.pytorch.continuous import RequestStream  # noqa: E402
from llenergymeasure.backends.pytorch.continuous_settings import (  # noqa: E402
    CONTINUOUS_BATCHING_SINCE,
    check_continuous_batching,
)
from llenergymeasure.config import ExperimentConfig  # noqa: E402
from llenergymeasure.datasets import Prompt  # noqa: E402
from llenergymeasure.errors import BackendError, ConfigError  # noqa: E402
from llenergymeasure.harness import run_experiment  # noqa: E402
from llenergymeasure.load import plan_load  # noqa: E402
from llenergymeasure.results.records import RequestRecord  # noqa: E402
from llenergymeasure.testing.load_checks import (  # noqa: E402
    KS_ALPHA,
    ks_exponential,
    peak_in_flight,
    submit_gaps_s,
)
from llenergymeasure.testing.models import tiny_experiment  # noqa: E402

POOL = {"mode": "concurrency", "max_concurrency": 4}


def config(model_dir: Path, load: dict[str, Any] = POOL, **fields: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate(
        tiny_experiment(model_dir, n=8, max_output_tokens=5, load=load, **fields)
    )


def prompts(backend: PyTorchBackend, n: int) -> list[list[int]]:
    texts = [Prompt(text="word " * (i + 1), token_ids=None, index=i) for i in range(n)]
    return backend.prepare(texts)


def loaded(cfg: ExperimentConfig, **kwargs: Any) -> PyTorchBackend:
    backend = PyTorchBackend(**kwargs)
    backend.load(cfg)
    return backend


def test_a_concurrency_pool_holds_and_reaches_its_cap(tiny_model_dir: Path) -> None:
    cfg = config(tiny_model_dir)
    backend = loaded(cfg)
    done: list[int] = []
    try:
        records = backend.run(
            prompts(backend, 8), 5, on_progress=done.append, load=plan_load(cfg.load, 8, 0)
        )
    finally:
        backend.unload()

    assert [r.index for r in records] == list(range(8))
    assert sum(done) == 8 * 5 and len(done) > 8  # output tokens as they stream, of 8 x 5
    assert peak_in_flight(records) == 4
    for record in records:
        assert record.scheduled_s is None and 0 < record.output_tokens <= 5
        assert sum(record.chunk_tokens) == record.output_tokens
        assert len(record.chunk_times_s) == len(record.chunk_tokens)
        assert record.submit_s < record.chunk_times_s[0] <= record.end_s
        assert record.end_s >= record.chunk_times_s[-1]


def test_rate_mode_records_each_scheduled_arrival(tiny_model_dir: Path) -> None:
    load = {"mode": "rate", "request_rate": 200.0, "arrival": "constant"}
    cfg = config(tiny_model_dir, load=load, decoder={"ignore_eos": True})
    backend = loaded(cfg)
    try:
        records = backend.run(prompts(backend, 4), 3, load=plan_load(cfg.load, 4, 0))
    finally:
        backend.unload()

    scheduled = [r.scheduled_s for r in records]
    assert all(s is not None for s in scheduled)
    assert [round(b - a, 6) for a, b in itertools.pairwise(scheduled)] == [0.005] * 3  # type: ignore[operator]
    assert all(r.submit_lag_s is not None and r.submit_lag_s >= 0 for r in records)
    assert [r.output_tokens for r in records] == [3] * 4  # ignore_eos: every request to budget
    assert all(sum(r.chunk_tokens) == 3 for r in records)


def test_poisson_submit_gaps_are_exponential_at_the_rate(tiny_model_dir: Path) -> None:
    load = {"mode": "rate", "request_rate": 4, "arrival": "poisson"}
    cfg = ExperimentConfig.model_validate(
        tiny_experiment(tiny_model_dir, n=40, max_output_tokens=3, load=load)
    )
    backend = loaded(cfg)
    try:
        records = backend.run(prompts(backend, 40), 3, load=plan_load(cfg.load, 40, 42))
    finally:
        backend.unload()

    assert all(r.submit_lag_s is not None and r.submit_lag_s >= 0 for r in records)
    d, critical = ks_exponential(submit_gaps_s(records), 4)
    assert d < critical, f"KS D={d:.3f} >= {critical:.3f} (alpha {KS_ALPHA})"


def test_random_weights_serve_every_request_to_the_budget(tiny_model_dir: Path) -> None:
    cfg = config(tiny_model_dir, pytorch={"no_weights": True})  # EOS suppressed by a processor
    backend = loaded(cfg)
    try:
        records = backend.run(prompts(backend, 4), 4, load=plan_load(cfg.load, 4, 0))
    finally:
        backend.unload()
    assert [r.output_tokens for r in records] == [4] * 4


class Output:
    """A ``GenerationOutput`` as the manager delivers it: every token generated so far."""

    def __init__(self, tokens: list[int], finished: bool = False, error: str | None = None):
        self.generated_tokens, self.error, self._finished = tokens, error, finished

    def is_finished(self) -> bool:
        return self._finished


Streamed = tuple[RequestRecord, BaseException | None]


def stream_of(outputs: list[Output], eos_ids: set[int]) -> Streamed:
    ticks = itertools.count(1)

    async def feed() -> Streamed:
        record = RequestRecord(index=0, input_tokens=3, output_tokens=0, submit_s=0.0)
        stream = RequestStream(
            record, eos_ids, lambda: float(next(ticks)), asyncio.get_running_loop().create_future()
        )
        for output in outputs:
            stream.receive(output)
        await asyncio.sleep(0)
        return record, stream.finished.exception()

    return asyncio.run(feed())


def test_each_delivery_is_one_chunk_and_eos_is_not_counted() -> None:
    deliveries = [Output([7]), Output([7, 8, 9]), Output([7, 8, 9, 2, 5], finished=True)]
    record, failure = stream_of(deliveries, eos_ids={2})
    assert failure is None
    assert record.chunk_times_s == [1.0, 2.0] and record.chunk_tokens == [1, 2]
    assert record.output_tokens == 3 and record.end_s == 3.0  # ended when its EOS arrived


def test_a_failed_request_is_a_backend_error() -> None:
    _, failure = stream_of(
        [Output([7]), Output([7], finished=True, error="CUDA out of memory")], set()
    )
    assert isinstance(failure, BackendError) and "CUDA out of memory" in str(failure)


def test_warmup_runs_through_continuous_batching(tiny_model_dir: Path) -> None:
    backend = loaded(config(tiny_model_dir))
    backend._model.generate = lambda *a, **k: pytest.fail("static generate in a load mode")
    try:
        records = backend.run(prompts(backend, backend.concurrency), 2)  # as the harness warms up
    finally:
        backend.unload()
    assert backend.concurrency == 4 and len(records) == 4
    assert all(r.slot_wait_s == 0 and r.output_tokens <= 2 for r in records)


def test_offline_runs_static_generate_without_a_manager(tiny_model_dir: Path) -> None:
    backend = loaded(config(tiny_model_dir, load={"mode": "offline"}, pytorch={"batch_size": 3}))
    model = backend._model
    model.init_continuous_batching = lambda *a, **k: pytest.fail("continuous batching offline")
    calls: list[int] = []
    generate = model.generate

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["input_ids"].shape[0])
        return generate(*args, **kwargs)

    model.generate = counted
    records = backend.run(prompts(backend, 8), 4)
    assert calls == [3, 3, 2] and [r.index for r in records] == list(range(8))
    assert all(len(set(r.chunk_times_s[:1])) <= 1 for r in records)
    with pytest.raises(BackendError, match=r"load.mode: concurrency plan needs the model"):
        backend.run(prompts(backend, 2), 2, load=plan_load(config(tiny_model_dir).load, 2, 0))


def test_batch_size_limits_requests_per_forward_pass(tiny_model_dir: Path) -> None:
    backend = loaded(config(tiny_model_dir, pytorch={"batch_size": 2}))
    manager = backend._batcher._manager  # type: ignore[union-attr]
    try:
        records = backend.run(prompts(backend, 8), 3, load=plan_load(backend._config.load, 8, 0))  # type: ignore[union-attr]
    finally:
        backend.unload()
    assert backend.concurrency == 2
    assert manager.continuous_batching_config.max_requests_per_batch == 2
    assert peak_in_flight(records) == 4  # the pool still keeps 4 in flight; 2 share a step


def test_unload_stops_the_manager(tiny_model_dir: Path) -> None:
    backend = loaded(config(tiny_model_dir))
    manager = backend._batcher._manager  # type: ignore[union-attr]
    assert manager.is_running()
    backend.unload()
    assert not manager.is_running() and backend._batcher is None


def test_a_failing_forward_pass_fails_the_run_and_stops_the_manager(tiny_model_dir: Path) -> None:
    backend = loaded(config(tiny_model_dir))
    manager = backend._batcher._manager  # type: ignore[union-attr]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom in forward")

    forward, backend._model.forward = backend._model.forward, broken
    with pytest.raises(BackendError, match="boom in forward"):
        backend.run(prompts(backend, 4), 3, load=plan_load(backend._config.load, 4, 0))  # type: ignore[union-attr]
    assert not manager.is_running()
    backend._model.forward = forward  # a later run starts a new manager
    assert len(backend.run(prompts(backend, 2), 2)) == 2
    backend.unload()


def test_old_transformers_is_refused_before_loading(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transformers, "__version__", "5.10.1")
    loads: list[Any] = []
    backend = PyTorchBackend(model_loader=lambda *a, **k: loads.append(a))
    with pytest.raises(ConfigError) as error:
        backend.load(config(tiny_model_dir))
    message = str(error.value)
    assert "load.mode: concurrency" in message
    assert f"transformers >= {CONTINUOUS_BATCHING_SINCE} (installed: 5.10.1)" in message
    assert loads == []


def test_beam_search_is_refused_in_a_load_mode(tiny_model_dir: Path) -> None:
    loads: list[Any] = []
    backend = PyTorchBackend(model_loader=lambda *a, **k: loads.append(a))
    with pytest.raises(ConfigError, match=r"decoder.num_beams: 2 .*load.mode: concurrency"):
        backend.load(config(tiny_model_dir, decoder={"num_beams": 2}))
    assert loads == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"decoder": {"stop": ["\n"]}}, "decoder.stop"),
        ({"decoder": {"repetition_penalty": 1.2}}, "decoder.repetition_penalty"),
        ({"decoder": {"no_repeat_ngram_size": 2}}, "decoder.no_repeat_ngram_size"),
        ({"decoder": {"min_new_tokens": 2}}, "decoder.min_new_tokens"),
        ({"decoder": {"guidance_scale": 1.5}}, "decoder.guidance_scale"),
        ({"pytorch": {"prompt_lookup_num_tokens": 3}}, "pytorch.prompt_lookup_num_tokens"),
        ({"pytorch": {"cache_implementation": "static"}}, "pytorch.cache_implementation"),
        ({"pytorch": {"use_cache": False}}, "pytorch.use_cache"),
        ({"pytorch": {"output_scores": True}}, "pytorch.output_scores"),
        ({"pytorch": {"extra": {"max_time": 5.0}}}, "pytorch.extra.max_time"),
    ],
)
def test_settings_continuous_batching_cannot_honour_are_refused(
    tiny_model_dir: Path, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^{named}\b.*load.mode: concurrency"):
        check_continuous_batching(config(tiny_model_dir, **fields), transformers.__version__)


@pytest.mark.parametrize(
    "fields",
    [
        {"decoder": {"num_beams": 1, "repetition_penalty": 1.0, "ignore_eos": True}},
        {"decoder": {"do_sample": True, "temperature": 0.7, "top_k": 5, "min_p": 0.1}},
        {"pytorch": {"extra": {"typical_p": 0.9}, "use_cache": True}},
    ],
)
def test_settings_it_honours_pass(tiny_model_dir: Path, fields: dict[str, Any]) -> None:
    check_continuous_batching(config(tiny_model_dir, **fields), transformers.__version__)


def test_a_processor_from_the_models_generation_config_is_refused(tiny_model_dir: Path) -> None:
    def with_penalty(*args: Any, **kwargs: Any) -> Any:
        model = transformers.AutoModelForCausalLM.from_pretrained(*args, **kwargs)
        model.generation_config.repetition_penalty = 1.3  # as a generation_config.json may
        return model

    with pytest.raises(ConfigError, match=r"RepetitionPenaltyLogitsProcessor.*pytorch.extra"):
        loaded(config(tiny_model_dir), model_loader=with_penalty)


def test_a_concurrency_run_of_the_embedded_model_end_to_end() -> None:
    cfg = ExperimentConfig.model_validate(
        {
            "model": "smollm2-135m",
            "backend": "pytorch",
            "n": 8,
            "max_output_tokens": 4,
            "chat_template": False,
            "decoder": {"ignore_eos": True},
            "load": POOL,
            "warmup": {"n_warmup": 1, "max_output_tokens": 2, "thermal_floor_s": 0},
            "baseline": {"enabled": False},
            "energy": {"sampler": "null"},
        }
    )
    run = run_experiment(cfg, sleep=lambda _: None, telemetry_sources=[])
    records = run.records
    assert [r.index for r in records] == list(range(8))
    assert peak_in_flight(records) == 4
    assert all(r.output_tokens == sum(r.chunk_tokens) == 4 for r in records)
    assert run.result.metrics.total_output_tokens == sum(r.output_tokens for r in records)
