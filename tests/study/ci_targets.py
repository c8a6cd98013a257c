"""A stand-in study child for the target_ci tests that starts in milliseconds.

The test writes each experiment's results ahead of time, through the real writer, under
``$CI_TARGETS_DIR/<experiment name>/<k>/``; the k-th child run of that experiment (k from 1)
copies the k-th one into its staging folder and reports it done, or fails where there is
none. This module imports only the standard library, so a spawned child starts in
milliseconds and never loads the package or torch.
"""

from __future__ import annotations

import os
import shutil
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ENV = "CI_TARGETS_DIR"
CALLS_FILE = "calls"


def copy_prepared(config: dict[str, Any], out_dir: str, log_path: str, conn: Connection) -> None:
    """The child: the next prepared result of this experiment, or a failure where there is
    none (as a failed experiment reports it)."""
    root = Path(os.environ[ENV])
    name = str(config["name"])
    with open(root / CALLS_FILE, "a", encoding="utf-8") as calls:
        calls.write(f"{name}\n")
    k = calls_of(root).count(name)
    prepared = root / name / str(k)
    if not prepared.is_dir():
        conn.send(("failed", f"no prepared result {k} for {name}"))
    else:
        target = Path(out_dir) / f"{name}_{k}"
        shutil.copytree(prepared, target)
        conn.send(("done", str(target)))
    conn.close()
    os._exit(0)


def calls_of(root: Path) -> list[str]:
    """The experiment names the children ran, in order."""
    path = root / CALLS_FILE
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
