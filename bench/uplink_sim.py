"""The uplink's congestion control offline: the real estimator and allocator on a fake clock.

A sender (Opus at the allocated bitrate, 50 packets a second; video frames at the
allocated rate and size, packetized to 1200 bytes, keyframes three frames' worth,
paced at 2.5 times the estimate) goes through a bottleneck (a rate and a drop-tail
queue, as `orga serve --network up=rate:…,queue:…`) to a receiver that sends either
transport-wide feedback every 100 ms or receiver reports every 0.5-1.5 s (as
aiortc's), optionally REMB. It prints, per scenario, what `bench/uplink.py` measures
on real calls: the share of packets dropped at the bottleneck, its median and 95th
percentile queueing delay, the time the queue took to fall under 100 ms after a
step down, the estimate and what the video got. The quick loop for tuning
media/bwe.py and media/allocator.py: seconds per scenario.

Usage: python bench/uplink_sim.py [--scenario NAME ...] [--feedback twcc|rr|both] [--seed N]
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orga_cli.media.allocator import Allocator
from orga_cli.media.bwe import BandwidthEstimator
from orga_cli.media.pacer import probe_packet_size

OVERHEAD = 38 + 12 + 8  # SRTP tag, UDP, IP, RTP header and extensions: all a router counts
SCENARIOS: dict[str, list[tuple[float, float | None]]] = {
    # (from second, rate bits/s or None for unlimited)
    "unlimited": [(0, None)],
    "1000k": [(0, 1_000_000)],
    "500k": [(0, 500_000)],
    "300k": [(0, 300_000)],
    "60k-audio": [(0, 60_000)],
    "step": [(0, 2_000_000), (10, 300_000), (20, 2_000_000)],
}


@dataclass(order=True)
class Event:
    at: float
    order: int
    fn: Callable[[], None] = field(compare=False)


class Sim:
    def __init__(
        self,
        schedule: list[tuple[float, float | None]],
        *,
        feedback: str,
        video: bool,
        seed: int,
        queue_s: float = 0.2,
        remb: bool = False,
        complexity: float = 1.0,
    ) -> None:
        self.now = 0.0
        self.events: list[Event] = []
        self.order = 0
        self.rng = random.Random(seed)
        self.schedule = schedule
        self.queue_s = queue_s
        self.feedback = feedback
        self.remb = remb
        self.video = video
        self.complexity = complexity  # 1: the picture fills its budget; 0.3: a simple one
        self.est = BandwidthEstimator(start=300_000 if video else 48_000)
        self.alloc = Allocator(640, 480, 24) if video else Allocator()
        self.est.set_max(self.alloc.max_useful())
        self.allocation = self.alloc.first(self.est.target, 0.0)
        self.busy_until = 0.0
        self.tseq = 0
        self.seq = {1: 0, 2: 0}
        self.sent = 0
        self.dropped = 0
        self.waits: list[tuple[float, float]] = []
        self.arrivals: list[tuple[int, float]] = []  # transport seq, arrival
        self.rr_state: dict[int, list[int]] = {1: [0, 0], 2: [0, 0]}  # highest, lost
        self.lost_by_ssrc = {1: 0, 2: 0}
        self.queue: list[tuple[int, int, int | None]] = []  # pacer: (ssrc, size, probe)
        self.budget = 0.0
        self.last_pace = 0.0
        self.probe: tuple[int, float, float, int, int] | None = None
        self.series: list[tuple[float, float, float, str]] = []
        self.video_bits = 0.0
        self.last_frame = 0.0
        self.srs: dict[int, float] = {}
        self.next_keyframe = True

    def at(self, when: float, fn: Callable[[], None]) -> None:
        self.order += 1
        heapq.heappush(self.events, Event(when, self.order, fn))

    def rate(self, t: float) -> float | None:
        rate = None
        for start, value in self.schedule:
            if t >= start:
                rate = value
        return rate

    # ------------------------------------------------------------------ the link

    def link(self, ssrc: int, size: int, tseq: int) -> None:
        rate = self.rate(self.now)
        self.sent += 1
        if rate is None:
            arrival = self.now + 0.01
            wait = 0.0
        else:
            start = max(self.now, self.busy_until)
            wait = start - self.now
            if wait > self.queue_s:
                self.dropped += 1
                self.lost_by_ssrc[ssrc] += 1
                self.rr_state[ssrc][1] += 1
                return
            self.busy_until = start + 8 * size / rate
            arrival = self.busy_until + 0.01
        self.waits.append((self.now, wait))
        if tseq >= 0:
            self.arrivals.append((tseq, arrival))
        seq = self.seq[ssrc]

        def arrived() -> None:
            self.rr_state[ssrc][0] = max(self.rr_state[ssrc][0], seq)

        self.at(arrival, arrived)

    def send(self, ssrc: int, size: int, probe: int | None = None) -> None:
        tseq = -1
        if self.feedback == "twcc" and ssrc == 2:
            tseq = self.tseq
            self.tseq += 1
        self.seq[ssrc] += 1
        self.est.on_sent(self.now, ssrc, self.seq[ssrc] & 0xFFFF, size, tseq, probe)
        self.link(ssrc, size, tseq)

    # ------------------------------------------------------------------ the sender

    def audio(self) -> None:
        size = int(self.allocation.audio_bps / 50 / 8) + OVERHEAD
        self.send(1, size)
        self.at(self.now + 0.02, self.audio)

    def frame(self) -> None:
        a = self.allocation
        fps = a.fps or 24
        if self.video and not a.paused and a.video_bps:
            bits = a.video_bps * 0.96 / fps * self.complexity * self.rng.uniform(0.7, 1.3)
            if self.next_keyframe:
                bits *= 3
                self.next_keyframe = False
            size = int(bits / 8)
            while size > 0:
                chunk = min(1200, size)
                self.queue.append((2, chunk + OVERHEAD, None))
                size -= chunk
        self.at(self.now + 1 / fps, self.frame)

    def pace(self) -> None:
        rate = self.est.target * 2.5
        self.budget = min(
            self.budget + rate * (self.now - self.last_pace) / 8, rate * 0.005 / 8 + 1500
        )
        self.last_pace = self.now
        while self.queue and self.budget > 0:
            ssrc, size, probe = self.queue.pop(0)
            self.send(ssrc, size, probe)
            self.budget -= size
        self.at(self.now + 0.005, self.pace)

    def control(self) -> None:
        est = self.est
        target = est.update(self.now)
        used = self.complexity
        self.allocation = self.alloc.update(self.now, target, used)
        est.growth_floor = self.alloc.next_need()
        if self.video and self.feedback == "twcc":
            rate = est.want_probe(self.now)
            if rate is not None:
                ident = est.start_probe(self.now, rate)
                self.run_probe(ident, rate, 0)
        self.at(self.now + 0.05, self.control)

    def run_probe(self, ident: int, rate: float, n: int, sent: int = 0) -> None:
        """As media/pacer.py: queued video first, then padding, at the probe's rate."""
        if n >= 5 and 8 * sent >= rate * 0.015:
            self.est.probe_sent(ident)
            return
        size = self.queue.pop(0)[1] if self.queue else probe_packet_size(rate)
        self.send(2, size, ident)
        self.at(self.now + 8 * size / rate, lambda: self.run_probe(ident, rate, n + 1, sent + size))

    # ------------------------------------------------------------------ the receiver

    def twcc(self) -> None:
        if self.arrivals:
            got = sorted(self.arrivals)
            first, last = got[0][0], got[-1][0]
            arrived = dict(got)
            packets = [(s & 0xFFFF, arrived.get(s)) for s in range(first, last + 1)]
            ready = [p for p in packets if p[1] is None or p[1] <= self.now]
            if ready:
                self.arrivals = [(s, t) for s, t in self.arrivals if t > self.now]
                self.est.on_transport_feedback(self.now + 0.01, ready)
        self.at(self.now + 0.1, self.twcc)

    def sr(self) -> None:
        # A sender report crosses the same queue: the round trip it starts includes it.
        for ssrc in (1, 2):
            self.srs[ssrc] = (self.now, max(0.0, self.busy_until - self.now) + 0.01)
        self.at(self.now + 0.5 + self.rng.random(), self.sr)

    def rr(self) -> None:
        for ssrc in (1, 2) if self.video else (1,):
            sr = self.srs.get(ssrc)
            highest, lost = self.rr_state[ssrc]
            rtt, at = (sr[1] + 0.012, sr[0]) if sr is not None else (None, None)
            self.at(
                self.now + 0.01,
                lambda s=ssrc, h=highest, lo=lost, r=rtt, a=at: self.est.on_report(
                    self.now, s, 0.0, lo, h & 0xFFFF, r, a
                ),
            )
        self.at(self.now + 0.5 + self.rng.random(), self.rr)

    def sample(self) -> None:
        a = self.allocation
        self.series.append(
            (self.now, self.est.target, a.video_bps, "paused" if a.paused else f"{a.scale:g}")
        )
        self.at(self.now + 0.5, self.sample)

    def run(self, seconds: float) -> dict[str, object]:
        for fn in (self.audio, self.pace, self.control, self.sample):
            self.at(0.0, fn)
        if self.video:
            self.at(0.0, self.frame)
        self.at(0.1, self.twcc if self.feedback == "twcc" else self.rr)
        if self.feedback == "twcc":
            self.at(0.3, self.rr)
        self.at(0.2, self.sr)
        while self.events and self.events[0].at <= seconds:
            ev = heapq.heappop(self.events)
            self.now = ev.at
            ev.fn()
        waits = [1000 * w for t, w in self.waits if t >= 2.0]
        return {
            "dropped_pct": round(100 * self.dropped / max(1, self.sent), 2),
            "queue_median_ms": round(statistics.median(waits), 1) if waits else None,
            "queue_p95_ms": round(sorted(waits)[int(0.95 * len(waits))], 1) if waits else None,
            "estimate_kbps_median": round(statistics.median(s[1] for s in self.series) / 1000),
            "series": self.series,
            "waits": self.waits,
        }


def recovery(result: dict[str, object], fall: float, rise: float) -> dict[str, float | None]:
    """Seconds from the fall until the queue is under 100 ms for good; from the rise until
    the picture is at full size."""
    waits = result["waits"]
    assert isinstance(waits, list)
    late = [t for t, w in waits if fall <= t < rise and w >= 0.1]
    under = (max(late) - fall) if late else 0.0
    series = result["series"]
    assert isinstance(series, list)
    full = next((t - rise for t, _, _, step in series if t >= rise and step == "1"), None)
    return {"queue_under_100ms_after_s": round(under, 2), "full_size_after_s": full}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--feedback", choices=("twcc", "rr", "both"), default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--complexity", type=float, default=1.0)
    parser.add_argument("--series", action="store_true", help="print the estimate every 0.5 s")
    args = parser.parse_args()
    kinds = ("twcc", "rr") if args.feedback == "both" else (args.feedback,)
    for name in args.scenario or list(SCENARIOS):
        for kind in kinds:
            video = not name.endswith("audio")
            sim = Sim(
                SCENARIOS[name],
                feedback=kind,
                video=video,
                seed=args.seed,
                complexity=args.complexity,
            )
            result = sim.run(args.seconds)
            extra = recovery(result, 10, 20) if name == "step" else {}
            print(
                f"{name:10s} {kind:4s} dropped {result['dropped_pct']:5.2f}%  queue median"
                f" {result['queue_median_ms']} ms p95 {result['queue_p95_ms']} ms  estimate"
                f" {result['estimate_kbps_median']} kbit/s {extra}"
            )
            if args.series:
                for t, e, v, step in result["series"]:  # type: ignore[union-attr]
                    print(f"   {t:5.1f}s estimate {e / 1000:6.0f}  video {v / 1000:6.0f}  {step}")


if __name__ == "__main__":
    main()
