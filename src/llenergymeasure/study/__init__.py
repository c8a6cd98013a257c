"""Studies: sweeps × cycles, each experiment in an isolated process, resumable.

``run_study`` loads on first use (PEP 562): a study's spawned child imports this package on
its way to :mod:`llenergymeasure.study.worker`, and must not pay for the runner's imports
before it has armed its parent-death signal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llenergymeasure.study.runner import run_study

__all__ = ["run_study"]


def __getattr__(name: str) -> Any:
    if name == "run_study":
        from llenergymeasure.study.runner import run_study

        return run_study
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
