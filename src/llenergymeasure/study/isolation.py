"""Run one experiment in a fresh `spawn` subprocess with a timeout.

The result comes back over a Pipe, after the experiment's phases (``("phase", name)``, passed
to ``on_phase`` as they arrive); a child that exceeds its timeout is terminated, then
killed; a child that crashes (exception, segfault, out-of-memory kill) becomes a failed
outcome with its exit code and the tail of its output. The study goes on either way.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from llenergymeasure.study.worker import child_main, run_child, target_reference

STDERR_TAIL_CHARS = 4000
TERMINATE_GRACE_S = 10.0


@dataclass(frozen=True)
class Outcome:
    """How one isolated experiment ended."""

    status: str  # "done" or "failed"
    result_dir: str | None = None
    error: str | None = None
    exit_code: int | None = None
    stderr_tail: str | None = None


ChildTarget = Callable[[dict[str, Any], str, str, Connection], None]


def run_isolated(
    config: dict[str, Any],
    out_dir: Path,
    log_path: Path,
    timeout_s: float,
    target: ChildTarget = run_child,
    on_phase: Callable[[str], None] | None = None,
) -> Outcome:
    """Run ``config`` in a spawned child; never raises for the child's failures.

    Args:
        config: the experiment's fields (sent to the child as plain data).
        out_dir: where the child writes its result directory.
        log_path: the child's stdout and stderr go here (the tail is kept on failure).
        timeout_s: wall-clock limit for the child, start-up included.
        target: the child's entry point (a module-level function, importable by `spawn`);
            tests use the fakes in :mod:`llenergymeasure.testing.study_targets`.
        on_phase: called with each phase the child's experiment enters.

    Raises:
        KeyboardInterrupt: after stopping the child, so the caller can record and exit 130.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    # Not a daemon: engines such as vLLM's start processes of their own, which a daemonic
    # process may not. The child still dies with the study: child_main arms PR_SET_PDEATHSIG
    # before it imports the target's module. It is always joined or stopped below.
    args = (os.getpid(), target_reference(target), config, str(out_dir), str(log_path), sender)
    child = context.Process(target=child_main, args=args, daemon=False)
    child.start()
    sender.close()  # the child holds the only writer: EOF means it is gone
    try:
        message = _wait_for_message(receiver, child, timeout_s, on_phase)
    except KeyboardInterrupt:
        _stop(child)
        raise
    if message == "timeout":
        _stop(child)
        return Outcome("failed", error=f"timed out after {timeout_s:g} s (child killed)",
                       exit_code=child.exitcode, stderr_tail=log_tail(log_path))  # fmt: skip
    child.join(TERMINATE_GRACE_S)  # a child that sent its message exits on its own
    if child.is_alive():
        _stop(child)
    if message is None:
        return Outcome("failed", error=f"child process died (exit code {child.exitcode})",
                       exit_code=child.exitcode, stderr_tail=log_tail(log_path))  # fmt: skip
    status, payload = message
    if status == "done":
        return Outcome("done", result_dir=payload, exit_code=child.exitcode)
    tail = log_tail(log_path)
    return Outcome("failed", error=payload, exit_code=child.exitcode, stderr_tail=tail)


def _wait_for_message(
    receiver: Any, child: Any, timeout_s: float, on_phase: Callable[[str], None] | None
) -> Any:
    """The child's final message, None if it died without one, or "timeout"; its phase
    messages go to ``on_phase`` on the way."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout"
        if receiver.poll(min(remaining, 0.5)):
            try:
                message = receiver.recv()
            except EOFError:
                return None
            if message[0] != "phase":
                return message
            if on_phase is not None:
                on_phase(message[1])
        elif not child.is_alive() and not receiver.poll(0):
            return None


def _stop(child: Any) -> None:
    """Terminate (SIGTERM), then kill (SIGKILL) if it does not go."""
    child.terminate()
    child.join(TERMINATE_GRACE_S)
    if child.is_alive():
        child.kill()
        child.join()


def log_tail(log_path: Path) -> str | None:
    """The last STDERR_TAIL_CHARS characters of a child's log, or None (empty/unreadable)."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text[-STDERR_TAIL_CHARS:] or None
