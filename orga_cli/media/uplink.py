"""A call's uplink: what aiortc lacks of libwebrtc's sending side, between its senders and SRTP.

One ``Uplink`` per call, attached to the call's DTLS transport once the answer is
in (seams.py). Every RTP packet aiortc sends and every RTCP packet it receives
crosses it:

- out: audio and RTCP go at once; video waits in the pacer (media/pacer.py), which
  numbers what leaves for transport-wide feedback when the answer accepted it;
- in: receiver reports give the round-trip time (against the sender reports that
  went out), the loss and what was delivered; REMB is kept as a cap on the video,
  when plausible; transport-wide feedback gives each packet's arrival; NACKs are
  answered here (RTX, within a budget, once per round trip), and keyframe requests
  go to the video track (at most one a second). What is left goes on to aiortc.
- every 50 ms the estimate (media/bwe.py) goes to the allocator (media/allocator.py):
  the Opus bitrate, and the video's size, frame rate, bitrate or pause.

What orga offers: the transport-wide sequence number header extension and
``transport-cc`` feedback on the video section (where its packets are). An answer
that declines, or a receiver that never sends the feedback, leaves receiver reports
(and REMB, when it comes): the estimate then follows the round trip's queue and the
losses, which every receiver reports.
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .. import sdp as sdplib
from ..loop import Background
from . import wire
from .allocator import Allocation, Allocator
from .bwe import BandwidthEstimator, RateWindow
from .feedback import FeedbackSender
from .pacer import PACING_FACTOR, Pacer

log = logging.getLogger(__name__)

TICK_S = 0.05
RTX_BUDGET = 0.15  # of the estimate, at most, for retransmissions
RTX_MAX_AGE_S = 1.0  # older packets are resent only as hole fillers (see _retransmit)
RTX_OWED_S = 10.0
VIDEO_HEADERS = 0.96  # of the video's share for its encoder: the rest is packets' headers
START_WITH_VIDEO = 300_000
START_AUDIO_ONLY = 48_000  # Opus at 22 kbit/s until the link is known


def with_transport_cc(offer_sdp: str) -> str:
    """The offer with transport-wide congestion control asked for in its audio and video
    sections: the sequence number header extension (one id no other extension uses) and
    ``transport-cc`` feedback for each codec."""
    eol = "\r\n" if "\r\n" in offer_sdp else "\n"
    lines = offer_sdp.split(eol)
    if any(wire.TRANSPORT_CC_URI in line for line in lines):
        return offer_sdp
    used = {
        int(line[len("a=extmap:") :].split()[0].split("/")[0])
        for line in lines
        if line.startswith("a=extmap:")
    }
    ident = next(i for i in range(1, 15) if i not in used)
    out: list[str] = []
    media = False
    payloads: list[str] = []
    for line in lines:
        if line.startswith("m="):
            media = line.startswith(("m=audio", "m=video"))
            payloads = line.split()[3:] if media else []
        out.append(line)
        if media and line.startswith("a=mid:"):
            out.append(f"a=extmap:{ident} {wire.TRANSPORT_CC_URI}")
        if media and line.startswith("a=rtpmap:"):
            pt, _, codec = line[len("a=rtpmap:") :].partition(" ")
            if pt in payloads and not codec.lower().startswith(("rtx/", "red/", "ulpfec/")):
                out.append(f"a=rtcp-fb:{pt} transport-cc")
    return eol.join(out)


@dataclass
class Negotiated:
    """What the offer and answer settle for the uplink."""

    audio_ssrc: int | None = None
    video_ssrc: int | None = None
    rtx_ssrc: int | None = None
    video_codec: str | None = None  # "vp8" or "h264"
    rtx_payload_type: int | None = None
    transport_cc_id: int | None = None  # the extension id, when the answer accepted it
    transport_cc_audio: bool = False  # ... in its audio section (then the voice is numbered)
    transport_cc_video: bool = False  # ... in its video section
    abs_send_time_id: int | None = None
    remb: bool = False  # the answer's codec has rtcp-fb goog-remb


def negotiate(local_sdp: str, answer_sdp: str) -> Negotiated:
    out = Negotiated()
    local = sdplib.parse(local_sdp)
    answer = sdplib.parse(answer_sdp)
    for media in local.media:
        if media.kind == "audio" and media.ssrcs and out.audio_ssrc is None:
            out.audio_ssrc = media.ssrcs[0]
        elif media.kind == "video" and media.ssrcs and out.video_ssrc is None:
            out.video_ssrc = media.ssrcs[0]
            for group in media.ssrc_groups:
                parts = group.split()
                if parts[0] == "FID" and len(parts) == 3:
                    out.video_ssrc, out.rtx_ssrc = int(parts[1]), int(parts[2])
    for media in answer.media:
        if media.kind not in ("audio", "video") or media.rejected:
            continue
        for ext in media.header_extensions:
            ident, _, uri = ext.partition(" ")
            uri = uri.split()[0] if uri.split() else ""
            if uri == wire.TRANSPORT_CC_URI:
                out.transport_cc_id = int(ident.split("/")[0])
                if media.kind == "audio":
                    out.transport_cc_audio = True
                else:
                    out.transport_cc_video = True
            elif uri == wire.ABS_SEND_TIME_URI and media.kind == "video":
                out.abs_send_time_id = int(ident.split("/")[0])
        if media.kind != "video":
            continue
        codecs = [c for c in media.codecs if c.name.lower() not in ("rtx", "red", "ulpfec")]
        if codecs:
            first = codecs[0]
            out.video_codec = "h264" if first.name.lower() == "h264" else "vp8"
            out.remb = "goog-remb" in first.rtcp_fb
            for codec in media.codecs:
                if codec.name.lower() == "rtx" and f"apt={first.payload_type}" in (
                    codec.fmtp or ""
                ):
                    out.rtx_payload_type = codec.payload_type
    return out


@dataclass
class UplinkStats:
    """The uplink now and over the call (the panel, --json and --stats read it)."""

    mode: str = "receiver reports"
    estimate_bps: float = 0.0
    audio_bps: int = 0
    video_bps: int = 0
    video_size: str | None = None  # "640x480", None without video
    video_fps: float = 0.0
    video_paused: bool = False
    rtt_ms: float | None = None
    queue_ms: float | None = None  # the bottleneck's queue as the round trip shows it
    loss_pct: float = 0.0
    remb_bps: float | None = None
    retransmitted: int = 0
    rtx_skipped: int = 0  # NACKs not answered (budget, too old, too soon)
    probes: int = 0
    padding_packets: int = 0
    paced_dropped: int = 0
    keyframes: int = 0
    keyframe_requests: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    estimates: list[float] = field(default_factory=list)  # once a second, bits/s
    least: float | None = None  # the least the estimate was at any step, bits/s


def _before(seq: int, other: int) -> bool:
    """Is RTP sequence number *seq* before *other* (16 bits, wrapping)?"""
    return seq != other and ((other - seq) & 0xFFFF) < 0x8000


class Uplink:
    """See the module docstring. ``attach`` once the answer is applied; ``close`` at the end."""

    def __init__(
        self,
        audio_encoder: Any,
        video: Any | None,
        *,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.audio_encoder = audio_encoder  # media/opus.py Encoder
        self.video = video  # media/video.py EncodedVideoTrack
        self._on_event = on_event or (lambda kind, data: None)
        self._clock = clock
        start = START_WITH_VIDEO if video is not None else START_AUDIO_ONLY
        self.estimator = BandwidthEstimator(start=start)
        if video is not None:
            w = int(math.sqrt(video.max_pixels * 4 / 3))
            self.allocator = Allocator(w, w * 3 // 4, video.source_fps)
        else:
            self.allocator = Allocator()
        self.estimator.set_max(self.allocator.max_useful())
        self.negotiated = Negotiated()
        self.pacer: Pacer | None = None
        self.feedback: FeedbackSender | None = None
        self.allocation: Allocation | None = None
        self.stats = UplinkStats()
        self.paused_s = 0.0
        self._paused_since: float | None = None
        self._srs: dict[tuple[int, int], float] = {}
        self._sr_order: deque[tuple[int, int]] = deque()
        self._history: dict[int, tuple[float, bytes]] = {}  # video sequence -> (sent, packet)
        self._history_order: deque[int] = deque()
        self._resent_at: dict[int, float] = {}
        self._owed: dict[int, float] = {}  # NACKed packets the budget could not take yet
        self._keyframe_seq: int | None = None  # the first packet of the last keyframe sent
        self._rtx_rate = RateWindow(0.25)  # a short window: retransmissions spread, not in bursts
        self._task = Background(self._control)
        self._restore: Callable[[], None] | None = None
        self._ours: set[int] = set()
        self._last_second = -math.inf
        self._video_since: float | None = None  # since when the video flows unpaused

    # ------------------------------------------------------------------ set-up

    def attach(self, dtls: Any, local_sdp: str, answer_sdp: str) -> None:
        from ..seams import intercept_srtp, srtp_send

        n = self.negotiated = negotiate(local_sdp, answer_sdp)
        self._ours = {s for s in (n.audio_ssrc, n.video_ssrc, n.rtx_ssrc) if s is not None}
        pacer = self.pacer = Pacer(srtp_send(dtls), self._sent, clock=self._clock)
        if n.transport_cc_id is not None:
            pacer.transport_cc_id = n.transport_cc_id
            numbered = [n.audio_ssrc] if n.transport_cc_audio else []
            if n.transport_cc_video and self.video is not None:
                numbered += [n.video_ssrc, n.rtx_ssrc]
            pacer.numbered_ssrcs = {s for s in numbered if s is not None}
            self.estimator.twcc_negotiated = bool(pacer.numbered_ssrcs)
            # What the far end sends us may be numbered too: it gets its feedback.
            self.feedback = FeedbackSender(n.transport_cc_id, pacer.send_now, n.audio_ssrc or 1)
        if n.video_ssrc is not None and self.video is not None:
            pacer.paced_ssrcs = {s for s in (n.video_ssrc, n.rtx_ssrc) if s is not None}
            pacer.abs_send_time_id = n.abs_send_time_id
            if n.rtx_payload_type is not None and n.rtx_ssrc is not None:
                pacer.use_rtx(n.rtx_payload_type, n.rtx_ssrc)
            self.video.codec = n.video_codec or "vp8"
            self.video.pacer_seconds = pacer.queue_seconds
        accepted = [
            k for k, on in (("audio", n.transport_cc_audio), ("video", n.transport_cc_video)) if on
        ]
        log.info(
            "uplink: %s; video %s%s",
            f"transport-wide feedback accepted ({', '.join(accepted)})"
            if accepted
            else "receiver reports only (the answer declined transport-cc)",
            n.video_codec or "none",
            ", RTX" if pacer.rtx else "",
        )
        self._restore = intercept_srtp(
            dtls,
            self._outgoing,
            self._incoming_rtcp,
            None if self.feedback is None else self.feedback.on_packet,
        )
        pacer.start()
        if self.feedback is not None:
            self.feedback.start()
        self._apply(self.allocator.first(self.estimator.target, self._clock()))
        self._task.start()

    async def close(self) -> None:
        await self._task.stop()
        if self.feedback is not None:
            await self.feedback.stop()
        if self.pacer is not None:
            await self.pacer.stop()
        now = self._clock()
        if self._paused_since is not None:
            self.paused_s += now - self._paused_since
            self._paused_since = None

    # ------------------------------------------------------------------ packets

    async def _outgoing(self, data: bytes, send: Callable[[bytes], Awaitable[None]]) -> None:
        """Every packet aiortc sends, plaintext, before SRTP."""
        pacer = self.pacer
        assert pacer is not None
        if wire.is_rtcp(data):
            now = self._clock()
            for key in wire.sender_report_time(data):
                self._srs[key] = now
                self._sr_order.append(key)
                while len(self._sr_order) > 64:
                    self._srs.pop(self._sr_order.popleft(), None)
            await pacer.send_now(data)
            return
        try:
            header = wire.rtp_header(data)
        except ValueError:
            await send(data)
            return
        if header.ssrc == self.negotiated.video_ssrc:
            self._remember(header.sequence, data)
            pacer.enqueue(data, header)
        else:
            await pacer.send_now(data, header)

    def _remember(self, sequence: int, data: bytes) -> None:
        if self.video is not None and wire.starts_keyframe(data, self.video.codec):
            self._keyframe_seq = sequence
        self._history[sequence] = (self._clock(), data)
        self._history_order.append(sequence)
        while len(self._history_order) > 1024:
            old = self._history_order.popleft()
            self._history.pop(old, None)
            self._resent_at.pop(old, None)

    def _sent(
        self,
        now: float,
        data: bytes,
        header: wire.RtpHeader,
        size: int,
        transport_seq: int,
        probe: int | None,
    ) -> None:
        self.estimator.on_sent(now, header.ssrc, header.sequence, size, transport_seq, probe)

    async def _incoming_rtcp(
        self, data: bytes, deliver: Callable[[bytes], Awaitable[None]]
    ) -> None:
        """Every RTCP packet received, plaintext; what is left goes on to aiortc."""
        now = self._clock()
        rtcp = wire.parse_rtcp(data)
        est = self.estimator
        for block in rtcp.reports:
            if block.ssrc not in self._ours:
                continue
            sent = self._srs.get((block.ssrc, block.lsr)) if block.lsr else None
            est.on_report(
                now,
                block.ssrc,
                block.fraction_lost,
                block.cumulative_lost,
                block.highest_sequence,
                rtt=None if sent is None else now - sent - block.dlsr,
                measured_at=sent,
            )
        for fb in rtcp.feedback:
            est.on_transport_feedback(now, fb.packets)
        if rtcp.remb is not None and self.negotiated.video_ssrc in rtcp.remb[1]:
            est.remb = float(rtcp.remb[0])
            # REMB counts only when nothing better speaks (transport-wide feedback does for
            # every packet), and once the video has flowed a while: a receiver's estimate
            # made while the camera was paused is about nothing.
            flowing = self._video_since is not None and now - self._video_since >= 2.0
            if est.mode == "receiver reports" and flowing:
                audio = self.allocation.audio_bps if self.allocation else 0
                est.on_remb(now, rtcp.remb[0], audio + self.allocator.audio_overhead())
        for media, lost in rtcp.nacks:
            if media == self.negotiated.video_ssrc:
                self._retransmit(now, lost)
        if self.video is not None and self.negotiated.video_ssrc in rtcp.keyframe_requests:
            self.video.request_keyframe()
        if rtcp.rest:
            await deliver(rtcp.rest)

    def _retransmit(self, now: float, lost: list[int]) -> None:
        """Answer a NACK: each packet at most once per round trip, while retransmissions
        stay within their share of the estimate. What the budget cannot take now is owed,
        and sent when it can: some receivers ask only once, and a jitter buffer with a hole
        in it stops there (aiortc's waits for 128 packets more), so a packet a later keyframe
        has replaced is still sent once, if later. (Not as an empty RTX: aiortc makes an
        empty frame of it, and an empty packet puts its decoder at end-of-stream for good.)"""
        pacer = self.pacer
        assert pacer is not None
        rtt = self.estimator.rtt or 0.1
        budget = RTX_BUDGET * max(self.estimator.target, 100_000) * self._rtx_rate.window / 8
        for seq in lost:
            item = self._history.get(seq)
            if item is None:
                self.stats.rtx_skipped += 1
                continue
            if now - self._resent_at.get(seq, -math.inf) < rtt:
                continue
            superseded = self._keyframe_seq is not None and _before(seq, self._keyframe_seq)
            fresh = now - item[0] <= RTX_MAX_AGE_S
            if not superseded and not fresh:
                self.stats.rtx_skipped += 1
                continue
            packet = pacer.retransmission(item[1])
            if self._rtx_rate.bytes_in(now) + len(packet) > budget:
                self._owed.setdefault(seq, now)
                continue
            self._owed.pop(seq, None)
            self._resent_at[seq] = now
            self._rtx_rate.add(now, len(packet))
            self.stats.retransmitted += 1
            pacer.enqueue(packet, wire.rtp_header(packet), kind="rtx")

    def _pay_owed(self, now: float) -> None:
        for seq, since in list(self._owed.items()):
            if now - since > RTX_OWED_S or seq not in self._history:
                del self._owed[seq]
        if self._owed:
            self._retransmit(now, sorted(self._owed, key=self._owed.__getitem__))

    # ------------------------------------------------------------------ control

    async def _control(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.step()
            except Exception:  # never let a bug in control end the call
                log.exception("uplink control")

    def step(self) -> None:
        """One control step: the estimate, the allocation, a probe."""
        now = self._clock()
        est = self.estimator
        target = est.update(now)
        if self.stats.least is None or target < self.stats.least:
            self.stats.least = target  # (snapshot() notes what feedback set between steps)
        used = self.video.used() if self.video is not None else 1.0
        allocation = self.allocator.update(now, target, used)
        est.growth_floor = self.allocator.next_need()
        # A standing queue at the bottleneck is drained: the picture gets less than its
        # share for as long as it lasts (its size stays: a new size costs a keyframe), and
        # the pacer lets out no more than that in all, in place of its bursts.
        send = est.send_rate(now)
        draining = send < target
        if draining and not allocation.paused:
            cut = target - send
            video = max(int(0.3 * allocation.video_bps), int(allocation.video_bps - cut))
            allocation = replace(allocation, video_bps=video)
        self._apply(allocation)
        self._pay_owed(now)
        pacer = self.pacer
        if pacer is not None:
            pacer.rate = max(send, 100_000) * (1.0 if draining else PACING_FACTOR)
            if self.video is not None and not pacer.probing:
                rate = est.want_probe(now)
                if rate is not None:
                    ident = est.start_probe(now, rate)
                    pacer.probe(ident, rate, est.probe_sent)
        if now - self._last_second >= 1.0:
            self._last_second = now
            self.stats.estimates.append(target)
            if log.isEnabledFor(logging.DEBUG):
                q = est.queue_delay()
                log.debug(
                    "uplink: %.0f kbit/s (%s, %s), rtt %s, queue %s, delivered %s, loss %.1f%%,"
                    " voice %d, video %d %s",
                    target / 1000,
                    est.mode,
                    est.state,
                    "-" if est.rtt is None else f"{1000 * est.rtt:.0f} ms",
                    "-" if q is None else f"{1000 * q:.0f} ms",
                    "-" if est.delivered is None else f"{est.delivered / 1000:.0f}",
                    100 * est.loss,
                    allocation.audio_bps // 1000,
                    allocation.video_bps // 1000,
                    "paused" if allocation.paused else f"step {allocation.step}",
                )

    def _apply(self, allocation: Allocation) -> None:
        before = self.allocation
        self.allocation = allocation
        self.audio_encoder.set_bitrate(allocation.audio_bps)
        if self.video is None:
            return
        self.video.configure(
            allocation.scale,
            allocation.fps,
            int(allocation.video_bps * VIDEO_HEADERS),
            allocation.paused,
        )
        now = self._clock()
        if allocation.paused:
            self._video_since = None
        elif self._video_since is None:
            self._video_since = now
        was_paused = before.paused if before is not None else False
        if allocation.paused and not was_paused:
            self._paused_since = now
            kbps = round(self.estimator.target / 1000)
            log.info("camera paused: uplink ~%d kbit/s", kbps)
            self._on_event("camera_paused", {"uplink_kbps": kbps})
        elif was_paused and not allocation.paused:
            if self._paused_since is not None:
                self.paused_s += now - self._paused_since
                self._paused_since = None
            kbps = round(self.estimator.target / 1000)
            log.info("camera back: uplink ~%d kbit/s", kbps)
            self._on_event("camera_resumed", {"uplink_kbps": kbps})

    # ------------------------------------------------------------------ figures

    def snapshot(self) -> UplinkStats:
        """The figures now (``stats`` keeps the call's counts)."""
        s = self.stats
        est = self.estimator
        a = self.allocation
        s.mode = est.mode
        s.estimate_bps = est.target
        if s.least is None or est.target < s.least:
            s.least = est.target
        s.audio_bps = a.audio_bps if a else 0
        s.video_bps = a.video_bps if a else 0
        s.video_paused = bool(a and a.paused)
        video = self.video
        if video is not None:
            s.video_size = (
                None if s.video_paused or not video.width else f"{video.width}x{video.height}"
            )
            s.video_fps = 0.0 if s.video_paused else video.fps
            s.keyframes = video.keyframes
            s.keyframe_requests = video.keyframe_requests
            s.frames_sent = video.frames_sent
            s.frames_dropped = video.frames_dropped
        s.rtt_ms = None if est.rtt is None else 1000 * est.rtt
        queue = est.queue_delay()
        s.queue_ms = None if queue is None else 1000 * queue
        s.loss_pct = 100 * est.loss
        s.remb_bps = est.remb
        s.probes = est.probes_sent
        if self.pacer is not None:
            s.padding_packets = self.pacer.padding_packets
            s.paced_dropped = self.pacer.dropped
        return s

    def paused_seconds(self) -> float:
        ongoing = self._clock() - self._paused_since if self._paused_since is not None else 0.0
        return self.paused_s + ongoing

    def summary(self) -> dict[str, Any]:
        """The --json fields of the uplink."""
        s = self.snapshot()
        estimates = s.estimates or [s.estimate_bps]
        out: dict[str, Any] = {
            "uplink": {
                "mode": s.mode,
                "estimate_kbps": {
                    "median": round(statistics.median(estimates) / 1000, 1),
                    # every step's, not only each second's: a dip the seconds
                    # sampled (the record's lines) is never below it
                    "min": round(min([*estimates, s.least or estimates[0]]) / 1000, 1),
                },
                "transport_cc": [
                    kind
                    for kind, on in (
                        ("audio", self.negotiated.transport_cc_audio),
                        ("video", self.negotiated.transport_cc_video),
                    )
                    if on
                ],
                "probes": s.probes,
                "video_codec": self.negotiated.video_codec if self.video is not None else None,
            },
            "packets_retransmitted": s.retransmitted,
        }
        if self.video is not None:
            out["video_paused_ms"] = round(1000 * self.paused_seconds())
            out["video_time_ms"] = {
                size: round(1000 * seconds) for size, seconds in self.video.time_at.items()
            }
            out["video_frames_sent"] = s.frames_sent
            out["video_frames_dropped"] = s.frames_dropped
            out["video_keyframes"] = s.keyframes
        return out
