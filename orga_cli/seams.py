"""Every place orga reaches into aiortc's or aioice's private internals, and why.

Each seam is one function here, and tests/test_seams.py has one guard test per
seam that fails loudly when an upgrade removes what it relies on.
pyproject.toml caps aiortc and aioice at the versions those tests pass on; to
move the cap, install the new versions, run `pytest tests/test_seams.py`, and
fix here whatever a guard reports.

1. The receiver's audio jitter buffer (``RTCRtpReceiver.__jitter_buffer``):
   replaced by a stand-in (``_PacketTap``, which implements that buffer's private
   interface) that hands every packet to media/receive.py.
2. The ICE gathering bound: aioice takes a timeout per STUN/TURN query, aiortc
   never passes one (5 s fixed); bounded on this call's own connections.
3. The nominated candidate pair (aioice ``Connection._nominated``): for the
   panel, the summary, and the vanished-server probe; and the check list
   (``Connection._check_list``): each pair's checks, for a call's record.
4. Why a DTLS handshake failed: aiortc says so only in a debug log line.
5. RTP and RTCP at the SRTP boundary (``RTCDtlsTransport._send_rtp``, through
   which every sender and receiver sends, ``_handle_rtcp_data``, through which every
   RTCP packet received is routed, and ``_handle_rtp_data``, every RTP packet
   received): the uplink (media/uplink.py) paces what leaves, numbers it for
   transport-wide feedback, reads the feedback first, and notes when each numbered
   packet arrived (media/feedback.py).
6. Encoded frames pass through: aiortc's sender packetizes an ``av.Packet`` a track
   returns instead of encoding it (media/sources.py's Opus, media/video.py's video).
   Public behaviour, but what the inline encoders rely on: guarded all the same.
7. The receive path's packet hook for bench/client_latency.py
   (``RTCRtpReceiver._handle_rtp_packet``): when each audio packet reached aiortc.
8. The sandbox's answer to a request aiohttp cannot parse (a header over its limit, a
   bad request line): aiohttp writes plain text that echoes the offending bytes (an API
   key's prefix) and logs a traceback, from ``RequestHandler.handle_error``, which an
   application cannot replace; each handler the server makes is given a subclass.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

RECEIVER_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
DTLS_LOGGER = "aiortc.rtcdtlstransport"
DTLS_FAILED = "DTLS handshake failed ("


class SeamMissing(RuntimeError):
    """An aiortc/aioice internal orga relies on is not there (an upgrade moved it)."""


# 1 ------------------------------------------------------------------ receiver


class _PacketTap:
    """Stands in for aiortc's jitter buffer: every packet goes to *insert* instead.

    aiortc calls ``add(packet)`` for each RTP packet after its statistics (so RTCP
    receiver reports stay true); answering "no frame" means aiortc never decodes
    anything, and the remote track stays silent (a blackhole reads it).
    """

    def __init__(self, insert: Callable[[bytes, int, int], None]) -> None:
        self.insert = insert

    def add(self, packet: Any) -> tuple[bool, None]:
        if packet.payload:
            self.insert(bytes(packet.payload), packet.timestamp, packet.ssrc)
        return False, None

    def remove(self, count: int) -> None:  # aiortc's interface; nothing is held here
        pass


def feed_receiver(rtp_receiver: Any, insert: Callable[[bytes, int, int], None]) -> None:
    """Hand every RTP packet an aiortc audio RTCRtpReceiver gets to
    ``insert(payload, timestamp, ssrc)`` instead of aiortc's jitter buffer and decoder."""
    if not hasattr(rtp_receiver, RECEIVER_JITTER_BUFFER):
        raise SeamMissing(f"RTCRtpReceiver has no {RECEIVER_JITTER_BUFFER}")
    setattr(rtp_receiver, RECEIVER_JITTER_BUFFER, _PacketTap(insert))


# 2 and 3 ------------------------------------------------------------- ICE


def _ice_connections(pc: Any, *, gatherer: bool) -> list[Any]:
    """The aioice Connections of *pc*'s transports (no public accessor exists)."""
    transports = {t.sender.transport for t in pc.getTransceivers() if t.sender.transport}
    if pc.sctp is not None:
        transports.add(pc.sctp.transport)
    out = []
    for dtls in transports:
        ice = dtls.transport.iceGatherer if gatherer else dtls.transport
        conn = getattr(ice, "_connection", None)
        if conn is not None and conn not in out:
            out.append(conn)
    return out


def bound_gathering(pc: Any, timeout: float) -> None:
    """Bound each STUN/TURN query of *pc*'s gathering by *timeout* seconds."""
    for conn in _ice_connections(pc, gatherer=True):
        if not hasattr(conn, "get_component_candidates"):
            raise SeamMissing("aioice Connection has no get_component_candidates")
        # aioice annotates the bound as int; asyncio.wait takes any number of seconds.
        bounded = functools.partial(conn.get_component_candidates, timeout=timeout)
        setattr(conn, "get_component_candidates", bounded)  # noqa: B010 - this call's own connection


def candidate_pairs(pc: Any) -> list[tuple[Any, Any, str, bool]]:
    """Each pair of aioice's check list: (local, remote Candidate, its state's name in lower
    case ("frozen", "waiting", "in_progress", "succeeded", "failed"), nominated)."""
    out = []
    for conn in _ice_connections(pc, gatherer=False):
        for pair in getattr(conn, "_check_list", []):
            out.append(
                (
                    pair.local_candidate,
                    pair.remote_candidate,
                    pair.state.name.lower(),
                    pair.nominated,
                )
            )
    return out


def nominated_pair(pc: Any) -> tuple[Any, Any] | None:
    """(local, remote) aioice Candidates of the pair ICE nominated, or None yet."""
    for conn in _ice_connections(pc, gatherer=False):
        pair = next(iter(getattr(conn, "_nominated", {}).values()), None)
        if pair is not None:
            return pair.local_candidate, pair.remote_candidate
    return None


# 4 ------------------------------------------------------------------ DTLS


class DtlsFailureReason(logging.Handler):
    """Why aiortc's DTLS handshake failed: it says so only in a debug log line.

    aiortc's DTLS logger writes debug lines only on state changes and failures, so
    it is set to DEBUG while calls run (and restored when the last one closes);
    those lines also reach a root handler that takes debug lines, which the CLI
    does not have.
    """

    _attached = 0
    _saved_level = logging.NOTSET

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reason: str | None = None
        self._on = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if DTLS_FAILED in message:
            self.reason = message.rsplit("(", 1)[1].rstrip(")")

    def attach(self) -> None:
        if self._on:
            return
        logger = logging.getLogger(DTLS_LOGGER)
        cls = DtlsFailureReason
        if cls._attached == 0:
            cls._saved_level = logger.level
            logger.setLevel(logging.DEBUG)
        cls._attached += 1
        logger.addHandler(self)
        self._on = True

    def detach(self) -> None:
        if not self._on:
            return
        logger = logging.getLogger(DTLS_LOGGER)
        logger.removeHandler(self)
        cls = DtlsFailureReason
        cls._attached -= 1
        if cls._attached == 0:
            logger.setLevel(cls._saved_level)
        self._on = False


# 5 ------------------------------------------------------------------ SRTP boundary

Send = Callable[[bytes], Awaitable[None]]


def srtp_send(dtls: Any) -> Send:
    """aiortc's own send of plaintext RTP/RTCP on *dtls* (it protects and sends), as it
    is before ``intercept_srtp``: what a pacer or a feedback sender sends with."""
    send = getattr(dtls, "_send_rtp", None)
    if send is None:
        raise SeamMissing("RTCDtlsTransport has no _send_rtp")
    return send  # type: ignore[no-any-return]


def intercept_srtp(
    dtls: Any,
    outgoing: Callable[[bytes, Send], Awaitable[None]] | None = None,
    incoming_rtcp: Callable[[bytes, Send], Awaitable[None]] | None = None,
    incoming_rtp: Callable[[bytes], None] | None = None,
) -> Callable[[], None]:
    """Route *dtls*'s plaintext RTP/RTCP out through *outgoing* (with aiortc's own send),
    each RTCP packet received through *incoming_rtcp* (with aiortc's own routing), and show
    each RTP packet received to *incoming_rtp* before aiortc routes it. Returns a function
    that puts aiortc's back."""
    send = getattr(dtls, "_send_rtp", None)
    route = getattr(dtls, "_handle_rtcp_data", None)
    route_rtp = getattr(dtls, "_handle_rtp_data", None)
    if send is None or route is None or route_rtp is None:
        raise SeamMissing(
            "RTCDtlsTransport has no _send_rtp, _handle_rtcp_data or _handle_rtp_data"
        )

    async def sending(data: bytes) -> None:
        await outgoing(data, send)  # type: ignore[misc]

    async def receiving(data: bytes) -> None:
        await incoming_rtcp(data, route)  # type: ignore[misc]

    async def receiving_rtp(data: bytes, arrival_time_ms: int) -> None:
        incoming_rtp(data)  # type: ignore[misc]
        await route_rtp(data, arrival_time_ms=arrival_time_ms)

    if outgoing is not None:
        dtls._send_rtp = sending
    if incoming_rtcp is not None:
        dtls._handle_rtcp_data = receiving
    if incoming_rtp is not None:
        dtls._handle_rtp_data = receiving_rtp

    def restore() -> None:
        dtls._send_rtp = send
        dtls._handle_rtcp_data = route
        dtls._handle_rtp_data = route_rtp

    return restore


# 7 ------------------------------------------------------------------ receive hook (bench)


def on_rtp_received(seen: Callable[[Any, Any], None]) -> Callable[[], None]:
    """Call ``seen(receiver, packet)`` for each RTP packet any aiortc RTCRtpReceiver gets,
    before aiortc handles it (bench/client_latency.py times arrivals with it). Returns a
    function that puts aiortc's method back."""
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    handle = getattr(RTCRtpReceiver, "_handle_rtp_packet", None)
    if handle is None:
        raise SeamMissing("RTCRtpReceiver has no _handle_rtp_packet")

    async def handling(self: Any, packet: Any, arrival_time_ms: int) -> None:
        seen(self, packet)
        await handle(self, packet, arrival_time_ms=arrival_time_ms)

    RTCRtpReceiver._handle_rtp_packet = handling  # type: ignore[method-assign]

    def restore() -> None:
        RTCRtpReceiver._handle_rtp_packet = handle  # type: ignore[method-assign]

    return restore


# 8 ------------------------------------------------------------------ aiohttp parse errors


def answer_parse_errors(server: Any, answer: Callable[[int, BaseException | None], Any]) -> None:
    """Make every request handler *server* (an ``aiohttp.web.Server``, the runner's, after
    ``setup()``) creates answer what it cannot parse with ``answer(status, exc)`` (a
    ``web.Response``) instead of aiohttp's plain text, and log nothing itself."""
    from aiohttp import web
    from aiohttp.web_protocol import RequestHandler

    if not isinstance(server, web.Server) or not callable(
        getattr(RequestHandler, "handle_error", None)
    ):
        raise SeamMissing("aiohttp's Server or RequestHandler.handle_error is not as expected")

    class Handler(RequestHandler):
        __slots__ = ()

        def handle_error(
            self,
            request: Any,
            status: int = 500,
            exc: BaseException | None = None,
            message: str | None = None,
        ) -> Any:
            if request.writer.output_size > 0:  # as aiohttp: too late for an answer
                raise ConnectionError("response already sent")
            response = answer(status, exc)
            response.force_close()
            return response

    class Server(type(server)):  # type: ignore[misc]
        def __call__(self) -> Any:
            handler = super().__call__()
            handler.__class__ = Handler
            return handler

    server.__class__ = Server
