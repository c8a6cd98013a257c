"""The index of the experiment config models: every section and type, imported from here.

The Pydantic models are the single source of truth for every parameter; each section lives in
its own module and this one re-exports them, so ``from llenergymeasure.config.models import
X`` works for all of them:

- :mod:`~llenergymeasure.config.base`: the strict base model and the backend names;
- :mod:`~llenergymeasure.config.field_meta`: the typed per-field metadata (:class:`FieldMeta`);
- :mod:`~llenergymeasure.config.common`: dataset, warmup, energy, baseline, telemetry, lora;
- :mod:`~llenergymeasure.config.decoder`: generation parameters shared by the backends;
- :mod:`~llenergymeasure.config.load`: how requests arrive (offline, rate, concurrency) and
  the latency targets;
- :mod:`~llenergymeasure.config.pytorch`, :mod:`~llenergymeasure.config.vllm`,
  :mod:`~llenergymeasure.config.tensorrt`, :mod:`~llenergymeasure.config.server`: one section
  per backend;
- :mod:`~llenergymeasure.config.experiment`: :class:`ExperimentConfig` and its cross-section
  rules.

Field descriptions state units, the effect on energy/throughput, and hardware requirements;
the CLI help, docs and test values derive from them. Validators are pure: no GPU, file or
network access happens there.
"""

from llenergymeasure.config.base import BACKEND_NAMES, BackendName, _Strict
from llenergymeasure.config.common import (
    BaselineConfig,
    DatasetConfig,
    EnergyConfig,
    LoraConfig,
    SamplerName,
    TelemetryConfig,
    WarmupConfig,
)
from llenergymeasure.config.decoder import BEAM_ONLY, SAMPLING_ONLY, DecoderConfig, decoder_backends
from llenergymeasure.config.experiment import ExperimentConfig, Precision
from llenergymeasure.config.field_meta import FieldMeta, field_meta
from llenergymeasure.config.load import Arrival, LoadConfig, LoadMode, SloConfig
from llenergymeasure.config.pytorch import PyTorchConfig
from llenergymeasure.config.server import ServerApi, ServerConfig
from llenergymeasure.config.tensorrt import (
    TORCH_RUNTIME_ONLY,
    TensorRTBuildConfig,
    TensorRTConfig,
    TensorRTKvCacheConfig,
    TensorRTQuantAlgo,
    TensorRTQuantConfig,
)
from llenergymeasure.config.vllm import VllmConfig

__all__ = [
    "BACKEND_NAMES",
    "BEAM_ONLY",
    "SAMPLING_ONLY",
    "TORCH_RUNTIME_ONLY",
    "Arrival",
    "BackendName",
    "BaselineConfig",
    "DatasetConfig",
    "DecoderConfig",
    "EnergyConfig",
    "ExperimentConfig",
    "FieldMeta",
    "LoadConfig",
    "LoadMode",
    "LoraConfig",
    "Precision",
    "PyTorchConfig",
    "SamplerName",
    "ServerApi",
    "ServerConfig",
    "SloConfig",
    "TelemetryConfig",
    "TensorRTBuildConfig",
    "TensorRTConfig",
    "TensorRTKvCacheConfig",
    "TensorRTQuantAlgo",
    "TensorRTQuantConfig",
    "VllmConfig",
    "WarmupConfig",
    "_Strict",
    "decoder_backends",
    "field_meta",
]
