"""Stand-in child processes for testing the study runner's failure handling.

Each has the signature of :func:`llenergymeasure.study.worker.run_child` and behaves as its
name says; :func:`by_name` picks the behaviour from the experiment's ``name`` and runs the
real experiment for any other name.
"""

from __future__ import annotations

import os
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from llenergymeasure.study.worker import run_child


def raise_error(config: dict[str, Any], out_dir: str, log_path: str, conn: Connection) -> None:
    """Fail the way an experiment does: an exception, reported over the pipe."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("loading model...\nBackendError: the GPU caught fire\n")
    conn.send(("failed", "BackendError: the GPU caught fire"))


def hang(config: dict[str, Any], out_dir: str, log_path: str, conn: Connection) -> None:
    """Never finish (until the parent's timeout kills it)."""
    while True:
        time.sleep(0.05)


def crash(config: dict[str, Any], out_dir: str, log_path: str, conn: Connection) -> None:
    """Die without a word, as a segfault or an OOM kill would."""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("about to crash\n")
    sys.stdout.flush()
    os._exit(139)


HARNESS_PHASES = ("loading model", "warmup", "idle baseline (30 s)", "measuring")
"""The phases a real experiment reports, in order (``llenergymeasure.harness.observer``)."""


def report_phases(config: dict[str, Any], out_dir: str, log_path: str, conn: Connection) -> None:
    """Send each harness phase as a real child does, then fail (no result to adopt)."""
    for name in HARNESS_PHASES:
        conn.send(("phase", name))
    conn.send(("failed", "BackendError: stopped after its phases (test target)"))


def by_name(config: dict[str, Any], out_dir: str, log_path: str, conn: Connection) -> None:
    """Dispatch on the experiment name: names containing raise/hang/crash behave so."""
    name = str(config.get("name", ""))
    for word, target in (("raise", raise_error), ("hang", hang), ("crash", crash)):
        if word in name:
            target(config, out_dir, log_path, conn)
            return
    run_child(config, out_dir, log_path, conn)
