"""The terminal layer: the `orga` command line over the library.

`app` (the Typer app, commands in `commands/`), `boundary` (errors become one line and
an exit code, in one place), `terminal` (the streams and whether they are terminals,
replaceable in tests), `render` (tables, JSON, notes), `panel` (the live call panel and
its plain-lines twin), `keys` (single keys on POSIX and Windows, and commands on stdin),
`docs` (completions and the reference, generated from the app) and `doctor`.
The library below imports nothing from here, nor Typer, nor rich.
"""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
