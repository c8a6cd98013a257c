"""Start an inference server for a run (``server.launch``) and stop every process of it after.

The command runs in a session (and process group) of its own, so the terminal's Ctrl-C
reaches llem alone and llem decides when the server stops. Its stdout and stderr go to one
log file. The server is ready when ``GET {url}/models`` or ``GET {root}/health`` answers 200;
a server that exits first, or is not ready within ``server.ready_timeout_s``, fails the run
with the tail of its log, and whatever it started is stopped.

:meth:`RunningServer.stop` stops the whole server, not just the process llem started:
``vllm serve`` spawns an engine-core process, and a process may leave the group (or the
session). Every descendant and every process of the server's session gets SIGTERM, then
SIGKILL after a grace period, and is waited for.

Should llem itself die without stopping it (SIGKILL, a study's timeout), the server's first
process is armed to get SIGTERM at that moment (Linux's parent-death signal), so it still
shuts down; vLLM, SGLang and TGI stop their workers on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from llenergymeasure.backends.server.auth import auth_headers
from llenergymeasure.config.server import ServerConfig
from llenergymeasure.errors import BackendError, ConfigError

if TYPE_CHECKING:
    import httpx

READY_POLL_S = 0.5
"""Time between readiness probes."""
PROBE_TIMEOUT_S = 2.0
"""How long one readiness probe waits for an answer."""
STOP_GRACE_S = 20.0
"""How long the server has to exit after SIGTERM before what is left gets SIGKILL."""
KILL_WAIT_S = 5.0
"""How long to wait for processes to vanish after SIGKILL."""
LOG_TAIL_LINES = 20
"""Lines of the server's log quoted in a launch error."""

# Runs as the server's first process, then becomes the command (exec keeps the pid, the
# session and the death signal): SIGTERM when llem's thread that started it ends, unless
# llem is already gone (the signal would never come).
_EXEC_WITH_DEATH_SIGNAL = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (AttributeError, OSError):
    pass  # not Linux: stop() alone stops the server
if os.getppid() != int(sys.argv[1]):
    sys.exit("llem ended before the server started")
os.execvp(sys.argv[2], sys.argv[2:])
"""


def server_root(url: str) -> str:
    """The server's root URL: ``url`` without a trailing ``/`` and ``/v1``
    (``http://127.0.0.1:8000/v1`` -> ``http://127.0.0.1:8000``); ``/health`` and
    ``/metrics`` live there."""
    base = url.rstrip("/")
    return base.removesuffix("/v1").rstrip("/")


@dataclass
class RunningServer:
    """A server llem started: its first process (session and group leader) and its log.

    Attributes:
        process: the first process; its pid is the server's session and group id.
        log_path: where the server's stdout and stderr go.
        command: the command as configured (``server.launch``).
    """

    process: subprocess.Popen[bytes]
    log_path: Path
    command: str
    _stopped: bool = field(default=False, repr=False)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop every process of the server: SIGTERM, up to ``grace_s`` to exit, then SIGKILL,
        and wait for them. Calling it again does nothing."""
        if self._stopped:
            return
        others = self._other_processes()
        self._signal(signal.SIGTERM, others)
        deadline = time.monotonic() + grace_s
        _wait_for_exit(self.process, grace_s)
        psutil.wait_procs(others, timeout=max(0.0, deadline - time.monotonic()))
        left = self._other_processes()
        if self.process.poll() is None or left:
            self._signal(signal.SIGKILL, left)
            _wait_for_exit(self.process, KILL_WAIT_S)
            psutil.wait_procs(left, timeout=KILL_WAIT_S)
        self._stopped = True

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's log ('' when it has none)."""
        return log_tail(self.log_path, lines)

    def _signal(self, signum: int, others: Sequence[psutil.Process]) -> None:
        """``signum`` to the server's process group and to each of ``others``."""
        # an empty group (or one whose leader's pid was reused) has nothing left to stop
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)
        for process in others:
            try:
                process.send_signal(signum)
            except psutil.Error:
                continue  # gone meanwhile

    def _other_processes(self) -> list[psutil.Process]:
        """Every live process of the server except its first: the first's descendants and
        whatever else belongs to the server's session (a child its parent left behind).
        Zombies are left out: they have exited, only their parent has yet to reap them."""
        leader = self.process.pid
        found: dict[int, psutil.Process] = {}
        # when the first process is gone, its orphans are found by session below
        with contextlib.suppress(psutil.Error):
            found.update({p.pid: p for p in psutil.Process(leader).children(recursive=True)})
        for pid in psutil.pids():
            if pid == leader or pid in found:
                continue
            try:
                if os.getsid(pid) == leader:
                    found[pid] = psutil.Process(pid)
            except (OSError, psutil.Error):
                continue  # gone meanwhile, or not ours to see
        return [p for p in found.values() if _alive(p)]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_for_exit(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout_s)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when it is empty or unreadable)."""
    try:
        with path.open("rb") as log:
            log.seek(max(0, path.stat().st_size - 64 * 1024))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def start_server(
    options: ServerConfig, log_path: Path, *, sleep: Callable[[float], None] = time.sleep
) -> RunningServer:
    """Start ``options.launch`` in its own session, its output to ``log_path``, and wait
    until it is ready (see the module docstring).

    Args:
        options: the server section; ``launch`` is the command, ``url`` where it answers,
            ``ready_timeout_s`` how long it may take.
        log_path: the server's log (created or overwritten).
        sleep: waits between readiness probes.

    Returns:
        The running server; call :meth:`RunningServer.stop` when done.

    Raises:
        ConfigError: ``server.launch`` is unset, empty, not a command on PATH, or unparsable.
        BackendError: the server could not start, exited before it was ready, or was not
            ready within ``server.ready_timeout_s`` (the message ends with its log's tail).
        KeyboardInterrupt: after stopping the server.
    """
    argv = _command(options.launch)
    server = _spawn(argv, options.launch or "", log_path)
    try:
        _wait_until_ready(server, options, sleep)
    except BaseException:
        server.stop()
        raise
    return server


def _command(launch: str | None) -> list[str]:
    """``server.launch`` split as a shell would, its program found on PATH."""
    try:
        argv = shlex.split(launch or "")
    except ValueError as exc:
        raise ConfigError(f"server.launch cannot be split into a command: {exc}") from None
    if not argv:
        raise ConfigError("server.launch is empty: give the command that starts the server")
    if shutil.which(argv[0]) is None:
        raise ConfigError(
            f"server.launch: {argv[0]!r} is not a command found on PATH (install the server, "
            "or give its full path, e.g. 'python -m vllm.entrypoints.openai.api_server ...')"
        )
    return argv


def _spawn(argv: list[str], command: str, log_path: Path) -> RunningServer:
    """The server's first process, in a new session, output to ``log_path``."""
    wrapper = [sys.executable, "-c", _EXEC_WITH_DEATH_SIGNAL, str(os.getpid())]
    try:
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                wrapper + argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as exc:
        raise BackendError(f"server.launch could not start {command!r}: {exc}") from None
    return RunningServer(process, log_path, command)


def _wait_until_ready(
    server: RunningServer, options: ServerConfig, sleep: Callable[[float], None]
) -> None:
    """Return once the server answers; raise when it exits first or the time runs out.

    Raises:
        BackendError: it exited, or was not ready within ``options.ready_timeout_s``.
    """
    import httpx

    deadline = time.monotonic() + options.ready_timeout_s
    probes = [f"{options.url.rstrip('/')}/models", f"{server_root(options.url)}/health"]
    with httpx.Client(timeout=PROBE_TIMEOUT_S, headers=auth_headers(options)) as client:
        while True:
            code = server.process.poll()
            if code is not None:
                raise _launch_error(server, f"exited with code {code} before it was ready")
            if any(_answers(client, url) for url in probes):
                return
            if time.monotonic() >= deadline:
                raise _launch_error(server, (
                    f"was not ready within server.ready_timeout_s = "
                    f"{options.ready_timeout_s:g} s (GET {probes[0]} and GET {probes[1]} "
                    "never answered 200)"
                ))  # fmt: skip
            sleep(READY_POLL_S)


def _answers(client: httpx.Client, url: str) -> bool:
    import httpx

    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False  # not listening yet


def _launch_error(server: RunningServer, what: str) -> BackendError:
    tail = server.log_tail()
    shown = f"; the last lines of its log ({server.log_path}):\n{tail}" if tail else (
        f"; its log ({server.log_path}) is empty"
    )  # fmt: skip
    return BackendError(f"the server started by server.launch ({server.command!r}) {what}{shown}")
