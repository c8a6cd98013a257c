"""LLenergyMeasure: measure the energy, throughput and latency of LLM inference.

>>> import llenergymeasure as llem
>>> result = llem.run("experiment.yaml")  # doctest: +SKIP
"""

from llenergymeasure._version import __version__
from llenergymeasure.api import run
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import StudyConfig
from llenergymeasure.errors import (
    BackendError,
    ConfigError,
    DatasetError,
    DependencyError,
    EnergySamplerError,
    LLEMError,
    ModelNotFoundError,
    ResultsError,
    SamplerUnavailableError,
)
from llenergymeasure.reporting import load_results, report  # pandas/plotly load on first call
from llenergymeasure.results import ExperimentResult, StudyResult, load_result, load_study_result

__all__ = [
    "BackendError",
    "ConfigError",
    "DatasetError",
    "DependencyError",
    "EnergySamplerError",
    "ExperimentConfig",
    "ExperimentResult",
    "LLEMError",
    "ModelNotFoundError",
    "ResultsError",
    "SamplerUnavailableError",
    "StudyConfig",
    "StudyResult",
    "__version__",
    "load_result",
    "load_results",
    "load_study_result",
    "report",
    "run",
]
