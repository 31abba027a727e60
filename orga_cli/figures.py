"""One snapshot of a call's figures, taken once a second: the panel shows it, `--stats`
writes it as a line, and the `--json` summary is made from the last one.

The session gives what getStats and the uplink know (`CallSession.figures()`), the local
media what the receive buffer, the devices and the turns know (`LocalMedia.figures()`);
`CallFigures.take` puts them together with the bitrates since the previous snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .media.receive import ReceiveStats
    from .media.uplink import UplinkStats
    from .stats import StatsSnapshot


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class MediaFigures:
    """What the local media know: the receive buffer, the turns, what is wrong now."""

    receive: ReceiveStats | None = None  # a copy of the receive buffer's counts
    loss_pct: float | None = None  # None until a frame was due
    buffer_ms: float | None = None  # the playout delay now; None while not playing
    buffer_target_ms: float | None = None
    concealed_pct: float | None = None  # None until something was played
    turn_ms: float | None = None  # the last turn's latency
    turn_median_ms: float | None = None
    turn_count: int = 0
    warnings: list[str] = field(default_factory=list)  # what is wrong now, each naming the fix
    echo_cancel: str | None = None  # the processing label, with its ERLE once measured
    mic_dbfs: float | None = None  # the loudest 20 ms sent in the last second
    speaker_dbfs: float | None = None  # the loudest 20 ms played in the last second


@dataclass
class SessionFigures:
    """What the session knows: getStats, the nominated pair, the uplink."""

    net: StatsSnapshot
    uplink: UplinkStats | None = None
    video_on: bool = False
    reconnecting: bool = False


@dataclass
class CallFigures:
    """The call at one moment (``take`` makes one from the parts and the previous one)."""

    session: SessionFigures
    media: MediaFigures
    phase: str = "starting"
    t: float = field(default_factory=time.time)  # epoch seconds
    connected_s: float | None = None  # since the call first connected
    sent_kbps: dict[str, float | None] | None = None  # audio, video; None for the first
    received_kbps: float | None = None

    @classmethod
    def take(
        cls,
        session: SessionFigures,
        media: MediaFigures,
        previous: CallFigures | None,
        *,
        phase: str,
        connected_s: float | None,
    ) -> CallFigures:
        out = cls(session, media, phase=phase, connected_s=connected_s)
        if session.reconnecting:  # during an outage the delay only says how long it lasted
            media.buffer_ms = None
        net, last = session.net, previous.session.net if previous is not None else None
        if last is not None and net.at > last.at:
            span = net.at - last.at
            out.sent_kbps = {
                "audio": 8 * (net.audio_bytes_sent - last.audio_bytes_sent) / span / 1000,
                "video": 8 * (net.video_bytes_sent - last.video_bytes_sent) / span / 1000,
            }
            out.received_kbps = 8 * (net.bytes_received - last.bytes_received) / span / 1000
        return out

    @property
    def rtt_ms(self) -> float | None:
        return self.session.net.rtt_ms

    @property
    def jitter_ms(self) -> float | None:
        return self.session.net.jitter_ms

    def stats_line(self) -> dict[str, Any]:
        """One line of `--stats`: the uplink, bitrates each way, RTT, loss, the buffer."""
        m, net, u = self.media, self.session.net, self.session.uplink
        sent = self.sent_kbps
        record: dict[str, Any] = {
            "t": round(self.t, 3),
            "since_connected_s": _round(self.connected_s, 2),
            "phase": self.phase,
            "sent_kbps": None
            if sent is None
            else {"audio": _round(sent["audio"], 1), "video": _round(sent["video"], 1)},
            "received_kbps": _round(self.received_kbps, 1),
            "rtt_ms": _round(net.rtt_ms, 1),
            "jitter_ms": _round(net.jitter_ms, 2),
            "loss_pct": _round(m.loss_pct, 2),
            "buffer_ms": _round(m.buffer_ms, 1),
            "concealed_pct": _round(m.concealed_pct, 2),
            "fec_recovered": m.receive.fec_recovered if m.receive is not None else 0,
            "lost": m.receive.lost if m.receive is not None else 0,
            "mic_dbfs": _round(m.mic_dbfs, 1),
            "speaker_dbfs": _round(m.speaker_dbfs, 1),
            "turns": m.turn_count,
            "turn_ms": _round(m.turn_ms, 0),
            "packets_sent": net.packets_sent,
            "video_packets_sent": net.video_packets_sent,
        }
        if u is not None:
            record["uplink"] = {
                "mode": u.mode,
                "estimate_kbps": round(u.estimate_bps / 1000, 1),
                "audio_kbps": round(u.audio_bps / 1000, 1),
                "video_kbps": round(u.video_bps / 1000, 1),
                "video_size": u.video_size,
                "video_fps": u.video_fps,
                "video_paused": u.video_paused,
                "queue_ms": _round(u.queue_ms, 1),
                "rtt_ms": _round(u.rtt_ms, 1),
                "loss_pct": round(u.loss_pct, 2),
                "remb_kbps": None if u.remb_bps is None else round(u.remb_bps / 1000, 1),
                "retransmitted": u.retransmitted,
                "probes": u.probes,
                "keyframes": u.keyframes,
                "frames_sent": u.frames_sent,
            }
        record["buffer_target_ms"] = _round(m.buffer_target_ms, 1)
        return record
