"""Pure tests of the audio building blocks: levels, WAV files."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from orga_cli.media.audio import level_dbfs, tone
from orga_cli.media.recording import WavWriter


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
