"""RTP and RTCP as they cross the wire: the few fields the uplink's congestion control reads and writes.

aiortc serializes every packet it sends and parses every RTCP packet it gets; the
uplink (media/uplink.py) sits between aiortc and SRTP (seams.py) and sees the
plaintext bytes. What it needs of them is small and fixed by the RFCs: the RTP
header (RFC 3550) and its header extensions (RFC 8285), the transport-wide
sequence number (draft-holmer-rmcat-transport-wide-cc-extensions-01), RTX
(RFC 4588), and of RTCP the sender and receiver reports (RFC 3550), NACK and
PLI/FIR (RFC 4585, 5104), REMB (draft-alvestrand-rmcat-remb) and transport-wide
feedback. These functions work on bytes and build no objects they do not return.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
NTP_EPOCH = 2_208_988_800  # seconds from 1900 to 1970

RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE = 200, 201, 202, 203
RTCP_RTPFB, RTCP_PSFB = 205, 206
FMT_NACK, FMT_TWCC = 1, 15  # RTPFB
FMT_PLI, FMT_FIR, FMT_REMB = 1, 4, 15  # PSFB


def is_rtcp(data: bytes) -> bool:
    """RTCP shares the port with RTP (RFC 5761): its packet types are 192-223."""
    return len(data) >= 2 and 192 <= data[1] <= 223


# --------------------------------------------------------------------------- RTP


@dataclass(frozen=True)
class RtpHeader:
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    header_size: int  # fixed header, CSRCs and extensions: where the payload starts
    padding: int  # bytes of padding at the end


def rtp_header(data: bytes) -> RtpHeader:
    """The fields of an RTP packet's header (ValueError when it is not one)."""
    if len(data) < 12 or data[0] >> 6 != 2:
        raise ValueError("not an RTP packet")
    first, second, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    size = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < size + 4:
            raise ValueError("truncated RTP header extension")
        size += 4 + 4 * struct.unpack_from("!H", data, size + 2)[0]
    padding = data[-1] if first & 0x20 and len(data) > size else 0
    if size + padding > len(data):
        raise ValueError("truncated RTP packet")
    return RtpHeader(second & 0x7F, bool(second & 0x80), seq, ts, ssrc, size, padding)


def _extensions(data: bytes) -> tuple[int, int, int, list[tuple[int, bytes]]]:
    """(where the extension block starts, its profile, its end, its elements) of *data*."""
    first = data[0]
    start = 12 + 4 * (first & 0x0F)
    if not first & 0x10:
        return start, 0, start, []
    profile, words = struct.unpack_from("!HH", data, start)
    end = start + 4 + 4 * words
    elements: list[tuple[int, bytes]] = []
    pos = start + 4
    if profile == 0xBEDE:  # one-byte headers
        while pos < end:
            byte = data[pos]
            if byte == 0:  # padding
                pos += 1
                continue
            ident, length = byte >> 4, (byte & 0x0F) + 1
            if ident == 15:
                break
            elements.append((ident, bytes(data[pos + 1 : pos + 1 + length])))
            pos += 1 + length
    elif profile & 0xFFF0 == 0x1000:  # two-byte headers
        while pos + 1 < end:
            ident = data[pos]
            if ident == 0:
                pos += 1
                continue
            length = data[pos + 1]
            elements.append((ident, bytes(data[pos + 2 : pos + 2 + length])))
            pos += 2 + length
    return start, profile, end, elements


def with_extension(data: bytes, ident: int, value: bytes) -> bytes:
    """*data* with header extension *ident* set to *value* (added, or replaced)."""
    start, profile, end, elements = _extensions(data)
    elements = [(i, v) for i, v in elements if i != ident] + [(ident, value)]
    two_byte = profile & 0xFFF0 == 0x1000 or any(i > 14 or len(v) > 16 for i, v in elements)
    if two_byte:
        body = b"".join(bytes((i, len(v))) + v for i, v in elements)
        head = 0x1000
    else:
        body = b"".join(bytes(((i << 4) | (len(v) - 1),)) + v for i, v in elements)
        head = 0xBEDE
    body += b"\x00" * (-len(body) % 4)
    block = struct.pack("!HH", head, len(body) // 4) + body
    return bytes((data[0] | 0x10,)) + data[1:start] + block + data[end:]


def extension(data: bytes, ident: int) -> bytes | None:
    """The value of header extension *ident*, or None."""
    for i, value in _extensions(data)[3]:
        if i == ident:
            return value
    return None


def with_transport_sequence(data: bytes, ident: int, seq: int) -> bytes:
    return with_extension(data, ident, struct.pack("!H", seq & 0xFFFF))


def abs_send_time(now: float) -> bytes:
    """The abs-send-time extension's value for *now* (epoch seconds): 6.18 fixed point."""
    ntp = int((now + NTP_EPOCH) * (1 << 18)) & 0xFFFFFF
    return struct.pack("!I", ntp)[1:]


def rtx_packet(original: bytes, payload_type: int, sequence: int, ssrc: int) -> bytes:
    """The RFC 4588 retransmission of *original*: its header with the RTX payload type,
    sequence number and SSRC, and the original sequence number before its payload."""
    head = rtp_header(original)
    header = bytearray(original[: head.header_size])
    header[0] &= ~0x20 & 0xFF  # the copy carries no padding
    header[1] = (original[1] & 0x80) | (payload_type & 0x7F)
    struct.pack_into("!H", header, 2, sequence & 0xFFFF)
    struct.pack_into("!I", header, 8, ssrc)
    payload = original[head.header_size : len(original) - head.padding]
    return bytes(header) + struct.pack("!H", head.sequence) + payload


def padding_packet(
    template: bytes, payload_type: int, sequence: int, ssrc: int, size: int
) -> bytes:
    """An RTP packet of padding only (RFC 3550 5.1), *size* bytes long at most 255 of them
    padding, with *template*'s header extensions (MID routes it), on another stream (RTX)."""
    head = rtp_header(template)
    header = bytearray(template[: head.header_size])
    header[0] |= 0x20
    header[1] = payload_type & 0x7F
    struct.pack_into("!H", header, 2, sequence & 0xFFFF)
    struct.pack_into("!I", header, 8, ssrc)
    count = max(1, min(255, size - len(header)))
    return bytes(header) + b"\x00" * (count - 1) + bytes((count,))


def starts_keyframe(data: bytes, codec: str) -> bool:
    """Does this RTP packet begin a keyframe? VP8 (RFC 7741): the first packet of the first
    partition, its payload header's P bit clear; H.264 (RFC 6184): an IDR or SPS NAL unit,
    alone, first in a STAP-A, or starting a FU-A."""
    try:
        head = rtp_header(data)
    except ValueError:
        return False
    payload = data[head.header_size : len(data) - head.padding]
    if not payload:
        return False
    if codec == "h264":
        nal = payload[0] & 0x1F
        if nal == 24 and len(payload) > 3:  # STAP-A: size (2 bytes), then the NAL
            nal = payload[3] & 0x1F
        elif nal == 28 and len(payload) > 1:  # FU-A: start bit and type
            return bool(payload[1] & 0x80) and (payload[1] & 0x1F) in (5, 7)
        return nal in (5, 7)
    first = payload[0]
    if not first & 0x10 or first & 0x0F:  # S: start of a partition, PID 0
        return False
    pos = 1
    if first & 0x80 and len(payload) > 1:  # X: extension byte, then I, L, T/K
        ext = payload[1]
        pos = 2
        if ext & 0x80 and len(payload) > pos:  # I: picture id, 7 or 15 bits
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:
            pos += 1
        if ext & 0x30:
            pos += 1
    return len(payload) > pos and not payload[pos] & 0x01


# --------------------------------------------------------------------------- RTCP


@dataclass(frozen=True)
class ReportBlock:
    """One reception report (RFC 3550 6.4.1) about a stream we send."""

    ssrc: int
    fraction_lost: float  # 0..1, since the previous report
    cumulative_lost: int
    highest_sequence: int  # extended: cycles << 16 | sequence (some receivers send only 16 bits)
    jitter: int  # RTP clock units
    lsr: int  # middle 32 bits of the NTP time of the last SR received, 0: none
    dlsr: float  # seconds since that SR


@dataclass
class TransportFeedback:
    """A transport-wide congestion control feedback (RTPFB FMT 15)."""

    media_ssrc: int
    feedback_count: int
    # (transport sequence number unwrapped to 16 bits, arrival in seconds on the
    # receiver's clock, or None when not received)
    packets: list[tuple[int, float | None]] = field(default_factory=list)


@dataclass
class Rtcp:
    """What one compound RTCP packet says to a sender, and the parts aiortc should still see."""

    reports: list[ReportBlock] = field(default_factory=list)
    nacks: list[tuple[int, list[int]]] = field(default_factory=list)  # (media ssrc, seqs)
    keyframe_requests: list[int] = field(default_factory=list)  # media ssrcs (PLI, FIR)
    remb: tuple[int, list[int]] | None = None  # (bits/s, ssrcs)
    feedback: list[TransportFeedback] = field(default_factory=list)
    rest: bytes = b""  # the packets left for aiortc (reports, SDES, BYE, others)


def split_compound(data: bytes) -> list[bytes]:
    """The RTCP packets of a compound packet (a truncated tail is left out)."""
    out = []
    pos = 0
    while pos + 4 <= len(data):
        length = 4 * (struct.unpack_from("!H", data, pos + 2)[0] + 1)
        if pos + length > len(data):
            break
        out.append(data[pos : pos + length])
        pos += length
    return out


def _report_blocks(packet: bytes, offset: int, count: int) -> list[ReportBlock]:
    blocks = []
    for i in range(count):
        at = offset + 24 * i
        if at + 24 > len(packet):
            break
        ssrc, lost_word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", packet, at)
        fraction = (lost_word >> 24) / 256
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:  # 24-bit signed
            cumulative -= 1 << 24
        blocks.append(ReportBlock(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr / 65536))
    return blocks


def parse_rtcp(data: bytes, *, consume: bool = True) -> Rtcp:
    """Read a compound RTCP packet. With *consume*, feedback the uplink handles itself
    (NACK, PLI, FIR, REMB, transport-wide) is left out of ``rest``."""
    out = Rtcp()
    rest = []
    for packet in split_compound(data):
        count, ptype = packet[0] & 0x1F, packet[1]
        handled = False
        try:
            if ptype == RTCP_SR:
                out.reports += _report_blocks(packet, 28, count)
            elif ptype == RTCP_RR:
                out.reports += _report_blocks(packet, 8, count)
            elif ptype == RTCP_RTPFB and len(packet) >= 12:
                media = struct.unpack_from("!I", packet, 8)[0]
                if count == FMT_NACK:
                    out.nacks.append((media, _nack_list(packet)))
                    handled = True
                elif count == FMT_TWCC:
                    out.feedback.append(parse_transport_feedback(packet))
                    handled = True
            elif ptype == RTCP_PSFB and len(packet) >= 12:
                media = struct.unpack_from("!I", packet, 8)[0]
                if count == FMT_PLI:
                    out.keyframe_requests.append(media)
                    handled = True
                elif count == FMT_FIR:
                    for at in range(12, len(packet) - 7, 8):
                        out.keyframe_requests.append(struct.unpack_from("!I", packet, at)[0])
                    handled = True
                elif count == FMT_REMB and packet[12:16] == b"REMB":
                    out.remb = _remb(packet)
                    handled = True
        except (struct.error, ValueError, IndexError):
            handled = True  # malformed: nobody gets it
        if not (handled and consume):
            rest.append(packet)
    out.rest = b"".join(rest)
    return out


def _nack_list(packet: bytes) -> list[int]:
    lost = []
    for at in range(12, len(packet) - 3, 4):
        pid, blp = struct.unpack_from("!HH", packet, at)
        lost.append(pid)
        lost += [(pid + 1 + bit) & 0xFFFF for bit in range(16) if blp & (1 << bit)]
    return lost


def _remb(packet: bytes) -> tuple[int, list[int]]:
    count = packet[16]
    exp, mantissa = packet[17] >> 2, ((packet[17] & 3) << 16) | (packet[18] << 8) | packet[19]
    ssrcs = [struct.unpack_from("!I", packet, 20 + 4 * i)[0] for i in range(count)]
    return mantissa << exp, ssrcs


def parse_transport_feedback(packet: bytes) -> TransportFeedback:
    """RTPFB FMT 15: packet status chunks, then receive deltas (multiples of 250 µs)."""
    media, base, status_count, ref_and_count = struct.unpack_from("!IHHI", packet, 8)
    reference = ref_and_count >> 8
    if reference & 0x800000:
        reference -= 1 << 24
    fb = TransportFeedback(media, ref_and_count & 0xFF)
    symbols: list[int] = []
    pos = 20
    while len(symbols) < status_count:
        if pos + 2 > len(packet):
            raise ValueError("truncated status chunks")
        chunk = struct.unpack_from("!H", packet, pos)[0]
        pos += 2
        if not chunk & 0x8000:  # run length
            symbols += [(chunk >> 13) & 3] * (chunk & 0x1FFF)
        elif not chunk & 0x4000:  # 14 one-bit symbols
            symbols += [(chunk >> (13 - i)) & 1 for i in range(14)]
        else:  # 7 two-bit symbols
            symbols += [(chunk >> (12 - 2 * i)) & 3 for i in range(7)]
    arrival = reference * 0.064
    for i, symbol in enumerate(symbols[:status_count]):
        seq = (base + i) & 0xFFFF
        if symbol == 1:
            delta = packet[pos] * 250e-6
            pos += 1
        elif symbol == 2:
            delta = struct.unpack_from("!h", packet, pos)[0] * 250e-6
            pos += 2
        else:
            fb.packets.append((seq, None))
            continue
        arrival += delta
        fb.packets.append((seq, arrival))
    return fb


def sender_report_time(data: bytes) -> list[tuple[int, int]]:
    """(SSRC, LSR) of each sender report in an RTCP packet we send: the middle 32 bits of
    its NTP time, which the receiver's reports echo (LSR) for the round-trip time."""
    out = []
    for packet in split_compound(data):
        if packet[1] == RTCP_SR and len(packet) >= 20:
            ssrc, ntp = struct.unpack_from("!IQ", packet, 4)
            out.append((ssrc, (ntp >> 16) & 0xFFFFFFFF))
    return out


def build_transport_feedback(
    sender_ssrc: int,
    media_ssrc: int,
    base_seq: int,
    count: int,
    reference: int,
    arrivals: list[float | None],
) -> bytes:
    """An RTPFB FMT 15 packet: *arrivals[i]* (seconds on our clock, None: not received) of
    transport sequence ``base_seq + i``, against *reference* (a count of 64 ms). Status
    chunks are two-bit vectors (seven packets each); a receive delta that does not fit in
    the signed 16-bit form (±8 s) must start a new packet (the caller's concern)."""
    symbols: list[int] = []
    deltas = bytearray()
    previous = reference * 0.064
    for arrival in arrivals:
        if arrival is None:
            symbols.append(0)
            continue
        ticks = round((arrival - previous) / 250e-6)
        if 0 <= ticks <= 255:
            symbols.append(1)
            deltas.append(ticks)
        else:
            ticks = max(-32768, min(32767, ticks))
            symbols.append(2)
            deltas += struct.pack("!h", ticks)
        previous += ticks * 250e-6
    chunks = bytearray()
    for i in range(0, len(symbols), 7):
        group = symbols[i : i + 7] + [0] * (7 - len(symbols[i : i + 7]))
        word = 0xC000
        for j, symbol in enumerate(group):
            word |= symbol << (12 - 2 * j)
        chunks += struct.pack("!H", word)
    body = (
        struct.pack("!IIHHI", sender_ssrc, media_ssrc, base_seq & 0xFFFF, len(arrivals),
                    ((reference & 0xFFFFFF) << 8) | (count & 0xFF))
        + bytes(chunks)
        + bytes(deltas)
    )  # fmt: skip
    padding = -len(body) % 4
    first = 0x80 | FMT_TWCC
    if padding:
        first |= 0x20
        body += b"\x00" * (padding - 1) + bytes((padding,))
    return struct.pack("!BBH", first, RTCP_RTPFB, len(body) // 4) + body
