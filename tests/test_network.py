"""Calls over a bad network: `orga serve --network` (a userspace relay that delays, reorders
and drops media) and real outages (nftables drops all UDP in the tests' own namespace).

What the client's speaker path played is checked in its --record file, which is written
from the receive component at the pace it is pulled (the wall clock with --no-speaker).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from orga_cli.sandbox.network import parse_network

from .helpers.audio import needs_speech, read_wav, speech_wav
from .helpers.orga import orga, start_orga, summary, wait_for_line
from .helpers.sandbox import Sandbox

BASE = ["call", "--audio-in", "tone:440", "--no-video", "--no-speaker", "--json"]


def call(box: Sandbox, *args: str, timeout: float = 90) -> tuple[int, dict, str]:
    """A tone call of this sandbox: exit code, --json summary, stderr."""
    proc = orga(*BASE, *args, env=box.env(), timeout=timeout)
    return proc.returncode, summary(proc), proc.stderr


def start_call(box: Sandbox, *args: str) -> subprocess.Popen[str]:
    return start_orga(*BASE, *args, env=box.env())


def tone_windows(x: np.ndarray, hz: float = 440.0, ms: int = 20) -> np.ndarray:
    """The level of *hz* in each *ms* window, relative to the strongest window (dB)."""
    n = 48 * ms
    frames = x[: len(x) // n * n].reshape(-1, n) * np.hanning(n)
    spectrum = np.abs(np.fft.rfft(frames, axis=1))
    k = round(hz * n / 48000)
    level = spectrum[:, k - 1 : k + 2].max(axis=1)
    return 20 * np.log10(np.maximum(level, 1e-9) / level.max())


# --------------------------------------------------------------------------- the syntax


def test_network_spec_is_parsed() -> None:
    imp = parse_network("down=loss:5%,delay:40ms,jitter:30ms,reorder:5%;up=loss:2%", seed=3)
    assert imp.down.loss == pytest.approx(0.05) and imp.down.delay == pytest.approx(0.04)
    assert imp.down.jitter == pytest.approx(0.03) and imp.down.reorder == pytest.approx(0.05)
    assert imp.up.loss == pytest.approx(0.02) and not imp.up.jitter
    both = parse_network("both=jitter:20ms,inorder")
    assert both.down.inorder and both.up.jitter == pytest.approx(0.02)
    gap = parse_network("down=outage:3s@5s")
    assert gap.down.outage == pytest.approx((3.0, 5.0)) and gap.down.active
    assert gap.down.describe() == "outage 3 s at 5 s" and gap.up.outage is None
    bad_specs = ("down=outage:3s", "down=outage:20s@1s", "down=outage:1s@soon")
    for bad in (
        "down=loss:200%",
        "sideways=loss:1%",
        "down=wobble:3",
        "down=delay:fast",
        *bad_specs,
    ):
        with pytest.raises(ValueError):
            parse_network(bad)


def test_serve_rejects_a_bad_network_spec(cli: Callable) -> None:
    result = cli(["serve", "--network", "down=loss:lots"])
    assert result.exit_code == 2
    assert "--network" in result.stderr and "loss:lots" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- impaired links


def test_jitter_with_reordering_plays_without_gaps(
    sandbox_with: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """σ 30 ms: packets overtake each other; they are played, not thrown away, and the
    tone the sandbox echoes comes out of the receive buffer without a hole."""
    box = sandbox_with(
        "--network", "down=delay:40ms,jitter:30ms", "--seed", "3", "--echo-delay", "0.2"
    )
    rec = tmp_path / "rec.wav"
    code, s, err = call(box, "--duration", "6", "--record", str(rec))
    assert code == 0, err
    stats = box.log()
    assert "reordered" in stats
    assert s["packets_received"] > 220
    # packets that arrive after a newer one are played: late ones are at most a stray few
    assert s["packets_late"] <= 0.01 * s["packets_received"], s
    assert s["packets_lost"] <= 0.01 * s["packets_received"] + s["packets_late"], s
    assert 50 <= s["jitter_buffer_ms"]["target"] <= 300, s
    levels = tone_windows(read_wav(rec)[0][int(2.0 * 48000) :])  # after the echo has started
    assert (levels > -20).mean() > 0.99, f"gaps in the tone: {np.sort(levels)[:10]}"


@needs_speech
@pytest.mark.parametrize("fec", [True, False])
def test_loss_is_concealed_and_recovered_by_fec(
    sandbox_with: Callable[..., Sandbox], tmp_path: Path, fec: bool
) -> None:
    voice = speech_wav(
        tmp_path,
        "The quick brown fox jumps over the lazy dog. A journey of a thousand miles"
        " begins with a single step. Every morning the birds sing outside my window.",
    )
    flags = [] if fec else ["--no-fec"]
    box = sandbox_with("--network", "down=loss:5%", "--seed", "11", "--reply", str(voice), *flags)
    rec = tmp_path / "rec.wav"
    code, s, err = call(box, "--duration", "10", "--record", str(rec))
    assert code == 0, err
    assert s["packets_lost"] > 5 and s["concealed_pct"] > 0, s
    assert s["record_seconds"] == pytest.approx(s["duration_s"], rel=0.01), s
    assert len(read_wav(rec)[0]) / 48000 == pytest.approx(s["duration_s"], rel=0.01)
    if fec:
        assert s["fec_recovered"] > 0, s
        assert "FEC on" in box.log()
    else:
        assert s["fec_recovered"] == 0, s
        assert "FEC off" in box.log()


# --------------------------------------------------------------------------- outages


def test_the_relay_s_outage_is_filled_and_ridden_out(
    sandbox_with: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """The sandbox's own outage (media only: ICE consent passes, as when only the media
    path fails): the call goes on, the gap is filled, the recording keeps the wall clock,
    and the echoed tone is back after it."""
    box = sandbox_with("--network", "down=outage:3s@3s", "--echo-delay", "0.2")
    rec = tmp_path / "rec.wav"
    code, s, err = call(box, "--duration", "10", "--record", str(rec))
    assert code == 0, err
    assert "dropped" in box.log()
    assert 140 <= s["packets_lost"] <= 160 and s["reconnects"] == 0, s  # 3 s of 20 ms packets
    assert s["record_seconds"] == pytest.approx(s["duration_s"], rel=0.01), s
    samples = read_wav(rec)[0]
    levels = tone_windows(samples[int(7.5 * 48000) :])  # after the outage, the echo again
    assert (levels > -20).mean() > 0.99, f"gaps after the outage: {np.sort(levels)[:10]}"


def test_an_outage_is_ridden_out(
    sandbox_with: Callable[..., Sandbox], tmp_path: Path, udp_blackhole: Callable[[bool], None]
) -> None:
    box = sandbox_with()
    rec, events = tmp_path / "rec.wav", tmp_path / "events.jsonl"
    proc = start_call(box, "--duration", "13", "--record", str(rec), "--events", str(events))
    wait_for_line(proc, "phase connected")
    time.sleep(2)
    udp_blackhole(True)  # 8 s without any UDP: media, RTCP, ICE consent, the data channel
    time.sleep(8)
    udp_blackhole(False)
    stdout, stderr = proc.communicate(timeout=40)
    assert proc.returncode == 0, stderr
    assert "reconnecting" in stderr and "media is back after" in stderr
    s = json.loads(stdout)
    assert s["reconnects"] == 0 and s["ended_by"] == "duration"
    assert 7500 <= s["outage_ms"] <= 10000, s
    assert s["record_seconds"] == pytest.approx(s["duration_s"], rel=0.01), s
    kinds = [json.loads(line)["event"].get("type") for line in events.read_text().splitlines()]
    assert "orga.reconnecting" in kinds and "orga.reconnected" in kinds


@pytest.mark.parametrize("reconnect", [True, False])
def test_media_that_does_not_come_back_redials_or_ends(
    sandbox_with: Callable[..., Sandbox],
    tmp_path: Path,
    udp_blackhole: Callable[[bool], None],
    reconnect: bool,
) -> None:
    box = sandbox_with()
    rec = tmp_path / "rec.wav"
    flags = ["--reconnect-timeout", "2"] + ([] if reconnect else ["--no-reconnect"])
    proc = start_call(box, "--duration", "9", "--record", str(rec), *flags)
    wait_for_line(proc, "phase connected")
    time.sleep(2)
    udp_blackhole(True)
    wait_for_line(proc, "reconnecting", timeout=5)
    time.sleep(2.5)  # past --reconnect-timeout: dialling again, or ended
    udp_blackhole(False)
    stdout, stderr = proc.communicate(timeout=40)
    s = json.loads(stdout)
    if reconnect:
        assert proc.returncode == 0, stderr
        assert "dialing again" in stderr
        assert s["reconnects"] == 1, s
        assert s["record_seconds"] == pytest.approx(s["duration_s"], rel=0.02), s
        assert box.log().count("answered") == 2
    else:
        assert proc.returncode == 6, stderr
        assert "no media from the server" in stderr
        assert s["reconnects"] == 0
        assert len(read_wav(rec)[0]) > 48000  # the recording is kept, valid
