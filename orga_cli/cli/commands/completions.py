"""`orga completions SHELL`: the static completion script of a shell."""

from __future__ import annotations

from typing import Annotated

import typer

from ...errors import UsageError
from ..boundary import run


def completions(
    shell: Annotated[str, typer.Argument(metavar="SHELL", help="bash, zsh or fish.")],
) -> None:
    """Print a completion script for SHELL (the same as completions/ in the repo).

    bash: `orga completions bash > ~/.local/share/bash-completion/completions/orga`;
    zsh: into a directory of $fpath as `_orga`; fish: into ~/.config/fish/completions/orga.fish.
    """

    def work() -> None:
        from .. import render
        from ..app import app
        from ..docs import SHELLS, completion_script

        if shell not in SHELLS:
            raise UsageError(f"unknown shell {shell!r}", f"use one of {', '.join(SHELLS)}")
        render.data(completion_script(shell, app))

    run(work)
