"""`orga ice`: the ICE servers of a session, or each one probed."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ...errors import CallError, UsageError
from ..boundary import read_stdin_value, run, setup
from ..options import (
    ApiKeyOpt,
    BaseUrlOpt,
    DebugOpt,
    EmailOpt,
    InsecureOpt,
    ProfileOpt,
    VerboseOpt,
)
from .common import client, settings


def ice(
    token_opt: Annotated[
        str | None,
        typer.Option(
            "--token",
            "-t",
            envvar="ORGA_TOKEN",
            show_envvar=True,
            metavar="TOKEN|-",
            help="Ephemeral token to use ('-' reads stdin); otherwise one is minted with the API key.",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print {"iceServers": [...]} for an RTCPeerConnection (with --probe: the results).',
        ),
    ] = False,
    probe: Annotated[
        bool,
        typer.Option(
            "--probe", help="Check every server: DNS, STUN Binding, TURN Allocate per transport."
        ),
    ] = False,
    server: Annotated[
        list[str] | None,
        typer.Option(
            "--server",
            metavar="URL",
            help="With --probe: probe this stun:/turn:/turns: URL instead of the API's (repeatable).",
            show_default=False,
        ),
    ] = None,
    username: Annotated[
        str | None,
        typer.Option("--username", help="TURN username for --server.", show_default=False),
    ] = None,
    credential: Annotated[
        str | None,
        typer.Option("--credential", help="TURN credential for --server.", show_default=False),
    ] = None,
    email: EmailOpt = None,
    api_key: ApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
    profile: ProfileOpt = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0.1,
            help="Seconds for each HTTP request [default: 10], or for the whole probe [default: 5].",
            show_default=False,
        ),
    ] = None,
    insecure_http: InsecureOpt = False,
    verbose: VerboseOpt = 0,
    debug: DebugOpt = False,
) -> None:
    """Fetch the ICE servers (STUN/TURN) for a session, or probe them with --probe.

    The table masks TURN credentials; --json includes them, since that is what
    a peer connection needs. --probe exits 0 when a relay address (or, with no
    TURN server, a server-reflexive one) was obtained, else 6, with a diagnosis.
    """
    setup(verbose, debug)

    def fetch() -> None:
        from ...models import IceServer
        from .. import render

        servers: list[IceServer]
        if server:
            if not probe:
                raise UsageError("--server goes with --probe")
            servers = [IceServer((url,), username, credential) for url in server]
        else:
            chosen = settings(api_key, base_url, email, profile)
            given = read_stdin_value("token") if token_opt == "-" else token_opt
            with client(chosen, timeout or 10.0, insecure_http) as api:
                use: Any = given if given else api.create_token(email=chosen.value("email"))
                servers = api.ice_servers(use)
        if not probe:
            if json_out:
                render.emit_json({"iceServers": [s.to_json() for s in servers]})
            else:
                render.ice_table(servers)
            return
        import asyncio

        from ...probe import probe_servers, verdict

        results = asyncio.run(probe_servers(servers, timeout or 5.0))
        usable, diagnosis = verdict(results)
        if json_out:
            render.emit_json([r.to_json() for r in results])
        else:
            render.probe_table(results)
        if not usable:
            raise CallError(diagnosis)
        render.note(diagnosis)

    run(fetch)
