"""The `orga` Typer app: every command registered from its module in `commands/`.

A command module declares its options (shared ones come from `options.py`), turns them
into the library's arguments, and runs its work through `boundary.run`, the one place
where errors become exit codes. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from .. import __version__
from .boundary import main as _guarded
from .commands.call import call
from .commands.completions import completions
from .commands.config import (
    config_get,
    config_list,
    config_path_cmd,
    config_set,
    config_unset,
    config_use,
)
from .commands.devices import devices, doctor
from .commands.ice import ice
from .commands.load import load
from .commands.report import report
from .commands.sdp import sdp
from .commands.serve import serve
from .commands.token import token
from .commands.voices import voices

_APP_SETTINGS: dict[str, Any] = {
    "name": "orga",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}
app = typer.Typer(
    help="Voice and video client for the Orga AI realtime API, with an offline sandbox.",
    **_APP_SETTINGS,
)
config_app = typer.Typer(
    help="Read and write config profiles (base_url, api_key, email).",
    no_args_is_help=True,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"orga {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Voice and video client for the Orga AI realtime API, with an offline sandbox."""


# The order of `orga --help`.
app.command()(token)
app.command()(ice)
app.command()(voices)
app.add_typer(config_app, name="config")
config_app.command("set")(config_set)
config_app.command("get")(config_get)
config_app.command("unset")(config_unset)
config_app.command("list")(config_list)
config_app.command("path")(config_path_cmd)
config_app.command("use")(config_use)
app.command()(serve)
app.command()(devices)
app.command()(doctor)
app.command()(call)
app.command()(load)
app.command()(sdp)
app.command()(report)
app.command()(completions)


def _app_for(argv: list[str]) -> typer.Typer:
    """The app with only the command that argv names, when it names one.

    Typer builds every command's options before parsing; with a dozen commands
    that is most of a short command's start-up. Help, --version and typos get
    the whole app.
    """
    if not argv or argv[0].startswith("-"):
        return app
    name = argv[0]
    commands = [
        c
        for c in app.registered_commands
        if (c.name or getattr(c.callback, "__name__", "").replace("_", "-")) == name
    ]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    lite = typer.Typer(**_APP_SETTINGS)
    lite.registered_callback = app.registered_callback
    lite.registered_commands = commands
    lite.registered_groups = groups
    return lite


def main() -> None:
    _guarded(lambda: _app_for(sys.argv[1:])(prog_name="orga"))
