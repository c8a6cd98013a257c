"""LLenergyMeasure: measure the energy, throughput and latency of LLM inference.

>>> import llenergymeasure as llem
>>> result = llem.run("experiment.yaml")  # doctest: +SKIP

The public names load on first use (PEP 562), so ``import llenergymeasure`` and ``llem --help``
stay fast: no Pydantic model is built and no pyarrow, torch or pandas is imported until a name
that needs it is touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llenergymeasure._version import __version__

if TYPE_CHECKING:  # type checkers and IDEs see the names; at run time __getattr__ loads them
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
    from llenergymeasure.reporting import load_results, report
    from llenergymeasure.results.io import load_result
    from llenergymeasure.results.models import ExperimentResult
    from llenergymeasure.results.study import StudyResult, load_study_result

# public name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "run": "llenergymeasure.api",
    "ExperimentConfig": "llenergymeasure.config.models",
    "StudyConfig": "llenergymeasure.config.study",
    "BackendError": "llenergymeasure.errors",
    "ConfigError": "llenergymeasure.errors",
    "DatasetError": "llenergymeasure.errors",
    "DependencyError": "llenergymeasure.errors",
    "EnergySamplerError": "llenergymeasure.errors",
    "LLEMError": "llenergymeasure.errors",
    "ModelNotFoundError": "llenergymeasure.errors",
    "ResultsError": "llenergymeasure.errors",
    "SamplerUnavailableError": "llenergymeasure.errors",
    "load_results": "llenergymeasure.reporting",  # pandas/plotly load on first call
    "report": "llenergymeasure.reporting",
    "load_result": "llenergymeasure.results.io",
    "ExperimentResult": "llenergymeasure.results.models",
    "StudyResult": "llenergymeasure.results.study",
    "load_study_result": "llenergymeasure.results.study",
}

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


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access and cache the name here (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
