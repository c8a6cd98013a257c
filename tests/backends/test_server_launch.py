"""Starting a server for a run (``server.launch``) and stopping every process of it.

Real processes, no fakes of the process table: the launched server is the shipped fake
OpenAI server (``python -m llenergymeasure.testing.fake_openai_server``) or a few lines of
Python; what is left afterwards is read with psutil.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from llenergymeasure.backends.server.launch import (
    log_tail,
    server_root,
    start_server,
)
from llenergymeasure.config.server import ServerConfig
from llenergymeasure.errors import BackendError, ConfigError

PYTHON = shlex.quote(sys.executable)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def options(launch: str, port: int = 9, ready_timeout_s: float = 60.0) -> ServerConfig:
    return ServerConfig(
        url=f"http://127.0.0.1:{port}/v1", launch=launch, ready_timeout_s=ready_timeout_s
    )


def fake_server_command(port: int) -> str:
    return f"{PYTHON} -m llenergymeasure.testing.fake_openai_server --port {port}"


def script(tmp_path: Path, body: str) -> str:
    """A Python script as a launch command."""
    path = tmp_path / "server.py"
    path.write_text(textwrap.dedent(body))
    return f"{PYTHON} {shlex.quote(str(path))}"


def session_processes(session_id: int) -> list[psutil.Process]:
    """Live (not zombie) processes of a session."""
    alive = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session_id and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except (OSError, psutil.Error):
            continue
    return alive


def test_a_launched_server_answers_then_stop_leaves_no_process(tmp_path: Path) -> None:
    port = free_port()
    server = start_server(options(fake_server_command(port), port), tmp_path / "server.log")
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200
        pid = server.process.pid
        assert os.getsid(pid) == pid and os.getpgid(pid) == pid  # a session of its own
        assert os.getsid(pid) != os.getsid(0)
    finally:
        server.stop()
    assert session_processes(pid) == []
    assert server.process.poll() is not None
    assert "ready http://127.0.0.1" in (tmp_path / "server.log").read_text()
    server.stop()  # again: nothing to do


SPAWNS_CHILDREN = """\
    import subprocess, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    # one child in the server's group, one that left it for a session of its own
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                     start_new_session=True)

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

    HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_stop_ends_every_descendant_even_one_in_another_session(tmp_path: Path) -> None:
    port = free_port()
    launch = script(tmp_path, SPAWNS_CHILDREN) + f" {port}"
    server = start_server(options(launch, port), tmp_path / "server.log")  # ready on /health
    leader = psutil.Process(server.process.pid)
    children = leader.children(recursive=True)
    assert len(children) == 2
    server.stop()
    gone, alive = psutil.wait_procs(children, timeout=0)
    assert alive == [] and len(gone) == 2
    assert session_processes(leader.pid) == []


IGNORES_SIGTERM = """\
    import signal, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    class Models(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

    HTTPServer(("127.0.0.1", int(sys.argv[1])), Models).serve_forever()
"""


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    port = free_port()
    launch = script(tmp_path, IGNORES_SIGTERM) + f" {port}"
    server = start_server(options(launch, port), tmp_path / "server.log")
    server.stop(grace_s=0.5)
    assert server.process.returncode == -signal.SIGKILL
    assert session_processes(server.process.pid) == []


def test_a_server_that_exits_before_ready_fails_with_its_log_tail(tmp_path: Path) -> None:
    lines = "; ".join(f"print('line {i}')" for i in range(30))
    launch = f"{PYTHON} -c \"{lines}; print('error: no such model'); raise SystemExit(3)\""
    with pytest.raises(BackendError, match="exited with code 3 before it was ready") as caught:
        start_server(options(launch), tmp_path / "server.log")
    message = str(caught.value)
    assert message.endswith("error: no such model")
    assert "line 29" in message and "line 5\n" not in message  # the tail only
    assert str(tmp_path / "server.log") in message


def loading_server(tmp_path: Path) -> tuple[str, Path]:
    """A server that loads forever (never listens), and where it writes its pid once up."""
    pid_file = tmp_path / "pid"
    launch = script(tmp_path, f"""\
        import os, time
        print("loading weights...", flush=True)
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(600)
    """)  # fmt: skip
    return launch, pid_file


def after_pid_file(pid_file: Path, then: Callable[[float], None]) -> Callable[[float], None]:
    """A readiness wait that first lets the server write its pid (so the test can find it)."""

    def wait(seconds: float) -> None:
        for _ in range(1200):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.05)
        then(seconds)

    return wait


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_server_never_ready_times_out_and_is_stopped(tmp_path: Path) -> None:
    launch, pid_file = loading_server(tmp_path)
    with pytest.raises(BackendError, match=r"not ready within server.ready_timeout_s = 1 s"):
        start_server(
            options(launch, ready_timeout_s=1.0), tmp_path / "server.log",
            sleep=after_pid_file(pid_file, time.sleep),
        )  # fmt: skip
    assert "loading weights..." in (tmp_path / "server.log").read_text()
    assert gone(int(pid_file.read_text()))


def test_ctrl_c_while_waiting_for_readiness_stops_the_server(tmp_path: Path) -> None:
    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    launch, pid_file = loading_server(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        start_server(
            options(launch), tmp_path / "server.log", sleep=after_pid_file(pid_file, interrupt)
        )
    assert gone(int(pid_file.read_text()))


SELF_KILLING_LLEM = """\
    import os, signal, sys
    from pathlib import Path
    from llenergymeasure.backends.server.launch import start_server
    from llenergymeasure.config.server import ServerConfig

    port = int(sys.argv[1])
    launch = f"{sys.executable} -m llenergymeasure.testing.fake_openai_server --port {port}"
    server = start_server(ServerConfig(url=f"http://127.0.0.1:{port}/v1", launch=launch),
                          Path(sys.argv[2]))
    print(server.process.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no finally, no unload: as a study's timeout
"""


def test_a_server_stops_when_llem_is_killed(tmp_path: Path) -> None:
    runner = tmp_path / "llem_like.py"
    runner.write_text(textwrap.dedent(SELF_KILLING_LLEM))
    done = subprocess.run(
        [sys.executable, str(runner), str(free_port()), str(tmp_path / "server.log")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid = int(done.stdout.strip())
    try:
        server = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return  # already gone
    _, alive = psutil.wait_procs([server], timeout=60)  # its death signal: SIGTERM
    assert alive == []


@pytest.mark.parametrize(
    ("launch", "problem"),
    [
        ("", "server.launch is empty"),
        ("no-such-server-program --port 1", "'no-such-server-program' is not a command"),
        ("vllm serve 'unclosed", "server.launch cannot be split"),
    ],
)
def test_a_launch_command_that_cannot_run_is_a_config_error(
    tmp_path: Path, launch: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        start_server(options(launch), tmp_path / "server.log")


def test_the_root_url_drops_v1() -> None:
    assert server_root("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000"
    assert server_root("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000"
    assert server_root("http://host:30000") == "http://host:30000"


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert log_tail(tmp_path / "missing.log") == ""
