"""The child side of an isolated experiment: a fresh `spawn` process runs one experiment.

The child starts in :func:`child_main`. This module imports nothing but the standard library
at its top (and ``llenergymeasure.study`` loads its members lazily), so the child arms its
parent-death signal within milliseconds of starting, before it imports the package or the
target's module: killed at any moment, even by SIGKILL, the study process takes its child
with it. The parent's state (loaded libraries, CUDA contexts, threads) never leaks into a
measurement.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

_PR_SET_PDEATHSIG = 1
EXIT_PARENT_GONE = 1
"""The child's exit status when its parent died before the death signal was armed."""


def child_main(
    parent_pid: int,
    target: str,
    config: dict[str, Any],
    out_dir: str,
    log_path: str,
    conn: Connection,
) -> None:
    """The spawned child's entry point: die with the parent, then run ``target``.

    Args:
        parent_pid: the pid of the process that started this child (the study process).
        target: ``"module:function"`` with :func:`run_child`'s signature, imported only once
            the death signal is armed (see :func:`target_reference`).
        config, out_dir, log_path, conn: passed on to the target.
    """
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C stops
    module, _, name = target.partition(":")
    getattr(importlib.import_module(module), name)(config, out_dir, log_path, conn)


def target_reference(target: Any) -> str:
    """``"module:function"`` for a module-level function (what :func:`child_main` takes)."""
    return f"{target.__module__}:{target.__qualname__}"


def die_with_parent(parent_pid: int) -> None:
    """Make the kernel kill this process when its parent dies (Linux), and exit now if the
    parent already has: a parent killed before the signal was armed has left this process
    to be adopted by another, so its pid is no longer ``parent_pid``."""
    if sys.platform.startswith("linux"):
        import ctypes  # a few milliseconds; nothing heavier runs before the signal is armed

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(EXIT_PARENT_GONE)


def _redirect_output(log_path: str) -> None:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to ``log_path``."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


class PhaseSender:
    """A run observer that sends ``("phase", name)`` to the study process as each phase of
    the experiment begins (the study's display shows it); counts stay here."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def phase(self, name: str, total: int | None = None) -> None:
        """Send the phase's name."""
        self._conn.send(("phase", name))

    def advance(self, n: int) -> None:
        """Not sent: a message per token would cost the measured window."""


def run_child(config: dict[str, Any], out_dir: str, log_path: str, conn: Connection) -> None:
    """Run one experiment, sending ``("phase", name)`` as each phase begins, then
    ``("done", result_dir)`` or ``("failed", message)``; exit."""
    _redirect_output(log_path)
    conn.send(_experiment(config, out_dir, PhaseSender(conn)))
    conn.close()
    sys.stdout.flush()
    sys.stderr.flush()
    # Results are already on disk (written atomically): skip the interpreter's teardown of
    # torch and friends, which costs about a second per experiment.
    os._exit(0)


def _experiment(
    config: dict[str, Any], out_dir: str, observer: PhaseSender
) -> tuple[str, str | None]:
    from llenergymeasure.config.loader import build_experiment_config
    from llenergymeasure.errors import LLEMError
    from llenergymeasure.harness import run_and_save

    try:
        experiment = build_experiment_config(config, source="study experiment")
        result = run_and_save(experiment, out_dir, observer=observer)
    except LLEMError as exc:
        return ("failed", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # anything else still becomes a failed entry, not a lost study
        import traceback

        traceback.print_exc()
        return ("failed", f"{type(exc).__name__}: {exc}")
    return ("done", result.output_dir)
