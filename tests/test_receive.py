"""The receive component with scripted arrival times: reordering, duplicates, wrap-around,
bursts, loss with and without FEC, outages and clock drift. A fake clock drives it; the
packets are real Opus packets of a voiced test signal (libopus through ctypes)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from orga_cli.media.opus import FRAME, RATE, Decoder, Encoder
from orga_cli.media.receive import AudioReceiver
from orga_cli.media.stretch import accelerate, expand, quiet, restretch_quiet

PULL = 480  # 10 ms, as a sound card asks


def voice(seconds: float, hz: float = 150.0, *, pauses: bool = True) -> np.ndarray:
    """Speech-like: harmonics of *hz* with a slow swell, 1.5 s voiced then 0.5 s of pause."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, 6))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t)
    if pauses:
        env = env * ((t % 2.0) < 1.5)
    return (x * env * 5000).astype(np.int16)


def packets(seconds: float, *, loss_pct: int = 0, start_ts: int = 1000) -> list[tuple[int, bytes]]:
    enc = Encoder()
    enc.set_fec(True)
    enc.set_expected_loss(loss_pct)
    x = voice(seconds)
    out = []
    for i in range(len(x) // FRAME):
        out.append(
            ((start_ts + i * FRAME) & 0xFFFFFFFF, enc.encode(x[i * FRAME : (i + 1) * FRAME]))
        )
    return out


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(
    arrivals: list[tuple[float, int, bytes]],
    seconds: float,
    *,
    device_rate: float = 1.0,
    receiver: type[AudioReceiver] = AudioReceiver,
) -> tuple[AudioReceiver, np.ndarray]:
    """Insert packets at their arrival times while a device pulls 10 ms blocks."""
    clock = Clock()
    rx = receiver(clock=clock)
    start = clock.now
    events = sorted(arrivals, key=lambda e: e[0])
    step = PULL / (RATE * device_rate)
    out = []
    i = 0
    t = 0.0
    while t < seconds:
        while i < len(events) and events[i][0] <= t:
            clock.now = start + events[i][0]
            rx.insert(events[i][2], events[i][1], ssrc=1)
            i += 1
        clock.now = start + t
        out.append(rx.pull(PULL))
        t += step
    return rx, np.concatenate(out)


def clean(pk: list[tuple[int, bytes]], latency: float = 0.03) -> list[tuple[float, int, bytes]]:
    return [(latency + i * 0.02, ts, p) for i, (ts, p) in enumerate(pk)]


def test_clean_link_plays_everything_at_low_delay() -> None:
    pk = packets(10)
    rx, _ = run(clean(pk), 10.0)
    s = rx.stats
    assert s.decoded >= len(pk) - 3
    assert s.lost == 0 and s.late == 0 and s.concealed == 0
    assert s.underruns == 0
    # it starts with a 40 ms cushion, which melts in the first seconds
    assert rx.target_ms <= 30
    assert rx.buffer_ms is not None and rx.buffer_ms < 40
    assert s.mean_delay_ms is not None and s.mean_delay_ms < 40


def test_reordered_packets_are_played_not_dropped() -> None:
    pk = packets(5)
    arrivals = clean(pk)
    # swap every 5th packet with the next one: it arrives 20 ms late, after a newer one
    for i in range(10, len(arrivals) - 1, 5):
        (ta, tsa, pa), (tb, tsb, pb) = arrivals[i], arrivals[i + 1]
        arrivals[i], arrivals[i + 1] = (tb + 0.001, tsa, pa), (ta, tsb, pb)
    rx, _ = run(arrivals, 5.0)
    # at most the first swap, before the target has seen any jitter; none after it
    assert rx.stats.late <= 1
    assert rx.stats.lost <= 1
    assert rx.stats.decoded >= len(pk) - 4


def test_duplicates_are_ignored() -> None:
    pk = packets(2)
    arrivals = clean(pk) + [(t + 0.005, ts, p) for t, ts, p in clean(pk)[::3]]
    rx, _ = run(arrivals, 2.1)
    assert rx.stats.duplicates == len(pk[::3])
    assert rx.stats.lost == 0 and rx.stats.late == 0


def test_timestamps_wrap_around() -> None:
    pk = packets(3, start_ts=0xFFFFFFFF - 40 * FRAME)
    rx, _ = run(clean(pk), 3.0)
    assert rx.stats.lost == 0 and rx.stats.late == 0
    assert rx.stats.decoded >= len(pk) - 3


def test_burst_after_a_delay_spike_loses_nothing_and_drains() -> None:
    pk = packets(14)
    arrivals = []
    for i, (ts, p) in enumerate(pk):
        t = 0.03 + i * 0.02
        if 100 <= i < 110:  # a 200 ms stall: these ten arrive together at its end
            t = 0.03 + 110 * 0.02
        arrivals.append((t, ts, p))
    rx, _ = run(arrivals, 14.0)
    s = rx.stats
    assert s.late == 0
    assert s.lost <= 2
    assert s.accelerated > 0  # the spike's extra delay was taken out by stretching
    assert rx.buffer_ms is not None and rx.buffer_ms < 100  # once the spike is forgotten


def test_jitter_target_follows_the_link() -> None:
    pk = packets(8)
    rng = random.Random(1)
    arrivals = [
        (0.04 + i * 0.02 + max(0.0, rng.gauss(0.04, 0.03)), ts, p) for i, (ts, p) in enumerate(pk)
    ]
    rx, _ = run(arrivals, 8.0)
    s = rx.stats
    assert 60 <= rx.target_ms <= 200
    assert s.late <= len(pk) * 0.02
    assert s.concealed_pct < 5


@pytest.mark.parametrize("fec", [True, False])
def test_loss_is_concealed_or_recovered_from_fec(fec: bool) -> None:
    pk = packets(6, loss_pct=10 if fec else 0)
    rng = random.Random(7)
    arrivals = [a for a in clean(pk) if rng.random() >= 0.05 or a is clean(pk)[0]]
    rx, out = run(arrivals, 6.0)
    s = rx.stats
    assert s.lost > 5
    assert s.late == 0
    if fec:
        assert s.fec_recovered > 0
    else:
        assert s.fec_recovered == 0
        assert s.concealed > 0
    assert out.size == pytest.approx(6.0 * RATE, abs=PULL)


def test_outage_is_filled_and_the_stream_jumps_back_to_its_delay() -> None:
    pk = packets(10)
    arrivals = [a for i, a in enumerate(clean(pk)) if not 150 <= i < 300]  # 3 s lost
    rx, out = run(arrivals, 10.0)
    s = rx.stats
    assert out.size == pytest.approx(10.0 * RATE, abs=PULL)  # the wall clock is kept
    assert s.lost >= 140
    assert s.late == 0
    assert rx.buffer_ms is not None and rx.buffer_ms < 100  # not 3 s behind


@pytest.mark.parametrize("drift", [0.995, 1.005])
def test_clock_drift_is_absorbed_by_stretching(drift: float) -> None:
    pk = packets(30)
    rx, _ = run(clean(pk), 29.0, device_rate=drift)
    s = rx.stats
    assert s.lost <= 1 and s.late == 0
    assert (s.expanded if drift > 1 else s.accelerated) > 0.5 * 0.005 * 29 * RATE
    assert rx.buffer_ms is not None and rx.buffer_ms < 80
    assert s.concealed < 0.01 * s.samples_out


def test_stretching_keeps_a_periodic_signal_seamless() -> None:
    x = voice(0.02, pauses=False)
    short, longer = accelerate(x, 480), expand(x, 480)
    assert short.size < x.size < longer.size
    period = RATE / 150
    assert (
        abs((x.size - short.size) % period) < 8 or abs((x.size - short.size) % period - period) < 8
    )
    # no click: the largest step between samples stays that of the signal itself
    assert np.max(np.abs(np.diff(short.astype(int)))) <= 1.2 * np.max(
        np.abs(np.diff(x.astype(int)))
    )
    assert np.max(np.abs(np.diff(longer.astype(int)))) <= 1.2 * np.max(
        np.abs(np.diff(x.astype(int)))
    )


class Watched(AudioReceiver):
    """Notes each stretch: (when, samples added or removed, was the frame quiet)."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.changes: list[tuple[float, int, bool]] = []

    def _stretch(self, frame: np.ndarray, error_s: float, target_s: float) -> np.ndarray:
        out = super()._stretch(frame, error_s, target_s)
        if out.size != frame.size:
            self.changes.append((self._clock(), out.size - frame.size, quiet(frame)))
        return out


def test_start_up_cushion_is_given_back_in_the_first_pause_at_once() -> None:
    """On a clean link the 40 ms start-up cushion is not cut out of the first words
    period by period (PESQ-WB marks each change of delay within an utterance, and a
    cut period is heard): it goes in the first pause, in one go."""
    rx, _ = run(clean(packets(6)), 6.0, receiver=Watched)
    assert isinstance(rx, Watched)
    start = Clock().now
    assert rx.changes, "the start-up cushion was never given back"
    assert all(quiet for _, _, quiet in rx.changes)  # nothing cut out of the voice
    first = [c for c in rx.changes if c[0] - start < 2.2]
    removed = -sum(n for _, n, _ in first)
    assert removed >= 0.015 * RATE  # most of the cushion, in the first pause (1.5-2.0 s)
    assert all(1.5 <= when - start < 2.2 for when, _, _ in first)
    assert max(when for when, _, _ in first) - min(when for when, _, _ in first) < 0.1
    assert rx.buffer_ms is not None and rx.buffer_ms < rx.target_ms + 10


@pytest.mark.parametrize("change", [-720, -240, 240, 720, 2000, -2000])
def test_a_quiet_frame_is_restretched_by_up_to_15_ms(change: int) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(FRAME) * 30).astype(np.int16)  # -60 dBFS: quiet
    out = restretch_quiet(x, change)
    bounded = max(-720, min(720, change))
    assert out.size == x.size + bounded
    assert np.max(np.abs(out.astype(int))) <= np.max(np.abs(x.astype(int)))


def test_a_decoder_conceals_and_recovers() -> None:
    pk = packets(1, loss_pct=20)
    dec = Decoder()
    dec.decode(pk[0][1])
    assert dec.conceal(FRAME).size == FRAME
    assert dec.recover(pk[2][1], FRAME).size == FRAME
