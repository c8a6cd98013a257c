"""Shipped fakes for testing without hardware: fake ``pynvml``, ``zeus`` and ``tensorrt_llm``.

In tests, install them for a block::

    from llenergymeasure.testing import FakeGpuSpec, install_fake_pynvml

    with install_fake_pynvml([FakeGpuSpec(power_w=250.0)]) as fake:
        result = llenergymeasure.run({..., "energy": {"sampler": "nvml"}})

To run the ``llem`` CLI in a subprocess against the fakes, start it through this package
instead of the ``llem`` script, with the fake's spec in the environment::

    LLEM_FAKE_NVML='{"gpus": [{"power_w": 250}]}' python -m llenergymeasure.testing run exp.yaml

``LLEM_FAKE_TENSORRT=1`` (or a JSON object of :class:`FakeTrtLlmSpec` fields) makes
``backend: tensorrt`` run on the fake TensorRT-LLM, end to end through the CLI.

Only ``python -m llenergymeasure.testing`` reads ``LLEM_FAKE_NVML`` / ``LLEM_FAKE_ZEUS`` /
``LLEM_FAKE_TENSORRT``; the ``llem`` command and the library never do, so a stray variable
cannot turn a real measurement into a synthetic one. Readings taken through a fake carry a
``simulated_device`` warning.
"""

from llenergymeasure.testing.fake_pynvml import (
    FakeGpuSpec,
    FakeNvml,
    fake_from_spec,
    install_fake_pynvml,
)
from llenergymeasure.testing.fake_tensorrt_llm import (
    FakeTrtLlm,
    FakeTrtLlmSpec,
    fake_tensorrt_from_spec,
    install_fake_tensorrt_llm,
)

FAKE_NVML_ENV = "LLEM_FAKE_NVML"
"""JSON spec of the fake NVML for ``python -m llenergymeasure.testing`` (see fake_from_spec)."""
FAKE_ZEUS_ENV = "LLEM_FAKE_ZEUS"
"""JSON spec of the fake Zeus for ``python -m llenergymeasure.testing``."""
FAKE_TENSORRT_ENV = "LLEM_FAKE_TENSORRT"
"""``1`` or a JSON spec of the fake TensorRT-LLM for ``python -m llenergymeasure.testing``."""

__all__ = [
    "FAKE_NVML_ENV",
    "FAKE_TENSORRT_ENV",
    "FAKE_ZEUS_ENV",
    "FakeGpuSpec",
    "FakeNvml",
    "FakeTrtLlm",
    "FakeTrtLlmSpec",
    "fake_from_spec",
    "fake_tensorrt_from_spec",
    "install_fake_pynvml",
    "install_fake_tensorrt_llm",
]
