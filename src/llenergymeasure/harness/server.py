"""What the harness does differently for ``backend: server``.

**Locality.** Energy and telemetry are read on this machine, so they describe the server
only when it runs here: ``server.url``'s host is ``localhost``, a loopback or unspecified
address (127.0.0.0/8, ::1, 0.0.0.0, ::), this machine's host name, or an address of one of
its network interfaces (a name counts when every address it resolves to does). For any other
host the window runs the null sampler (energy null, no idle baseline) and the result carries
a ``server_remote`` warning; the timing is measured all the same.

**Scope.** A local server's energy is the whole device's: the samplers read devices, not
processes, so anything else running on them during the window is counted too (the result's
energy notes say so).

**The server's own gauges.** With ``server.scrape_metrics`` the telemetry poller also reads
the server's Prometheus ``/metrics`` (see :mod:`llenergymeasure.backends.server.metrics`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection
from urllib.parse import urlsplit

import psutil

from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.results.models import MeasurementWarning
from llenergymeasure.results.warning_codes import WarningCode
from llenergymeasure.telemetry import TelemetrySource

SHARED_DEVICE_NOTE = (
    "backend server: the energy is the whole device's (every process on it during the window, "
    "not only the server)"
)

Resolver = Callable[[str], list[str]]
"""A host name -> the addresses it resolves to (raises OSError when it does not)."""


def _resolve(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None)]


def local_addresses() -> set[str]:
    """The addresses of this machine's network interfaces (IPv6 without a zone)."""
    return {
        address.address.partition("%")[0]
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family in (socket.AF_INET, socket.AF_INET6)
    }


def is_local_host(
    host: str, addresses: Collection[str] | None = None, resolve: Resolver = _resolve
) -> bool:
    """Whether ``host`` (a name or an address) is this machine (see the module docstring).

    Args:
        host: as in a URL, without brackets.
        addresses: this machine's interface addresses (default: :func:`local_addresses`).
        resolve: looks a host name up; a name that does not resolve is not local.
    """
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost") or host == socket.gethostname().lower():
        return True
    mine = local_addresses() if addresses is None else addresses
    try:
        resolved = [host] if _is_address(host) else resolve(host)
    except OSError:
        return False
    return bool(resolved) and all(_is_local_address(a, mine) for a in resolved)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_local_address(address: str, mine: Collection[str]) -> bool:
    parsed = ipaddress.ip_address(address.partition("%")[0])
    return parsed.is_loopback or parsed.is_unspecified or str(parsed) in mine


def remote_server_host(config: ExperimentConfig) -> str | None:
    """The host of a ``backend: server`` run's ``server.url`` when it is not this machine;
    None for a local server and for every other backend."""
    if config.backend != "server":
        return None
    host = urlsplit(config.server_options.url).hostname or ""
    return None if is_local_host(host) else host


def remote_server_warnings(remote_host: str | None) -> list[MeasurementWarning]:
    """The ``server_remote`` warning for a server on ``remote_host`` (none when local)."""
    if remote_host is None:
        return []
    return [
        MeasurementWarning.of(
            WarningCode.SERVER_REMOTE,
            f"server.url's host {remote_host!r} is not this machine: energy was not measured "
            "(null), as this machine's devices do not run the server; timing is still measured",
        )
    ]


def server_energy_notes(config: ExperimentConfig, remote_host: str | None) -> list[str]:
    """The energy scope of a local server run (none otherwise)."""
    return [SHARED_DEVICE_NOTE] if config.backend == "server" and remote_host is None else []


def server_pids(config: ExperimentConfig, remote_host: str | None) -> list[int]:
    """The processes listening on a local server's port, for a ``backend: server`` run that
    measures a server llem did not launch: its work is the run's own, not contention (a
    launched server is a descendant of llem already). Empty otherwise, and where the port's
    owner cannot be seen (another user's process, a container's port proxy: the
    ``contention`` summary then counts it as other work)."""
    if config.backend != "server" or remote_host is not None or config.server_options.launch:
        return []
    parts = urlsplit(config.server_options.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return []
    return sorted(
        {
            c.pid
            for c in connections
            if c.pid is not None and c.status == psutil.CONN_LISTEN and _port(c.laddr) == port
        }
    )


def _port(address: object) -> int | None:
    """The port of a psutil socket address (an empty tuple when there is none)."""
    port = getattr(address, "port", None)
    return port if isinstance(port, int) else None


def server_sources(config: ExperimentConfig) -> list[TelemetrySource]:
    """The server's ``/metrics`` as a telemetry source, with ``server.scrape_metrics`` on
    ``backend: server``; none otherwise."""
    if config.backend != "server" or not config.server_options.scrape_metrics:
        return []
    from llenergymeasure.backends.server.metrics import ServerMetricsSource

    return [ServerMetricsSource(config.server_options.url)]
