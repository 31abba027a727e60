"""Received audio, from RTP packet to the sound card's pace: what aiortc lacks of NetEq.

``AudioReceiver`` takes the Opus packets of one stream as they arrive (from the
event loop) and hands out PCM to whoever pulls at the device's pace (the
speaker's PortAudio callback, or ``WallClockPull`` when there is no speaker).
It never answers a pull with a hole:

- Packets are kept by RTP timestamp, so one that arrives after a newer one is
  still played if it arrives before it is needed; duplicates are ignored.
- The playout delay D is measured continuously: the time between the earliest
  a sample could have arrived (the fastest packet of the last two seconds sets
  that path) and the moment it is handed out. The target follows the measured
  arrival jitter: a high quantile of each packet's delay over that fastest path
  in the last few seconds, plus the time one pull takes, plus a margin of a
  quarter of that jitter (at most 20 ms), between ``min_ms`` and ``max_ms``. It
  rises as soon as a late packet is seen and falls as the window forgets it.
- D is moved toward the target by time-stretching the decoded audio, in pauses
  first: once three frames in a row are quiet, D is brought back to the target
  at once (up to 15 ms of each quiet frame repeated or taken out). Within speech
  only when it must: one pitch period repeated (expand) when D is a band below the
  target, removed (accelerate) when three bands (and 50 ms) above, with a
  cross-fade. Nothing is dropped, no silence is inserted to re-buffer; the same
  mechanism absorbs clock drift between the sender and the sound card.
- A frame that is needed and missing is recovered from the in-band FEC copy in
  the next packet when there is one. Otherwise it is waited for while it is not
  much later than packets have lately been: in voiced audio by playing the last
  pitch period again (up to 20 ms; it ends where the audio ended, so the late
  frame joins it seamlessly), then by the decoder's concealment, 10 ms at a time
  without moving on. Past that, it is lost and concealed by the Opus decoder's PLC.
  After an outage the stream jumps to the first packet back, so the delay is
  what it was before, and the outage itself was filled
  with concealment and silence: what was pulled is always as long as the wall
  clock that passed.

Thread-safe: ``insert`` runs on the event loop, ``pull`` on the audio thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .opus import FRAME, RATE, Decoder, has_fec
from .stretch import MAX_PERIOD, accelerate, expand, period, quiet, restretch_quiet

log = logging.getLogger(__name__)

WINDOW_S = 2.0  # the fastest path is the fastest packet of this long
HISTORY = 250  # packets (5 s at 20 ms) whose delay sets the target
QUANTILE = 0.99
WAIT = RATE // 100  # concealment while waiting for a late packet goes in 10 ms steps
PAUSE = 3  # quiet frames in a row (60 ms at 20 ms) that make a pause, where delay is cut
BRIDGE = RATE // 50  # at most 20 ms of stretching to wait for one late frame
VOICED_CUT_S = 0.05  # an excess that is cut out of speech without waiting for a pause


@dataclass
class ReceiveStats:
    """What the receiver did, as counts of packets, frames and samples."""

    packets: int = 0  # packets inserted (duplicates and late ones included)
    duplicates: int = 0
    late: int = 0  # arrived after their frame had been concealed or skipped
    lost: int = 0  # frames that were not there when needed (FEC-recovered ones included)
    fec_recovered: int = 0
    decoded: int = 0  # frames decoded from their own packet
    samples_out: int = 0  # samples handed out since the stream started playing
    concealed: int = 0  # samples of PLC or silence handed out in place of audio
    accelerated: int = 0  # samples removed by time-stretching
    expanded: int = 0  # samples added by time-stretching
    underruns: int = 0  # times the buffer ran empty while playing
    delay_sum: float = 0.0  # seconds between arrival and hand-out, summed over decoded frames
    delay_count: int = 0

    @property
    def concealed_pct(self) -> float:
        return 100 * self.concealed / self.samples_out if self.samples_out else 0.0

    @property
    def loss_pct(self) -> float:
        expected = self.decoded + self.lost
        return 100 * self.lost / expected if expected else 0.0

    @property
    def mean_delay_ms(self) -> float | None:
        return 1000 * self.delay_sum / self.delay_count if self.delay_count else None


class DelayEstimator:
    """Each packet's delay over the fastest recent path, and the target playout delay."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s, self.max_s = min_s, max_s
        self._recent: deque[tuple[float, float]] = deque()  # (arrival, relative) for WINDOW_S
        self._delays: deque[float] = deque(maxlen=HISTORY)
        self.base: float | None = None  # the fastest path: min(arrival - ts/rate)
        # Until there is something to measure, a cushion for a first few late packets;
        # on a clean link it melts away in the first seconds.
        self._jitter = 0.04
        self._since = 0  # packets since the quantile was last taken
        self._updates = 0  # quantiles taken

    def add(self, arrival: float, ts: int) -> None:
        rel = arrival - ts / RATE
        recent = self._recent
        while recent and recent[-1][1] >= rel:  # a monotonic deque: the min is at the left
            recent.pop()
        recent.append((arrival, rel))
        while recent[0][0] < arrival - WINDOW_S:
            recent.popleft()
        self.base = recent[0][1]
        delay = rel - self.base
        self._delays.append(delay)
        if delay > self._jitter:
            self._jitter = delay  # a packet later than the target: raise it at once
        self._since += 1
        if self._since >= 5 and len(self._delays) >= 10:
            # Every 100 ms: the quantile; the target falls toward it slowly (a second or
            # so), so that it does not wander with every packet of a noisy window.
            self._since = 0
            ordered = sorted(self._delays)
            quantile = ordered[min(len(ordered) - 1, math.ceil(QUANTILE * len(ordered)) - 1)]
            self._updates += 1
            if quantile < self._jitter:
                # The start-up cushion melts faster in the first 2 s, so that the cuts it
                # takes are over before the conversation is (4 instead of 6 s).
                rate = 0.10 if self._updates <= 20 else 0.03
                self._jitter += rate * (quantile - self._jitter)

    def target(self, pull_s: float, least_margin: float = 0.0) -> float:
        # A margin that grows with the jitter: on a jittery link the next packet later
        # than any seen lately is the rule, not the exception; a clean or merely lossy
        # link keeps its low delay.
        margin = max(least_margin, min(0.02, 0.25 * self._jitter))
        return min(self.max_s, max(self.min_s, self._jitter + pull_s + margin))

    def worst(self) -> float:
        """The largest delay over the fastest path among the recent packets."""
        return max(self._delays) if self._delays else 0.0

    def reset(self) -> None:
        self._recent.clear()
        self.base = None


class AudioReceiver:
    """One received Opus stream, reordered, delay-adapted, stretched and concealed."""

    def __init__(
        self,
        *,
        min_ms: float = 20,
        max_ms: float = 400,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._estimator = DelayEstimator(min_ms / 1000, max_ms / 1000)
        self.max_s = max_ms / 1000
        self.stats = ReceiveStats()
        self.last_arrival: float | None = None
        self.first_arrival: float | None = None
        self.fec_seen = False  # has any packet carried FEC
        # The largest pull of the last 2 s while playing (a device's first fill is not
        # counted): the decoding must stay that far ahead. At most 60 ms.
        self._pulls: deque[int] = deque(maxlen=200)
        self._pull_s = 0.01
        self._lost_at: float | None = None  # when a frame was last found lost
        self._new_stream(None)

    def _new_stream(self, ssrc: int | None) -> None:
        self._ssrc = ssrc
        self._decoder = Decoder()
        self._packets: dict[int, tuple[bytes, float]] = {}
        self._last_raw: int | None = None
        self._last_ext = 0
        self._next: int | None = None  # timestamp of the next frame to decode
        self._sync = np.zeros(0, np.int16)  # decoded, not yet handed out
        self._playing = False
        self._waited = 0  # samples concealed while waiting for the frame at self._next
        self._recent: deque[int] = deque(maxlen=64)  # decoded timestamps, to tell duplicates
        self._quiet_run = 0  # quiet frames in a row, the one being decoded included
        self._bridged = 0  # samples stretched while waiting for the frame at self._next
        self._played = np.zeros(0, np.int16)  # the last 20 ms handed out
        self._estimator.reset()

    # ------------------------------------------------------------------ input

    def insert(
        self, payload: bytes, timestamp: int, ssrc: int = 0, arrival: float | None = None
    ) -> None:
        """One RTP packet's Opus payload, as it arrives."""
        arrival = self._clock() if arrival is None else arrival
        with self._lock:
            if ssrc != self._ssrc:
                if self._ssrc is not None:
                    log.info("a new audio stream (SSRC %d): starting over", ssrc)
                self._new_stream(ssrc)
            self.stats.packets += 1
            self.last_arrival = arrival
            if self.first_arrival is None:
                self.first_arrival = arrival
            ts = self._unwrap(timestamp)
            if ts in self._packets or ts in self._recent:
                self.stats.duplicates += 1
                return
            self._estimator.add(arrival, ts)
            if self._next is not None and ts < self._next:
                if self._playing:
                    self.stats.late += 1
                    return
                self._next = ts  # reordered before playback began: start from the earliest
            if self._next is None:
                self._next = ts
            self._packets[ts] = (payload, arrival)
            if len(self._packets) > 4 * self.max_s * RATE / FRAME:  # bounded: 1.6 s at 20 ms
                oldest = min(self._packets)
                del self._packets[oldest]
                self.stats.lost += 1
                if oldest == self._next:
                    self._next = min(self._packets)

    def _unwrap(self, timestamp: int) -> int:
        if self._last_raw is None:
            self._last_raw, self._last_ext = timestamp, timestamp
            return timestamp
        step = (timestamp - self._last_raw) & 0xFFFFFFFF
        if step >= 0x80000000:
            step -= 0x100000000
        ext = self._last_ext + step
        if step > 0:
            self._last_raw, self._last_ext = timestamp, ext
        return ext

    # ------------------------------------------------------------------ output

    def delay_s(self) -> float | None:
        """D: how long after the fastest possible arrival the next sample is handed out."""
        base = self._estimator.base
        if base is None or self._next is None:
            return None
        position = self._next - self._sync.size
        return self._clock() - base - position / RATE

    def target_s(self) -> float:
        least = 0.0
        if self.fec_seen and self._lost_at is not None and self._clock() - self._lost_at < 10:
            # Losses lately and the sender adds FEC: keep the next packet at hand when a
            # frame is missing, so that its FEC copy can stand in for it: a margin of at
            # least one frame (the jitter's margin counts toward it).
            least = FRAME / RATE
        return self._estimator.target(self._pull_s, least)

    def pull(self, n: int) -> np.ndarray:
        """*n* samples of 48 kHz mono int16: audio, stretched audio, or concealment."""
        with self._lock:
            if not self._playing:
                delay = self.delay_s()
                if delay is None or delay < self.target_s():
                    return np.zeros(n, np.int16)  # priming: not counted as concealment
                self._playing = True
            self._pulls.append(n)
            self._pull_s = min(0.06, max(self._pulls) / RATE)
            while self._sync.size < n:
                self._produce()
            out, self._sync = self._sync[:n], self._sync[n:]
            self._played = np.concatenate([self._played, out])[-2 * MAX_PERIOD :]
            self.stats.samples_out += n
            return out

    def _produce(self) -> None:
        """Append at least one frame's worth (or jump) to the sync buffer."""
        assert self._next is not None
        delay = self.delay_s() or 0.0
        target = self.target_s()
        packet = self._packets.pop(self._next, None)
        if packet is not None:
            payload, arrival = packet
            frame = self._decoder.decode(payload)
            self._recent.append(self._next)
            self._next += max(frame.size, 1)
            self._waited = 0
            self._bridged = 0
            self.stats.decoded += 1
            self.stats.delay_sum += max(0.0, self._clock() + self._sync.size / RATE - arrival)
            self.stats.delay_count += 1
            if not self.fec_seen and has_fec(payload):
                self.fec_seen = True
            self._append(self._stretch(frame, delay - target, target))
            return
        if self._waits(delay):
            # Nothing to play yet, or the frame may still come: wait for it, by a
            # repeated period or concealment 10 ms at a time, so that a packet a
            # little late adds as little as it can.
            if not self._packets and self._waited == 0:
                self.stats.underruns += 1
            if self._bridge():
                return
            self._waited += WAIT
            self._conceal(self._decoder.conceal(WAIT))
            return
        future = min(self._packets)  # there is one, or the frame would be waited for
        gap = future - self._next
        if self._waited >= gap or (gap > FRAME and delay - gap / RATE >= 0.75 * target):
            # What is missing has been filled while waiting (or, after an outage, the
            # delay is far above the target): go on from the first packet there is.
            self.stats.lost += gap // FRAME
            self._lost_at = self._clock()
            self._next = future
            self._waited = 0
            return
        self.stats.lost += 1
        self._lost_at = self._clock()
        self._waited = 0
        next_payload = self._packets[future][0] if gap == FRAME else None
        if next_payload is not None and has_fec(next_payload):
            self.stats.fec_recovered += 1
            self._append(self._decoder.recover(next_payload, FRAME))
        else:
            self._conceal(self._decoder.conceal(FRAME))
        self._next += FRAME

    def _waits(self, delay: float) -> bool:
        """Is the missing frame at self._next to be waited for (nothing later is here,
        or it may still come and no FEC copy stands in for it)?"""
        assert self._next is not None
        if not self._packets:
            return True
        future = min(self._packets)
        fec_ready = future == self._next + FRAME and has_fec(self._packets[future][0])
        return not fec_ready and delay < self.max_s and self._may_still_come()

    def _bridge(self) -> bool:
        """Wait for a late frame by playing the last pitch period once more.

        The period is found in the last 20 ms played or in hand; repeated, it goes on
        from where the audio stands and ends where it ended, so the late frame joins
        it seamlessly (a decoder's concealment does not: its own join is a step).
        Up to BRIDGE per missing frame, in voiced audio only; otherwise, or beyond
        that, the wait is concealed.
        """
        if self._bridged >= BRIDGE:
            return False
        recent = np.concatenate([self._played, self._sync])[-2 * MAX_PERIOD :]
        if recent.size < 2 * MAX_PERIOD or quiet(recent):
            return False
        lag, similarity = period(recent, MAX_PERIOD)
        if lag == 0 or similarity < 0.9:
            return False
        self._append(recent[-lag:].copy())
        self._bridged += lag
        self._waited += lag
        self.stats.expanded += lag
        return True

    def _may_still_come(self) -> bool:
        """Is the missing frame at self._next much later than any packet lately? Then it is lost.

        A frame that is missing while later ones are here was reordered or lost.
        Waiting for it (concealing without moving on) is worth it only while it is
        not much later (1.5 times) than the worst packet of the last seconds: on a
        link that reorders, it comes; on one that only loses packets, nothing is
        late and it is given up almost at once.
        """
        assert self._next is not None and self._estimator.base is not None
        lateness = self._clock() - self._estimator.base - self._next / RATE
        worst = self._estimator.worst()
        return lateness < worst + 0.002 + 0.5 * worst

    def _append(self, frame: np.ndarray) -> None:
        self._sync = np.concatenate([self._sync, frame]) if self._sync.size else frame

    def _conceal(self, frame: np.ndarray) -> None:
        self.stats.concealed += frame.size
        self._append(frame)

    def _stretch(self, frame: np.ndarray, error_s: float, target_s: float) -> np.ndarray:
        """Bring D toward the target by time-stretching this frame.

        In a pause (PAUSE quiet frames in a row, this one included) D is brought
        back at once, both ways (from a band above to half a band above the target,
        from half a band below to the target): nobody hears a stretch
        of near-silence repeated or taken out, and the speech on either side stays
        whole (PESQ-WB marks each change of delay within an utterance). Within
        speech D is left alone inside a band around the target (10 ms, or a fifth
        of the target) and beyond it changed by one pitch period per frame: below
        the band the next late packet would be an underrun (concealment, worse than
        a repeated period), so it is expanded at once; above it nothing is at risk
        but delay, and a period cut is heard as a small warble, so it waits for a
        pause unless D is three bands (and at least 50 ms) high: the start-up cushion
        on a clean link is less than that, and goes in the first pause.
        """
        is_quiet = quiet(frame)
        self._quiet_run = self._quiet_run + 1 if is_quiet else 0
        if frame.size < 2 * MAX_PERIOD:
            return frame
        band = max(0.010, 0.2 * target_s)
        if self._quiet_run >= PAUSE and (error_s >= band or error_s <= -0.5 * band):
            # In a pause, in one go: down to half a band above the target (a little
            # to spare), or up to the target.
            rest = 0.5 * band if error_s > 0 else 0.0
            out = restretch_quiet(frame, int((rest - error_s) * RATE))
        elif error_s <= -band:
            out = expand(frame, int(-error_s * RATE))
        elif error_s >= max(3 * band, VOICED_CUT_S):
            out = accelerate(frame, int(error_s * RATE))
        else:
            return frame
        if out.size > frame.size:
            self.stats.expanded += out.size - frame.size
        else:
            self.stats.accelerated += frame.size - out.size
        return out

    # ------------------------------------------------------------------ state

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def buffer_ms(self) -> float | None:
        """The current playout delay D in ms (None before the first packet)."""
        with self._lock:
            delay = self.delay_s()
        return None if delay is None else 1000 * delay

    @property
    def target_ms(self) -> float:
        with self._lock:
            return 1000 * self.target_s()
