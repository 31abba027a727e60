"""Paced sending: a video frame's packets spread over time, audio never queued behind them.

aiortc hands each packet to its DTLS transport as soon as it is made, so a frame's
packets leave back to back (aiortc #884) and a keyframe lands on the bottleneck as
one burst. The pacer stands in that call (seams.py): audio and RTCP go straight
through; video, retransmissions and probes wait in a queue that drains at a pacing
rate (2.5 times the estimate, as libwebrtc's, so an average frame leaves in a
fraction of its interval), and each packet that leaves is numbered for
transport-wide feedback when the answer asked for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..loop import Background
from . import wire

log = logging.getLogger(__name__)

PACING_FACTOR = 2.5
WIRE_OVERHEAD = 10 + 8 + 20  # SRTP tag, UDP, IPv4: what the bottleneck counts besides RTP
MAX_QUEUE_S = 2.0  # packets older than this are dropped (the encoder is told to slow down)
MIN_PROBE_PACKETS = 5
MIN_PROBE_S = 0.015
PADDING_SIZE = 224  # an RTX packet of padding only, when there is nothing to resend


def probe_packet_size(rate: float) -> int:
    """Bytes of a probe's padding packet at *rate*: five of them fill its 15 ms."""
    return int(min(1200, max(200, rate * MIN_PROBE_S / MIN_PROBE_PACKETS / 8)))


@dataclass
class Queued:
    data: bytes
    at: float
    kind: str  # "video", "rtx"
    ssrc: int
    sequence: int


@dataclass
class ProbeRun:
    ident: int
    rate: float  # bits/s
    started: float
    bytes_needed: int
    bytes_sent: int = 0
    packets: int = 0


class Pacer:
    """One call's outgoing RTP, as it reaches SRTP (see the module docstring)."""

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        on_sent: Callable[[float, bytes, wire.RtpHeader, int, int, int | None], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send  # aiortc's own: SRTP, then ICE
        self._on_sent = on_sent  # (now, data, header, wire size, transport seq, probe)
        self._clock = clock
        self.rate = 300_000 * PACING_FACTOR  # bits/s
        self.transport_cc_id: int | None = None  # header extension id, when negotiated
        # abs-send-time, when negotiated: aiortc stamps it when it makes the packet, before
        # the queue; a receiver's estimate (REMB) reads the time spent here as congestion.
        self.abs_send_time_id: int | None = None
        self.numbered_ssrcs: set[int] = set()  # streams that carry transport-wide numbers
        self.paced_ssrcs: set[int] = set()  # the video and its RTX
        self.rtx: tuple[int, int] | None = None  # (payload type, ssrc) of the video's RTX
        self._rtx_seq = 0
        self._next_transport_seq = 0
        self._queue: deque[Queued] = deque()
        self._queued_bytes = 0
        self._budget = 0.0  # bytes
        self._last = clock()
        self._wake = asyncio.Event()
        self._task = Background(self._run)
        self._probe: ProbeRun | None = None
        self._probe_done: Callable[[int], None] = lambda ident: None
        self._history: deque[tuple[float, bytes]] = deque(maxlen=64)  # recent video, padding
        self.dropped = 0  # packets too old to be worth sending
        self.sent_packets = 0
        self.padding_packets = 0

    # ------------------------------------------------------------------ in

    def use_rtx(self, payload_type: int, ssrc: int) -> None:
        """Retransmissions and probes go in RTX packets of *payload_type* on *ssrc*,
        numbered from a random start (RFC 4588)."""
        self.rtx = (payload_type, ssrc)
        self._rtx_seq = random.randrange(0, 0x8000)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def send_now(self, data: bytes, header: wire.RtpHeader | None = None) -> None:
        """Audio and RTCP: at once, ahead of anything queued (they count in the budget)."""
        if header is None:  # RTCP
            await self._emit_raw(data)
            return
        await self._emit(data, header, None)
        self._budget -= len(data) + WIRE_OVERHEAD

    def enqueue(self, data: bytes, header: wire.RtpHeader, kind: str = "video") -> None:
        """Video and retransmissions: in turn, at the pacing rate."""
        item = Queued(data, self._clock(), kind, header.ssrc, header.sequence)
        if kind == "rtx":
            # A retransmission goes before new frames: it is what the receiver waits for.
            self._queue.appendleft(item)
        else:
            self._queue.append(item)
            self._history.append((item.at, data))
        self._queued_bytes += len(data) + WIRE_OVERHEAD
        self._wake.set()

    def queue_seconds(self) -> float:
        """How long what is queued takes to leave at the pacing rate."""
        return 8 * self._queued_bytes / max(self.rate, 1.0)

    def queue_age(self) -> float:
        return self._clock() - self._queue[0].at if self._queue else 0.0

    def probe(self, ident: int, rate: float, done: Callable[[int], None]) -> None:
        """Send at *rate* for a short cluster (queued video first, then padding)."""
        needed = max(int(rate * MIN_PROBE_S / 8), 0)
        self._probe = ProbeRun(ident, rate, self._clock(), needed)
        self._probe_done = done
        self._wake.set()

    @property
    def probing(self) -> bool:
        return self._probe is not None

    # ------------------------------------------------------------------ out

    async def _run(self) -> None:
        while True:
            if not self._queue and self._probe is None:
                self._wake.clear()
                await self._wake.wait()
                self._last = self._clock()
                self._budget = max(self._budget, 0.0)
            now = self._clock()
            if self._probe is not None:
                await self._send_probe(now)
                continue
            elapsed = now - self._last
            self._last = now
            burst = max(self.rate * 0.005 / 8, 1500.0)  # at most 5 ms at the rate at once
            self._budget = min(self._budget + self.rate * elapsed / 8, burst)
            while self._queue and self._budget > 0:
                item = self._queue.popleft()
                size = len(item.data) + WIRE_OVERHEAD
                self._queued_bytes -= size
                if now - item.at > MAX_QUEUE_S:
                    self.dropped += 1
                    continue
                await self._emit(item.data, wire.rtp_header(item.data), None)
                self._budget -= size
            if self._queue:
                wait = (-self._budget + 1) * 8 / max(self.rate, 1.0)
                await asyncio.sleep(min(max(wait, 0.001), 0.02))

    async def _send_probe(self, now: float) -> None:
        probe = self._probe
        assert probe is not None
        if probe.packets >= MIN_PROBE_PACKETS and probe.bytes_sent >= probe.bytes_needed:
            self._probe = None
            self._probe_done(probe.ident)
            return
        if self._queue:
            item = self._queue.popleft()
            self._queued_bytes -= len(item.data) + WIRE_OVERHEAD
            data = item.data
        else:
            padding = self._padding(probe.rate)
            if padding is None:  # nothing to probe with: give up on this one
                self._probe = None
                self._probe_done(probe.ident)
                return
            data = padding
            self.padding_packets += 1
        size = len(data) + WIRE_OVERHEAD
        await self._emit(data, wire.rtp_header(data), probe.ident)
        probe.packets += 1
        probe.bytes_sent += size
        # the next probe packet when this one has left at the probe's rate
        due = probe.started + 8 * probe.bytes_sent / probe.rate
        wait = due - self._clock()
        if wait > 0:
            await asyncio.sleep(wait)
        self._budget = 0.0
        self._last = self._clock()

    def _padding(self, rate: float) -> bytes | None:
        """A packet that carries nothing new, about a fifth of 15 ms at the probe's rate (a
        slow probe in small packets, so that it does not fill a narrow link's queue): with
        RTX, an RTX packet of padding only; without, a video packet of the last second
        again (a receiver drops it as a duplicate; an older one could confuse its jitter
        buffer, so with none that recent there is no probe)."""
        if not self._history:
            return None
        at, original = self._history[-1 - (self.padding_packets % len(self._history))]
        if self.rtx is None:
            return original if self._clock() - at < 1.0 else None
        pt, ssrc = self.rtx
        self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        return wire.padding_packet(original, pt, self._rtx_seq, ssrc, probe_packet_size(rate))

    def retransmission(self, original: bytes) -> bytes:
        """*original* as an RTX packet (RFC 4588), or as it was without RTX."""
        if self.rtx is None:
            return original
        pt, ssrc = self.rtx
        self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        return wire.rtx_packet(original, pt, self._rtx_seq, ssrc)

    async def _emit(self, data: bytes, header: wire.RtpHeader, probe: int | None) -> None:
        ident = self.abs_send_time_id
        if ident is not None and header.ssrc in self.paced_ssrcs and wire.extension(data, ident):
            data = wire.with_extension(data, ident, wire.abs_send_time(time.time()))
        transport_seq = -1
        if self.transport_cc_id is not None and header.ssrc in self.numbered_ssrcs:
            transport_seq = self._next_transport_seq
            self._next_transport_seq += 1
            data = wire.with_transport_sequence(data, self.transport_cc_id, transport_seq)
        size = len(data) + WIRE_OVERHEAD
        self.sent_packets += 1
        self._on_sent(self._clock(), data, header, size, transport_seq, probe)
        await self._emit_raw(data)

    async def _emit_raw(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionError):  # the transport is closing
            await self._send(data)
