"""Which ICE servers a call uses, and facts about the candidates in an SDP.

aioice uses one STUN and one TURN URL of a configuration and drops the rest
silently; orga chooses them deliberately and says which. Candidate facts are read
with `orga sdp`'s own parser.
"""

from __future__ import annotations

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
