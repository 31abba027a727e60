"""The Orga-compatible sandbox: an aiohttp API server and, for calls, an echo peer.

``start_sandbox()`` is the one way to run it, in this process or as `orga serve`:

    async with await start_sandbox() as box:
        async with OrgaClient(box.base_url, box.api_key) as client: ...

Heavy modules (aiortc, aiohttp) are imported when a sandbox starts, not with this package.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UsageError, secrets, setting

if TYPE_CHECKING:
    from .peer import EchoPeer, PeerConfig
    from .server import CallHandler, SandboxConfig, SandboxServer


@dataclass
class RunningSandbox:
    """A sandbox that answers at ``base_url`` to ``api_key``; ``stop()`` ends it (bounded)."""

    base_url: str
    api_key: str
    server: SandboxServer
    peer: EchoPeer | None

    async def stop(self) -> None:
        if self.peer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.peer.close(), 3)
        with contextlib.suppress(Exception):
            await self.server.stop()

    async def __aenter__(self) -> RunningSandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def start_sandbox(
    config: SandboxConfig | None = None,
    peer: PeerConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    call_handler: CallHandler | None = None,
) -> RunningSandbox:
    """Start a sandbox on *host*:*port* (0: a free port). Calls are answered by an echo
    peer made from *peer* (its defaults: an echo after 0.5 s), or by *call_handler*.
    Its API key is registered as a secret: it is masked wherever orga prints."""
    from .peer import EchoPeer, PeerConfig
    from .server import SandboxConfig, SandboxServer

    config = config or SandboxConfig()
    secrets.add(config.api_key)
    for ice in config.ice_servers:
        secrets.add(ice.credential)
    echo = None
    if call_handler is None:
        peer = peer or PeerConfig()
        if not peer.ice_servers:
            peer.ice_servers = config.ice_servers
        echo = EchoPeer(peer)
        call_handler = echo
    server = SandboxServer(config, host=host, port=port, call_handler=call_handler)
    try:
        base_url = await server.start()
    except OSError as exc:
        if echo is not None:
            await echo.close()
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc})",
            f"choose another {setting('port')}, or 0 for a free one",
        ) from exc
    return RunningSandbox(base_url, config.api_key, server, echo)


def sandbox_config(
    *,
    api_key: str | None = None,
    token_ttl: int = 60,
    require_email: bool = False,
    known_emails: tuple[str, ...] | list[str] = (),
    ice_servers: list[str] | tuple[str, ...] = (),
    ice_usernames: list[str] | tuple[str, ...] = (),
    ice_credentials: list[str] | tuple[str, ...] = (),
) -> SandboxConfig:
    """A SandboxConfig from plain values (ICE servers as URLs with their credentials)."""
    from ..models import ice_servers_from_urls
    from .server import SandboxConfig, generate_api_key

    try:
        servers = ice_servers_from_urls(
            list(ice_servers), list(ice_usernames), list(ice_credentials)
        )
    except ValueError as exc:
        raise UsageError(
            f"{setting('ice_servers')}: {exc}", f"pass {setting('ice_credentials')}"
        ) from exc
    return SandboxConfig(
        api_key=api_key or generate_api_key(),
        token_ttl=token_ttl,
        require_email=require_email,
        known_emails=tuple(known_emails),
        ice_servers=tuple(servers),
    )


__all__ = ["RunningSandbox", "sandbox_config", "start_sandbox"]


def background_errors_in_one_line(loop: asyncio.AbstractEventLoop) -> None:
    """Make *loop* log a task's unretrieved exception as one line, not a traceback.

    aiortc's SCTP transmit task raises "Cannot send encrypted data, not connected" when a
    call's DTLS closes under it, and nothing awaits that task: asyncio's default handler
    prints a traceback into the server's log for a call that simply ended. The traceback
    is still there with --debug."""
    log = logging.getLogger("orga_cli.sandbox")

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if exc is None or log.isEnabledFor(logging.DEBUG):
            loop.default_exception_handler(context)
            return
        task = context.get("future")
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        where = getattr(coro, "__qualname__", "a callback")
        log.info("a background task ended: %s in %s: %s", type(exc).__name__, where, exc)

    loop.set_exception_handler(handler)
