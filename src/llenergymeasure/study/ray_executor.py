"""Run a study's experiments as Ray tasks on a Ray cluster (``execution.runner: ray``).

Each (experiment, cycle) becomes one Ray task that claims the GPUs the experiment uses
(``num_gpus``, see :func:`gpus_needed`). On the node Ray picks, the task runs the experiment
exactly as the local runner does: :func:`~llenergymeasure.study.isolation.run_isolated` starts
a fresh ``spawn`` child of the task's worker with the same child code, timeout, crash handling
and log. Ray reuses worker processes between tasks; the child keeps every measurement in a
fresh process, reports a segfault or out-of-memory kill with its exit code and log tail, and
dies with the worker when a task is cancelled.

The child writes its result directory into the study directory, so that directory must be on a
filesystem every node mounts at the same path (NFS, Lustre, ...); on one machine it is. Every
node needs llenergymeasure (and the backend's libraries) installed.

Tasks are submitted one at a time, in the manifest's order, and the next is sent only when
the previous one has ended: cycle order holds, and no two experiments run at once (running
them concurrently across nodes can come later). Ray never retries a task (``max_retries=0``):
a crash is a failed entry, not a silent second measurement.

Where: ``execution.ray_address``, else ``RAY_ADDRESS``, else a cluster started with
``ray start`` on this machine, else a local Ray instance started for the study and shut down
after it (Ray's own address resolution). A program that already called ``ray.init`` keeps its
connection, and it is left open.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from llenergymeasure.errors import ConfigError, DependencyError
from llenergymeasure.study.isolation import ChildTarget, Outcome, log_tail, run_isolated
from llenergymeasure.study.worker import run_child

INSTALL_HINT = "pip install 'llenergymeasure[ray]'"

SCHEDULING_GRACE_S = 60.0
"""How long the driver waits for a task beyond ``experiment_timeout_s`` (queueing for
resources, worker start-up, the node's own terminate-then-kill) before it cancels the task.
The node enforces ``experiment_timeout_s`` itself; this is the backstop."""

CANCEL_WAIT_S = 30.0
"""How long to wait for a cancelled task's worker to go before the next task is sent."""


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        DependencyError: Ray is not installed.
    """
    try:
        import ray
    except ImportError as exc:
        raise DependencyError(f"execution.runner 'ray' needs Ray: {INSTALL_HINT}") from exc
    return ray


def gpus_needed(config: Mapping[str, Any]) -> int:
    """How many GPUs one experiment uses (its Ray task's ``num_gpus`` on a GPU cluster).

    The number of ``energy.gpu_indices`` (1 when unset), or the backend's tensor × pipeline
    parallel size where that is larger.
    """
    indices = (config.get("energy") or {}).get("gpu_indices")
    measured = len(indices) if indices else 1
    section = config.get(str(config.get("backend", "pytorch"))) or {}
    parallel = int(section.get("tensor_parallel_size", 1)) * int(
        section.get("pipeline_parallel_size", 1)
    )
    return max(measured, parallel)


def run_on_node(
    config: dict[str, Any], out_dir: str, log_path: str, timeout_s: float, target: ChildTarget
) -> Outcome:
    """The Ray task's body: run one experiment in a fresh child on this node."""
    if not Path(out_dir).is_dir():
        return Outcome(
            "failed",
            error=f"the study's results directory {out_dir} is not visible on Ray node "
            f"{socket.gethostname()}: runner 'ray' needs it on a filesystem that every node "
            "mounts at the same path",
        )
    return run_isolated(config, Path(out_dir), Path(log_path), timeout_s, target)


class RayExecutor:
    """Runs experiments as Ray tasks; a context manager holding the cluster connection.

    Called like :func:`~llenergymeasure.study.isolation.run_isolated` and, like it, never
    raises for an experiment's failure: Ray's errors become failed outcomes with the reason.

    Args:
        address: the cluster (``execution.ray_address``); None lets Ray resolve it.
        grace_s: see :data:`SCHEDULING_GRACE_S`.

    Raises:
        DependencyError: Ray is not installed (on construction).
    """

    def __init__(self, address: str | None = None, *, grace_s: float = SCHEDULING_GRACE_S):
        self._ray = import_ray()
        self._address = address
        self._grace_s = grace_s
        self._owns_connection = False
        self._task: Any = None

    def __enter__(self) -> RayExecutor:
        """Connect (unless this process is already connected).

        Raises:
            ConfigError: the cluster cannot be reached or Ray refuses to start.
        """
        ray = self._ray
        if not ray.is_initialized():
            where = self._address or os.environ.get("RAY_ADDRESS") or "the local Ray instance"
            try:
                ray.init(
                    address=self._address,
                    include_dashboard=False,
                    log_to_driver=False,  # stdout stays machine-readable; logs/ has the output
                    logging_level=logging.WARNING,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(
                    f"cannot connect to the Ray cluster at {where} (execution.ray_address or "
                    f"RAY_ADDRESS): {exc}"
                ) from None
            self._owns_connection = True
        self._task = ray.remote(max_retries=0)(run_on_node)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Disconnect if this executor connected (a local instance it started stops)."""
        if self._owns_connection:
            self._ray.shutdown()
            self._owns_connection = False

    def __call__(
        self,
        config: dict[str, Any],
        out_dir: Path,
        log_path: Path,
        timeout_s: float,
        target: ChildTarget = run_child,
    ) -> Outcome:
        """Run ``config`` as a Ray task and wait for it; see ``run_isolated`` for the args.

        Raises:
            KeyboardInterrupt: after cancelling the task.
        """
        if self._task is None:
            raise RuntimeError("RayExecutor is used outside its `with` block")
        num_gpus = self._num_gpus(config)
        refusal = self._refusal(config, num_gpus)
        if refusal is not None:
            return Outcome("failed", error=refusal)
        ref = self._task.options(
            num_gpus=num_gpus, name=f"llem:{config.get('name') or 'experiment'}"
        ).remote(config, str(out_dir), str(log_path), timeout_s, target)
        return self._wait(ref, log_path, timeout_s)

    def _num_gpus(self, config: Mapping[str, Any]) -> int:
        """The experiment's GPUs on a cluster that has any, else 0 (a CPU cluster)."""
        cluster_gpus = float(self._ray.cluster_resources().get("GPU", 0))
        return gpus_needed(config) if cluster_gpus > 0 else 0

    def _refusal(self, config: Mapping[str, Any], num_gpus: int) -> str | None:
        """Why the task could never run as asked (None when it can)."""
        if num_gpus == 0:
            return None
        nodes = [n for n in self._ray.nodes() if n.get("Alive")]
        largest = max((float(n.get("Resources", {}).get("GPU", 0)) for n in nodes), default=0.0)
        if num_gpus > largest:
            return (
                f"needs {num_gpus} GPUs on one node; the largest node of the Ray cluster has "
                f"{largest:g}"
            )
        indices = (config.get("energy") or {}).get("gpu_indices")
        if indices and sorted(indices) != list(range(len(indices))):
            return (
                f"energy.gpu_indices {indices}: a Ray task sees the GPUs Ray gives it as "
                f"cuda:0..{len(indices) - 1} (which physical GPUs is Ray's choice); set "
                f"gpu_indices to {list(range(len(indices)))}"
            )
        return None

    def _wait(self, ref: Any, log_path: Path, timeout_s: float) -> Outcome:
        ray = self._ray
        limit_s = timeout_s + self._grace_s
        try:
            outcome = ray.get(ref, timeout=limit_s)
        except KeyboardInterrupt:
            self._cancel(ref)
            raise
        except ray.exceptions.GetTimeoutError:
            self._cancel(ref)
            return Outcome(
                "failed",
                error=f"no answer from the Ray task within {limit_s:g} s (experiment_timeout_s "
                f"{timeout_s:g} s + {self._grace_s:g} s to schedule it): task cancelled; was it "
                "waiting for resources, or did its node stop answering?",
                stderr_tail=log_tail(log_path),
            )
        except ray.exceptions.RayError as exc:
            return ray_error_outcome(exc, log_path)
        if not isinstance(outcome, Outcome):
            return Outcome("failed", error=f"the Ray task returned {type(outcome).__name__}")
        return outcome

    def _cancel(self, ref: Any) -> None:
        """Force-cancel (kills the worker, and with it the experiment's child), then wait."""
        ray = self._ray
        with contextlib.suppress(ray.exceptions.RayError):
            ray.cancel(ref, force=True)
        with contextlib.suppress(ray.exceptions.RayError):
            ray.wait([ref], timeout=CANCEL_WAIT_S)


def ray_error_outcome(exc: BaseException, log_path: Path) -> Outcome:
    """A failed outcome for a Ray error (the task raised, its worker or node died, ...)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):  # RayTaskError: the task body raised
        error = f"the Ray task raised {type(cause).__name__}: {cause}"
    else:
        lines = str(exc).strip().splitlines()
        error = f"Ray {type(exc).__name__}: {lines[0] if lines else 'no detail'}"
    return Outcome("failed", error=error, stderr_tail=log_tail(log_path))
