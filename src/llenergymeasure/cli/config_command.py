"""`llem config`: what this machine can measure, and which sampler `auto` would pick."""

from __future__ import annotations

import platform

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from llenergymeasure.backends import BACKENDS, backend_status
from llenergymeasure.backends.model_source import DEFAULT_EMBEDDED_MODEL, resolve_model
from llenergymeasure.cli.user_config_view import print_user_config
from llenergymeasure.devices import gpu_snapshot
from llenergymeasure.devices import probe as probe_gpus
from llenergymeasure.energy import probe_samplers, resolve_sampler_name
from llenergymeasure.errors import LLEMError
from llenergymeasure.harness.environment import cpu_model
from llenergymeasure.paths import cache_dir


def print_machine_report(console: Console) -> None:
    """Print backends, energy samplers, the embedded model and paths."""
    console.print(
        f"[bold]machine[/]: {cpu_model()} · {platform.system()} {platform.release()} "
        f"· Python {platform.python_version()}"
    )
    console.print(f"[bold]GPUs[/]: {_gpus()}", soft_wrap=True, highlight=False)
    console.print(_backends_table())
    console.print(_samplers_table())
    console.print(f"[bold]embedded model[/]: {_embedded_status()}", soft_wrap=True)
    console.print(f"[bold]cache dir[/]: {cache_dir()}")
    print_user_config(console)


def _gpus() -> str:
    found = probe_gpus()
    if not found.available:
        return f"none ({escape(found.reason)})"
    described = []
    for gpu in gpu_snapshot():
        described.append(
            f"{gpu.get('index')}: {gpu.get('name')} (driver {gpu.get('driver_version')}, "
            f"CUDA {gpu.get('cuda_driver_version')}, persistence {gpu.get('persistence_mode')})"
        )
    return "; ".join(described)


def _backends_table() -> Table:
    table = Table(title="backends")
    for column in ("backend", "installed", "versions", "install"):
        table.add_column(column)
    for name in BACKENDS:
        status = backend_status(name)
        versions = ", ".join(f"{k} {v or '—'}" for k, v in status.versions.items())
        table.add_row(
            name,
            "yes" if status.installed else "no",
            versions,
            Text("" if status.installed else status.install_hint),
        )
    return table


def _samplers_table() -> Table:
    auto = resolve_sampler_name("auto")
    table = Table(title=f"energy samplers (auto → {auto})")
    for column in ("sampler", "available", "why not"):
        table.add_column(column)
    for name, availability in probe_samplers().items():
        table.add_row(name, "yes" if availability.available else "no", Text(availability.reason))
    return table


def _embedded_status() -> str:
    try:
        source = resolve_model(DEFAULT_EMBEDDED_MODEL)
    except LLEMError as exc:
        return f"{DEFAULT_EMBEDDED_MODEL} — {exc}"
    return f"{DEFAULT_EMBEDDED_MODEL} ({source.gguf_path})"
