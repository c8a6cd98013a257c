"""The user config as `llem config` shows it: the file, and each value with its source."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llenergymeasure.config.user_config import ENV_VARIABLES, UserSettings, load_user_config
from llenergymeasure.errors import ConfigError


def print_user_config(console: Console) -> None:
    """Print the user config's path, whether it exists, and the effective settings."""
    try:
        settings = load_user_config()
    except ConfigError as exc:  # the rest of the machine report is still worth showing
        console.print(f"[bold]user config[/]: [red]invalid[/]: {escape(str(exc))}", soft_wrap=True)
        return
    state = "exists" if settings.exists else "not present; defaults apply"
    console.print(f"[bold]user config[/]: {settings.path} ({state})", soft_wrap=True)
    console.print(user_config_table(settings))


def user_config_table(settings: UserSettings) -> Table:
    """setting | value | source (default, file, or the env variable) | variable."""
    table = Table(title="user settings (env > file > default)")
    for column in ("setting", "value", "source", "override with"):
        table.add_column(column)
    for key, value in settings.values().items():
        shown = "—" if value is None else str(value)
        table.add_row(key, escape(shown), settings.sources[key], ENV_VARIABLES[key])
    return table
