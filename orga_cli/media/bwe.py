"""How much the uplink carries: a send-side bandwidth estimate from what the receiver says.

aiortc has only a receiver-side estimator (REMB, abs-send-time); as a sender it
copies any REMB it gets into the VP8 encoder and knows nothing else. This is what
libwebrtc's goog_cc does on the sending side, in the same shape (draft-ietf-rmcat-gcc),
sans-IO: every input comes with the time it happened, so tests and the simulator
drive it on a fake clock.

Two sources of a delay signal, whichever the far end gives:

- **transport-wide feedback** (RTPFB 15, when the answer accepts ``transport-cc``):
  the arrival time of every packet. Packets are grouped by send time (5 ms), the
  growth of one-way delay between groups is smoothed and its trend fitted over the
  last 20 groups (the *trendline*); a trend above an adaptive threshold is overuse.
  Probes (short bursts at a rate above the estimate) measure the link directly.
- **receiver reports** alone (every receiver sends them): the round-trip time from
  LSR/DLSR, whose growth over its minimum is the bottleneck's queue, and the packets
  the far end received between two reports, which is what the link delivered.

Both feed one AIMD rate control: on overuse the rate falls to 85 % of what was
delivered; while the delay is steady it grows (8 % a second, or by a packet per
response time near the capacity last seen; before any congestion it may grow faster
in report mode, where no probe can measure); while the queue drains it holds. A loss
controller caps the result (over 10 % lost: down by half the loss; under 2 %: up).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field

START_BPS = 300_000
MIN_BPS = 40_000  # the voice alone, with its packets' headers
MAX_BPS = 3_000_000

GROUP_S = 0.005  # packets sent within 5 ms are one group
TRENDLINE_WINDOW = 20
TRENDLINE_SMOOTHING = 0.9
THRESHOLD_GAIN = 4.0
OVERUSE_TIME_S = 0.010
BETA = 0.85
FEEDBACK_TIMEOUT_S = 2.0  # no transport-wide feedback this long: receiver reports only
RR_QUEUE_HIGH_S = 0.045  # report mode: a queue this long (RTT over its minimum) is overuse
RR_QUEUE_LOW_S = 0.020  # ... and below this, the rate may grow
SLOW_START = 1.25  # report mode, before any congestion: growth a second (else 8 %)
REPORT_NEAR_GROWTH = 0.03  # report mode, near the capacity last seen: growth a second
REPORT_CALM_S = 6.0  # report mode: the capacity last seen is forgotten after this long calm
STANDING_QUEUE_S = 0.08  # transport-cc: a one-way delay this far over its minimum is overuse
HOLD_QUEUE_S = 0.04  # ... and this far, no growth (the trend may not see a slow climb)
DRAIN_S = 0.5  # a standing queue is drained within about this long (see send_rate)
DRAIN_FROM_S = 0.03  # ... from this long on
OWD_WINDOW_S = 30.0  # the one-way delay's minimum is taken over this long


@dataclass
class Sent:
    """One packet as it left (wire size: RTP, SRTP tag, UDP and IP headers)."""

    transport_seq: int  # unwrapped, or -1 without transport-wide numbering
    at: float
    size: int
    cluster: int | None = None  # the probe it belonged to


@dataclass
class Group:
    first_send: float
    last_send: float
    first_arrival: float
    last_arrival: float


class InterArrival:
    """Packets grouped by send time; each group's delay change against the previous one."""

    def __init__(self) -> None:
        self.current: Group | None = None
        self.previous: Group | None = None

    def add(self, send: float, arrival: float) -> tuple[float, float, float] | None:
        """(send delta, arrival delta, arrival time) when a group is complete, else None."""
        cur = self.current
        if cur is None:
            self.current = Group(send, send, arrival, arrival)
            return None
        if send < cur.first_send:  # reordered in send time: not used
            return None
        if send - cur.first_send <= GROUP_S or self._burst(cur, send, arrival):
            cur.last_send = max(cur.last_send, send)
            cur.last_arrival = max(cur.last_arrival, arrival)
            return None
        out = None
        prev = self.previous
        if prev is not None:
            out = (
                cur.last_send - prev.last_send,
                cur.last_arrival - prev.last_arrival,
                cur.last_arrival,
            )
        self.previous = cur
        self.current = Group(send, send, arrival, arrival)
        return out

    @staticmethod
    def _burst(cur: Group, send: float, arrival: float) -> bool:
        """Packets that queued behind each other arrive together: one group."""
        arrival_delta = arrival - cur.last_arrival
        send_delta = send - cur.last_send
        if send_delta == 0:
            return True
        return (
            arrival_delta - send_delta < 0
            and arrival_delta <= GROUP_S
            and arrival - cur.first_arrival < 0.1
        )


class Trendline:
    """The trend of the smoothed one-way delay growth, and the overuse it shows."""

    def __init__(self) -> None:
        self.deltas = 0
        self.first_arrival: float | None = None
        self.accumulated = 0.0  # ms
        self.smoothed = 0.0
        self.history: deque[tuple[float, float]] = deque(maxlen=TRENDLINE_WINDOW)
        self.trend = 0.0
        self.prev_trend = 0.0
        self.threshold = 12.5  # ms, adapts
        self.last_threshold_update: float | None = None
        self.time_over = -1.0
        self.over_count = 0
        self.state = "normal"
        self.modified_trend = 0.0

    def update(self, send_delta: float, arrival_delta: float, arrival: float) -> str:
        delta_ms = 1000 * (arrival_delta - send_delta)
        self.deltas = min(self.deltas + 1, 1000)
        if self.first_arrival is None:
            self.first_arrival = arrival
        self.accumulated += delta_ms
        self.smoothed = (
            TRENDLINE_SMOOTHING * self.smoothed + (1 - TRENDLINE_SMOOTHING) * self.accumulated
        )
        self.history.append((1000 * (arrival - self.first_arrival), self.smoothed))
        if len(self.history) == TRENDLINE_WINDOW:
            self.trend = _slope(self.history) or self.trend
        self._detect(1000 * send_delta, arrival)
        return self.state

    def _detect(self, send_delta_ms: float, now: float) -> None:
        if self.deltas < 2:
            self.state = "normal"
            return
        modified = min(self.deltas, 60) * self.trend * THRESHOLD_GAIN
        self.modified_trend = modified
        if modified > self.threshold:
            if self.time_over == -1:
                self.time_over = send_delta_ms / 2
            else:
                self.time_over += send_delta_ms
            self.over_count += 1
            sustained = self.time_over > 1000 * OVERUSE_TIME_S and self.over_count > 1
            if sustained and self.trend >= self.prev_trend:
                self.time_over = 0
                self.over_count = 0
                self.state = "overusing"
        elif modified < -self.threshold:
            self.time_over = -1
            self.over_count = 0
            self.state = "underusing"
        else:
            self.time_over = -1
            self.over_count = 0
            self.state = "normal"
        self.prev_trend = self.trend
        self._adapt_threshold(modified, now)

    def _adapt_threshold(self, modified: float, now: float) -> None:
        if self.last_threshold_update is None:
            self.last_threshold_update = now
        if abs(modified) > self.threshold + 15:  # a spike: do not adapt to it
            self.last_threshold_update = now
            return
        k = 0.039 if abs(modified) < self.threshold else 0.0087
        elapsed_ms = min(1000 * (now - self.last_threshold_update), 100)
        self.threshold += k * (abs(modified) - self.threshold) * elapsed_ms
        self.threshold = min(600.0, max(6.0, self.threshold))
        self.last_threshold_update = now


def _slope(points: deque[tuple[float, float]]) -> float | None:
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return None if den == 0 else num / den


class RateWindow:
    """Bytes over a sliding window of time: a throughput in bits/s."""

    def __init__(self, window: float = 0.5) -> None:
        self.window = window
        self.items: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, at: float, size: int) -> None:
        self.items.append((at, size))
        self.total += size
        self._trim(at)

    def _trim(self, now: float) -> None:
        while self.items and self.items[0][0] < now - self.window:
            self.total -= self.items.popleft()[1]

    def bytes_in(self, now: float) -> int:
        """Bytes in the window that ends *now*."""
        self._trim(now)
        return self.total

    def rate(self, now: float | None = None) -> float | None:
        """Bits/s between the first and the last item (the first one's bytes left out: they
        came before the span began), or None over too short a span."""
        if now is not None:
            self._trim(now)
        if len(self.items) < 2:
            return None
        span = self.items[-1][0] - self.items[0][0]
        if span < self.window / 4:
            return None
        return 8 * (self.total - self.items[0][1]) / span


class LinkCapacity:
    """The rate at which overuse was last seen (mean and deviation): near it, grow slowly."""

    def __init__(self) -> None:
        self.mean: float | None = None
        self.var = 0.4  # normalized

    def on_overuse(self, rate: float) -> None:
        if self.mean is not None and rate < self.mean - 3 * self.deviation():
            self.mean = None  # far below what was seen: the link changed, start again
        if self.mean is None:
            self.mean = rate
            return
        alpha = 0.05
        self.mean = (1 - alpha) * self.mean + alpha * rate
        norm = max(self.mean / 1000, 1.0)
        self.var = (1 - alpha) * self.var + alpha * ((self.mean - rate) / 1000) ** 2 / norm
        self.var = min(2.5, max(0.4, self.var))

    def deviation(self) -> float:
        """In bits/s (libwebrtc keeps the variance normalized in kbit/s)."""
        return 1000 * math.sqrt(self.var * (self.mean or 0.0) / 1000)

    def near(self, rate: float) -> bool:
        return self.mean is not None and rate <= self.mean + 3 * self.deviation()

    def above(self, rate: float) -> bool:
        return self.mean is not None and rate > self.mean + 3 * self.deviation()


@dataclass
class Probe:
    """A probe cluster: packets sent at *rate* to measure the link."""

    ident: int
    rate: float
    started: float
    packets: list[Sent] = field(default_factory=list)
    arrivals: dict[int, float] = field(default_factory=dict)  # transport seq -> arrival
    done_sending: bool = False


class BandwidthEstimator:
    """The uplink's capacity, from transport-wide feedback or receiver reports (see above)."""

    def __init__(self, *, start: float = START_BPS, max_bps: float = MAX_BPS) -> None:
        self.target = float(start)
        self.max_bps = float(max_bps)
        self.growth_floor = 0.0  # the estimate may grow to this without traffic to show it
        self._rtt_sample: float | None = None
        self._prev_rtt_sample: float | None = None
        self.state = "normal"  # of the delay detector
        self.mode = "receiver reports"  # or "transport-cc"
        self.twcc_negotiated = False
        self.rtt: float | None = None
        self.min_rtt: deque[tuple[float, float]] = deque()  # (when, rtt) over 30 s
        self.loss = 0.0  # the last fraction lost reported
        self.remb: float | None = None
        self.remb_at = -math.inf
        self.delivered: float | None = None  # bits/s the far end received (reports)
        self.acked = RateWindow(0.75)  # bytes by arrival time (transport-wide)
        self.unnumbered = RateWindow(0.5)  # what is sent without transport-wide numbers
        self.sent_rate = RateWindow(1.0)
        self.congested_at = -math.inf  # the last decrease
        self.decreases = 0
        self.probes_sent = 0
        self.probe_results: list[tuple[float, float]] = []  # (when, bits/s)
        self._capacity = LinkCapacity()
        self._rc_state = "hold"  # AIMD: "increase", "decrease", "hold"
        self._last_change = -math.inf
        self._last_increase: float | None = None
        self._inter = InterArrival()
        self._trend = Trendline()
        self._sent: dict[int, Sent] = {}
        self._sent_order: deque[int] = deque()
        self._latest_seq = -1
        self._feedback_at = -math.inf
        self._numbered_at = -math.inf
        self._streams: dict[int, _Stream] = {}
        self._sent_bytes = 0
        self._sent_cum: deque[tuple[float, int]] = deque(maxlen=1500)  # (when, bytes so far)
        self._loss_window: deque[tuple[float, int, int]] = deque()  # (when, lost, total)
        self._loss_decrease_at = -math.inf
        self._loss_cap = float(max_bps)
        self._loss_increase_at: float | None = None
        self._probes: dict[int, Probe] = {}
        self._next_probe_id = 1
        self._probe_again: float | None = None
        self._last_probe_at = -math.inf
        self._feedback_latest = -1  # the highest transport seq any feedback covered
        self._slow_start = True  # no congestion seen yet
        # transport-cc: the one-way delay (arrival on the far end's clock less the send
        # time here) over its minimum is the queue the packets met at the bottleneck.
        self._owd_min: deque[tuple[float, float]] = deque()  # (now, delay), increasing
        self._owd_last: float | None = None
        self._owd_at = -math.inf
        self.recent_acked = RateWindow(0.3)  # by arrival: with a standing queue, the link's rate

    # ------------------------------------------------------------------ inputs

    def on_sent(
        self,
        now: float,
        ssrc: int,
        sequence: int,
        size: int,
        transport_seq: int = -1,
        cluster: int | None = None,
    ) -> None:
        """A packet left: its RTP sequence (for the reports), transport seq, wire size."""
        self.sent_rate.add(now, size)
        stream = self._streams.get(ssrc)
        if stream is None:
            stream = self._streams[ssrc] = _Stream()
        stream.sent(sequence, size, now)
        self._sent_bytes += size
        if not self._sent_cum or now - self._sent_cum[-1][0] >= 0.02:
            self._sent_cum.append((now, self._sent_bytes))
        if transport_seq < 0:
            self.unnumbered.add(now, size)
        else:
            self._numbered_at = now
            record = Sent(transport_seq, now, size, cluster)
            self._sent[transport_seq] = record
            self._sent_order.append(transport_seq)
            self._latest_seq = transport_seq
            while len(self._sent_order) > 10_000:
                self._sent.pop(self._sent_order.popleft(), None)
            if cluster is not None and cluster in self._probes:
                self._probes[cluster].packets.append(record)

    def on_rtt(self, now: float, rtt: float) -> None:
        """A round-trip time (LSR/DLSR of a receiver report)."""
        if rtt <= 0 or rtt > 10:
            return
        self.rtt = rtt if self.rtt is None else 0.8 * self.rtt + 0.2 * rtt
        self._prev_rtt_sample = self._rtt_sample
        self._rtt_sample = rtt
        while self.min_rtt and self.min_rtt[-1][1] >= rtt:
            self.min_rtt.pop()
        self.min_rtt.append((now, rtt))
        while self.min_rtt[0][0] < now - 30:
            self.min_rtt.popleft()

    def _sent_between(self, start: float, end: float) -> float | None:
        """Bits/s of everything sent between *start* and *end* (None: too short, or gone)."""
        cum = self._sent_cum
        if not cum or end - start < 0.1 or start < cum[0][0]:
            return None
        times = [t for t, _ in cum]
        a = cum[max(0, bisect.bisect_right(times, start) - 1)]
        b = cum[max(0, bisect.bisect_right(times, end) - 1)]
        if b[0] <= a[0]:
            return None
        return 8 * (b[1] - a[1]) / (b[0] - a[0])

    def queue_delay(self) -> float | None:
        """The bottleneck's queue as the last round trip showed it: over the minimum of 30 s."""
        if self._rtt_sample is None or not self.min_rtt:
            return None
        return max(0.0, self._rtt_sample - self.min_rtt[0][1])

    def queue_now(self, now: float) -> float | None:
        """The bottleneck's queue as the latest feedback shows it: the last acknowledged
        packet's one-way delay over the minimum of 30 s (transport-cc, fresh within half a
        second); else what the last round trip showed."""
        if self.mode == "transport-cc" and self._owd_last is not None and self._owd_min:
            if now - self._owd_at <= 0.5:
                return max(0.0, self._owd_last - self._owd_min[0][1])
            return None
        return self.queue_delay()

    def send_rate(self, now: float) -> float:
        """What to send now: the target, less what drains a standing queue at the
        bottleneck within about DRAIN_S (a 200 ms queue: 60 % of the target until it is
        gone). The target is the link's rate; sending it keeps a queue where it is."""
        queue = self.queue_now(now)
        if queue is None or queue < DRAIN_FROM_S:
            return self.target
        return self.target * max(0.5, 1.0 - queue / DRAIN_S)

    def _on_owd(self, now: float, owd: float) -> None:
        while self._owd_min and self._owd_min[-1][1] >= owd:
            self._owd_min.pop()
        self._owd_min.append((now, owd))
        while self._owd_min[0][0] < now - OWD_WINDOW_S:
            self._owd_min.popleft()
        self._owd_last, self._owd_at = owd, now

    def on_report(
        self,
        now: float,
        ssrc: int,
        fraction_lost: float,
        cumulative_lost: int,
        highest: int,
        rtt: float | None = None,
        measured_at: float | None = None,
    ) -> None:
        """A reception report about one of our streams, with the round trip it gave (if its
        LSR matched a sender report of ours, which left at *measured_at*)."""
        if rtt is not None:
            self.on_rtt(now, rtt)
        stream = self._streams.get(ssrc)
        if stream is None:
            return
        lost, first, last = stream.report(now, cumulative_lost, highest)
        # The loss since the previous report, from the counts (as exact as the far end's own
        # fraction, and there also when a receiver leaves that field at 0).
        fraction_lost = max(fraction_lost, lost if lost is not None else 0.0)
        self.loss = fraction_lost
        if first is not None and last is not None:
            # What the link delivered: all we sent while the reported packets left, less
            # what this stream lost of it (a drop-tail queue treats every stream alike).
            sent = self._sent_between(first, last)
            if sent is not None:
                self.delivered = sent * (1 - fraction_lost)
        if self.mode != "receiver reports" and self.twcc_negotiated:
            return
        # A report mostly about packets sent before the last decrease shows nothing new
        # (while the queue that decrease answers drains, it still drops), and a round trip
        # echoing a sender report sent before it neither.
        fresh_loss = first is None or last is None or (first + last) / 2 > self.congested_at
        fresh_delay = (
            rtt is not None and measured_at is not None and measured_at > self.congested_at
        )
        self._report_decision(now, fraction_lost, fresh_loss, rtt, fresh_delay)

    def _report_decision(
        self, now: float, loss: float, fresh_loss: bool, rtt: float | None, fresh_delay: bool
    ) -> None:
        """Report mode: one step of the rate control on a report's loss and round trip."""
        queue = self.queue_delay() or 0.0
        prev = self._prev_rtt_sample
        draining = rtt is not None and prev is not None and rtt < prev - 0.005
        if loss > 0.10 and fresh_loss:
            self.state = "overusing"
            base = min(self.target, self.delivered or self.target)
            self._capacity.on_overuse(base)
            self._decrease(now, min(self.target * (1 - 0.5 * loss), 0.95 * base))
            return
        if rtt is None:
            return  # no delay signal in this report
        if queue > RR_QUEUE_HIGH_S and not draining and fresh_delay:
            self.state = "overusing"
            base = self.delivered if self.delivered is not None else self.target
            # The longer the queue, the further: its backlog must drain too.
            factor = BETA if queue < 0.1 else 0.7
            self._capacity.on_overuse(base)
            self._decrease(now, factor * min(base, self.target))
        elif queue > RR_QUEUE_LOW_S or loss > 0.02:
            self.state = "underusing"  # hold while it drains
            self._aimd(now, "underusing", self.delivered)
        else:
            self.state = "normal"
            self._aimd(now, "normal", self.delivered, fresh_queue=queue < RR_QUEUE_LOW_S / 2)

    def on_remb(self, now: float, bps: float, others: float = 0.0) -> None:
        """A receiver's own estimate of the video it can take (REMB), *others* being what the
        rest of the call sends. Never a standing cap: a receiver's estimate follows what it
        receives (libwebrtc's and aiortc's grow to 1.5 times that), so capping by it would
        hold a picture that does not fill its budget at its size for good. It counts as
        overuse only when it says less than is being sent; implausible values are ignored."""
        if not 10_000 <= bps <= 100e6:
            return
        self.remb = float(bps)
        self.remb_at = now
        sending = self.sent_rate.rate(now)
        if sending is None:
            return
        total = bps / 0.96 + others  # REMB counts payloads; ours counts every header
        interval = max(self.rtt or 0.2, 0.3)
        if total < 0.85 * sending and total < self.target and now - self._last_change >= interval:
            self._capacity.on_overuse(total)
            self._decrease(now, total)

    def on_transport_feedback(self, now: float, packets: list[tuple[int, float | None]]) -> None:
        """Arrival times (receiver's clock) of transport-wide sequence numbers."""
        if not packets:
            return
        self._feedback_at = now
        self.mode = "transport-cc"
        lost = total = 0
        state = self.state
        batch_owd: float | None = None  # the least one-way delay of this feedback's packets
        for seq16, arrival in packets:
            seq = self._unwrap(seq16)
            self._feedback_latest = max(self._feedback_latest, seq)
            record = self._sent.get(seq)
            if record is None:
                continue
            if record.at > self.congested_at:  # losses the last decrease did not answer yet
                total += 1
                lost += arrival is None
            if arrival is None:
                continue
            self.acked.add(arrival, record.size)
            self.recent_acked.add(arrival, record.size)
            owd = arrival - record.at
            batch_owd = owd if batch_owd is None else min(batch_owd, owd)
            if record.cluster is not None and record.cluster in self._probes:
                self._probes[record.cluster].arrivals[seq] = arrival
            delta = self._inter.add(record.at, arrival)
            if delta is not None:
                state = self._trend.update(*delta)
        if batch_owd is not None:  # the least of a batch: one packet's jitter is no queue
            self._on_owd(now, batch_owd)
        queue = self.queue_now(now)
        if queue is not None and queue > STANDING_QUEUE_S:
            # A queue this long is congestion whatever the trend says (a link that fell
            # fills its buffer before the trend has samples enough to see it).
            state = "overusing"
        elif queue is not None and queue > HOLD_QUEUE_S and state == "normal":
            state = "underusing"  # hold: near the capacity the climb is too slow to trend
        self.state = state
        if total:
            # The loss over the last second, or two when the video is thin (10 packets at least)
            self._loss_window.append((now, lost, total))
            while self._loss_window and self._loss_window[0][0] < now - 2.0:
                self._loss_window.popleft()
            recent = [x for x in self._loss_window if x[0] >= now - 1.0]
            if sum(x[2] for x in recent) < 10:
                recent = list(self._loss_window)
            lost_s = sum(x[1] for x in recent)
            total_s = sum(x[2] for x in recent)
            if total_s >= 10:
                self.loss = lost_s / total_s
                self._on_loss(now, self.loss)
        self._finish_probes(now)
        self._aimd(now, state, self.throughput(now))

    # ------------------------------------------------------------------ control

    def throughput(self, now: float) -> float | None:
        """What the link delivers: the numbered packets acknowledged by arrival time, plus
        what goes unnumbered (the voice), taken as delivered less the loss reported."""
        acked = self.acked.rate()
        if acked is None:
            return None
        return acked + (self.unnumbered.rate(now) or 0.0) * (1 - self.loss)

    def _unwrap(self, seq16: int) -> int:
        latest = self._latest_seq
        return latest - ((latest - seq16) & 0xFFFF)

    def _aimd(
        self, now: float, state: str, throughput: float | None, *, fresh_queue: bool = False
    ) -> None:
        """One step of the rate control on a detector's verdict."""
        if state == "overusing":
            interval = min(max(self.rtt or 0.2, 0.01), 0.2)
            if now - self._last_change >= interval or (
                throughput is not None and throughput < 0.5 * self.target
            ):
                base = throughput if throughput is not None else self.target
                recent = self.recent_acked.rate()
                queue = self.queue_now(now)
                if recent is not None and queue is not None and queue > DRAIN_FROM_S:
                    # Behind a standing queue packets arrive at the link's rate: the last
                    # 300 ms say it at once, where the window still holds the rate before.
                    base = min(base, recent + (self.unnumbered.rate(now) or 0.0))
                new = BETA * base
                if new < self.target:
                    self._capacity.on_overuse(base)
                    self._decrease(now, new)
            self._rc_state = "hold"
        elif state == "underusing":
            self._rc_state = "hold"
            self._last_increase = now
        else:
            if self._rc_state == "hold":
                self._rc_state = "increase"
                self._last_increase = now
            self._increase(now, throughput, fresh_queue=fresh_queue)

    def _increase(self, now: float, throughput: float | None, *, fresh_queue: bool) -> None:
        last = self._last_increase if self._last_increase is not None else now
        elapsed = min(max(now - last, 0.0), 1.0)
        self._last_increase = now
        if elapsed <= 0:
            return
        if throughput is not None and self._capacity.above(throughput):
            self._capacity = LinkCapacity()  # the link grew past what was seen: forget it
        if self.mode == "receiver reports" and now - self.congested_at > REPORT_CALM_S:
            # No probe can tell a link that grew: after long enough without congestion, what
            # was its capacity may no longer be.
            self._capacity = LinkCapacity()
        if self._capacity.near(self.target):
            if self.mode == "receiver reports":
                # Reports come a second or more apart: what is added before the next one
                # tells is what overshoots. A few percent a second.
                step = max(1000.0, REPORT_NEAR_GROWTH * self.target) * elapsed
            else:
                # Near the capacity last seen: about a packet per response time (a packet
                # being what a frame at 30 fps would be, in packets of at most 1200 bytes).
                response = (self.rtt or 0.1) + 0.1
                frame_bits = self.target / 30
                packet_bits = frame_bits / math.ceil(frame_bits / (8 * 1200))
                step = max(4000.0, packet_bits / response) * elapsed
            new = self.target + step
        else:
            factor = 1.08
            if self._slow_start and self.mode == "receiver reports" and fresh_queue:
                # No probe can measure the link here: before any congestion, and while the
                # round trip shows no queue at all, grow faster.
                factor = SLOW_START
            new = self.target * factor**elapsed
        if throughput is not None:
            # Not far past what is used, unless the allocator's next step needs more.
            new = min(new, max(1.5 * throughput + 10_000, self.growth_floor))
        if new > self.target:
            self.target = min(self.max_bps, new)
            self._last_change = now

    def _decrease(self, now: float, new: float) -> None:
        self.target = max(MIN_BPS, min(self.target, new))
        self._last_change = now
        self.congested_at = now
        self.decreases += 1
        self._slow_start = False
        self._rc_state = "hold"

    def _on_loss(self, now: float, loss: float) -> None:
        """The loss controller (transport-wide feedback): a cap over the delay-based rate.
        Over 10 % lost: down by half the loss, but never under 90 % of what the link was
        seen to deliver (while a full queue drains the loss stays high a while, and each
        cut would otherwise halve the rate again)."""
        if loss > 0.10:
            if now - self._loss_decrease_at > 0.3 + (self.rtt or 0.2):
                self._loss_decrease_at = now
                base = min(self.target, self._loss_cap)
                new = base * (1 - 0.5 * loss)
                delivered = self.throughput(now)
                if delivered is not None:
                    new = min(base, max(new, 0.9 * delivered))
                self._loss_cap = max(MIN_BPS, new)
                self._decrease(now, self._loss_cap)
            self._loss_increase_at = now
        elif loss < 0.02:
            last = self._loss_increase_at if self._loss_increase_at is not None else now
            elapsed = min(max(now - last, 0.0), 1.0)
            self._loss_increase_at = now
            # Grows with the delay-based rate, and never holds it back for long.
            self._loss_cap = max(self._loss_cap * 1.08**elapsed + 1000 * elapsed, self.target)
        self._loss_cap = min(self._loss_cap, self.max_bps)

    def update(self, now: float) -> float:
        """The target now (bits/s, every packet's headers included)."""
        if (
            self.mode == "transport-cc"
            and now - self._feedback_at > FEEDBACK_TIMEOUT_S
            and now - self._numbered_at < FEEDBACK_TIMEOUT_S / 2
        ):
            self.mode = "receiver reports"  # the far end stopped sending feedback
        elif self.mode == "transport-cc" and now - self._numbered_at > 1.0:
            self.mode = "receiver reports"  # nothing numbered is sent (the camera paused)
        if self.mode == "transport-cc":
            self.target = min(self.target, self._loss_cap)
        else:  # reports decide on losses themselves (_report_decision)
            self._loss_cap = max(self._loss_cap, self.target)
        self.target = min(self.target, self.max_bps)
        self.target = max(self.target, MIN_BPS)
        return self.target

    def set_max(self, max_bps: float) -> None:
        """What the call can use at most (the allocator's needs): no estimate above it."""
        self.max_bps = max(MIN_BPS, float(max_bps))

    # ------------------------------------------------------------------ probes

    def want_probe(self, now: float) -> float | None:
        """A probe rate to send now, or None. Only transport-wide feedback can measure one:
        the first at three times the start, then at twice a result that held (the link
        was not full yet), and every 3 s of calm at twice the estimate."""
        if self.mode != "transport-cc":
            return None
        if self._probes:
            if now - min(p.started for p in self._probes.values()) < 1.0:
                return None  # one in flight, waiting for its feedback
            self._probes.clear()
        if self.target >= 0.95 * self.max_bps or self.state == "overusing":
            return None
        if not self.probes_sent:
            return min(3 * self.target, self.max_bps)
        if self._probe_again is not None:
            rate, self._probe_again = self._probe_again, None
            return min(rate, self.max_bps) if rate > self.target else None
        # Periodic probes while no capacity is known (none seen yet, or the link grew past
        # it), and, less often, while the allocator waits for more (a paused camera, a
        # smaller picture): short ones (15 ms at the probe's rate), so that on a link that
        # is full they add about that much to its queue and no more.
        calm = now - self.congested_at > 3.0
        if calm and self._capacity.mean is None and now - self._last_probe_at > 3.0:
            return min(2 * self.target, self.max_bps)
        if calm and self.growth_floor > self.target and now - self._last_probe_at > 4.0:
            return min(
                max(1.2 * self.growth_floor, 1.3 * self.target), 2 * self.target, self.max_bps
            )
        return None

    def start_probe(self, now: float, rate: float) -> int:
        """A probe cluster begins (the pacer numbers its packets with the id returned)."""
        ident = self._next_probe_id
        self._next_probe_id += 1
        self._probes[ident] = Probe(ident, rate, now)
        self.probes_sent += 1
        self._last_probe_at = now
        return ident

    def probe_sent(self, ident: int) -> None:
        probe = self._probes.get(ident)
        if probe is not None:
            probe.done_sending = True

    def _finish_probes(self, now: float) -> None:
        for ident, probe in list(self._probes.items()):
            if not probe.done_sending:
                continue
            if probe.packets and probe.packets[-1].transport_seq > self._feedback_latest:
                continue  # the feedback for all of it has not come yet
            del self._probes[ident]
            result = self._probe_result(probe)
            if result is None:
                continue
            self.probe_results.append((now, result))
            if result > 0.7 * probe.rate:  # the link took it: try higher at once
                self._probe_again = 2 * result
            else:  # the link is full at about the result: that is its capacity
                self._capacity.on_overuse(result)
            if result > self.target and self.state != "overusing":
                self.target = min(self.max_bps, result)
                self._loss_cap = max(self._loss_cap, self.target)
                self._last_change = now
                if self._capacity.above(result):
                    self._capacity = LinkCapacity()

    @staticmethod
    def _probe_result(probe: Probe) -> float | None:
        """What the link carried of a probe: its receive rate, or its send rate if lower."""
        packets = probe.packets
        got = [p for p in packets if p.transport_seq in probe.arrivals]
        if len(packets) < 5 or len(got) < 0.8 * len(packets):
            return None
        send_span = packets[-1].at - packets[0].at
        arrivals = sorted(probe.arrivals[p.transport_seq] for p in got)
        recv_span = arrivals[-1] - arrivals[0]
        if send_span < 0.001 or recv_span < 0.001:
            return None
        send_rate = 8 * sum(p.size for p in packets[:-1]) / send_span
        recv_rate = 8 * sum(p.size for p in got[1:]) / recv_span
        if recv_rate < 0.9 * send_rate:  # the link was full: what it delivered, a bit less
            return 0.95 * recv_rate
        return min(send_rate, recv_rate)


class _Stream:
    """One of our RTP streams as its receiver reports describe it."""

    def __init__(self) -> None:
        self.sent_packets: dict[int, tuple[int, float]] = {}  # extended seq -> (size, when)
        self.order: deque[int] = deque()
        self.latest = -1
        self.prev: tuple[float, int, int] | None = None  # (when, highest, lost) of the last report

    def sent(self, sequence: int, size: int, now: float) -> None:
        if self.latest < 0:
            ext = sequence
        else:
            ext = self.latest + ((sequence - self.latest) & 0xFFFF)
            if ext - self.latest > 0x8000:  # an older one (a retransmission as it was)
                ext -= 0x10000
        if ext > self.latest:
            self.latest = ext
        self.sent_packets[ext] = (size, now)
        self.order.append(ext)
        while len(self.order) > 20_000:
            self.sent_packets.pop(self.order.popleft(), None)

    def report(
        self, now: float, lost: int, highest: int
    ) -> tuple[float | None, float | None, float | None]:
        """The share lost of the packets reported since the previous report, and when the
        first and the last of them were sent (None at the first report)."""
        if self.latest < 0:
            return None, None, None
        # Unwrap the low 16 bits against what we sent (some receivers send no cycles).
        ext = self.latest - ((self.latest - highest) & 0xFFFF)
        prev, self.prev = self.prev, (now, ext, lost)
        if prev is None or ext <= prev[1] or now - prev[0] < 0.05:
            return None, None, None
        expected = ext - prev[1]
        lost_now = min(expected, max(0, lost - prev[2]))
        first = self.sent_packets.get(prev[1] + 1)
        last = self.sent_packets.get(ext)
        return (
            lost_now / expected,
            None if first is None else first[1],
            None if last is None else last[1],
        )
