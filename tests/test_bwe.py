"""The uplink's estimate and allocation on a fake clock: media/bwe.py and media/allocator.py
driven by bench/uplink_sim.py's link (a rate and a drop-tail queue) with either kind of
feedback, and their rules one by one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from orga_cli.media.allocator import AUDIO_MAX, AUDIO_MIN, Allocator
from orga_cli.media.bwe import MIN_BPS, BandwidthEstimator, InterArrival, Trendline

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from uplink_sim import SCENARIOS, Sim, recovery


def run(name: str, feedback: str, seed: int, seconds: float = 30.0) -> dict:
    sim = Sim(SCENARIOS[name], feedback=feedback, video=not name.endswith("audio"), seed=seed)
    return sim.run(seconds)


@pytest.mark.parametrize("feedback", ["twcc", "rr"])
@pytest.mark.parametrize("name", ["1000k", "500k", "300k"])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_narrow_link_is_filled_without_filling_its_queue(
    name: str, feedback: str, seed: int
) -> None:
    result = run(name, feedback, seed)
    rate = SCENARIOS[name][0][1]
    assert rate is not None
    assert result["dropped_pct"] < 2.0, result["dropped_pct"]
    assert result["queue_median_ms"] < 40, result["queue_median_ms"]
    # most of the link is used, and not more than it carries
    assert 0.7 * rate <= 1000 * result["estimate_kbps_median"] <= 1.02 * rate


@pytest.mark.parametrize("feedback", ["twcc", "rr"])
def test_the_voice_alone_fits_60_kbits(feedback: str) -> None:
    for seed in (1, 2, 3):
        result = run("60k-audio", feedback, seed)
        assert result["dropped_pct"] < 2.0 and result["queue_median_ms"] < 20, result
        assert 45 <= result["estimate_kbps_median"] <= 61


def test_an_unlimited_link_goes_to_the_top_at_once() -> None:
    result = run("unlimited", "twcc", 1, seconds=10)
    ups = [e for t, e, _, step in result["series"] if t >= 3.0]
    assert min(ups) > 1_500_000
    assert all(step == "1" for t, _, _, step in result["series"] if t >= 3.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_link_that_falls_and_comes_back_is_followed(seed: int) -> None:
    """2 Mbit/s, 0.3 from 10 s, 2 again from 20 s: transport-wide feedback sees the fall
    within a round trip and probes find the rise."""
    result = run("step", "twcc", seed, seconds=32)
    waits = result["waits"]
    back = next(t for t, w in waits if t >= 10.0 and w < 0.1)
    assert back - 10.0 < 2.0
    assert recovery(result, 10, 20)["full_size_after_s"] is not None
    assert recovery(result, 10, 20)["full_size_after_s"] < 10.0
    low = [e for t, e, _, _ in result["series"] if 12 <= t < 20]
    assert max(low) < 400_000


def test_with_reports_alone_the_step_is_followed_both_ways() -> None:
    result = run("step", "rr", 1, seconds=40)
    low = [e for t, e, _, _ in result["series"] if 14 <= t < 20]
    high = [e for t, e, _, _ in result["series"] if t >= 34]
    assert max(low) < 400_000 and min(high) > 600_000


# --------------------------------------------------------------------------- the rules


def test_delay_that_grows_between_groups_is_overuse() -> None:
    inter, trend = InterArrival(), Trendline()
    states = []
    for i in range(200):  # a packet each 10 ms, each 2 ms later than the one before
        got = inter.add(i * 0.010, 0.05 + i * 0.012)
        if got is not None:
            states.append(trend.update(*got))
    assert "overusing" in states[-20:]
    inter, trend = InterArrival(), Trendline()
    states = []
    for i in range(200):  # a steady one-way delay
        got = inter.add(i * 0.010, 0.05 + i * 0.010)
        if got is not None:
            states.append(trend.update(*got))
    assert set(states) == {"normal"}


def test_remb_that_makes_no_sense_is_ignored() -> None:
    est = BandwidthEstimator(start=500_000)
    now = 0.0
    for i in range(100):  # sending 400 kbit/s
        now = i * 0.01
        est.on_sent(now, 1, i, 500)
    for nonsense in (1.0, 5e12):
        est.on_remb(now, nonsense)
        assert est.target == 500_000
    est.on_remb(now, 2_000_000)  # more than is sent: not a limit
    assert est.target == 500_000
    est.on_remb(now, 100_000)  # much less than is sent: overuse
    assert est.target < 200_000


def test_the_estimate_never_goes_under_the_voice() -> None:
    est = BandwidthEstimator(start=300_000)
    for i in range(50):
        est.on_sent(i * 0.02, 1, i, 200, i)
    est.on_transport_feedback(1.0, [(i, None) for i in range(50)])  # everything lost
    assert est.update(1.0) >= MIN_BPS


def test_the_voice_comes_first_and_the_picture_gets_the_rest() -> None:
    alloc = Allocator(640, 480, 24)
    a = alloc.first(1_500_000, 0.0)
    assert a.audio_bps == AUDIO_MAX and a.step == 0 and not a.paused
    a = alloc.update(10.0, 300_000)
    assert a.audio_bps == AUDIO_MAX and a.step == 2 and a.fps == 24 and a.scale == 0.5
    a = alloc.update(11.0, 100_000)  # the voice alone: the camera pauses
    assert a.paused and a.video_bps == 0 and a.audio_bps == AUDIO_MAX
    a = alloc.update(12.0, 40_000)
    assert a.audio_bps == AUDIO_MIN
    alloc.update(13.0, 200_000)  # back: after a hold, at the lowest step first
    assert alloc.update(14.0, 200_000).paused
    a = alloc.update(15.5, 200_000)
    assert not a.paused and a.step == len(alloc.ladder) - 1


def test_the_ladder_has_hysteresis() -> None:
    alloc = Allocator(640, 480, 24)
    alloc.first(1_500_000, 0.0)
    assert alloc.update(10.0, 500_000).step == 1  # down at once
    assert alloc.update(10.5, 700_000).step == 1  # up only after it holds
    assert alloc.update(12.0, 700_000).step == 1
    assert alloc.update(12.6, 700_000).step == 0
    # a picture that uses little of its bitrate keeps its size longer
    simple = Allocator(640, 480, 24)
    simple.first(1_500_000, 0.0)
    assert simple.update(10.0, 450_000, used=0.3).step == 0
    # at first the step the estimate allows, and up after a short hold while the link
    # is being measured
    early = Allocator(640, 480, 24)
    assert early.first(300_000, 0.0).step == 2
    assert early.update(0.2, 1_500_000).step == 2
    assert early.update(0.8, 1_500_000).step == 0
