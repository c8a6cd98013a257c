"""The user config as `llem config` shows it: the file, and each value with its source."""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.markup import escape

from llenergymeasure.config.user_config import ENV_VARIABLES, UserSettings, load_user_config
from llenergymeasure.errors import ConfigError
from llenergymeasure.reporting.layout import Column, FittedTable


def print_user_config(console: Console) -> None:
    """Print the user config's path, whether it exists, and the effective settings."""
    try:
        settings = load_user_config()
    except ConfigError as exc:  # the rest of the machine report is still worth showing
        console.print(f"[bold]user config[/]: [red]invalid[/]: {escape(str(exc))}", soft_wrap=True)
        return
    state = "exists" if settings.exists else "not present; defaults apply"
    console.print(f"[bold]user config[/]: {escape(str(settings.path))} ({state})", soft_wrap=True)
    console.print(user_config_table(settings))


def user_config_table(settings: UserSettings) -> RenderableType:
    """setting | value | source (default, file, or the env variable) | variable, laid out
    for the console's width (:mod:`llenergymeasure.reporting.layout`)."""
    rows = [
        [key, "—" if value is None else str(value), settings.sources[key], ENV_VARIABLES[key]]
        for key, value in settings.values().items()
    ]
    return FittedTable("user settings (env > file > default)", _COLUMNS, rows)


_COLUMNS = (Column("setting"), Column("value"), Column("source"), Column("override with"))
