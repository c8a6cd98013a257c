"""Run one experiment in an ephemeral Docker container, one image per backend.

The Docker counterpart of :func:`llenergymeasure.study.isolation.run_isolated`: same
arguments, same :class:`~llenergymeasure.study.isolation.Outcome`. Each call is one
``docker run --rm`` of the backend's image (``docker/Dockerfile.<backend>``) with:

- ``--gpus`` for the requested devices (``"device=0,1"``; all visible GPUs by default),
- ``--ipc=host``: PyTorch's worker processes and NCCL exchange tensors through ``/dev/shm``,
  whose Docker default (64 MB) breaks vLLM and TensorRT-LLM under load; sharing the host's IPC
  namespace is what both projects' images recommend and avoids guessing a ``--shm-size``,
- the Hugging Face cache and this tool's cache (converted models, TensorRT engines) mounted, so
  weights and engines outlive the container,
- ``HF_TOKEN`` passed through by name (its value never appears on the command line),
- the experiment config mounted read-only and the results directory read-write,
- local inputs the config names (a model folder or file, a JSONL dataset, a LoRA adapter
  folder) mounted read-only under ``/inputs`` and the config's paths rewritten to match,
- the user config's carbon intensity and PUE passed as ``LLEM_*`` values, and
  ``LLEM_RUNNER=local`` so the container runs the experiment itself,
- the caller's uid:gid, so result files are not owned by root,
- ``--init``, so the container's PID 1 forwards signals to ``llem`` and reaps its children,
- a ``--name`` per run, so a timeout or Ctrl-C can ``docker kill`` it; a watchdog process
  kills it too when the process that started it dies (even by SIGKILL), since a killed
  ``docker run`` client leaves its container running.

The container runs ``llem run /config/experiment.yaml --out /results -q``; the one path it
prints is mapped back to the host.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from llenergymeasure.backends.architectures import is_architecture_name
from llenergymeasure.backends.model_source import EMBEDDED_ALIASES, EMBEDDED_MODELS
from llenergymeasure.config.user_config import IMAGE_ENV_PREFIX, DockerImages, load_user_config
from llenergymeasure.errors import BackendError, ConfigError, DependencyError
from llenergymeasure.fileio import make_shareable
from llenergymeasure.paths import cache_dir
from llenergymeasure.study.isolation import Outcome, log_tail

DEFAULT_IMAGES: dict[str, str] = DockerImages().model_dump()
"""Image per backend unless the user config or ``LLEM_DOCKER_IMAGE_<BACKEND>`` names another."""

CONTAINER_CONFIG_DIR = "/config"
CONTAINER_CONFIG_FILE = f"{CONTAINER_CONFIG_DIR}/experiment.yaml"
CONTAINER_RESULTS_DIR = "/results"
# Not under /root: the container runs as the caller's uid, which cannot enter a 0700 /root.
CONTAINER_HF_HOME = "/cache/huggingface"
CONTAINER_LLEM_CACHE = "/cache/llenergymeasure"
CONTAINER_LOCK_DIR = "/tmp/llem-locks"
CONTAINER_HOME = "/tmp"
CONTAINER_INPUTS_DIR = "/inputs"
PASSED_ENV = ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
"""Variables passed by name only (``-e NAME``): Docker copies the value from our environment
(an unset one stays unset; the offline switches let a cached hub dataset load without the
network inside the container, as on the host)."""
CDI_SPEC_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
KILL_GRACE_S = 30.0
PROBE_TIMEOUT_S = 30.0
# TensorRT-LLM's multi-GPU runtime pins memory and uses deep stacks (NVIDIA's documented flags).
_TENSORRT_ULIMITS = ("--ulimit", "memlock=-1", "--ulimit", "stack=67108864")


def image_for(backend: str) -> str:
    """The image for ``backend``: ``LLEM_DOCKER_IMAGE_<BACKEND>``, the user config's
    ``docker_images``, or the default tag.

    Raises:
        ConfigError: the user config is invalid, or ``backend`` is ``server`` (it has no
            image: llem measures the server from the machine it runs on).
    """
    if backend == "server":
        raise ConfigError(
            "backend 'server' cannot run with runner: docker: llem drives the server over "
            "HTTP and reads energy on the machine that hosts it, so it runs beside the server "
            "(which may itself be a container); set runner: local in the study's execution: "
            "or the user config, or unset LLEM_RUNNER"
        )
    images = load_user_config().config.docker_images.model_dump()
    return str(images.get(backend) or f"llenergymeasure:{backend}")


def host_gpu_request() -> list[str] | str:
    """The GPUs a container should get: ``CUDA_VISIBLE_DEVICES`` when set, else every GPU
    when the host has any, else none (a CPU-only host runs CPU containers)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [device.strip() for device in visible.split(",") if device.strip()]
    from llenergymeasure.devices import probe

    return "all" if probe().available else []


Mount = tuple[Path, str]
"""(host path, container path) of a read-only input."""


def container_inputs(config: dict[str, Any], cwd: Path) -> tuple[dict[str, Any], list[Mount]]:
    """The config with local input paths rewritten to their container paths, and the mounts.

    A local model (folder, ``.gguf`` or ``config.json``), a dataset JSONL file or ShareGPT
    file (``dataset.path``) and a LoRA adapter folder are mounted read-only under ``/inputs``;
    embedded aliases, shipped architectures, hub ids and built-in datasets need nothing.
    Relative paths are relative to ``cwd``, as they are for a local run.
    """
    rewritten = copy.deepcopy(config)
    if isinstance(rewritten.get("dataset"), str):  # the `dataset: file.jsonl` shorthand
        rewritten["dataset"] = {"source": rewritten["dataset"]}
    mounts: list[Mount] = []
    for section, key, label in _INPUT_FIELDS:
        node = rewritten.get(section) if section else rewritten
        value = node.get(key) if isinstance(node, dict) else None
        host = _local_input(value, cwd) if isinstance(value, str) else None
        if host is None or not isinstance(node, dict):
            continue
        target = f"{CONTAINER_INPUTS_DIR}/{label}"
        if host.is_file():
            target = f"{target}/{host.name}"
        mounts.append((host, target))
        node[key] = target
    return rewritten, mounts


_INPUT_FIELDS = (
    ("", "model", "model"),
    ("dataset", "source", "dataset"),
    ("dataset", "path", "dataset"),  # a ShareGPT file (source: sharegpt)
    ("lora", "adapter", "lora"),
)


def _local_input(value: str, cwd: Path) -> Path | None:
    """The host path ``value`` names, or None for aliases, hub ids and built-in names."""
    lowered = value.lower()
    if lowered in EMBEDDED_MODELS or lowered in EMBEDDED_ALIASES or is_architecture_name(value):
        return None
    path = Path(value).expanduser()
    path = path if path.is_absolute() else cwd / path
    return path.resolve() if path.exists() else None


def gpu_request(gpus: Sequence[int | str] | str | None) -> str | None:
    """The ``--gpus`` value: ``"all"``, ``"device=0,1"``, or None for no GPUs.

    None means every GPU this process may use: the devices in ``CUDA_VISIBLE_DEVICES`` when it
    is set (so ``energy.gpu_indices`` keep their meaning inside the container), else ``all``.
    An empty list runs without GPUs.
    """
    if gpus is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is None:
            return "all"
        gpus = [device.strip() for device in visible.split(",") if device.strip()]
    if isinstance(gpus, str):
        spec = gpus.strip().strip("'\"")
        if spec in ("", "all"):
            return "all" if spec else None
        gpus = [device for device in spec.removeprefix("device=").split(",") if device]
    if not gpus:
        return None
    # The literal quotes keep Docker's CSV parser from reading "1" in "device=0,1" as an option
    # (on a shell line this is the documented --gpus '"device=0,1"').
    return '"device=' + ",".join(str(device) for device in gpus) + '"'


def hf_cache_dir() -> Path:
    """The host's Hugging Face cache: ``$HF_HOME`` or ``~/.cache/huggingface``."""
    explicit = os.environ.get("HF_HOME")
    if explicit:
        return Path(explicit).expanduser()
    return Path.home() / ".cache" / "huggingface"


def docker_command(
    *,
    docker: str,
    image: str,
    name: str,
    config_dir: Path,
    out_dir: Path,
    backend: str,
    gpus: str | None,
    inputs: Sequence[Mount] = (),
) -> list[str]:
    """The ``docker run`` argv for one experiment (paths on the host must exist)."""
    command = [docker, "run", "--rm", "--init", "--name", name, "--ipc=host"]
    if gpus is not None:
        command += ["--gpus", gpus]
    if backend == "tensorrt":
        command += _TENSORRT_ULIMITS
    if hasattr(os, "getuid"):
        command += ["--user", f"{os.getuid()}:{os.getgid()}"]
    command += [
        "-v", f"{hf_cache_dir()}:{CONTAINER_HF_HOME}:rw",
        "-v", f"{cache_dir()}:{CONTAINER_LLEM_CACHE}:rw",
        "-v", f"{config_dir}:{CONTAINER_CONFIG_DIR}:ro",
        "-v", f"{out_dir}:{CONTAINER_RESULTS_DIR}:rw",
        *(arg for host, target in inputs for arg in ("-v", f"{host}:{target}:ro")),
        # A non-root user has no writable home in these images; libraries cache under $HOME.
        "-e", f"HOME={CONTAINER_HOME}",
        "-e", f"HF_HOME={CONTAINER_HF_HOME}",
        "-e", f"LLEM_CACHE_DIR={CONTAINER_LLEM_CACHE}",
        # This process holds the device lock for the container; the llem inside must not
        # queue behind it in the mounted cache's locks/, so its own lock stays in the container.
        "-e", f"LLEM_LOCK_DIR={CONTAINER_LOCK_DIR}",
    ]  # fmt: skip
    for variable, value in _measurement_settings().items():
        command += ["-e", f"{variable}={value}"]
    for variable in PASSED_ENV:
        command += ["-e", variable]
    command += ["--entrypoint", "python3", image]
    command += ["-m", "llenergymeasure.cli", "run", CONTAINER_CONFIG_FILE]
    command += ["--out", CONTAINER_RESULTS_DIR, "-q"]
    return command


def _measurement_settings() -> dict[str, str]:
    """User settings that change the result, for the container (which has no user config)."""
    user = load_user_config().config
    settings = {"LLEM_RUNNER": "local", "LLEM_PUE": f"{user.pue!r}"}
    if user.carbon_intensity_g_per_kwh is not None:
        settings["LLEM_CARBON_INTENSITY"] = f"{user.carbon_intensity_g_per_kwh!r}"
    return settings


def run_in_docker(
    config: dict[str, Any],
    out_dir: Path,
    log_path: Path,
    timeout_s: float | None,
    *,
    image: str | None = None,
    gpus: list[int] | list[str] | str | None = None,
    docker: str = "docker",
) -> Outcome:
    """Run ``config`` in a fresh container; never raises for the container's failures.

    Args:
        config: the experiment's fields (written as YAML and mounted read-only; local input
            paths are mounted and rewritten, see :func:`container_inputs`).
        out_dir: the host directory mounted at ``/results``; the result directory lands here.
        log_path: the container's stdout and stderr go here (the tail is kept on failure).
        timeout_s: wall-clock limit for the container, image start-up included (None: none).
        image: the image to run (default: :func:`image_for` the config's backend).
        gpus: GPUs to expose: a list of indices, a ``--gpus`` string, or None for the ones this
            process sees (see :func:`gpu_request`).
        docker: the Docker executable (tests pass a fake).

    Raises:
        KeyboardInterrupt: after killing the container, so the caller can record and exit 130.
    """
    backend = str(config.get("backend", "pytorch"))
    out_dir = Path(out_dir).resolve()
    log_path = Path(log_path)
    # Created here so Docker does not create them as root.
    for directory in (out_dir, log_path.parent, hf_cache_dir(), cache_dir()):
        directory.mkdir(parents=True, exist_ok=True)
    name = f"llem-{uuid.uuid4().hex[:12]}"
    config, inputs = container_inputs(config, Path.cwd())
    with tempfile.TemporaryDirectory(prefix="llem-docker-") as scratch:
        config_dir = Path(scratch) / "config"
        config_dir.mkdir()
        make_shareable(config_dir)
        (config_dir / "experiment.yaml").write_text(
            yaml.safe_dump(config, sort_keys=False), encoding="utf-8"
        )
        command = docker_command(
            docker=docker, image=image or image_for(backend), name=name, config_dir=config_dir,
            out_dir=out_dir, backend=backend, gpus=gpu_request(gpus), inputs=inputs,
        )  # fmt: skip
        stdout_path = Path(scratch) / "stdout.txt"
        with log_path.open("ab") as log, stdout_path.open("w+b") as stdout:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(command, stdout=stdout, stderr=log)
            except OSError as exc:
                return Outcome("failed", error=f"cannot run {docker!r}: {exc}. {_INSTALL_DOCKER}")
            with _watchdog(docker, name):
                exit_code = _wait(process, timeout_s, docker, name)
            stdout.seek(0)
            printed = stdout.read().decode("utf-8", errors="replace")
            log.write(printed.encode())
    return _outcome(exit_code, process.returncode, timeout_s, name, printed, out_dir, log_path)


def _outcome(
    exit_code: int | None,
    returncode: int | None,
    timeout_s: float | None,
    name: str,
    printed: str,
    out_dir: Path,
    log_path: Path,
) -> Outcome:
    if exit_code is None:
        error = f"timed out after {timeout_s:g} s (container {name} killed)"
        return Outcome("failed", error=error, exit_code=returncode, stderr_tail=log_tail(log_path))
    if exit_code != 0:
        error = f"container exited with code {exit_code}"
        return Outcome("failed", error=error, exit_code=exit_code, stderr_tail=log_tail(log_path))
    result_dir = _host_result_dir(printed, out_dir)
    if result_dir is None:
        error = f"container exited 0 but printed no result directory under {CONTAINER_RESULTS_DIR}"
        return Outcome("failed", error=error, exit_code=0, stderr_tail=log_tail(log_path))
    return Outcome("done", result_dir=str(result_dir), exit_code=0)


_WATCHDOG = """
import subprocess, sys
if sys.stdin.read() != "done":
    subprocess.run([sys.argv[1], "kill", sys.argv[2]], capture_output=True, timeout=60)
"""


@contextlib.contextmanager
def _watchdog(docker: str, name: str) -> Iterator[None]:
    """A process that runs ``docker kill NAME`` if this process dies before the container ends.

    It waits on a pipe that only this process holds: the kernel closes it when this process
    dies, however it dies, and the watchdog (in its own session, so Ctrl-C in the terminal
    does not reach it) then kills the container. When the run ends normally, it is told so
    and exits without a word to Docker.
    """
    guard = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, docker, name], stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        yield
    finally:
        assert guard.stdin is not None
        with contextlib.suppress(OSError):
            guard.stdin.write(b"done")
            guard.stdin.close()
        guard.wait()


def _wait(
    process: subprocess.Popen[bytes], timeout_s: float | None, docker: str, name: str
) -> int | None:
    """The client's exit code, or None after a timeout (the container is then killed)."""
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(process, docker, name)
        return None
    except KeyboardInterrupt:
        _kill(process, docker, name)
        raise


def _kill(process: subprocess.Popen[bytes], docker: str, name: str) -> None:
    """``docker kill`` the container (killing the client alone leaves it running)."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run([docker, "kill", name], capture_output=True, timeout=KILL_GRACE_S)
    try:
        process.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _host_result_dir(printed: str, out_dir: Path) -> Path | None:
    """The last ``/results/...`` line the container printed, as a host path under out_dir."""
    for line in reversed(printed.splitlines()):
        path = line.strip()
        prefix = CONTAINER_RESULTS_DIR + "/"
        if path.startswith(prefix) and ".." not in Path(path).parts:
            host = out_dir / path[len(prefix) :]
            if host.is_dir():
                return host
    return None


_INSTALL_DOCKER = "Install Docker Engine: https://docs.docker.com/engine/install/"


def docker_preflight(
    docker: str = "docker", *, images: Iterable[str] = (), need_gpus: bool = True
) -> list[str]:
    """What stops ``runner: docker`` from working here, each with how to fix it.

    Checks that the Docker executable exists, its daemon answers, the NVIDIA container
    toolkit is installed (when ``need_gpus``), and each of ``images`` is present locally.

    Args:
        docker: the Docker executable.
        images: images the study will run (e.g. ``{image_for(b) for b in backends}``).
        need_gpus: containers will be given GPUs (``--gpus``).

    Returns:
        One sentence per problem; empty when everything is ready.
    """
    executable = shutil.which(docker)
    if executable is None:
        return [f"Docker executable {docker!r} not found on PATH. {_INSTALL_DOCKER}"]
    info, error = _docker_info(executable)
    if info is None:
        return [error]
    problems = []
    if need_gpus and not _nvidia_toolkit_present(info):
        problems.append(
            "The NVIDIA container toolkit is not installed, so containers cannot see the GPUs. "
            "Install nvidia-container-toolkit, run `sudo nvidia-ctk runtime configure "
            "--runtime=docker` and restart Docker (`sudo systemctl restart docker`): "
            "https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/"
            "install-guide.html"
        )
    for image in sorted(set(images)):
        if not _image_present(executable, image):
            problems.append(
                f"Docker image {image!r} is not present locally. {_build_advice(image)}"
            )
    return problems


def _docker_info(docker: str) -> tuple[dict[str, Any] | None, str]:
    """``docker info`` as a dict, or None and the reason the daemon did not answer."""
    try:
        completed = subprocess.run(
            [docker, "info", "--format", "{{json .}}"],
            capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"`{docker} info` failed ({exc}). Start the Docker daemon and try again."
    info: Any = None
    with contextlib.suppress(json.JSONDecodeError):
        info = json.loads(completed.stdout or "null")
    server_errors = info.get("ServerErrors") if isinstance(info, dict) else None
    if completed.returncode == 0 and isinstance(info, dict) and not server_errors:
        return info, ""
    detail = (completed.stderr or " ".join(server_errors or []) or completed.stdout).strip()
    if "permission denied" in detail.lower():
        return None, (
            f"No permission to talk to the Docker daemon ({detail[-300:]}). Add your user to "
            "the docker group (`sudo usermod -aG docker $USER`, then log in again)."
        )
    return None, (
        f"The Docker daemon is not reachable ({detail[-300:] or 'no answer'}). Start it "
        "(`sudo systemctl start docker`) and check `docker info`."
    )


def _nvidia_toolkit_present(info: dict[str, Any]) -> bool:
    """The toolkit registers an ``nvidia`` runtime, installs ``nvidia-container-cli`` (used by
    ``--gpus``), or writes a CDI spec for the GPUs."""
    runtimes = info.get("Runtimes") or {}
    if any("nvidia" in str(runtime).lower() for runtime in runtimes):
        return True
    if shutil.which("nvidia-container-cli") is not None:
        return True
    for directory in CDI_SPEC_DIRS:
        with contextlib.suppress(OSError):
            if any("nvidia" in spec.name for spec in directory.iterdir()):
                return True
    return False


def _image_present(docker: str, image: str) -> bool:
    try:
        completed = subprocess.run(
            [docker, "image", "inspect", image], capture_output=True, timeout=PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0


def _build_advice(image: str) -> str:
    for backend, default in DEFAULT_IMAGES.items():
        if image == default:
            return (
                f"Build it from the repository root: `docker build -f docker/Dockerfile.{backend} "
                f"-t {image} .`"
            )
    return f"Pull or build it (`docker pull {image}`), or unset {IMAGE_ENV_PREFIX}<BACKEND>."


class DockerExecutor:
    """Runs a study's experiments in containers (``execution.runner: docker``).

    A context manager: entering it runs :func:`docker_preflight` once for the images the
    experiments need, so a study never starts on a machine where no experiment could run.
    Called like :func:`~llenergymeasure.study.isolation.run_isolated` (the child target is
    not used: the container runs ``llem`` itself).

    Args:
        backends: the backends the study's experiments use.
        docker: the Docker executable.
    """

    def __init__(self, backends: Iterable[str], docker: str = "docker") -> None:
        self._backends = sorted(set(backends))
        self._docker = docker
        self._gpus: list[str] | str = []

    def __enter__(self) -> DockerExecutor:
        """Check Docker, the NVIDIA toolkit (when there are GPUs) and the images.

        Raises:
            DependencyError: listing every problem and how to fix it.
        """
        self._gpus = host_gpu_request()
        require_docker(self._docker, [image_for(b) for b in self._backends], bool(self._gpus))
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Nothing to release: every container is removed when it ends (``--rm``)."""

    def __call__(
        self, config: dict[str, Any], out_dir: Path, log_path: Path, timeout_s: float, *_: Any
    ) -> Outcome:
        """Run one experiment in its backend's image (see :func:`run_in_docker`)."""
        return run_in_docker(
            config, out_dir, log_path, timeout_s, gpus=self._gpus, docker=self._docker
        )


def require_docker(docker: str, images: Sequence[str], need_gpus: bool) -> None:
    """Raise with every preflight problem, or return when Docker is ready.

    Raises:
        DependencyError: naming each problem and how to fix it.
    """
    problems = docker_preflight(docker, images=images, need_gpus=need_gpus)
    if problems:
        raise DependencyError(
            "runner 'docker' cannot run here:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
            + "\n(or run locally: set runner: local in the study's execution: or the user "
            "config, or unset LLEM_RUNNER)"
        )


def run_experiment_in_docker(config: dict[str, Any], out_dir: Path, docker: str = "docker") -> Path:
    """Run one experiment (``llem run`` with ``runner: docker`` in the user config).

    The container's output goes to ``container.log`` in the result directory.

    Returns:
        The new result directory under ``out_dir``.

    Raises:
        DependencyError: Docker is not ready (see :func:`docker_preflight`).
        BackendError: the container failed; the message ends with its output.
        KeyboardInterrupt: after killing the container.
    """
    gpus = host_gpu_request()
    require_docker(docker, [image_for(str(config.get("backend", "pytorch")))], bool(gpus))
    with tempfile.TemporaryDirectory(prefix="llem-docker-log-") as scratch:
        log_path = Path(scratch) / "container.log"
        outcome = run_in_docker(config, out_dir, log_path, None, gpus=gpus, docker=docker)
        if outcome.status != "done" or outcome.result_dir is None:
            tail = f"\n{outcome.stderr_tail}" if outcome.stderr_tail else ""
            raise BackendError(f"the experiment failed in its container: {outcome.error}{tail}")
        shutil.copyfile(log_path, Path(outcome.result_dir) / "container.log")
    return Path(outcome.result_dir)
