"""The measurement harness: runs one experiment and turns raw records into a result."""

from llenergymeasure.harness.observer import RunObserver, SilentObserver
from llenergymeasure.harness.runner import ExperimentRun, run_experiment

__all__ = ["ExperimentRun", "RunObserver", "SilentObserver", "run_experiment"]
