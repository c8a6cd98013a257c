"""A fake ``docker`` executable for testing the Docker runner without Docker.

:func:`write_fake_docker` writes a small Python script that answers the subcommands the
runner uses and appends each argv to ``calls.jsonl`` beside it::

    docker = write_fake_docker(tmp_path, FakeDockerSpec(images=["llenergymeasure:vllm"]))
    outcome = run_in_docker(config, out, log, 60, docker=str(docker))
    calls = read_calls(docker)  # [["run", "--rm", ...], ...]

``run`` reads the experiment config from the host directory mounted at ``/config``, writes a
plausible result directory into the host directory mounted at ``/results`` and prints its
container path, as ``llem run -q`` does. With ``run="llem"`` it runs the real experiment
instead: ``python -m llenergymeasure.cli run`` on this machine, with every container path in
the config and in ``-e`` variables mapped back through the ``-v`` mounts (so a path the runner
forgot to mount or rewrite fails as it would in a container). ``kill NAME`` stops a running
fake ``run`` of that name (exit code 137, as Docker reports a killed container).
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

CALLS_FILE = "calls.jsonl"


@dataclass(frozen=True)
class FakeDockerSpec:
    """How the fake behaves.

    Attributes:
        daemon: ``ok``; ``down`` (daemon not running); ``denied`` (user not in the docker group).
        runtimes: runtimes ``docker info`` reports (``nvidia`` means the toolkit is installed).
        images: images ``docker image inspect`` finds.
        run: ``ok`` writes a stand-in result; ``llem`` runs the experiment for real (see the
            module docstring); ``fail`` exits ``exit_code`` after an error on stderr;
            ``hang`` runs until killed; ``silent`` exits 0 printing nothing.
        exit_code: the exit code for ``run: fail``.
    """

    daemon: Literal["ok", "down", "denied"] = "ok"
    runtimes: list[str] = field(default_factory=lambda: ["io.containerd.runc.v2", "nvidia", "runc"])
    images: list[str] = field(default_factory=list)
    run: Literal["ok", "llem", "fail", "hang", "silent"] = "ok"
    exit_code: int = 1


_SCRIPT = r"""
import json, os, signal, sys, time
from pathlib import Path

SPEC = json.loads(__SPEC__)
HERE = Path(__file__).resolve().parent
argv = sys.argv[1:]
with open(HERE / "calls.jsonl", "a", encoding="utf-8") as calls:
    calls.write(json.dumps(argv) + "\n")
command = argv[0] if argv else ""

def daemon_error():
    if SPEC["daemon"] == "down":
        sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                         "Is the docker daemon running?\n")
        sys.exit(1)
    if SPEC["daemon"] == "denied":
        sys.stderr.write("permission denied while trying to connect to the Docker daemon socket "
                         "at unix:///var/run/docker.sock\n")
        sys.exit(1)

def mounts():
    found = {}
    for flag, value in zip(argv, argv[1:]):
        if flag == "-v":
            host, container = value.split(":")[:2]
            found[container] = Path(host)
    return found

def option(name):
    return argv[argv.index(name) + 1] if name in argv else None

def to_host(value):
    # A container path under a mount, as the host path (other values unchanged).
    if isinstance(value, dict):
        return {k: to_host(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_host(v) for v in value]
    if isinstance(value, str):
        for container, host in sorted(mounts().items(), key=lambda m: -len(m[0])):
            if value == container or value.startswith(container + "/"):
                return str(host) + value[len(container):]
    return value

def run_llem():
    # The real `llem run`, with container paths mapped back to the host.
    import subprocess, tempfile, yaml
    env = dict(os.environ)
    for flag, value in zip(argv, argv[1:]):
        if flag == "-e" and "=" in value:
            key, _, raw = value.partition("=")
            env[key] = to_host(raw)
    config = to_host(yaml.safe_load((mounts()["/config"] / "experiment.yaml").read_text()))
    env["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="fake-container-xdg-")  # no user config
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config, handle)
    results = str(mounts()["/results"])
    done = subprocess.run(
        [sys.executable, "-m", "llenergymeasure.cli", "run", handle.name, "--out", results, "-q"],
        env=env, stdout=subprocess.PIPE, text=True,
    )
    for line in done.stdout.splitlines():
        line = line.strip()
        print("/results" + line[len(results):] if line.startswith(results) else line)
    sys.exit(done.returncode)

if command == "info":
    daemon_error()
    runtimes = {name: {"path": name} for name in SPEC["runtimes"]}
    print(json.dumps({"ServerVersion": "27.0.0-fake", "Runtimes": runtimes}))
elif command == "image" and argv[1:2] == ["inspect"]:
    daemon_error()
    image = argv[2]
    if image not in SPEC["images"]:
        sys.stderr.write(f"Error: No such image: {image}\n")
        sys.exit(1)
    print(json.dumps([{"RepoTags": [image]}]))
elif command == "kill":
    daemon_error()
    pid_file = HERE / "containers" / (argv[1] + ".pid")
    if not pid_file.exists():
        sys.stderr.write(f"Error: No such container: {argv[1]}\n")
        sys.exit(1)
    os.kill(int(pid_file.read_text()), signal.SIGTERM)
    print(argv[1])
elif command == "run":
    daemon_error()
    name = option("--name") or "anonymous"
    (HERE / "containers").mkdir(exist_ok=True)
    pid_file = HERE / "containers" / (name + ".pid")
    pid_file.write_text(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(137))
    sys.stderr.write("fake container starting\n")
    sys.stderr.flush()
    try:
        if SPEC["run"] == "hang":
            while True:
                time.sleep(0.05)
        if SPEC["run"] == "fail":
            sys.stderr.write("BackendError: CUDA out of memory in the container\n")
            sys.exit(SPEC["exit_code"])
        if SPEC["run"] == "silent":
            sys.exit(0)
        if SPEC["run"] == "llem":
            run_llem()
        where = mounts()
        config_text = (where["/config"] / "experiment.yaml").read_text(encoding="utf-8")
        run_name = "fake-run_20250101T000000"
        result_dir = where["/results"] / run_name
        result_dir.mkdir(parents=True)
        (result_dir / "result.json").write_text(json.dumps({
            "schema_version": "fake", "output_dir": "/results/" + run_name,
            "config_yaml": config_text, "image": argv[argv.index("--entrypoint") + 2],
            "user": option("--user"), "gpus": option("--gpus"),
        }, indent=2), encoding="utf-8")
        print("/results/" + run_name)
    finally:
        pid_file.unlink()
else:
    sys.stderr.write(f"fake docker: unsupported command {argv!r}\n")
    sys.exit(2)
"""


def write_fake_docker(directory: Path, spec: FakeDockerSpec | None = None) -> Path:
    """Write an executable fake ``docker`` into ``directory`` (created) and return its path.

    Put ``directory`` first on ``PATH`` to stand in for ``docker``, or pass the returned path
    as the runner's ``docker=`` argument.
    """
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "docker"
    body = _SCRIPT.replace("__SPEC__", repr(json.dumps(asdict(spec or FakeDockerSpec()))))
    script.write_text(f"#!{sys.executable}\n{body}", encoding="utf-8")
    script.chmod(0o755)
    return script


def volume_mounts(argv: list[str]) -> dict[str, tuple[str, str]]:
    """The ``-v HOST:CONTAINER:MODE`` options of a recorded ``run``: container -> (host, mode)."""
    found = {}
    for flag, value in itertools.pairwise(argv):
        if flag == "-v":
            host, container, mode = value.split(":")
            found[container] = (host, mode)
    return found


def read_calls(docker: Path) -> list[list[str]]:
    """Every argv (without the program name) the fake at ``docker`` was called with."""
    calls_file = docker.parent / CALLS_FILE
    if not calls_file.exists():
        return []
    lines = calls_file.read_text(encoding="utf-8").splitlines()
    calls: list[Any] = [json.loads(line) for line in lines if line]
    return calls
