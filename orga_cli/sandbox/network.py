"""A bad network in userspace: ``orga serve --network "down=loss:5%,jitter:30ms;up=loss:2%"``.

Kernel netem is not there on macOS or Windows, nor in many containers, and a
person building a client needs to try it on a poor link. The sandbox puts a UDP
relay between the client and each call's peer: the answer's candidates point at
the relay's client-facing socket, and the offer's candidates, as the peer sees
them, at one relay socket per client address. Every packet crosses the relay,
whatever the client is (orga, a browser, a SDK), and media packets (SRTP/SRTCP:
first byte 128-191) are impaired on the way; ICE checks, DTLS and the data
channel pass untouched, so a call always sets up the same way.

Per direction (``down`` = server to client, ``up`` = client to server), items
separated by commas:

- ``loss:5%``: each packet dropped with that probability;
- ``delay:40ms``: a fixed delay added to each packet;
- ``jitter:30ms``: plus a random delay, normal with that standard deviation
  (clipped at 0); packets overtake each other, as on a real link;
- ``inorder``: with jitter, packets still leave in the order they came;
- ``reorder:5%``: that share of packets is held back 20-60 ms more, so that it
  arrives after later ones;
- ``outage:3s@5s``: every media packet dropped for 3 s, 5 s after the call's first
  one in that direction (ICE consent still passes, as when only the media path fails).

``--seed N`` makes the random choices repeat. Counts per call and direction go
to the log (``-v``) when a call ends and in a stats line when the server stops.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import re
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


@dataclass
class Impairment:
    """What one direction of the link does to media packets."""

    loss: float = 0.0  # probability, 0..1
    delay: float = 0.0  # seconds
    jitter: float = 0.0  # seconds, standard deviation
    reorder: float = 0.0  # probability of an extra 20-60 ms hold
    inorder: bool = False
    outage: tuple[float, float] | None = None  # (length, start after the first packet), s

    @property
    def active(self) -> bool:
        return bool(self.loss or self.delay or self.jitter or self.reorder or self.outage)

    def describe(self) -> str:
        parts = []
        if self.loss:
            parts.append(f"loss {100 * self.loss:g}%")
        if self.delay:
            parts.append(f"delay {1000 * self.delay:g} ms")
        if self.jitter:
            parts.append(
                f"jitter {1000 * self.jitter:g} ms" + (" in order" if self.inorder else "")
            )
        if self.reorder:
            parts.append(f"reorder {100 * self.reorder:g}%")
        if self.outage:
            parts.append(f"outage {self.outage[0]:g} s at {self.outage[1]:g} s")
        return ", ".join(parts) or "clean"


@dataclass
class Impairments:
    down: Impairment = field(default_factory=Impairment)
    up: Impairment = field(default_factory=Impairment)
    seed: int | None = None

    def describe(self) -> str:
        return f"down: {self.down.describe()}; up: {self.up.describe()}"


def parse_network(text: str, seed: int | None = None) -> Impairments:
    """``down=loss:5%,delay:40ms,jitter:30ms,reorder:5%;up=loss:2%`` (ValueError if not)."""
    out = Impairments(seed=seed)
    for section in filter(None, (p.strip() for p in text.split(";"))):
        direction, sep, items = section.partition("=")
        direction = direction.strip().lower()
        if not sep or direction not in ("down", "up", "both"):
            raise ValueError(f"{section!r}: expected down=…, up=… or both=…")
        imp = _parse_items(items)
        if direction in ("down", "both"):
            out.down = imp
        if direction in ("up", "both"):
            out.up = imp
    return out


def _parse_items(items: str) -> Impairment:
    imp = Impairment()
    for item in filter(None, (p.strip() for p in items.split(","))):
        key, _, value = item.partition(":")
        key = key.strip().lower()
        value = value.strip().lower()
        if key == "inorder" and not value:
            imp.inorder = True
        elif key in ("loss", "reorder"):
            setattr(imp, key, _percent(item, value))
        elif key in ("delay", "jitter"):
            setattr(imp, key, _seconds(item, value))
        elif key == "outage":
            length, at, start = value.partition("@")
            if not at:
                raise ValueError(f"{item!r}: expected outage:LENGTH@START, such as 3s@5s")
            imp.outage = (_seconds(item, length), _seconds(item, start, most=600))
        else:
            raise ValueError(
                f"{item!r}: unknown; use loss, delay, jitter, inorder, reorder or outage"
            )
    return imp


def _percent(item: str, value: str) -> float:
    try:
        pct = float(value.rstrip("%"))
    except ValueError:
        raise ValueError(f"{item!r}: expected a percentage such as 5%") from None
    if not 0 <= pct <= 100:
        raise ValueError(f"{item!r}: a percentage is 0 to 100")
    return pct / 100


def _seconds(item: str, value: str, most: float = 10) -> float:
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{item!r}: expected a duration such as 40ms")
    number = float(match.group(1))
    seconds = number / 1000 if match.group(2) in (None, "ms") else number
    if seconds > most:
        raise ValueError(f"{item!r}: at most {most:g} s")
    return seconds


@dataclass
class LinkStats:
    packets: int = 0  # media packets that entered
    dropped: int = 0
    reordered: int = 0  # left before a packet that entered earlier
    delay_sum: float = 0.0
    passed: int = 0  # non-media packets (ICE, DTLS, data channel), untouched

    def line(self) -> str:
        mean = 1000 * self.delay_sum / max(1, self.packets - self.dropped)
        pct = 100 * self.dropped / self.packets if self.packets else 0.0
        return (
            f"{self.packets} media packets, {self.dropped} dropped ({pct:.1f}%),"
            f" {self.reordered} reordered, mean added delay {mean:.0f} ms"
        )


TOTALS: dict[str, LinkStats] = {"down": LinkStats(), "up": LinkStats()}


class Link:
    """One direction: decides each packet's fate and sends it when due."""

    def __init__(self, imp: Impairment, rng: random.Random, name: str) -> None:
        self.imp = imp
        self.rng = rng
        self.name = name
        self.stats = LinkStats()
        self._last_departure = 0.0
        self._latest_sent_seq = -1
        self._seq = 0
        self._loop = asyncio.get_running_loop()
        self._first: float | None = None  # the first media packet, for the outage's start

    def _count(self, name: str, amount: float = 1) -> None:
        """Add to this call's count and to the server's totals alike."""
        for stats in (self.stats, TOTALS[self.name]):
            setattr(stats, name, getattr(stats, name) + amount)

    def send(self, data: bytes, transport: Any, addr: tuple[str, int]) -> None:
        if not (data and 128 <= data[0] <= 191):  # not SRTP/SRTCP: ICE, DTLS, data channel
            self.stats.passed += 1
            transport.sendto(data, addr)
            return
        self._count("packets")
        imp = self.imp
        if not imp.active:
            transport.sendto(data, addr)
            return
        now = self._loop.time()
        if self._first is None:
            self._first = now
        if imp.outage and 0 <= now - self._first - imp.outage[1] < imp.outage[0]:
            self._count("dropped")
            return
        if imp.loss and self.rng.random() < imp.loss:
            self._count("dropped")
            return
        extra = imp.delay
        if imp.jitter:
            extra += max(0.0, self.rng.gauss(0.0, imp.jitter))
        if imp.reorder and self.rng.random() < imp.reorder:
            extra += self.rng.uniform(0.02, 0.06)
        departure = now + extra
        if imp.inorder:
            departure = max(departure, self._last_departure)
        self._last_departure = max(self._last_departure, departure)
        self._count("delay_sum", departure - now)
        seq = self._seq
        self._seq += 1
        if departure <= now:
            self._deliver(seq, data, transport, addr)
        else:
            self._loop.call_at(departure, self._deliver, seq, data, transport, addr)

    def _deliver(self, seq: int, data: bytes, transport: Any, addr: tuple[str, int]) -> None:
        if seq < self._latest_sent_seq:
            self._count("reordered")
        self._latest_sent_seq = max(self._latest_sent_seq, seq)
        if not transport.is_closing():
            transport.sendto(data, addr)


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, on_packet: Any) -> None:
        self.on_packet = on_packet
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_packet(data, addr)

    def error_received(self, exc: Exception) -> None:  # a client that went away
        log.debug("relay: %s", exc)


_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ )(\S+)( \d+ )(\S+) (\d+)( typ .*)$", re.I)


class Relay:
    """The relay in front of one call: client <-> client_side ... peer_side[i] <-> peer."""

    def __init__(self, impairments: Impairments, name: str = "") -> None:
        self.impairments = impairments
        self.name = name
        seed = impairments.seed
        # With a seed every call meets the same fate packet by packet: two clients
        # (say orga and a browser) can be compared on the same link.
        base = random.Random(None if seed is None else f"orga-network:{seed}")
        self.down = Link(impairments.down, random.Random(base.random()), "down")
        self.up = Link(impairments.up, random.Random(base.random()), "up")
        self._client_side: _Socket | None = None
        self._peer_sides: dict[tuple[str, int], _Socket] = {}  # client address -> socket
        self._peer_addr: tuple[str, int] | None = None
        self._peer_seen: dict[tuple[str, int], tuple[str, int]] = {}
        self._pending: set[asyncio.Future[None]] = set()

    async def _bind(self, host: str, on_packet: Any) -> _Socket:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(
            lambda: _Socket(on_packet), local_addr=(host, 0)
        )
        return proto

    async def _peer_side(self, client: tuple[str, int]) -> _Socket:
        """The relay's socket that stands for *client* toward the peer (made once)."""
        if client not in self._peer_sides:
            self._peer_sides[client] = await self._bind(
                client[0], lambda data, addr, c=client: self._from_peer(c, data, addr)
            )
        return self._peer_sides[client]

    async def _rewrite(self, sdp: str, socket_for: Any) -> str:
        """*sdp* with each UDP candidate's address replaced by the relay socket standing
        for it (``await socket_for(host, port)``); candidates without one are dropped,
        and so are TCP and mDNS candidates, which are not relayed."""
        lines = []
        for line in sdp.replace("\r\n", "\n").split("\n"):
            match = _CANDIDATE.match(line)
            if match is None:
                lines.append(line)
                continue
            transport, host, port = match.group(2).lower(), match.group(4), int(match.group(5))
            sock = await socket_for(host, port) if transport == "udp" and _is_ip(host) else None
            if sock is None:
                continue
            local = sock.transport.get_extra_info("sockname")
            head, tail = match.group(1) + match.group(2) + match.group(3), match.group(6)
            lines.append(f"{head}{local[0]} {local[1]}{tail}")
        return "\r\n".join(lines)

    async def rewrite_offer(self, offer_sdp: str) -> str:
        """The offer as the peer should see it: each client candidate -> one relay socket."""

        async def socket_for(host: str, port: int) -> _Socket:
            return await self._peer_side((host, port))

        return await self._rewrite(offer_sdp, socket_for)

    async def rewrite_answer(self, answer_sdp: str) -> str:
        """The answer as the client should see it: the peer's first UDP candidate -> the relay.

        Every media section keeps that one candidate (aiortc reads a bundled
        transport's candidates from each section); the others are dropped.
        """

        async def socket_for(host: str, port: int) -> _Socket | None:
            if self._peer_addr is None:
                self._peer_addr = (host, port)
                self._client_side = await self._bind(host, self._from_client)
            return self._client_side if (host, port) == self._peer_addr else None

        rewritten = await self._rewrite(answer_sdp, socket_for)
        if self._client_side is None:
            raise RuntimeError("the answer has no UDP candidate to relay")
        log.info("call %s: media through a relay (%s)", self.name, self.impairments.describe())
        return rewritten

    def _from_client(self, data: bytes, addr: tuple[str, int]) -> None:
        sock = self._peer_sides.get(addr)
        if sock is None:  # a client address the offer did not list (peer-reflexive)
            if len(self._peer_sides) >= 16:
                return
            task = asyncio.ensure_future(self._new_peer_side(addr, data))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return
        target = self._peer_seen.get(addr) or self._peer_addr
        if target is not None:
            self.up.send(data, sock.transport, target)

    async def _new_peer_side(self, client: tuple[str, int], first: bytes) -> None:
        await self._peer_side(client)
        self._from_client(first, client)

    def _from_peer(self, client: tuple[str, int], data: bytes, addr: tuple[str, int]) -> None:
        self._peer_seen[client] = addr
        if self._client_side is not None:
            self.down.send(data, self._client_side.transport, client)

    def close(self) -> None:
        for sock in [self._client_side, *self._peer_sides.values()]:
            if sock is not None and sock.transport is not None:
                sock.transport.close()
        log.info(
            "call %s network: down %s; up %s",
            self.name,
            self.down.stats.line(),
            self.up.stats.line(),
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def totals_line() -> str:
    return f"network: down {TOTALS['down'].line()}; up {TOTALS['up'].line()}"
