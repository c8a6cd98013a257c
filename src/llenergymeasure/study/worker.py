"""The child side of an isolated experiment: a fresh `spawn` process runs one experiment.

Only this module's top-level function is imported by the child, so the parent's state
(loaded libraries, CUDA contexts, threads) never leaks into a measurement.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """On Linux, ask the kernel to kill this child when the study process dies (even by
    SIGKILL), so no orphan keeps measuring after the study is gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _redirect_output(log_path: str) -> None:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to ``log_path``."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def run_child(config: dict[str, Any], out_dir: str, log_path: str, conn: Connection) -> None:
    """Run one experiment, send ``("done", result_dir)`` or ``("failed", message)``, exit."""
    _die_with_parent()
    _redirect_output(log_path)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C stops
    conn.send(_experiment(config, out_dir))
    conn.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # Results are already on disk (written atomically): skip the interpreter's teardown of
    # torch and friends, which costs about a second per experiment.
    os._exit(0)


def _experiment(config: dict[str, Any], out_dir: str) -> tuple[str, str | None]:
    from llenergymeasure.config.loader import build_experiment_config
    from llenergymeasure.errors import LLEMError
    from llenergymeasure.harness import run_and_save

    try:
        experiment = build_experiment_config(config, source="study experiment")
        result = run_and_save(experiment, out_dir)
    except LLEMError as exc:
        return ("failed", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # anything else still becomes a failed entry, not a lost study
        import traceback

        traceback.print_exc()
        return ("failed", f"{type(exc).__name__}: {exc}")
    return ("done", result.output_dir)
