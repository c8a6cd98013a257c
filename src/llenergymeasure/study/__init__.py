"""Studies: sweeps × cycles, each experiment in an isolated process, resumable."""

from llenergymeasure.study.runner import run_study

__all__ = ["run_study"]
