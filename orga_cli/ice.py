"""Which ICE servers a call uses, and facts about the candidates in an SDP.

aioice uses one STUN and one TURN URL of a configuration and drops the rest
silently; orga chooses them deliberately and says which. Candidate facts are read
with `orga sdp`'s own parser.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiortc import RTCIceServer

from . import sdp as sdplib
from .models import IceServer, IceUrl


def choose_ice_servers(servers: list[IceServer]) -> tuple[list[RTCIceServer], list[str]]:
    """aioice uses one STUN and one TURN URL: pick them deliberately and say so.

    STUN: the first ``stun:`` URL. TURN: UDP first (fastest), then TCP, then TLS.
    Returns the servers to configure and one line per URL used or dropped.
    """
    stun: tuple[str, IceServer] | None = None
    turns: list[tuple[int, str, IceServer]] = []
    notes: list[str] = []
    order = {"udp": 0, "tcp": 1, "tls": 2}
    for server in servers:
        for url in server.urls:
            try:
                parsed = IceUrl.parse(url)
            except ValueError as exc:
                notes.append(f"dropped {url}: {exc}")
                continue
            if parsed.scheme == "stuns":
                notes.append(f"dropped {url}: aioice has no STUN over TLS")
            elif parsed.kind == "stun":
                if stun is None:
                    stun = (url, server)
                else:
                    notes.append(f"dropped {url}: aioice uses one STUN server")
            elif server.username is None or server.credential is None:
                notes.append(f"dropped {url}: TURN without username/credential")
            else:
                turns.append((order[parsed.transport], url, server))
    chosen: list[RTCIceServer] = []
    if stun:
        chosen.append(RTCIceServer(urls=stun[0]))
        notes.insert(0, f"using STUN {stun[0]}")
    if turns:
        turns.sort(key=lambda t: t[0])
        _, url, server = turns[0]
        if url.startswith("turns:") and "transport=" not in url:
            url += "?transport=tcp"
        chosen.append(
            RTCIceServer(urls=url, username=server.username, credential=server.credential)
        )
        notes.insert(1 if stun else 0, f"using TURN {turns[0][1]}")
        notes += [f"dropped {u}: aioice uses one TURN server" for _, u, _ in turns[1:]]
    return chosen, notes


def candidate_types(sdp: str) -> list[str]:
    """The candidate types (host, srflx, relay…) in an SDP, in order, without repeats."""
    seen: dict[str, None] = {}
    for media in sdplib.parse(sdp).media:
        for candidate in media.candidates:
            seen[candidate.type] = None
    return list(seen)


def has_audio_section(sdp: str) -> bool:
    """Does the SDP have an audio section that is not rejected (port 0)?"""
    return any(m.kind == "audio" and m.port != 0 for m in sdplib.parse(sdp).media)


# --------------------------------------------------------------------------- for a record


def mask_address(address: str) -> str:
    """An address as a record shows it: private, loopback, link-local, documentation and
    mDNS (.local) addresses as they are; a public one with its host part hidden
    (203.0.113.7 -> 203.0.x.x), since a record is meant to be attached to a bug report."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address  # a name (mDNS) says nothing
    if not ip.is_global:
        return address
    if ip.version == 4:
        a, b, _, _ = address.split(".")
        return f"{a}.{b}.x.x"
    groups = ip.exploded.split(":")
    return f"{groups[0]}:{groups[1]}::x"


def candidate_facts(sdp: str) -> list[dict[str, Any]]:
    """Each candidate of an SDP: type, protocol, address (masked) and port."""
    return [
        {"type": c.type, "protocol": c.transport.lower(), "address": mask_address(c.address),
         "port": c.port}
        for m in sdplib.parse(sdp).media
        for c in m.candidates
    ]  # fmt: skip


def mask_candidate(candidate: Any) -> str:
    """An aioice Candidate as ``type protocol address:port``, the address masked."""
    host = mask_address(candidate.host)
    return f"{candidate.type} {candidate.transport.lower()} {host}:{candidate.port}"


def mask_pair(end: str | None) -> str | None:
    """``type host:port`` (CallSession.selected_pair) with the address masked."""
    if end is None:
        return None
    kind, _, where = end.partition(" ")
    host, _, port = where.rpartition(":")
    return f"{kind} {mask_address(host)}:{port}"


def sdp_explained(offer: str, answer: str) -> dict[str, list[str]]:
    """The offer and the answer as `orga sdp` explains them, and their pairing; candidate
    addresses masked (ICE passwords are never shown)."""
    o, a = sdplib.parse(offer), sdplib.parse(answer)
    for sdp in (o, a):
        for m in sdp.media:
            for c in m.candidates:
                c.address = mask_address(c.address)
                if c.related_address:
                    c.related_address = mask_address(c.related_address)
    return {
        "offer": sdplib.describe(o, "offer"),
        "answer": sdplib.describe(a, "answer"),
        "pairing": sdplib.describe_pairing(sdplib.pair(o, a)),
    }
