"""`orga serve`: build the sandbox's configuration and run it until stopped."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence

from ..errors import UsageError, secrets
from ..loop import handling
from ..models import ice_servers_from_urls
from .peer import EchoPeer, PeerConfig
from .server import SandboxConfig, SandboxServer, generate_api_key


def build_config(
    *,
    api_key: str | None,
    token_ttl: int,
    require_email: bool,
    known_emails: Sequence[str],
    ice_servers: Sequence[str],
    ice_usernames: Sequence[str],
    ice_credentials: Sequence[str],
) -> SandboxConfig:
    try:
        servers = ice_servers_from_urls(
            list(ice_servers), list(ice_usernames), list(ice_credentials)
        )
    except ValueError as exc:
        raise UsageError(
            f"--ice-server: {exc}", "pass --ice-username and --ice-credential"
        ) from exc
    for server in servers:
        secrets.add(server.credential)
    return SandboxConfig(
        api_key=api_key or generate_api_key(),
        token_ttl=token_ttl,
        require_email=require_email,
        known_emails=tuple(known_emails),
        ice_servers=tuple(servers),
    )


async def serve_forever(
    config: SandboxConfig, peer_config: PeerConfig, *, host: str, port: int
) -> None:
    """Start the server, print its base URL as the first stdout line, run until a signal."""
    peer = EchoPeer(peer_config)
    server = SandboxServer(config, host=host, port=port, call_handler=peer)
    try:
        base_url = await server.start()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc})",
            "choose another --port, or 0 for a free one",
        ) from exc
    sys.stdout.write(base_url + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    # SIGHUP (the terminal went away) does not exist on Windows.
    stops = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    with handling(stops, stop.set):
        try:
            await stop.wait()
        finally:
            await peer.close()
            await server.stop()
            if peer_config.network is not None:
                from .network import totals_line

                sys.stderr.write(totals_line() + "\n")
                sys.stderr.flush()
