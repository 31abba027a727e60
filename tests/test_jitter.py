"""Received audio leaves the jitter buffer on arrival (orga_cli/media/jitter.py)."""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

from orga_cli.media.jitter import ArrivalOrderJitterBuffer, release_on_arrival


def packet(seq: int) -> RtpPacket:
    p = RtpPacket(payload_type=111, sequence_number=seq % 65536, timestamp=960 * seq)
    p._data = bytes([seq % 256])  # type: ignore[attr-defined]  # what the receiver depayloads
    return p


def released(buf: ArrivalOrderJitterBuffer, seq: int) -> int | None:
    _, frame = buf.add(packet(seq))
    return None if frame is None else frame.timestamp // 960


def test_each_packet_leaves_as_it_arrives() -> None:
    buf = ArrivalOrderJitterBuffer()
    assert [released(buf, s) for s in range(100, 140)] == list(range(100, 140))


def test_a_lost_packet_costs_no_lasting_delay() -> None:
    buf = ArrivalOrderJitterBuffer()
    assert released(buf, 10) == 10
    # 11 is lost: 12 leaves at once instead of waiting for sixteen more packets
    assert [released(buf, s) for s in (12, 13, 14)] == [12, 13, 14]
    assert released(buf, 11) is None  # too late: dropped, as a lost packet


def test_late_and_duplicate_packets_are_dropped() -> None:
    buf = ArrivalOrderJitterBuffer()
    assert released(buf, 5) == 5
    assert released(buf, 7) == 7
    assert released(buf, 6) is None
    assert released(buf, 7) is None
    assert released(buf, 8) == 8


def test_sequence_numbers_wrap() -> None:
    buf = ArrivalOrderJitterBuffer()
    assert [released(buf, s) for s in (65534, 65535, 65536, 65537)] == [65534, 65535, 65536, 65537]


def test_a_long_gap_restarts_the_buffer() -> None:
    buf = ArrivalOrderJitterBuffer()
    assert released(buf, 1) == 1
    assert released(buf, 40) == 40  # beyond the capacity of 16
    assert released(buf, 41) == 41


async def test_the_installed_aiortc_has_the_buffer_to_replace() -> None:
    # If aiortc renames its receiver's jitter buffer, this fails instead of the
    # call silently waiting 80 ms again.
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio", direction="sendrecv")
        assert release_on_arrival(transceiver.receiver)
        assert isinstance(
            transceiver.receiver._RTCRtpReceiver__jitter_buffer,  # type: ignore[attr-defined]
            ArrivalOrderJitterBuffer,
        )
    finally:
        await pc.close()
