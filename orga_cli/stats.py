"""A call's figures from aiortc's getStats report, matched by aiortc's stats classes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiortc.stats import (
    RTCInboundRtpStreamStats,
    RTCOutboundRtpStreamStats,
    RTCRemoteInboundRtpStreamStats,
    RTCTransportStats,
)


@dataclass
class StatsSnapshot:
    """Audio RTP packets each way; bytes at the transport (RTP, RTCP and data, bundled)."""

    packets_sent: int = 0
    audio_bytes_sent: int = 0
    bytes_sent: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    packets_lost: int = 0
    jitter_ms: float | None = None
    rtt_ms: float | None = None
    video_packets_sent: int = 0
    video_bytes_sent: int = 0
    local_candidate: str | None = None
    remote_candidate: str | None = None
    at: float = field(default_factory=time.monotonic)


def read_report(report: Any, snap: StatsSnapshot) -> None:
    """Add what an aiortc ``RTCStatsReport`` says to *snap*."""
    for stat in report.values():
        kind = getattr(stat, "kind", None)
        if isinstance(stat, RTCTransportStats):
            snap.bytes_sent += stat.bytesSent
            snap.bytes_received += stat.bytesReceived
        elif isinstance(stat, RTCOutboundRtpStreamStats):
            if kind == "audio":
                snap.packets_sent += stat.packetsSent
                snap.audio_bytes_sent += stat.bytesSent
            else:
                snap.video_packets_sent += stat.packetsSent
                snap.video_bytes_sent += stat.bytesSent
        elif isinstance(stat, RTCInboundRtpStreamStats) and kind == "audio":
            snap.packets_received += stat.packetsReceived
            snap.packets_lost += max(0, stat.packetsLost)
            snap.jitter_ms = stat.jitter / 48.0  # RTP clock units at 48 kHz -> ms
        elif (
            isinstance(stat, RTCRemoteInboundRtpStreamStats)
            and kind == "audio"
            and stat.roundTripTime is not None
        ):
            snap.rtt_ms = stat.roundTripTime * 1000
