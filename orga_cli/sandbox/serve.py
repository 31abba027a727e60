"""`orga serve`: build the sandbox's configuration and run it until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from ..errors import UsageError, secrets
from ..models import IceServer, IceUrl
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
    """Pair TURN credentials with URLs: one pair for all, or one per TURN URL in order."""
    parsed: list[IceUrl] = []
    for given in ice_servers:
        try:
            parsed.append(IceUrl.parse(given))
        except ValueError as exc:
            raise UsageError(f"--ice-server: {exc}") from exc
    turn_count = sum(1 for p in parsed if p.kind == "turn")
    for name, values in (("--ice-username", ice_usernames), ("--ice-credential", ice_credentials)):
        if len(values) > 1 and len(values) != turn_count:
            raise UsageError(
                f"{len(values)} {name} values for {turn_count} TURN URLs",
                "give one for all TURN URLs, or one per TURN URL in order",
            )
    servers = []
    turn_index = 0
    for url in parsed:
        if url.kind == "turn":
            username = _pick(ice_usernames, turn_index)
            credential = _pick(ice_credentials, turn_index)
            turn_index += 1
            if username is None or credential is None:
                raise UsageError(f"TURN URL {url.url} needs --ice-username and --ice-credential")
            servers.append(IceServer((url.url,), username, credential))
            secrets.add(credential)
        else:
            servers.append(IceServer((url.url,)))
    return SandboxConfig(
        api_key=api_key or generate_api_key(),
        token_ttl=token_ttl,
        require_email=require_email,
        known_emails=tuple(known_emails),
        ice_servers=tuple(servers),
    )


def _pick(values: Sequence[str], index: int) -> str | None:
    if not values:
        return None
    return values[0] if len(values) == 1 else values[index]


async def serve_forever(config: SandboxConfig, *, host: str, port: int) -> None:
    """Start the server, print its base URL as the first stdout line, run until a signal."""
    server = SandboxServer(config, host=host, port=port, call_handler=None)
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
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
