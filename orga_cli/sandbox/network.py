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
  one in that direction (ICE consent still passes, as when only the media path fails);
- ``rate:500kbit``: a bottleneck: the direction forwards that many bits a second
  (``bit``, ``kbit``, ``mbit``; each packet counted with its IP and UDP headers, as a
  router does) and every packet of the direction shares it, media, ICE and DTLS alike;
  ``rate:300kbit@10s`` changes it 10 s after the call's first media packet (repeatable,
  so that a link can fall and come back);
- ``queue:200ms``: the bottleneck's buffer, drop-tail: a packet that would wait longer
  than that is dropped (200 ms when not given).

``--seed N`` makes the random choices repeat. Counts per call and direction go
to the log (``-v``) when a call ends and in a stats line when the server stops; the
bottleneck's queue (its delay, what it dropped) is also in each call's
``sandbox.stats`` event, second by second.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|k|m)?(?:/s|ps)?$")
_RATE_UNITS = {None: 1.0, "bit": 1.0, "k": 1e3, "kbit": 1e3, "m": 1e6, "mbit": 1e6}
DEFAULT_QUEUE_S = 0.2
IP_UDP_OVERHEAD = {4: 28, 6: 48}  # bytes a router counts besides the UDP payload


@dataclass
class Impairment:
    """What one direction of the link does to media packets."""

    loss: float = 0.0  # probability, 0..1
    delay: float = 0.0  # seconds
    jitter: float = 0.0  # seconds, standard deviation
    reorder: float = 0.0  # probability of an extra 20-60 ms hold
    inorder: bool = False
    outage: tuple[float, float] | None = None  # (length, start after the first packet), s
    rate: float | None = None  # bits/s of the bottleneck at the start, None: no bottleneck
    rate_changes: list[tuple[float, float]] = field(default_factory=list)  # (at s, bits/s)
    queue: float = DEFAULT_QUEUE_S  # the bottleneck's drop-tail buffer, seconds of waiting

    @property
    def active(self) -> bool:
        return bool(
            self.loss or self.delay or self.jitter or self.reorder or self.outage or self.limited
        )

    @property
    def limited(self) -> bool:
        """Has this direction a bottleneck (a rate, from the start or later)?"""
        return self.rate is not None or bool(self.rate_changes)

    def rate_at(self, since_first: float | None) -> float | None:
        """The bottleneck's rate *since_first* s after the first media packet (None: unlimited)."""
        rate = self.rate
        if since_first is None:
            return rate
        for at, value in self.rate_changes:
            if since_first >= at:
                rate = value
        return rate

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
        if self.limited:
            steps = [] if self.rate is None else [_kbit(self.rate)]
            steps += [f"{_kbit(rate)} at {at:g} s" for at, rate in self.rate_changes]
            parts.append(f"rate {', '.join(steps)}, queue {1000 * self.queue:g} ms")
        return ", ".join(parts) or "clean"


def _kbit(rate: float) -> str:
    return f"{rate / 1000:g} kbit/s"


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
        elif key == "rate":
            amount, at, start = value.partition("@")
            if at:
                imp.rate_changes.append((_seconds(item, start, most=3600), _bits(item, amount)))
            elif imp.rate is not None:
                raise ValueError(f"{item!r}: a second starting rate; changes take @TIME")
            else:
                imp.rate = _bits(item, amount)
        elif key == "queue":
            imp.queue = _seconds(item, value, most=10)
            if imp.queue <= 0:
                raise ValueError(f"{item!r}: the queue must hold something, such as 200ms")
        else:
            raise ValueError(
                f"{item!r}: unknown; use loss, delay, jitter, inorder, reorder, outage,"
                " rate or queue"
            )
    imp.rate_changes.sort()
    return imp


def _bits(item: str, value: str) -> float:
    match = _RATE.match(value.strip())
    if not match:
        raise ValueError(f"{item!r}: expected a rate such as 500kbit or 2mbit")
    rate = float(match.group(1)) * _RATE_UNITS[match.group(2)]
    if not 8_000 <= rate <= 10e9:
        raise ValueError(f"{item!r}: a rate is 8kbit to 10000mbit")
    return rate


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


QUEUE_BINS = 2001  # the queue's waits, counted per millisecond up to 2 s


@dataclass
class LinkStats:
    packets: int = 0  # media packets that entered
    dropped: int = 0  # media packets dropped (loss, outage or a full queue)
    reordered: int = 0  # left before a packet that entered earlier
    delay_sum: float = 0.0
    passed: int = 0  # non-media packets (ICE, DTLS, data channel), untouched
    # the bottleneck: every packet of the direction
    queued: int = 0  # packets that went through the queue
    queue_dropped: int = 0  # packets (any kind) dropped because the queue was full
    bytes_out: int = 0  # bytes forwarded by the bottleneck, IP and UDP headers included
    waits: list[int] = field(default_factory=lambda: [0] * QUEUE_BINS)  # per ms of waiting

    def wait_quantile_ms(self, q: float) -> float | None:
        """The *q* quantile of the time packets waited in the queue, in ms."""
        total = sum(self.waits)
        if not total:
            return None
        rank, seen = q * (total - 1), 0
        for ms, count in enumerate(self.waits):
            seen += count
            if seen > rank:
                return float(ms)
        return float(QUEUE_BINS - 1)

    def queue_json(self) -> dict[str, Any]:
        total = self.queued + self.queue_dropped
        return {
            "queued": self.queued,
            "dropped": self.queue_dropped,
            "dropped_pct": round(100 * self.queue_dropped / total, 2) if total else 0.0,
            "wait_ms": {
                "median": self.wait_quantile_ms(0.5),
                "p95": self.wait_quantile_ms(0.95),
                "max": self.wait_quantile_ms(1.0),
            },
        }

    def line(self) -> str:
        mean = 1000 * self.delay_sum / max(1, self.packets - self.dropped)
        pct = 100 * self.dropped / self.packets if self.packets else 0.0
        text = (
            f"{self.packets} media packets, {self.dropped} dropped ({pct:.1f}%),"
            f" {self.reordered} reordered, mean added delay {mean:.0f} ms"
        )
        if self.queued or self.queue_dropped:
            q = self.queue_json()
            w = q["wait_ms"]
            text += (
                f"; bottleneck: {self.queued} packets queued, {self.queue_dropped} dropped"
                f" ({q['dropped_pct']:.1f}%), waited median {w['median']:.0f} ms,"
                f" p95 {w['p95']:.0f}, max {w['max']:.0f}"
            )
        return text


@dataclass
class QueueSample:
    """The bottleneck over one 100 ms bin (a call's timeline of its queue)."""

    at: float  # s since the direction's first media packet
    wait_max_ms: float = 0.0
    wait_sum_ms: float = 0.0
    packets: int = 0  # that entered the queue
    dropped: int = 0
    bytes_out: int = 0
    rate: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "t": round(self.at, 1),
            "wait_max_ms": round(self.wait_max_ms, 1),
            "wait_mean_ms": round(self.wait_sum_ms / self.packets, 1) if self.packets else None,
            "packets": self.packets,
            "dropped": self.dropped,
            "kbps_out": round(8 * self.bytes_out / 100, 1),  # bytes in 0.1 s -> kbit/s
            "rate_kbps": None if self.rate is None else self.rate / 1000,
        }


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
        self._busy_until = 0.0  # when the bottleneck has sent what it holds
        self.timeline: deque[QueueSample] = deque(maxlen=36_000)  # an hour of 100 ms bins
        self._second_waits: deque[tuple[float, float]] = deque()  # (when, wait) of the last 1 s

    def _count(self, name: str, amount: float = 1) -> None:
        """Add to this call's count and to the server's totals alike."""
        for stats in (self.stats, TOTALS[self.name]):
            setattr(stats, name, getattr(stats, name) + amount)

    def _sample(self, now: float) -> QueueSample:
        """The timeline's bin for *now* (made when the first packet of it comes)."""
        at = 0.0 if self._first is None else now - self._first
        start = 0.1 * int(at / 0.1) if at >= 0 else at
        if not self.timeline or self.timeline[-1].at < start - 1e-9:
            self.timeline.append(QueueSample(start, rate=self.imp.rate_at(at)))
        return self.timeline[-1]

    def last_second(self) -> dict[str, Any]:
        """The bottleneck over the last second (its longest wait, drops, throughput) and
        its totals so far."""
        now = self._loop.time()
        while self._second_waits and self._second_waits[0][0] < now - 1.0:
            self._second_waits.popleft()
        since = None if self._first is None else now - self._first
        recent: list[QueueSample] = []
        for sample in reversed(self.timeline):
            if since is None or sample.at < since - 1.0:
                break
            recent.append(sample)
        rate = self.imp.rate_at(since)
        return {
            "queue_ms": round(1000 * max((w for _, w in self._second_waits), default=0.0), 1),
            "dropped_1s": sum(s.dropped for s in recent),
            "kbps": round(sum(8 * s.bytes_out for s in recent) / 1000, 1),
            "rate_kbps": None if rate is None else rate / 1000,
            **self.stats.queue_json(),
        }

    def _bottleneck(self, data: bytes, addr: tuple[str, int], now: float) -> float | None:
        """When *data* leaves the bottleneck, or None when its queue is full (drop-tail)."""
        imp = self.imp
        rate = imp.rate_at(None if self._first is None else now - self._first)
        if rate is None:
            return now
        sample = self._sample(now)
        size = len(data) + IP_UDP_OVERHEAD[6 if ":" in addr[0] else 4]
        start = max(now, self._busy_until)
        wait = start - now
        if wait > imp.queue:
            self._count("queue_dropped")
            sample.dropped += 1
            return None
        self._busy_until = start + 8 * size / rate
        self._count("queued")
        self._count("bytes_out", size)
        for stats in (self.stats, TOTALS[self.name]):
            stats.waits[min(QUEUE_BINS - 1, round(1000 * wait))] += 1
        sample.packets += 1
        sample.bytes_out += size
        sample.wait_sum_ms += 1000 * wait
        sample.wait_max_ms = max(sample.wait_max_ms, 1000 * wait)
        self._second_waits.append((now, wait))
        return self._busy_until

    def send(self, data: bytes, transport: Any, addr: tuple[str, int]) -> None:
        imp = self.imp
        if not (data and 128 <= data[0] <= 191):  # not SRTP/SRTCP: ICE, DTLS, data channel
            self.stats.passed += 1
            if not imp.limited:
                self._forward(data, transport, addr)
                return
            # The bottleneck is shared by every packet; nothing else impairs these.
            now = self._loop.time()
            leaves = self._bottleneck(data, addr, now)
            if leaves is not None:
                self._at(leaves, now, self._forward, data, transport, addr)
            return
        self._count("packets")
        if not imp.active:
            self._forward(data, transport, addr)
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
        leaves = self._bottleneck(data, addr, now) if imp.limited else now
        if leaves is None:
            self._count("dropped")
            return
        extra = imp.delay + (leaves - now)
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
        self._forward(data, transport, addr)

    @staticmethod
    def _forward(data: bytes, transport: Any, addr: tuple[str, int]) -> None:
        if transport.is_closing():
            return
        try:
            transport.sendto(data, addr)
        except (OSError, ValueError) as exc:  # an address of the other family: not relayed
            log.debug("relay: cannot send to %s: %s", addr, exc)

    def _at(self, when: float, now: float, fn: Any, *args: Any) -> None:
        if when <= now:
            fn(*args)
        else:
            self._loop.call_at(when, fn, *args)


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
