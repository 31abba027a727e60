"""`orga token`: mint an ephemeral token, or decode one."""

from __future__ import annotations

from typing import Annotated

import typer

from ...errors import UsageError
from ..boundary import read_stdin_value, run, setup
from ..options import (
    ApiKeyOpt,
    BaseUrlOpt,
    DebugOpt,
    EmailOpt,
    InsecureOpt,
    JsonOpt,
    ProfileOpt,
    TimeoutOpt,
    VerboseOpt,
)
from .common import client, settings


def token(
    token_arg: Annotated[
        str | None,
        typer.Argument(
            metavar="[TOKEN|-]",
            help="With --decode: the token to decode ('-' or nothing reads stdin).",
            show_default=False,
        ),
    ] = None,
    decode: Annotated[
        bool,
        typer.Option("--decode", help="Decode a token's claims and time left; no request."),
    ] = False,
    expires_in: Annotated[
        int | None,
        typer.Option(
            "--expires-in",
            min=1,
            metavar="SECONDS",
            help='Ask for this lifetime (sent as {"expires_in": N}).',
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
    email: EmailOpt = None,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
    profile: ProfileOpt = None,
    timeout: TimeoutOpt = 10.0,
    insecure_http: InsecureOpt = False,
    verbose: VerboseOpt = 0,
    debug: DebugOpt = False,
) -> None:
    """Mint an ephemeral token (a JWT) from the API key; print it on stdout.

    `TOKEN=$(orga token)` captures just the token. With --decode, show the
    claims and time left of a token instead, without any request.
    """
    setup(verbose, debug)

    def show() -> None:
        from ...errors import secrets
        from ...models import Token
        from .. import render

        value = token_arg if token_arg not in (None, "-") else read_stdin_value("token")
        assert value is not None
        parsed = Token.from_string(value)
        if not parsed.claims:
            raise UsageError("that is not a JWT", "pass the token `orga token` printed")
        secrets.add(parsed.value)
        if json_out:
            summary = parsed.summary()
            summary.pop("token")
            render.emit_json(summary)
        else:
            render.token_claims(parsed)

    def mint() -> None:
        from .. import render
        from ..terminal import current

        if token_arg is not None:
            raise UsageError("a TOKEN argument goes only with --decode")
        chosen = settings(api_key, base_url, email, profile)
        with client(chosen, timeout, insecure_http) as api:
            minted = api.create_token(email=chosen.value("email"), expires_in=expires_in)
        if json_out:
            render.emit_json(minted.summary())
        else:
            render.data(minted.value)
            if current().stderr_tty:
                render.note(render.expiry_phrase(minted))

    run(show if decode else mint)
