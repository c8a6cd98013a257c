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
- the caller's uid:gid, so result files are not owned by root,
- a ``--name`` per run, so a timeout can ``docker kill`` it.

The container runs ``llem run /config/experiment.yaml --out /results -q``; the one path it
prints is mapped back to the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from llenergymeasure.paths import cache_dir, make_shareable
from llenergymeasure.study.isolation import STDERR_TAIL_CHARS, Outcome

DEFAULT_IMAGES = {
    "pytorch": "llenergymeasure:pytorch",
    "vllm": "llenergymeasure:vllm",
    "tensorrt": "llenergymeasure:tensorrt",
}
"""Image per backend unless ``LLEM_DOCKER_IMAGE_<BACKEND>`` names another."""

IMAGE_ENV_PREFIX = "LLEM_DOCKER_IMAGE_"
CONTAINER_CONFIG_DIR = "/config"
CONTAINER_CONFIG_FILE = f"{CONTAINER_CONFIG_DIR}/experiment.yaml"
CONTAINER_RESULTS_DIR = "/results"
# Not under /root: the container runs as the caller's uid, which cannot enter a 0700 /root.
CONTAINER_HF_HOME = "/cache/huggingface"
CONTAINER_LLEM_CACHE = "/cache/llenergymeasure"
CONTAINER_HOME = "/tmp"
PASSED_ENV = ("HF_TOKEN",)
"""Variables passed by name only (``-e NAME``): Docker copies the value from our environment."""
CDI_SPEC_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
KILL_GRACE_S = 30.0
PROBE_TIMEOUT_S = 30.0
# TensorRT-LLM's multi-GPU runtime pins memory and uses deep stacks (NVIDIA's documented flags).
_TENSORRT_ULIMITS = ("--ulimit", "memlock=-1", "--ulimit", "stack=67108864")


def image_for(backend: str) -> str:
    """The image for ``backend``: ``LLEM_DOCKER_IMAGE_<BACKEND>`` or the default tag."""
    override = os.environ.get(IMAGE_ENV_PREFIX + backend.upper())
    return override or DEFAULT_IMAGES.get(backend, f"llenergymeasure:{backend}")


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
) -> list[str]:
    """The ``docker run`` argv for one experiment (paths on the host must exist)."""
    command = [docker, "run", "--rm", "--name", name, "--ipc=host"]
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
        # A non-root user has no writable home in these images; libraries cache under $HOME.
        "-e", f"HOME={CONTAINER_HOME}",
        "-e", f"HF_HOME={CONTAINER_HF_HOME}",
        "-e", f"LLEM_CACHE_DIR={CONTAINER_LLEM_CACHE}",
    ]  # fmt: skip
    for variable in PASSED_ENV:
        command += ["-e", variable]
    command += ["--entrypoint", "python3", image]
    command += ["-m", "llenergymeasure.cli", "run", CONTAINER_CONFIG_FILE]
    command += ["--out", CONTAINER_RESULTS_DIR, "-q"]
    return command


def run_in_docker(
    config: dict[str, Any],
    out_dir: Path,
    log_path: Path,
    timeout_s: float,
    *,
    image: str | None = None,
    gpus: list[int] | str | None = None,
    docker: str = "docker",
) -> Outcome:
    """Run ``config`` in a fresh container; never raises for the container's failures.

    Args:
        config: the experiment's fields (written as YAML and mounted read-only).
        out_dir: the host directory mounted at ``/results``; the result directory lands here.
        log_path: the container's stdout and stderr go here (the tail is kept on failure).
        timeout_s: wall-clock limit for the container, image start-up included.
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
    with tempfile.TemporaryDirectory(prefix="llem-docker-") as scratch:
        config_dir = Path(scratch) / "config"
        config_dir.mkdir()
        make_shareable(config_dir)
        (config_dir / "experiment.yaml").write_text(
            yaml.safe_dump(config, sort_keys=False), encoding="utf-8"
        )
        command = docker_command(
            docker=docker, image=image or image_for(backend), name=name,
            config_dir=config_dir, out_dir=out_dir, backend=backend, gpus=gpu_request(gpus),
        )  # fmt: skip
        stdout_path = Path(scratch) / "stdout.txt"
        with log_path.open("ab") as log, stdout_path.open("w+b") as stdout:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(command, stdout=stdout, stderr=log)
            except OSError as exc:
                return Outcome("failed", error=f"cannot run {docker!r}: {exc}. {_INSTALL_DOCKER}")
            exit_code = _wait(process, timeout_s, docker, name)
            stdout.seek(0)
            printed = stdout.read().decode("utf-8", errors="replace")
            log.write(printed.encode())
    if exit_code is None:
        error = f"timed out after {timeout_s:g} s (container {name} killed)"
        return Outcome("failed", error=error, exit_code=process.returncode,
                       stderr_tail=_tail(log_path))  # fmt: skip
    if exit_code != 0:
        error = f"container exited with code {exit_code}"
        return Outcome("failed", error=error, exit_code=exit_code, stderr_tail=_tail(log_path))
    result_dir = _host_result_dir(printed, out_dir)
    if result_dir is None:
        error = f"container exited 0 but printed no result directory under {CONTAINER_RESULTS_DIR}"
        return Outcome("failed", error=error, exit_code=0, stderr_tail=_tail(log_path))
    return Outcome("done", result_dir=str(result_dir), exit_code=0)


def _wait(process: subprocess.Popen[bytes], timeout_s: float, docker: str, name: str) -> int | None:
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


def _tail(log_path: Path) -> str | None:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text[-STDERR_TAIL_CHARS:] or None


_INSTALL_DOCKER = "Install Docker Engine: https://docs.docker.com/engine/install/"


def docker_preflight(docker: str = "docker", *, images: Iterable[str] = ()) -> list[str]:
    """What stops ``runner: docker`` from working here, each with how to fix it.

    Checks that the Docker executable exists, its daemon answers, the NVIDIA container
    toolkit is installed, and each of ``images`` is present locally.

    Args:
        docker: the Docker executable.
        images: images the study will run (e.g. ``{image_for(b) for b in backends}``).

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
    if not _nvidia_toolkit_present(info):
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
