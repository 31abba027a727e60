"""`orga serve`: the sandbox on a port, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ...errors import Interrupted, UsageError
from ..boundary import run, setup
from ..options import (
    DebugOpt,
    VerboseOpt,
    ice_credential_option,
    ice_server_option,
    ice_username_option,
    reply_option,
    save_received_option,
)
from ..terminal import current


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port; 0 picks a free one.")
    ] = 0,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="ORGA_SANDBOX_API_KEY",
            show_envvar=True,
            help="The API key the sandbox accepts; generated and shown on stderr if left out.",
            show_default=False,
        ),
    ] = None,
    token_ttl: Annotated[
        int, typer.Option("--token-ttl", min=1, help="Lifetime of minted tokens, in seconds.")
    ] = 60,
    require_email: Annotated[
        bool,
        typer.Option("--require-email", help="Answer 422 to token requests without ?email=."),
    ] = False,
    known_email: Annotated[
        list[str] | None,
        typer.Option(
            "--known-email",
            help="A user that exists (repeatable); other emails get 404 User not found.",
            show_default=False,
        ),
    ] = None,
    ice_server: Annotated[
        list[str] | None,
        ice_server_option("An ICE server URL to hand out (repeatable): stun:, turn: or turns:."),
    ] = None,
    ice_username: Annotated[
        list[str] | None,
        ice_username_option("TURN username: one for all TURN URLs, or one per TURN URL in order."),
    ] = None,
    ice_credential: Annotated[
        list[str] | None,
        ice_credential_option("TURN credential, paired like --ice-username."),
    ] = None,
    reply: Annotated[str, reply_option("--reply")] = "echo",
    echo_delay: Annotated[
        float,
        typer.Option(
            "--echo-delay",
            min=0.0,
            max=10.0,
            help="Seconds before the sandbox echoes what it hears.",
        ),
    ] = 0.5,
    save_received: Annotated[Path | None, save_received_option("--save-received")] = None,
    network: Annotated[
        str | None,
        typer.Option(
            "--network",
            metavar="SPEC",
            help="Impair each call's media through a UDP relay, per direction, e.g."
            " 'down=loss:5%,delay:40ms,jitter:30ms,reorder:5%;up=rate:500kbit,queue:200ms'"
            " (items: loss, delay, jitter, inorder, reorder, outage:3s@5s, rate:500kbit,"
            " rate:300kbit@10s, queue:200ms; both= sets the two).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Make --network's random choices repeat.", show_default=False),
    ] = None,
    no_fec: Annotated[
        bool,
        typer.Option("--no-fec", help="Never answer useinbandfec=1 nor send Opus in-band FEC."),
    ] = False,
    no_remb: Annotated[
        bool,
        typer.Option(
            "--no-remb",
            help="Send no REMB bandwidth estimate (with --no-transport-cc: receiver reports"
            " only, as some servers do).",
        ),
    ] = False,
    no_transport_cc: Annotated[
        bool,
        typer.Option(
            "--no-transport-cc",
            help="Decline transport-cc: no transport-wide feedback for the caller's packets.",
        ),
    ] = False,
    video_codec: Annotated[
        str | None,
        typer.Option(
            "--video-codec",
            metavar="vp8|h264",
            help="Answer video with this codec when the offer has it (default: the offer's first).",
            show_default=False,
        ),
    ] = None,
    max_calls: Annotated[
        int | None,
        typer.Option(
            "--max-calls",
            min=1,
            metavar="N",
            help="Calls at once; the next gets 429 (the API's error shape, Retry-After: 2).",
            show_default=False,
        ),
    ] = None,
    max_loop_lag: Annotated[
        float,
        typer.Option(
            "--max-loop-lag",
            min=0,
            metavar="MS",
            help="Refuse new calls (429) while the event loop runs this late, so the calls"
            " it holds keep their audio; 0: never.",
        ),
    ] = 40.0,
    verbose: VerboseOpt = 0,
    debug: DebugOpt = False,
) -> None:
    """Run an Orga-compatible API server on loopback, for offline use and tests.

    The first line on stdout is the base URL. One log line per request goes
    to stderr, with bearer values masked. Stop it with Ctrl-C.
    """
    setup(verbose, debug, always_info=("orga_cli.sandbox",))

    def work() -> None:
        from ...api import is_loopback_host
        from ...sandbox import sandbox_config
        from ...sandbox.network import parse_network
        from ...sandbox.peer import PeerConfig
        from .. import render

        if video_codec is not None and video_codec.lower() not in ("vp8", "h264"):
            raise UsageError(f"--video-codec {video_codec}: unknown", "use vp8 or h264")
        try:
            impairments = None if network is None else parse_network(network, seed)
        except ValueError as exc:
            raise UsageError(
                f"--network: {exc}", "e.g. --network 'down=loss:5%,jitter:30ms;up=rate:500kbit'"
            ) from exc
        config = sandbox_config(
            api_key=api_key,
            token_ttl=token_ttl,
            require_email=require_email,
            known_emails=known_email or [],
            ice_servers=ice_server or [],
            ice_usernames=ice_username or [],
            ice_credentials=ice_credential or [],
        )
        if not is_loopback_host(host):
            render.note(f"warning: listening on {host}, which is not loopback: others can reach it")
        if api_key is None:
            # Shown on purpose, before it is registered as a secret: the user needs it.
            current().err().write(f"sandbox API key: {config.api_key}\n")
        peer = PeerConfig(
            delay=echo_delay,
            reply=reply,
            save_received=save_received,
            ice_servers=config.ice_servers,
            fec=not no_fec,
            network=impairments,
            remb=not no_remb,
            transport_cc=not no_transport_cc,
            video_codec=None if video_codec is None else video_codec.lower(),
            max_calls=max_calls,
            max_loop_lag_ms=max_loop_lag or None,
        )
        if impairments is not None:
            render.note(f"network: {impairments.describe()}")
        from ... import loop

        try:
            loop.run(_serve(config, peer, host=host, port=port))
        except Interrupted:
            pass  # Ctrl-C is how a server is stopped: not an error
        except KeyboardInterrupt:
            pass

    run(work)


async def _serve(config: Any, peer: Any, *, host: str, port: int) -> None:
    """Start the sandbox, print its base URL as the first stdout line, run until a signal."""
    from ... import loop
    from ...sandbox import background_errors_in_one_line, start_sandbox
    from .. import render

    box = await start_sandbox(config, peer, host=host, port=port)
    background_errors_in_one_line(asyncio.get_running_loop())
    render.data(box.base_url)
    stop = asyncio.Event()
    # SIGHUP (the terminal went away) does not exist on Windows.
    stops = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    with loop.handling(stops, stop.set):
        try:
            await stop.wait()
        finally:
            await box.stop()
            if peer.network is not None:
                from ...sandbox.network import totals_line

                sys.stderr.write(totals_line() + "\n")
                sys.stderr.flush()
