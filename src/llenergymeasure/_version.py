"""Package version (single source for pyproject and `llem --version`)."""

__version__ = "0.1.0"
