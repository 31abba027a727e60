"""Transport-wide feedback for what we receive: the far end's congestion control gets what ours gets.

An answer (or offer) that accepts ``transport-cc`` asks the receiving side to say when
each numbered packet arrived; a sender whose feedback never comes has no delay
signal. ``FeedbackSender`` keeps the arrival time of every packet that carries the
transport-wide sequence number and sends an RTPFB FMT 15 packet every 100 ms (at most
a few hundred packets each), as libwebrtc's receiver does. orga uses it for the voice
it receives, and the sandbox for what its peer receives, so that clients can be tried
against a receiver with transport-wide feedback (`orga serve --no-transport-cc` stands
for one without).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from ..loop import Background
from . import wire

log = logging.getLogger(__name__)

INTERVAL_S = 0.1
MAX_PACKETS = 500  # per feedback packet
MAX_DELTA_S = 8.0  # a receive delta's range: a longer gap starts a new feedback


class FeedbackSender:
    def __init__(
        self,
        extension_id: int,
        send: Callable[[bytes], Awaitable[None]],
        sender_ssrc: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.extension_id = extension_id
        self._send = send
        self.sender_ssrc = sender_ssrc
        self._clock = clock
        self._arrivals: dict[int, float] = {}
        self._highest = -1
        self._next = -1  # the first sequence number not yet reported
        self._media_ssrc = 0
        self._count = 0
        self._task = Background(self._run)
        self.sent = 0

    def on_packet(self, data: bytes, arrival: float | None = None) -> None:
        """A received RTP packet (plaintext): note its transport sequence number, if it has one."""
        value = wire.extension(data, self.extension_id)
        if value is None or len(value) != 2:
            return
        seq16 = int.from_bytes(value, "big")
        if self._highest < 0:
            seq = seq16
            self._next = seq
        else:
            seq = self._highest + ((seq16 - self._highest + 0x8000) & 0xFFFF) - 0x8000
        if seq < self._next:  # already reported (as lost): too late now
            return
        self._arrivals[seq] = self._clock() if arrival is None else arrival
        self._highest = max(self._highest, seq)
        self._media_ssrc = int.from_bytes(data[8:12], "big")

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL_S)
            for packet in self.packets():
                try:
                    await self._send(packet)
                    self.sent += 1
                except ConnectionError:
                    return

    def packets(self) -> list[bytes]:
        """The feedback due now: everything from the first unreported packet to the newest."""
        out = []
        while self._next >= 0 and self._next <= self._highest:
            start = self._next
            end = min(self._highest, start + MAX_PACKETS - 1)
            first = next(
                (self._arrivals[s] for s in range(start, end + 1) if s in self._arrivals), None
            )
            if first is None:
                self._next = end + 1
                continue
            reference = int(first / 0.064)
            arrivals: list[float | None] = []
            last = reference * 0.064
            for seq in range(start, end + 1):
                at = self._arrivals.pop(seq, None)
                if at is not None and abs(at - last) > MAX_DELTA_S:
                    break
                if at is not None:
                    last = at
                arrivals.append(at)
            while arrivals and arrivals[-1] is None:  # end on a received packet
                arrivals.pop()
            if not arrivals:
                self._next = end + 1
                continue
            out.append(
                wire.build_transport_feedback(
                    self.sender_ssrc, self._media_ssrc, start, self._count, reference, arrivals
                )
            )
            self._count = (self._count + 1) & 0xFF
            self._next = start + len(arrivals)
        return out


def accept_transport_cc(answer_sdp: str, offer_sdp: str) -> tuple[str, int | None]:
    """*answer_sdp* accepting the transport-wide sequence number extension (with the id the
    offer gave it) and ``transport-cc`` feedback in each section where the offer asked for
    them; and that id, or None when the offer did not ask. For an answerer (aiortc) that
    does not know the extension: the feedback itself is then this module's."""
    from .. import sdp as sdplib

    offer = sdplib.parse(offer_sdp)
    ident = None
    asked: set[int] = set()  # media sections (by index) that asked
    for index, media in enumerate(offer.media):
        for ext in media.header_extensions:
            number, _, uri = ext.partition(" ")
            if uri.split() and uri.split()[0] == wire.TRANSPORT_CC_URI:
                ident = int(number.split("/")[0])
                asked.add(index)
    if ident is None:
        return answer_sdp, None
    eol = "\r\n" if "\r\n" in answer_sdp else "\n"
    out: list[str] = []
    index = -1
    payloads: list[str] = []
    for line in answer_sdp.split(eol):
        if line.startswith("m="):
            index += 1
            payloads = line.split()[3:]
        out.append(line)
        if index not in asked or line.startswith("m="):
            continue
        if line.startswith("a=mid:"):
            out.append(f"a=extmap:{ident} {wire.TRANSPORT_CC_URI}")
        elif line.startswith("a=rtpmap:"):
            pt, _, codec = line[len("a=rtpmap:") :].partition(" ")
            if pt in payloads and not codec.lower().startswith(("rtx/", "red/", "ulpfec/")):
                out.append(f"a=rtcp-fb:{pt} transport-cc")
    return eol.join(out), ident
