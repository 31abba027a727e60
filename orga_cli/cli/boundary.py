"""The one error boundary: every command's work runs through ``run``, and this is the only
place where an outcome becomes an exit code.

A command returns nothing (0), an ``ExitCode`` (a result that is not an error, e.g. a
probe that found no path after printing its table), or raises. An ``OrgaError`` is
printed as one line (what went wrong — what to do, secrets masked) and exits with its
code; Ctrl-C exits 130; anything else is a bug, said as such. ``--debug`` lets the
traceback through instead. While the work runs, messages name the library's settings by
their flags (``errors.naming``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

import typer

from ..errors import ExitCode, Interrupted, OrgaError, UsageError, naming
from .options import FLAGS


class _State:
    debug = False


state = _State()


def setup(verbose: int, debug: bool, *, always_info: tuple[str, ...] = ()) -> None:
    """A command's first line: --debug for the boundary, -v for the library's logs."""
    state.debug = debug
    if verbose or always_info:
        from .render import setup_logging

        setup_logging(verbose, always_info=always_info)


def fail(exc: OrgaError) -> NoReturn:
    """Print *exc* as one line and leave with its exit code."""
    from . import render

    render.error(exc)
    raise typer.Exit(int(exc.exit_code))


def run(work: Callable[[], int | ExitCode | None]) -> None:
    """Run a command's *work* and leave with its exit code (see the module docstring)."""
    try:
        with naming(FLAGS):
            code = int(work() or 0)
    except OrgaError as exc:
        if state.debug and not isinstance(exc, Interrupted):
            raise
        code = _shown(exc)
    except KeyboardInterrupt:
        if state.debug:
            raise
        code = _shown(Interrupted("interrupted"))
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if state.debug:
            raise
        code = _shown(
            OrgaError(
                f"unexpected error: {type(exc).__name__}: {exc}",
                "this is a bug: please report it with the output of --debug",
            )
        )
    _leave_if_stuck(code)
    if code:
        raise typer.Exit(code)


def _shown(exc: OrgaError) -> int:
    from . import render

    render.error(exc)
    return int(exc.exit_code)


def _leave_if_stuck(code: int) -> None:
    """Exit now if a device open is still blocked in PortAudio (the call's outputs are
    written by then): PortAudio's own exit handler would wait on it for good."""
    devices = sys.modules.get("orga_cli.media.devices")
    if devices is not None and devices.stuck():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def usage(message: str, hint: str | None = None) -> NoReturn:
    """Bad input found outside ``run`` (before any work): one line, exit 2."""
    fail(UsageError(message, hint))


def read_stdin_value(what: str) -> str:
    """A value piped in on stdin (a token, an SDP), or a UsageError saying how to pipe it."""
    from .terminal import current

    term = current()
    if term.stdin_tty:
        raise UsageError(
            f"expected the {what} on standard input",
            "pipe it in, e.g. `orga token | orga ice --token -`",
        )
    value = term.stdin.read().strip()
    if not value:
        raise UsageError(f"standard input held no {what}")
    return value


def main(app: Callable[[], object]) -> None:
    """The process's entry: a Ctrl-C before any command's boundary (while Python imports
    or Typer parses) still exits 130 with one line."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("orga: interrupted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
