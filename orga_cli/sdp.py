"""`orga sdp`: read an SDP and show its structure; pair an offer with its answer.

A plain reader of RFC 8866 lines and the WebRTC attributes that matter when a
session does not connect. It reads; it never builds SDP (aiortc does that).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import UsageError, setting


@dataclass
class Codec:
    payload_type: int
    name: str
    clock_rate: int | None = None
    channels: int | None = None
    fmtp: str | None = None
    rtcp_fb: list[str] = field(default_factory=list)


@dataclass
class Candidate:
    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None
    tcptype: str | None = None


@dataclass
class Media:
    kind: str
    port: int
    protocol: str
    formats: list[str]
    mid: str | None = None
    direction: str = "sendrecv"
    codecs: list[Codec] = field(default_factory=list)
    header_extensions: list[str] = field(default_factory=list)
    ice_ufrag: str | None = None
    ice_pwd_present: bool = False
    ice_options: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    end_of_candidates: bool = False
    fingerprint: str | None = None
    setup: str | None = None
    sctp_port: int | None = None
    max_message_size: int | None = None
    rtcp_mux: bool = False
    ssrcs: list[int] = field(default_factory=list)
    ssrc_groups: list[str] = field(default_factory=list)  # "FID 1234 5678"

    @property
    def rejected(self) -> bool:
        return self.port == 0


@dataclass
class SessionDescription:
    origin: str | None = None
    name: str | None = None
    groups: list[str] = field(default_factory=list)
    ice_ufrag: str | None = None
    ice_options: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    setup: str | None = None
    media: list[Media] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for m, media in zip(out["media"], self.media, strict=True):
            m["rejected"] = media.rejected
        return out

    # effective values: a media-level attribute, else the session-level one
    def fingerprint_of(self, media: Media) -> str | None:
        return media.fingerprint or self.fingerprint

    def setup_of(self, media: Media) -> str | None:
        return media.setup or self.setup

    def ice_options_of(self, media: Media) -> list[str]:
        return media.ice_options or self.ice_options


DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


def parse_candidate(value: str) -> Candidate:
    parts = value.split()
    if parts and parts[0].startswith("candidate:"):
        parts[0] = parts[0][len("candidate:") :]
    if len(parts) < 8 or parts[6] != "typ":
        raise ValueError(f"not a candidate: {value!r}")
    extra = dict(zip(parts[8::2], parts[9::2], strict=False))
    return Candidate(
        foundation=parts[0],
        component=int(parts[1]),
        transport=parts[2].lower(),
        priority=int(parts[3]),
        address=parts[4],
        port=int(parts[5]),
        type=parts[7],
        related_address=extra.get("raddr"),
        related_port=int(extra["rport"]) if "rport" in extra else None,
        tcptype=extra.get("tcptype"),
    )


def parse(text: str) -> SessionDescription:
    """Parse SDP text; raises UsageError naming the first line that is not SDP."""
    sdp = SessionDescription()
    current: Media | None = None
    codecs: dict[int, Codec] = {}
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or not lines[0].startswith("v="):
        raise UsageError(
            "that is not SDP (it does not start with v=)",
            f"pass an SDP, or the JSON {setting('dump_sdp')} writes",
        )
    for number, line in enumerate(lines, 1):
        if len(line) < 2 or line[1] != "=":
            raise UsageError(f"line {number} is not an SDP line: {line[:60]!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            parts = value.split()
            if len(parts) < 3:
                raise UsageError(f"line {number}: malformed m-line {line!r}")
            current = Media(
                kind=parts[0],
                port=int(parts[1].split("/")[0]),
                protocol=parts[2],
                formats=parts[3:],
            )
            codecs = {}
            sdp.media.append(current)
            continue
        if kind == "o" and current is None:
            sdp.origin = value
        elif kind == "s" and current is None:
            sdp.name = value
        elif kind == "a":
            _attribute(sdp, current, codecs, value)
    return sdp


def _attribute(
    sdp: SessionDescription, media: Media | None, codecs: dict[int, Codec], value: str
) -> None:
    name, _, arg = value.partition(":")
    if media is None:
        if name == "group":
            sdp.groups.append(arg)
        elif name == "ice-ufrag":
            sdp.ice_ufrag = arg
        elif name == "ice-options":
            sdp.ice_options = arg.split()
        elif name == "fingerprint":
            sdp.fingerprint = arg
        elif name == "setup":
            sdp.setup = arg
        return
    if name in DIRECTIONS:
        media.direction = name
    elif name == "mid":
        media.mid = arg
    elif name == "rtpmap":
        pt, _, encoding = arg.partition(" ")
        parts = encoding.split("/")
        codec = codecs.setdefault(int(pt), Codec(int(pt), parts[0]))
        codec.name = parts[0]
        codec.clock_rate = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        codec.channels = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
        if codec not in media.codecs:
            media.codecs.append(codec)
    elif name == "fmtp":
        pt, _, params = arg.partition(" ")
        if pt.isdigit():
            codecs.setdefault(int(pt), Codec(int(pt), "?")).fmtp = params
    elif name == "rtcp-fb":
        pt, _, fb = arg.partition(" ")
        if pt.isdigit():
            codecs.setdefault(int(pt), Codec(int(pt), "?")).rtcp_fb.append(fb)
        elif pt == "*":
            for codec in media.codecs:
                codec.rtcp_fb.append(fb)
    elif name == "extmap":
        media.header_extensions.append(arg)
    elif name == "ice-ufrag":
        media.ice_ufrag = arg
    elif name == "ice-pwd":
        media.ice_pwd_present = True  # a secret of the session: never shown
    elif name == "ice-options":
        media.ice_options = arg.split()
    elif name == "candidate":
        media.candidates.append(parse_candidate(arg))
    elif name == "end-of-candidates":
        media.end_of_candidates = True
    elif name == "fingerprint":
        media.fingerprint = arg
    elif name == "setup":
        media.setup = arg
    elif name == "sctp-port":
        media.sctp_port = int(arg)
    elif name == "max-message-size":
        media.max_message_size = int(arg)
    elif name == "sctpmap":  # the old form: a=sctpmap:5000 webrtc-datachannel 1024
        port = arg.split()[0]
        if port.isdigit() and media.sctp_port is None:
            media.sctp_port = int(port)
    elif name == "rtcp-mux":
        media.rtcp_mux = True
    elif name == "ssrc":
        ssrc = arg.split(" ", 1)[0]
        if ssrc.isdigit() and int(ssrc) not in media.ssrcs:
            media.ssrcs.append(int(ssrc))
    elif name == "ssrc-group":
        media.ssrc_groups.append(arg)


def load(text: str) -> tuple[SessionDescription, str | None]:
    """SDP text, or the JSON of --dump-sdp (request.json, response.json) or {"sdp": …}.

    Returns the description and its type when the JSON says ("offer"/"answer").
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise UsageError(f"not valid JSON ({exc})") from exc
        for key in ("offer", "answer"):
            if isinstance(data.get(key), dict) and isinstance(data[key].get("sdp"), str):
                return parse(data[key]["sdp"]), key
        if isinstance(data.get("sdp"), str):
            kind = data.get("type")
            return parse(data["sdp"]), kind if isinstance(kind, str) else None
        raise UsageError("that JSON holds no SDP (no offer.sdp, answer.sdp or sdp)")
    return parse(stripped), None


# --------------------------------------------------------------------------- pairing


@dataclass
class MediaPair:
    index: int
    kind: str
    mid: str | None
    offer_direction: str
    answer_direction: str | None
    codec: str | None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Pairing:
    media: list[MediaPair]
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


ANSWER_FOR = {
    "sendrecv": {"sendrecv", "sendonly", "recvonly", "inactive"},
    "sendonly": {"recvonly", "inactive"},
    "recvonly": {"sendonly", "inactive"},
    "inactive": {"inactive"},
}


def _codec_key(codec: Codec) -> tuple[str, int | None, int]:
    return (codec.name.lower(), codec.clock_rate, codec.channels or 1)


def pair(offer: SessionDescription, answer: SessionDescription) -> Pairing:
    """What each m-line will use, and what breaks the call."""
    warnings: list[str] = []
    pairs: list[MediaPair] = []
    if len(answer.media) != len(offer.media):
        warnings.append(
            f"the answer has {len(answer.media)} m-lines for the offer's {len(offer.media)}: they must match one to one"
        )
    trickle = "trickle" in offer.ice_options + [o for m in offer.media for o in m.ice_options]
    for index, o in enumerate(offer.media):
        a = answer.media[index] if index < len(answer.media) else None
        item = MediaPair(index, o.kind, o.mid, o.direction, a.direction if a else None, None)
        pairs.append(item)
        label = f"m-line {index} ({o.kind}{', mid ' + o.mid if o.mid else ''})"
        if a is None:
            continue
        if a.kind != o.kind:
            item.warnings.append(f"{label}: the answer has {a.kind} where the offer has {o.kind}")
        if a.rejected:
            item.warnings.append(f"{label}: rejected by the answer (port 0)")
            continue
        if a.direction == "inactive" or o.direction == "inactive":
            item.warnings.append(f"{label}: inactive: no media will flow")
        elif a.direction not in ANSWER_FOR[o.direction]:
            item.warnings.append(
                f"{label}: direction mismatch: the offer is {o.direction}, the answer {a.direction}"
            )
        if o.kind in ("audio", "video"):
            offered = {_codec_key(c) for c in o.codecs}
            chosen = next((c for c in a.codecs if _codec_key(c) in offered), None)
            if chosen is None:
                item.warnings.append(f"{label}: no codec in common")
            else:
                rate = f"/{chosen.clock_rate}" if chosen.clock_rate else ""
                chans = f"/{chosen.channels}" if chosen.channels and chosen.channels > 1 else ""
                item.codec = f"{chosen.name}{rate}{chans} (pt {chosen.payload_type})"
        if o.kind == "application":
            if a.sctp_port is None:
                item.warnings.append(f"{label}: data channel without a=sctp-port in the answer")
            if o.sctp_port is None:
                item.warnings.append(f"{label}: data channel without a=sctp-port in the offer")
        if answer.fingerprint_of(a) is None:
            item.warnings.append(f"{label}: the answer has no DTLS fingerprint")
        if offer.fingerprint_of(o) is None:
            item.warnings.append(f"{label}: the offer has no DTLS fingerprint")
        a_setup, o_setup = answer.setup_of(a), offer.setup_of(o)
        if a_setup == "actpass":
            item.warnings.append(
                f"{label}: the answer's setup role is actpass (it must be active or passive)"
            )
        elif a_setup is not None and a_setup == o_setup:
            item.warnings.append(f"{label}: setup role conflict: both sides are {a_setup}")
    bundled = _bundled(answer)
    with_candidates = [m for m in answer.media if m.candidates and not m.rejected]
    if not trickle and not with_candidates and any(not m.rejected for m in answer.media):
        warnings.append(
            "the answer has no ICE candidates and the offer is not trickle: ICE cannot start"
        )
    elif not trickle and not bundled:
        for index, a in enumerate(answer.media):
            if not a.rejected and not a.candidates:
                warnings.append(f"m-line {index}: no candidates in a non-trickle, unbundled answer")
    for item in pairs:
        warnings.extend(item.warnings)
    return Pairing(pairs, warnings)


def _bundled(sdp: SessionDescription) -> bool:
    return any(group.startswith("BUNDLE") for group in sdp.groups)


def bundle_mids(sdp: SessionDescription) -> list[list[str]]:
    return [group.split()[1:] for group in sdp.groups if group.startswith("BUNDLE")]


# --------------------------------------------------------------------------- text


def describe(sdp: SessionDescription, title: str = "SDP") -> list[str]:
    """The structure as indented lines for a person."""
    out = [title]
    if sdp.origin:
        out.append(f"  origin {sdp.origin}")
    for mids in bundle_mids(sdp):
        out.append(f"  BUNDLE {' '.join(mids)}")
    for group in sdp.groups:
        if not group.startswith("BUNDLE"):
            out.append(f"  group {group}")
    if sdp.ice_options:
        out.append(f"  ice-options {' '.join(sdp.ice_options)}")
    if sdp.fingerprint:
        out.append(f"  fingerprint {sdp.fingerprint}")
    if sdp.setup:
        out.append(f"  setup {sdp.setup}")
    for m in sdp.media:
        state = "REJECTED (port 0)" if m.rejected else m.direction
        out.append(f"  m={m.kind} port {m.port} {m.protocol}  mid {m.mid or '-'}  {state}")
        for codec in m.codecs:
            rate = f"/{codec.clock_rate}" if codec.clock_rate else ""
            chans = f"/{codec.channels}" if codec.channels else ""
            line = f"    codec {codec.payload_type} {codec.name}{rate}{chans}"
            if codec.fmtp:
                line += f"  fmtp {codec.fmtp}"
            if codec.rtcp_fb:
                line += f"  rtcp-fb {', '.join(codec.rtcp_fb)}"
            out.append(line)
        for ext in m.header_extensions:
            out.append(f"    extmap {ext}")
        if m.ice_ufrag:
            pwd = " (pwd set)" if m.ice_pwd_present else ""
            out.append(f"    ice-ufrag {m.ice_ufrag}{pwd}")
        if m.ice_options:
            out.append(f"    ice-options {' '.join(m.ice_options)}")
        for c in m.candidates:
            related = (
                f" raddr {c.related_address} rport {c.related_port}" if c.related_address else ""
            )
            tcp = f" tcptype {c.tcptype}" if c.tcptype else ""
            host = f"[{c.address}]" if ":" in c.address else c.address
            out.append(
                f"    candidate {c.type} {c.transport} {host}:{c.port} component {c.component}"
                f" priority {c.priority} foundation {c.foundation}{related}{tcp}"
            )
        if m.end_of_candidates:
            out.append("    end-of-candidates")
        if m.fingerprint:
            out.append(f"    fingerprint {m.fingerprint}")
        if m.setup:
            out.append(f"    setup {m.setup}")
        if m.sctp_port is not None:
            size = f"  max-message-size {m.max_message_size}" if m.max_message_size else ""
            out.append(f"    sctp-port {m.sctp_port}{size}")
        if m.rtcp_mux:
            out.append("    rtcp-mux")
    return out


def describe_pairing(pairing: Pairing) -> list[str]:
    """The pairing of an offer and an answer, a line per m-line, then the warnings."""
    lines = ["pairing"]
    for item in pairing.media:
        lines.append(
            f"  m-line {item.index} {item.kind} mid {item.mid or '-'}: {item.offer_direction} -> "
            f"{item.answer_direction or 'missing'}"
            + (f", codec {item.codec}" if item.codec else "")
        )
    if pairing.warnings:
        lines.append("warnings")
        lines += [f"  ! {w}" for w in pairing.warnings]
    else:
        lines.append("no problems found")
    return lines
