"""`orga voices`: the voices the model speaks with."""

from __future__ import annotations

from typing import Annotated

import typer

from ...errors import UsageError
from ..boundary import run
from ..options import JsonOpt


def voices(
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            "-l",
            help="Only voices of this language (name, English name or code: es, Spanish, Español).",
            show_default=False,
        ),
    ] = None,
    gender: Annotated[
        str | None,
        typer.Option(
            "--gender", help="Only voices of this gender (feminine, masculine).", show_default=False
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the voices the model speaks with (shipped with orga; no request)."""

    def work() -> None:
        from ...voices import filter_voices, languages
        from .. import render

        found = filter_voices(language, gender)
        if not found and language:
            raise UsageError(
                f"no voice speaks {language!r}", f"languages: {', '.join(languages())}"
            )
        if json_out:
            render.emit_json([v.to_json() for v in found])
        else:
            render.voices_table(found)

    run(work)
