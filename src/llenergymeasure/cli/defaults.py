"""The embedded default experiment: what `llem run` measures with no file and no model."""

from __future__ import annotations

from typing import Any

from llenergymeasure.backends.model_source import DEFAULT_EMBEDDED_MODEL

EMBEDDED_DEFAULT: dict[str, Any] = {
    "model": DEFAULT_EMBEDDED_MODEL,
    "backend": "pytorch",
    "name": "smollm2-135m_default",
    "n": 24,
    "max_input_tokens": 256,
    "max_output_tokens": 48,
    "warmup": {"n_warmup": 2, "max_output_tokens": 8},
    "baseline": {"duration_s": 3.0},
    "pytorch": {"batch_size": 8},
}
"""Small enough to finish in about a minute on 2 CPU cores, long enough for a >10 s window."""
