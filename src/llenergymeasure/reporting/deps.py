"""The optional libraries a report needs (the ``[report]`` extra), imported on demand."""

from __future__ import annotations

import importlib
from types import ModuleType

from llenergymeasure.errors import DependencyError

INSTALL_HINT = "pip install 'llenergymeasure[report]'"


def require(module: str) -> ModuleType:
    """Import ``module`` (pandas, plotly...) or say how to install the report extra.

    Raises:
        DependencyError: the module is not installed (exit 1).
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DependencyError(
            f"llem report needs {module.split('.')[0]}, which is not installed: {INSTALL_HINT}"
        ) from None
