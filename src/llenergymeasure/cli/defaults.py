"""The embedded default experiment: what `llem run` measures with no file and no model."""

from __future__ import annotations

from typing import Any

from llenergymeasure.backends.model_source import DEFAULT_EMBEDDED_MODEL
from llenergymeasure.config.dotted import deep_copy, set_dotted

EMBEDDED_BATCH = 8
"""Requests the embedded default batches at a time, on every engine backend."""

BATCH_FIELDS: dict[str, str] = {
    "pytorch": "pytorch.batch_size",
    "vllm": "vllm.max_num_seqs",
    "tensorrt": "tensorrt.max_batch_size",
}
"""Each engine backend's field for the requests it batches at a time (a server batches as the
command that started it says)."""

EMBEDDED_MEMORY: dict[str, dict[str, Any]] = {"vllm": {"gpu_memory_utilization": 0.3}}
"""Backend settings beyond the batch: vLLM reserves 30 % of device memory (on a CPU machine, of
RAM), plenty for this model's KV cache, where its own 0.9 fails to start whenever other
processes hold more than a tenth of it."""

EMBEDDED_DEFAULT: dict[str, Any] = {
    "model": DEFAULT_EMBEDDED_MODEL,
    "n": 24,
    "max_input_tokens": 256,
    "max_output_tokens": 48,
    "warmup": {"n_warmup": 2, "max_output_tokens": 8},
    "baseline": {"duration_s": 3.0},
}
"""Small enough for a first run on 2 CPU cores (README: the time it took), long enough for a
>10 s window. Backend-neutral: :func:`embedded_default` adds the backend and its batch field."""


def embedded_default(backend: str) -> dict[str, Any]:
    """The embedded default for ``backend``: the same prompts and budgets on every backend,
    each engine batching :data:`EMBEDDED_BATCH` requests through its own field
    (:data:`BATCH_FIELDS`) with :data:`EMBEDDED_MEMORY`, named ``<model>_<backend>_default``."""
    data = deep_copy(EMBEDDED_DEFAULT)
    data["backend"] = backend
    data["name"] = f"{DEFAULT_EMBEDDED_MODEL}_{backend}_default"
    if backend in EMBEDDED_MEMORY:
        data[backend] = dict(EMBEDDED_MEMORY[backend])
    if backend in BATCH_FIELDS:
        set_dotted(data, BATCH_FIELDS[backend], EMBEDDED_BATCH)
    return data
