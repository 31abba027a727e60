"""RTP and RTCP as the uplink reads and writes them (media/wire.py), against packets built
by hand from the RFCs and drafts (not by the functions under test), and the transport-wide
feedback orga sends for what it receives (media/feedback.py)."""

from __future__ import annotations

import struct

import pytest

from orga_cli.media import wire
from orga_cli.media.feedback import FeedbackSender, accept_transport_cc
from orga_cli.media.uplink import negotiate, with_transport_cc


def rtp(
    *,
    pt: int = 96,
    seq: int = 1000,
    ts: int = 12345,
    ssrc: int = 0x11223344,
    marker: bool = False,
    extensions: bytes | None = None,
    payload: bytes = b"payload",
    padding: int = 0,
) -> bytes:
    """An RTP packet by RFC 3550 5.1 (and RFC 8285 for the extension block)."""
    first = 0x80 | (0x10 if extensions is not None else 0) | (0x20 if padding else 0)
    out = struct.pack("!BBHII", first, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    if extensions is not None:
        out += extensions
    out += payload
    if padding:
        out += b"\x00" * (padding - 1) + bytes((padding,))
    return out


# one-byte header block: id 1 (mid "0", 1 byte), id 3 (abs-send-time, 3 bytes), padded
ONE_BYTE = b"\xbe\xde\x00\x02" + b"\x10\x30" + b"\x32\x01\x02\x03" + b"\x00\x00"


def test_the_rtp_header_is_read() -> None:
    head = wire.rtp_header(rtp(extensions=ONE_BYTE, marker=True, padding=3))
    assert (head.payload_type, head.marker, head.sequence, head.timestamp, head.ssrc) == (
        96,
        True,
        1000,
        12345,
        0x11223344,
    )
    assert head.header_size == 12 + len(ONE_BYTE) and head.padding == 3
    with pytest.raises(ValueError):
        wire.rtp_header(b"\x80\x60")


@pytest.mark.parametrize(
    "extensions", [None, ONE_BYTE, b"\x10\x00\x00\x01" + b"\x01\x01\x30\x00"], ids=str
)
def test_the_transport_sequence_number_is_added_and_nothing_else_moves(
    extensions: bytes | None,
) -> None:
    packet = rtp(extensions=extensions, payload=b"\x01\x02\x03\x04\x05")
    numbered = wire.with_transport_sequence(packet, 5, 0x1234)
    assert wire.extension(numbered, 5) == b"\x12\x34"
    head = wire.rtp_header(numbered)
    assert numbered[head.header_size :] == b"\x01\x02\x03\x04\x05"
    assert (head.sequence, head.ssrc, head.timestamp) == (1000, 0x11223344, 12345)
    if extensions is not None:  # the extensions already there are kept
        before = wire.rtp_header(packet)
        for ident in range(1, 15):
            assert wire.extension(numbered, ident) == wire.extension(packet, ident) or ident == 5
        assert before.header_size < head.header_size
    # set again: replaced, not added twice
    again = wire.with_transport_sequence(numbered, 5, 7)
    assert wire.extension(again, 5) == b"\x00\x07"
    assert len(again) == len(numbered)


def test_abs_send_time_is_six_point_eighteen_fixed_point() -> None:
    value = wire.abs_send_time(1_700_000_000.5)
    ntp = 1_700_000_000.5 + 2_208_988_800
    assert int.from_bytes(value, "big") == int(ntp * (1 << 18)) & 0xFFFFFF


def test_a_retransmission_is_rfc_4588() -> None:
    original = rtp(extensions=ONE_BYTE, marker=True, seq=4321, payload=b"frame", padding=4)
    again = wire.rtx_packet(original, 97, 9, 0xAABBCCDD)
    head = wire.rtp_header(again)
    assert (head.payload_type, head.sequence, head.ssrc, head.marker, head.padding) == (
        97,
        9,
        0xAABBCCDD,
        True,
        0,
    )
    assert head.timestamp == 12345
    assert again[head.header_size :] == struct.pack("!H", 4321) + b"frame"  # OSN, then payload
    assert wire.extension(again, 1) == b"0"


def test_a_padding_packet_carries_nothing() -> None:
    pad = wire.padding_packet(rtp(extensions=ONE_BYTE), 97, 10, 5, 200)
    head = wire.rtp_header(pad)
    assert len(pad) == 200 and head.padding == 200 - head.header_size
    assert head.ssrc == 5 and head.payload_type == 97 and wire.extension(pad, 1) == b"0"


# --------------------------------------------------------------------------- RTCP by hand


def rr(sender: int, blocks: list[tuple[int, int, int, int, int, int, int]]) -> bytes:
    body = struct.pack("!I", sender)
    for ssrc, fraction, cumulative, highest, jitter, lsr, dlsr in blocks:
        body += struct.pack(
            "!IIIIII", ssrc, (fraction << 24) | (cumulative & 0xFFFFFF), highest, jitter, lsr, dlsr
        )
    return struct.pack("!BBH", 0x80 | len(blocks), 201, len(body) // 4) + body


def fb(ptype: int, fmt: int, sender: int, media: int, fci: bytes) -> bytes:
    body = struct.pack("!II", sender, media) + fci
    return struct.pack("!BBH", 0x80 | fmt, ptype, len(body) // 4) + body


SDES = struct.pack("!BBH", 0x81, 202, 2) + struct.pack("!I", 9) + b"\x01\x02ab"


def twcc_by_hand() -> tuple[bytes, list[tuple[int, float | None]]]:
    """Transport-wide feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01, 3.1):
    base 100, 10 packets, reference time 1 (64 ms); a run-length chunk of 3 "small delta",
    then a two-bit vector [not received, large, small, not received x4]; deltas 1 ms, 2 ms,
    0 ms (small), -10 ms (large), 3 ms (small)."""
    run = 0x2003  # T=0, S=01, run length 3
    vector = 0xC000 | (0 << 12) | (2 << 10) | (1 << 8)
    deltas = bytes((4, 8, 0)) + struct.pack("!h", -40) + bytes((12,))
    fci = struct.pack("!HHI", 100, 10, (1 << 8) | 5) + struct.pack("!HH", run, vector) + deltas
    body = struct.pack("!II", 1, 0x11223344) + fci  # 30 bytes: pad to 32, RFC 3550 style
    body += b"\x00\x02"
    packet = struct.pack("!BBH", 0xA0 | 15, 205, len(body) // 4) + body
    expected = [
        (100, 0.065),
        (101, 0.067),
        (102, 0.067),
        (103, None),
        (104, 0.057),
        (105, 0.060),
        (106, None),
        (107, None),
        (108, None),
        (109, None),
    ]
    return packet, expected


def test_a_compound_packet_is_read_and_what_the_uplink_handles_is_taken_out() -> None:
    report = rr(7, [(0x11223344, 64, 12, 0x0001_0010, 80, 0xABCD1234, 65536 // 2)])
    nack = fb(205, 1, 7, 0x11223344, struct.pack("!HH", 500, 0b101))
    pli = fb(206, 1, 7, 0x11223344, b"")
    fir = fb(206, 4, 7, 0, struct.pack("!IB3x", 0x55, 1))
    mantissa, exp = 300_000 >> 2, 2  # 300 kbit/s
    remb = fb(
        206,
        15,
        7,
        0,
        b"REMB"
        + bytes((1, (exp << 2) | (mantissa >> 16), (mantissa >> 8) & 0xFF, mantissa & 0xFF))
        + struct.pack("!I", 0x11223344),
    )
    twcc, expected = twcc_by_hand()
    parsed = wire.parse_rtcp(report + SDES + nack + pli + fir + remb + twcc)
    (block,) = parsed.reports
    assert block.ssrc == 0x11223344 and block.fraction_lost == pytest.approx(0.25)
    assert block.cumulative_lost == 12 and block.highest_sequence == 0x10010
    assert block.lsr == 0xABCD1234 and block.dlsr == pytest.approx(0.5)
    assert parsed.nacks == [(0x11223344, [500, 501, 503])]
    assert parsed.keyframe_requests == [0x11223344, 0x55]
    assert parsed.remb == (300_000, [0x11223344])
    (feedback,) = parsed.feedback
    assert feedback.media_ssrc == 0x11223344 and feedback.feedback_count == 5
    assert [s for s, _ in feedback.packets] == [s for s, _ in expected]
    for (_, got), (_, want) in zip(feedback.packets, expected, strict=True):
        assert got == pytest.approx(want) if want is not None else got is None
    assert parsed.rest == report + SDES  # aiortc still gets the reports, not the feedback
    kept = wire.parse_rtcp(report + nack, consume=False)
    assert kept.rest == report + nack


def test_one_bit_status_vectors_and_a_truncated_packet() -> None:
    vector = 0x8000 | 0b10_1000_0000_0001  # 14 one-bit symbols: 1,0,1,0,...,0,1
    fci = struct.pack("!HHI", 65535, 14, 0) + struct.pack("!H", vector) + bytes((4, 4, 4))
    body = struct.pack("!II", 1, 2) + fci + b"\x00\x00\x00"
    packet = struct.pack("!BBH", 0x8F, 205, len(body) // 4) + body
    (feedback,) = wire.parse_rtcp(packet).feedback
    received = [s for s, at in feedback.packets if at is not None]
    assert received == [65535, 1, 12] and len(feedback.packets) == 14
    cut = wire.parse_rtcp(packet[:-6])  # a length field that says more than there is
    assert cut.feedback == [] and cut.rest == b""


def test_sender_reports_we_send_give_their_lsr() -> None:
    ntp = (3_900_000_000 << 32) | 0x8000_0000
    sr = struct.pack("!BBHIQIII", 0x80, 200, 6, 42, ntp, 0, 0, 0)
    assert wire.sender_report_time(sr + SDES) == [(42, (ntp >> 16) & 0xFFFFFFFF)]
    assert wire.is_rtcp(sr) and not wire.is_rtcp(rtp())


# --------------------------------------------------------------------------- our feedback


def test_the_feedback_we_build_reads_back() -> None:
    arrivals = [1.0, None, 1.0021, 1.0105, None, None, 1.5]
    packet = wire.build_transport_feedback(1, 2, 65534, 7, int(1.0 / 0.064), arrivals)
    assert len(packet) % 4 == 0
    (got,) = wire.parse_rtcp(packet).feedback
    assert [s for s, _ in got.packets] == [65534, 65535, 0, 1, 2, 3, 4]
    for (_, at), want in zip(got.packets, arrivals, strict=True):
        assert (at is None) if want is None else at == pytest.approx(want, abs=0.00025)


def test_the_feedback_sender_covers_every_numbered_packet_once() -> None:
    now = [10.0]
    sender = FeedbackSender(5, _never, 9, clock=lambda: now[0])
    for seq in (65533, 65534, 2, 3):  # wraps, and 65535, 0, 1 never come
        sender.on_packet(wire.with_transport_sequence(rtp(), 5, seq))
        now[0] += 0.01
    sender.on_packet(rtp())  # not numbered: not counted
    (packet,) = sender.packets()
    (got,) = wire.parse_rtcp(packet).feedback
    assert [s for s, at in got.packets if at is not None] == [65533, 65534, 2, 3]
    assert [s for s, at in got.packets if at is None] == [65535, 0, 1]
    assert sender.packets() == []
    sender.on_packet(wire.with_transport_sequence(rtp(), 5, 1))  # too late: already told
    assert sender.packets() == []
    for seq in range(4, 1204):
        sender.on_packet(wire.with_transport_sequence(rtp(), 5, seq & 0xFFFF))
    assert len(sender.packets()) == 3  # at most 500 a packet


async def _never(data: bytes) -> None:
    raise AssertionError("not sent in this test")


def test_transport_cc_is_offered_and_read_from_the_answer() -> None:
    offer = with_transport_cc(OFFER)
    assert offer.count(wire.TRANSPORT_CC_URI) == 2  # audio and video, one id
    assert "a=extmap:4 " + wire.TRANSPORT_CC_URI in offer
    assert "a=rtcp-fb:96 transport-cc" in offer and "a=rtcp-fb:97 transport-cc" in offer
    assert "a=rtcp-fb:98 transport-cc" not in offer  # RTX has no feedback of its own
    assert with_transport_cc(offer) == offer
    answer, ident = accept_transport_cc(ANSWER, offer)
    assert ident == 4 and answer.count(wire.TRANSPORT_CC_URI) == 2
    n = negotiate(offer, answer)
    assert (n.audio_ssrc, n.video_ssrc, n.rtx_ssrc) == (111, 222, 333)
    assert n.video_codec == "vp8" and n.rtx_payload_type == 98
    assert n.transport_cc_id == 4 and n.transport_cc_audio and n.transport_cc_video
    assert n.abs_send_time_id == 3
    declined = negotiate(offer, ANSWER)
    assert declined.transport_cc_id is None and not declined.transport_cc_video
    assert accept_transport_cc(ANSWER, OFFER) == (ANSWER, None)


OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=rtpmap:96 opus/48000/2",
        "a=ssrc:111 cname:x",
        "m=video 9 UDP/TLS/RTP/SAVPF 97 98",
        "a=mid:1",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:3 " + wire.ABS_SEND_TIME_URI,
        "a=rtpmap:97 VP8/90000",
        "a=rtpmap:98 rtx/90000",
        "a=fmtp:98 apt=97",
        "a=ssrc-group:FID 222 333",
        "a=ssrc:222 cname:x",
        "a=ssrc:333 cname:x",
        "",
    ]
)
ANSWER = "\r\n".join(
    [
        "v=0",
        "o=- 2 2 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:0",
        "a=rtpmap:96 opus/48000/2",
        "a=ssrc:444 cname:y",
        "m=video 9 UDP/TLS/RTP/SAVPF 97 98",
        "a=mid:1",
        "a=extmap:3 " + wire.ABS_SEND_TIME_URI,
        "a=rtpmap:97 VP8/90000",
        "a=rtcp-fb:97 nack",
        "a=rtpmap:98 rtx/90000",
        "a=fmtp:98 apt=97",
        "",
    ]
)
