"""The measurement harness: runs one experiment and turns raw records into a result."""

from llenergymeasure.harness.observer import RunObserver, SilentObserver
from llenergymeasure.harness.runner import ExperimentRun, run_experiment
from llenergymeasure.harness.save import result_label, run_and_save

__all__ = [
    "ExperimentRun",
    "RunObserver",
    "SilentObserver",
    "result_label",
    "run_and_save",
    "run_experiment",
]
