"""One guard per private aiortc/aioice internal orga uses (orga_cli/seams.py).

If one of these fails after an upgrade, the seam it names has moved: fix it in
seams.py before moving the version cap in pyproject.toml.
"""

from __future__ import annotations

import inspect
import logging

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from orga_cli import seams


async def connected_pair() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    """Two aiortc peers in this process, connected over loopback (audio + data)."""
    a, b = RTCPeerConnection(), RTCPeerConnection()
    a.addTransceiver("audio", direction="sendrecv")
    a.createDataChannel("x")
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(RTCSessionDescription(b.localDescription.sdp, "answer"))
    return a, b


async def test_seam_1_receiver_jitter_buffer() -> None:
    """aiortc hands each packet to its jitter buffer's add() and reads (pli, frame) back; the
    stand-in takes its place, gives the payload, timestamp and SSRC of aiortc's own RtpPacket
    to orga's receive buffer, and aiortc no frame to decode."""
    import aiortc.rtcrtpreceiver as receiver_module
    from aiortc.rtp import RtpPacket

    handle = inspect.getsource(receiver_module.RTCRtpReceiver._handle_rtp_packet)
    assert "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)" in handle
    pc = RTCPeerConnection()  # aiortc wants a running loop for its objects
    try:
        receiver = pc.addTransceiver("audio", direction="recvonly").receiver
        assert hasattr(receiver, seams.RECEIVER_JITTER_BUFFER)
        got: list[tuple[bytes, int, int]] = []
        seams.feed_receiver(receiver, lambda *packet: got.append(packet))
        tap = getattr(receiver, seams.RECEIVER_JITTER_BUFFER)
        packet = RtpPacket(payload_type=111, timestamp=960, ssrc=5, payload=b"\xfc\x01\x02")
        assert tap.add(RtpPacket.parse(packet.serialize())) == (False, None)
        assert got == [(b"\xfc\x01\x02", 960, 5)]
        tap.remove(1)  # aiortc's interface: nothing is held
        with pytest.raises(seams.SeamMissing):
            seams.feed_receiver(object(), lambda *packet: None)
    finally:
        await pc.close()


async def test_seam_2_gathering_bound() -> None:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio")
        pc.createDataChannel("x")
        offer = await pc.createOffer()
        seams.bound_gathering(pc, 0.5)
        connections = seams._ice_connections(pc, gatherer=True)
        assert connections, "no aioice Connection behind the transports"
        for conn in connections:
            assert conn.get_component_candidates.keywords == {"timeout": 0.5}
            params = inspect.signature(conn.get_component_candidates.func).parameters
            assert "timeout" in params, "aioice no longer takes a gathering timeout"
        await pc.setLocalDescription(offer)  # gathering still works with the bound
        assert "a=candidate:" in pc.localDescription.sdp
    finally:
        await pc.close()


@pytest.mark.timeout(30)
async def test_seam_3_nominated_pair() -> None:
    import asyncio

    a, b = await connected_pair()
    try:
        for _ in range(200):
            if a.connectionState == "connected":
                break
            await asyncio.sleep(0.05)
        pair = seams.nominated_pair(a)
        assert pair is not None, "aioice has no _nominated pair on a connected call"
        local, remote = pair
        assert local.type == "host" and remote.port > 0
        pairs = seams.candidate_pairs(a)  # the check list, for a call's record
        assert pairs and all(p[2] in ("frozen", "waiting", "in_progress", "succeeded", "failed")
                             for p in pairs)  # fmt: skip
        assert any(p[2] == "succeeded" and p[3] for p in pairs), pairs
    finally:
        await a.close()
        await b.close()


def test_seam_4_dtls_failure_reason() -> None:
    import aiortc.rtcdtlstransport as dtls

    source = inspect.getsource(dtls)
    assert seams.DTLS_FAILED + "fingerprint mismatch)" in source, (
        "aiortc no longer logs why a DTLS handshake failed"
    )
    assert logging.getLogger(seams.DTLS_LOGGER) is logging.getLogger(dtls.__name__)
    handler = seams.DtlsFailureReason()
    handler.attach()
    try:
        logging.getLogger(seams.DTLS_LOGGER).debug("x DTLS handshake failed (fingerprint mismatch)")
        assert handler.reason == "fingerprint mismatch"
    finally:
        handler.detach()


@pytest.mark.timeout(30)
async def test_seam_5_the_srtp_boundary() -> None:
    """Every RTP and RTCP packet aiortc sends goes through RTCDtlsTransport._send_rtp, and
    every one received through _handle_rtp_data / _handle_rtcp_data: the uplink's pacer,
    numbering and feedback stand there (media/uplink.py, media/feedback.py)."""
    import asyncio

    import aiortc.rtcdtlstransport as dtls_module
    import aiortc.rtcrtpreceiver as receiver_module
    import aiortc.rtcrtpsender as sender_module
    from aiortc.mediastreams import AudioStreamTrack

    from orga_cli.media import wire

    assert inspect.getsource(sender_module).count("self.transport._send_rtp(") >= 2
    assert "self.transport._send_rtp(" in inspect.getsource(receiver_module)
    recv = inspect.getsource(dtls_module.RTCDtlsTransport._recv_next)
    assert "self._handle_rtcp_data(" in recv and "self._handle_rtp_data(" in recv
    a, b = RTCPeerConnection(), RTCPeerConnection()
    a.addTransceiver(AudioStreamTrack(), direction="sendrecv")
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    b.addTrack(AudioStreamTrack())
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(RTCSessionDescription(b.localDescription.sdp, "answer"))
    sent: list[bytes] = []
    rtcp_in: list[bytes] = []
    rtp_in: list[bytes] = []

    async def outgoing(data: bytes, send: seams.Send) -> None:
        sent.append(data)
        await send(data)

    async def incoming(data: bytes, route: seams.Send) -> None:
        rtcp_in.append(data)
        await route(data)

    transport = a.getTransceivers()[0].sender.transport
    assert seams.srtp_send(transport) == transport._send_rtp  # aiortc's own, for the pacer
    restore = seams.intercept_srtp(transport, outgoing, incoming, rtp_in.append)
    try:
        # b's first RTCP may leave before any of a's RTP reached it (a sender report with
        # no report block): wait for one that reports, as CI once had to.
        for _ in range(400):
            reported = any(wire.parse_rtcp(p).reports for p in rtcp_in)
            if any(wire.sender_report_time(p) for p in sent) and reported and rtp_in:
                break
            await asyncio.sleep(0.05)
        assert any(not wire.is_rtcp(p) for p in sent), "no RTP went through _send_rtp"
        assert any(wire.sender_report_time(p) for p in sent), "no sender report went through"
        assert any(wire.parse_rtcp(p).reports for p in rtcp_in), "no receiver report came in"
        assert rtp_in and wire.rtp_header(rtp_in[0]).ssrc > 0
        restore()
        assert transport._send_rtp.__func__ is dtls_module.RTCDtlsTransport._send_rtp
    finally:
        await a.close()
        await b.close()
    with pytest.raises(seams.SeamMissing):
        seams.intercept_srtp(object())


def test_seam_6_encoded_video_passes_through() -> None:
    """aiortc's sender packetizes what a track returns when it is an av.Packet instead of
    encoding it (media/video.py encodes the video itself), for VP8 and H.264 alike; and the
    Opus packets of media/sources.py take the same road."""
    import aiortc.rtcrtpsender as sender_module
    from aiortc.codecs.h264 import H264Encoder
    from aiortc.codecs.vpx import Vp8Encoder

    source = inspect.getsource(sender_module.RTCRtpSender._next_encoded_frame)
    assert "isinstance(data, Frame)" in source and ".pack(data)" in source
    import av

    packet = av.Packet(b"\x10\x02\x00\x9d\x01\x2a" + bytes(100))
    packet.pts, packet.time_base = 3000, __import__("fractions").Fraction(1, 90000)
    payloads, timestamp = Vp8Encoder().pack(packet)
    assert payloads and timestamp == 3000
    nal = b"\x00\x00\x00\x01\x67" + bytes(20) + b"\x00\x00\x00\x01\x65" + bytes(3000)
    h264 = av.Packet(nal)
    h264.pts, h264.time_base = 3000, packet.time_base
    payloads, _ = H264Encoder().pack(h264)
    assert len(payloads) >= 3  # a STAP-A or single NAL, then FU-A fragments


@pytest.mark.timeout(30)
async def test_seam_7_the_receive_hook() -> None:
    """bench/client_latency.py times each audio packet as it reaches aiortc: the DTLS
    transport hands it to RTCRtpReceiver._handle_rtp_packet, which the hook wraps."""
    import asyncio

    import aiortc.rtcdtlstransport as dtls_module
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    assert "receiver._handle_rtp_packet(packet, arrival_time_ms=" in inspect.getsource(dtls_module)
    original = RTCRtpReceiver._handle_rtp_packet
    seen: list[int] = []
    restore = seams.on_rtp_received(lambda receiver, packet: seen.append(packet.ssrc))
    try:
        from aiortc.mediastreams import AudioStreamTrack

        a, b = RTCPeerConnection(), RTCPeerConnection()
        a.addTransceiver(AudioStreamTrack(), direction="sendrecv")
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(RTCSessionDescription(b.localDescription.sdp, "answer"))
        try:
            for _ in range(100):
                if len(seen) > 5:
                    break
                await asyncio.sleep(0.05)
            assert len(seen) > 5, "no packet went through the hook"
        finally:
            await a.close()
            await b.close()
    finally:
        restore()
    assert RTCRtpReceiver._handle_rtp_packet is original


@pytest.mark.timeout(30)
async def test_seam_8_answer_parse_errors() -> None:
    """aiohttp's low-level server builds a RequestHandler per connection and asks its
    handle_error() for the answer to a request it could not parse: the sandbox swaps in
    its own answer (a JSON error that echoes nothing) for a header over aiohttp's 8 KiB."""
    import asyncio

    from aiohttp import web

    async def ok(request: web.BaseRequest) -> web.Response:
        return web.Response(text="ok")

    answered: list[str] = []

    def answer(status: int, exc: BaseException | None) -> web.Response:
        answered.append(type(exc).__name__)  # aiohttp's own reason, for the sandbox to map
        return web.json_response({"error": {"message": "refused"}}, status=431)

    server = web.Server(ok)
    seams.answer_parse_errors(server, answer)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        secret = "sk_live_" + "x" * 9000
        writer.write(f"GET / HTTP/1.1\r\nHost: a\r\nX-Key: {secret}\r\n\r\n".encode())
        await writer.drain()
        reply = (await asyncio.wait_for(reader.read(), 10)).decode()
        writer.close()
        assert " 431 " in reply.split("\r\n")[0] and '"refused"' in reply, reply[:300]
        assert "sk_live_" not in reply and answered == ["LineTooLong"]
        # the connection after it is served as usual
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 10)).endswith(b"ok")
        writer.close()
    finally:
        listener.close()
        await server.shutdown()
    with pytest.raises(seams.SeamMissing):
        seams.answer_parse_errors(object(), answer)
