"""The `llem` command line: a thin typer wrapper over the library."""

from llenergymeasure.cli.app import app, main

__all__ = ["app", "main"]
