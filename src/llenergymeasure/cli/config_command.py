"""`llem config`: what this machine can measure, and which sampler `auto` would pick."""

from __future__ import annotations

import platform

from rich.console import Console, RenderableType
from rich.markup import escape

from llenergymeasure.backends import BACKENDS, backend_status
from llenergymeasure.backends.model_source import DEFAULT_EMBEDDED_MODEL, resolve_model
from llenergymeasure.cli.user_config_view import print_user_config
from llenergymeasure.devices import gpu_snapshot
from llenergymeasure.devices import probe as probe_gpus
from llenergymeasure.energy import probe_samplers, resolve_sampler_name
from llenergymeasure.errors import LLEMError
from llenergymeasure.harness.environment import cpu_model
from llenergymeasure.paths import cache_dir
from llenergymeasure.reporting.layout import Column, FittedTable


def print_machine_report(console: Console) -> None:
    """Print backends, energy samplers, the embedded model and paths."""
    machine = (
        f"{cpu_model()} · {platform.system()} {platform.release()} "
        f"· Python {platform.python_version()}"
    )
    console.print(f"[bold]machine[/]: {escape(machine)}")
    console.print(f"[bold]GPUs[/]: {escape(_gpus())}", soft_wrap=True, highlight=False)
    console.print(_backends_table())
    console.print(_samplers_table())
    console.print(f"[bold]embedded model[/]: {escape(_embedded_status())}", soft_wrap=True)
    console.print(f"[bold]cache dir[/]: {escape(str(cache_dir()))}", soft_wrap=True)
    print_user_config(console)


def _gpus() -> str:
    found = probe_gpus()
    if not found.available:
        return f"none ({found.reason})"
    described = []
    for gpu in gpu_snapshot():
        described.append(
            f"{gpu.get('index')}: {gpu.get('name')} (driver {gpu.get('driver_version')}, "
            f"CUDA {gpu.get('cuda_driver_version')}, persistence {gpu.get('persistence_mode')})"
        )
    return "; ".join(described)


def _backends_table() -> RenderableType:
    rows = []
    for name in BACKENDS:
        status = backend_status(name)
        versions = ", ".join(f"{k} {v or '—'}" for k, v in status.versions.items())
        install = "" if status.installed else status.install_hint
        rows.append([name, "yes" if status.installed else "no", versions, install])
    return FittedTable("backends", _BACKEND_COLUMNS, rows)


_BACKEND_COLUMNS = (
    Column("backend"),
    Column("installed"),
    Column("versions", wrap=True),
    Column("install", wrap=True, own_line=True),
)


def _samplers_table() -> RenderableType:
    auto = resolve_sampler_name("auto")
    rows = [
        [name, "yes" if availability.available else "no", availability.reason]
        for name, availability in probe_samplers().items()
    ]
    return FittedTable(f"energy samplers (auto → {auto})", _SAMPLER_COLUMNS, rows)


_SAMPLER_COLUMNS = (Column("sampler"), Column("available"), Column("why not", wrap=True))


def _embedded_status() -> str:
    try:
        source = resolve_model(DEFAULT_EMBEDDED_MODEL)
    except LLEMError as exc:
        return f"{DEFAULT_EMBEDDED_MODEL} — {exc}"
    return f"{DEFAULT_EMBEDDED_MODEL} ({source.gguf_path})"
