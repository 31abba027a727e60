"""Pure tests of the audio building blocks: the playout buffer, levels, WAV files."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from orga_cli.media.audio import PlayoutBuffer, WavWriter, level_dbfs, tone


def test_playout_primes_then_plays_in_order() -> None:
    buf = PlayoutBuffer(1, 48000, min_ms=40, headroom_ms=60)
    out = np.zeros((480, 1), np.int16)
    buf.push(np.arange(960, dtype=np.int16))  # 20 ms: not primed yet
    buf.pull(out)
    assert not out.any()
    buf.push(np.arange(960, 1920, dtype=np.int16))  # 40 ms: primed
    buf.pull(out)
    assert out[:, 0].tolist() == list(range(480))
    assert buf.underruns == 0


def test_playout_drops_oldest_down_to_target_above_high() -> None:
    buf = PlayoutBuffer(1, 48000, min_ms=40, headroom_ms=60)
    for i in range(6):  # 120 ms pushed, nothing pulled
        buf.push(np.full(960, i, np.int16))
    assert buf.buffered_ms <= 100
    assert buf.dropped > 0
    out = np.zeros((960, 1), np.int16)
    buf.pull(out)
    assert out[0, 0] >= 3  # the oldest blocks went first


def test_playout_underrun_plays_silence_and_counts() -> None:
    buf = PlayoutBuffer(2, 48000, min_ms=40, headroom_ms=60)
    buf.push(np.ones(2 * 1920, np.int16))
    out = np.full((4000, 2), 7, np.int16)
    buf.pull(out)
    assert out[:1920].all() and not out[1920:].any()
    assert buf.underruns == 1


def test_playout_target_grows_after_underruns_and_relaxes_when_steady() -> None:
    now = [0.0]
    buf = PlayoutBuffer(
        1, 48000, min_ms=20, max_ms=50, step_ms=10, relax_s=10, clock=lambda: now[0]
    )
    out = np.zeros((960, 1), np.int16)
    assert buf.target_ms == 20
    for expected in (30, 40, 50, 50):  # each underrun asks for 10 ms more cushion, up to the max
        buf.push(np.ones(buf.target, np.int16))
        buf.pull(np.zeros((buf.target + 1, 1), np.int16))
        assert buf.target_ms == expected
    assert buf.high == buf.target + 960  # 20 ms of headroom above the target
    now[0] += 9.9
    buf.push(np.ones(960, np.int16))
    assert buf.target_ms == 50  # not yet steady for 10 s
    now[0] += 0.2
    buf.push(np.ones(960, np.int16))
    assert buf.target_ms == 40
    now[0] += 10
    buf.pull(out)
    buf.push(np.ones(960, np.int16))
    assert buf.target_ms == 30
    for _ in range(5):
        now[0] += 10
        buf.push(np.ones(960, np.int16))
    assert buf.target_ms == 20  # never below the minimum


def test_level_and_tone() -> None:
    assert level_dbfs(np.zeros(960, np.int16)) == -100.0
    full = tone(1000, 0, 48000, amplitude=1.0)
    assert -3.5 < level_dbfs(full) < -2.5  # a full-scale sine is -3 dBFS
    assert np.array_equal(tone(440, 960, 960), tone(440, 0, 1920)[960:])  # phase continues


def test_wav_is_valid_while_being_written(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    writer = WavWriter(path)
    writer.write(np.ones(4800, np.int16))
    with wave.open(str(path)) as w:  # readable before close, as after a kill
        assert w.getnframes() == 4800 and w.getframerate() == 48000
    writer.close()
    assert writer.seconds == 0.1
