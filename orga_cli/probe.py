"""`orga ice --probe`: check every STUN/TURN server, in parallel, within a time bound.

For each URL: DNS resolution; a STUN Binding (the server-reflexive address and
the round-trip time); a TURN Allocate with the credentials over each transport
the URL allows (udp and tcp for ``turn:``, tls for ``turns:``). The STUN and TURN
exchanges are aioice's own (stun.Message, stun.Transaction, create_turn_endpoint);
nothing of the protocol is written here.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .models import IceServer, IceUrl

TURN_ERRORS = {
    400: "bad request",
    401: "wrong credentials",
    403: "forbidden",
    420: "unknown attribute",
    437: "allocation mismatch",
    438: "stale nonce",
    440: "address family not supported",
    441: "wrong credentials for this allocation",
    442: "unsupported transport protocol",
    486: "allocation quota reached",
    508: "insufficient capacity",
}


@dataclass
class Step:
    ok: bool = False
    ms: float | None = None
    error: str | None = None
    code: int | None = None


@dataclass
class DnsResult(Step):
    addresses: list[str] = field(default_factory=list)


@dataclass
class StunResult(Step):
    address: str | None = None  # server-reflexive ip:port


@dataclass
class TurnResult(Step):
    transport: str = "udp"
    relay: str | None = None  # relayed ip:port


@dataclass
class ProbeResult:
    url: str
    kind: str
    host: str
    port: int
    dns: DnsResult
    stun: StunResult | None = None
    turn: list[TurnResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _describe(exc: BaseException) -> tuple[str, int | None]:
    from aioice import stun

    if isinstance(exc, stun.TransactionFailed):
        code = exc.response.error_code
        reason = TURN_ERRORS.get(code or 0, "error")
        return f"{code} {reason}", code
    if isinstance(exc, (stun.TransactionTimeout, asyncio.TimeoutError, TimeoutError)):
        return "timeout", None
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused", None
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})", None
    if isinstance(exc, socket.gaierror):
        return "DNS failure", None
    if isinstance(exc, OSError):
        return f"network error ({exc.strerror or exc})", None
    return f"{type(exc).__name__}: {exc}", None


async def _resolve(host: str, port: int) -> DnsResult:
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        return DnsResult(ok=False, ms=_ms(started), error=f"DNS failure ({exc.strerror})")
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    return DnsResult(ok=True, ms=_ms(started), addresses=addresses)


class _StunClient(asyncio.DatagramProtocol):
    """Just enough of a datagram protocol for aioice's stun.Transaction."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.transactions: dict[bytes, Any] = {}
        self.failed: asyncio.Future[Any] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        from aioice import stun

        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        transaction = self.transactions.get(message.transaction_id)
        if transaction is not None:
            transaction.response_received(message, addr)

    def send_stun(self, message: Any, addr: tuple[str, int]) -> None:
        self.transport.sendto(bytes(message), addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the exchange fails at once.
        if self.failed is not None and not self.failed.done():
            self.failed.set_exception(exc)


async def _stun_binding(address: str, port: int) -> StunResult:
    from aioice import stun

    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    transport, protocol = await loop.create_datagram_endpoint(_StunClient, family=family)
    started = time.perf_counter()
    try:
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        transaction = stun.Transaction(request, (address, port), protocol)
        protocol.transactions[request.transaction_id] = transaction
        failed: asyncio.Future[Any] = loop.create_future()
        protocol.failed = failed
        exchange: asyncio.Future[Any] = asyncio.ensure_future(transaction.run())
        await asyncio.wait({exchange, failed}, return_when=asyncio.FIRST_COMPLETED)
        if not exchange.done():
            exchange.cancel()
            failed.result()  # raises what error_received got
        response, _ = exchange.result()
        mapped = response.attributes.get("XOR-MAPPED-ADDRESS") or response.attributes.get(
            "MAPPED-ADDRESS"
        )
        if not mapped:
            return StunResult(ok=False, ms=_ms(started), error="no mapped address in the response")
        return StunResult(ok=True, ms=_ms(started), address=f"{mapped[0]}:{mapped[1]}")
    except Exception as exc:
        error, code = _describe(exc)
        return StunResult(ok=False, ms=_ms(started), error=error, code=code)
    finally:
        transport.close()


async def port_refused(address: str, port: int, wait: float = 0.2) -> bool:
    """Does *address*:*port* answer UDP with "port unreachable" (a process that vanished)?

    One STUN Binding request from a connected socket of our own: Linux reports ICMP
    errors only to a connected UDP socket. A live server answers or ignores it."""
    from aioice import stun

    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            _StunClient, remote_addr=(address, port)
        )
    except OSError:
        return False
    failed: asyncio.Future[Any] = loop.create_future()
    protocol.failed = failed
    try:
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        transport.sendto(bytes(request))
        done, _ = await asyncio.wait({failed}, timeout=wait)
        return bool(done) and isinstance(failed.exception(), ConnectionRefusedError)
    finally:
        transport.close()


async def _turn_allocate(
    host: str, address: str, port: int, transport: str, username: str | None, credential: str | None
) -> TurnResult:
    from aioice.turn import create_turn_endpoint

    started = time.perf_counter()
    ssl_context: ssl.SSLContext | None = None
    wire = transport
    if transport == "tls":
        ssl_context = ssl.create_default_context()
        wire = "tcp"
    relay_transport = None
    try:
        relay_transport, _ = await create_turn_endpoint(
            asyncio.DatagramProtocol,
            server_addr=(address, port),
            username=username,
            password=credential,
            ssl=ssl_context,
            transport=wire,
        )
        relayed = relay_transport.get_extra_info("sockname")
        return TurnResult(
            ok=True, ms=_ms(started), transport=transport, relay=f"{relayed[0]}:{relayed[1]}"
        )
    except Exception as exc:
        error, code = _describe(exc)
        return TurnResult(ok=False, ms=_ms(started), transport=transport, error=error, code=code)
    finally:
        if relay_transport is not None:
            relay_transport.close()  # deletes the allocation


def turn_transports(url: IceUrl) -> list[str]:
    if url.scheme == "turns":
        return ["tls"]
    if "transport=" in url.url:
        return [url.transport]
    return ["udp", "tcp"]


async def probe_url(url_text: str, server: IceServer, timeout: float) -> ProbeResult:
    try:
        url = IceUrl.parse(url_text)
    except ValueError as exc:
        return ProbeResult(url_text, "?", "", 0, DnsResult(ok=False, error=str(exc)))
    result = ProbeResult(url.url, url.kind, url.host, url.port, DnsResult())
    deadline = time.monotonic() + timeout

    async def bounded(coro: Any, make_timeout: Any) -> Any:
        started = time.perf_counter()
        left = deadline - time.monotonic()
        try:
            return await asyncio.wait_for(coro, max(0.01, left))
        except asyncio.TimeoutError:
            late = make_timeout()
            late.ms = _ms(started)
            return late

    result.dns = await bounded(
        _resolve(url.host, url.port), lambda: DnsResult(ok=False, error="DNS timeout")
    )
    if not result.dns.ok:
        if url.kind == "stun":
            result.stun = StunResult(ok=False, error="DNS failure")
        result.turn = (
            [TurnResult(transport=t, error="DNS failure") for t in turn_transports(url)]
            if url.kind == "turn"
            else []
        )
        return result
    address = result.dns.addresses[0]
    jobs: list[Any] = []
    if url.kind == "stun" or (url.kind == "turn" and "udp" in turn_transports(url)):
        jobs.append(
            bounded(_stun_binding(address, url.port), lambda: StunResult(ok=False, error="timeout"))
        )
    if url.kind == "turn":
        for transport in turn_transports(url):
            jobs.append(
                bounded(
                    _turn_allocate(
                        url.host, address, url.port, transport, server.username, server.credential
                    ),
                    lambda transport=transport: TurnResult(transport=transport, error="timeout"),
                )
            )
    for item in await asyncio.gather(*jobs):
        if isinstance(item, StunResult):
            result.stun = item
        else:
            result.turn.append(item)
    return result


async def probe_servers(servers: list[IceServer], timeout: float) -> list[ProbeResult]:
    """Every URL of every server, all at once; each bounded by *timeout* seconds."""
    jobs = [probe_url(url, server, timeout) for server in servers for url in server.urls]
    results = await asyncio.gather(*jobs)
    # Let closing TURN allocations (a Refresh with lifetime 0) go out before the loop ends.
    await asyncio.sleep(0.05)
    return list(results)


def verdict(results: list[ProbeResult]) -> tuple[bool, str]:
    """(usable, one-line diagnosis)."""
    turns = [t for r in results for t in r.turn]
    relays = [t for t in turns if t.ok]
    srflx = [r.stun for r in results if r.stun is not None and r.stun.ok]
    if not results:
        return (
            False,
            "no ICE servers configured: only host candidates, so calls work only without NAT between the peers",
        )
    if relays:
        by = ", ".join(sorted({t.transport.upper() for t in relays}))
        for r in results:
            udp = [t for t in r.turn if t.transport == "udp"]
            stream_ok = any(t.ok for t in r.turn if t.transport in ("tcp", "tls"))
            if udp and udp[0].error == "timeout" and stream_ok:
                return (
                    True,
                    "UDP to the TURN server timed out; TURN over TCP works: your network blocks UDP",
                )
        broken = [r.url for r in results if r.turn and not any(t.ok for t in r.turn)]
        tail = f"; no relay from {', '.join(broken)}" if broken else ""
        return True, f"TURN works over {by}: relay candidates are available{tail}"
    if turns:
        errors = [t.error or "" for t in turns]
        if any(e.startswith("401") for e in errors):
            return (
                False,
                "the TURN server refused the credentials (401): they are wrong or expired; mint a new token and fetch the ICE servers again",
            )
        if any(e.startswith("438") for e in errors):
            return (
                False,
                "the TURN server kept answering 438 stale nonce: retry, and check the server's clock",
            )
        if any(e.startswith("403") for e in errors):
            return False, "the TURN server forbids this allocation (403)"
        if any(e.startswith("486") for e in errors):
            return (
                False,
                "the TURN server's allocation quota is reached (486): close other sessions and retry",
            )
        if all(e == "DNS failure" for e in errors):
            return False, "the TURN server's name does not resolve: check DNS"
        if all(e in ("timeout", "connection refused") for e in errors):
            return (
                False,
                "no TURN server answered (timeouts or refused connections): a firewall blocks them, or they are down",
            )
        return False, f"no TURN allocation succeeded ({'; '.join(sorted(set(errors)))})"
    if srflx:
        return True, "STUN works (server-reflexive address found); no TURN server is configured"
    return False, "no STUN server answered: UDP may be blocked; TURN over TCP/TLS would be needed"
