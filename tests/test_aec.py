"""Echo cancellation through a real acoustic echo path made of PulseAudio modules.

The virtual speaker's monitor is routed into the virtual microphone by
module-loopback (60 ms, -6 dB): what orga plays comes back into its mic, as from a
laptop's speaker. The sandbox plays speech (espeak-ng) as the model's voice; a
near-end 1 kHz tone in bursts is played into the mic. What the sandbox received is
compared with processing on and with --no-aec: echo energy where the near end is
silent, and the tone's level where it sounds.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from .helpers.audio import need, speech_wav, write_wav
from .helpers.orga import orga, summary
from .helpers.pulse import Pulse

# real-time audio through PulseAudio, whose timing a busy machine changes: the machine alone
pytestmark = [pytest.mark.devices, pytest.mark.alone]
TONE = 1000.0


def near_end_bursts(tmp: Path, seconds: float = 18) -> Path:
    rate = 48000
    t = np.arange(int(seconds * rate)) / rate
    data = np.zeros_like(t)
    for start in np.arange(1.0, seconds, 2.0):  # 0.5 s of tone every 2 s
        i, j = int(start * rate), int((start + 0.5) * rate)
        data[i:j] = np.sin(2 * np.pi * TONE * t[i:j]) * 0.05 * 32767
    return write_wav(tmp / "near.wav", data)


def analyse(path: Path, skip: float = 5.0) -> tuple[float, float]:
    """(tone energy where the near end sounds, echo energy where it is silent)."""
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)[
            int(skip * rate) :
        ]
    n, hop = 1024, 512
    frames = np.lib.stride_tricks.sliding_window_view(data, n)[::hop] * np.hanning(n)
    spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / rate)
    tone_bins = np.abs(freqs - TONE) < 60
    guard = np.zeros_like(freqs, dtype=bool)
    for harmonic in range(1, 8):
        guard |= np.abs(freqs - TONE * harmonic) < 150
    echo_bins = (freqs > 100) & (freqs < 6000) & ~guard
    tone, echo = spec[:, tone_bins].sum(1), spec[:, echo_bins].sum(1)
    active = tone > tone.max() * 0.1
    return float(tone[active].mean()), float(echo[~active].mean())


def call(pulse: Pulse, tmp: Path, far: Path, near: Path, *flags: str) -> tuple[Path, dict]:
    received = tmp / ("rx" + "".join(flags).replace("-", "_"))
    player = pulse.play(near)
    try:
        out = orga(
            "call", "--sandbox", "--sandbox-reply", str(far), "--sandbox-save-received",
            str(received), "--no-video", "--duration", "13", "--json", "--no-ns", "--no-agc",
            *flags, timeout=90, env=pulse.env,
        )  # fmt: skip
    finally:
        player.terminate()
        player.wait(5)
    assert out.returncode == 0, out.stderr
    [wav_file] = list(received.glob("*.wav"))
    return wav_file, summary(out)


def test_echo_is_cancelled_and_the_near_end_kept(pulse: Pulse, tmp_path: Path) -> None:
    need("espeak-ng", "sox")
    module = pulse.pactl(
        "load-module",
        "module-loopback",
        "source=speaker.monitor",
        "sink=mic",
        "latency_msec=60",
        "adjust_time=0",
        "source_dont_move=true",
        "sink_dont_move=true",
    ).strip()
    inputs = [
        line.split()[0]
        for line in pulse.pactl("list", "short", "sink-inputs").splitlines()
        if line.split()[2] == module
    ]
    for index in inputs:
        pulse.pactl("set-sink-input-volume", index, "79%")  # PulseAudio's cubic scale: about -6 dB
    text = (
        "Hello, this is the model speaking for a while, so that the echo canceller has something"
        " to cancel. One, two, three, four, five, six, seven, eight, nine, ten. The weather is"
        " fine today."
    )
    far, near = speech_wav(tmp_path, text), near_end_bursts(tmp_path)
    plain, plain_summary = call(pulse, tmp_path, far, near, "--no-aec")
    processed, summary = call(pulse, tmp_path, far, near)
    assert plain_summary["processing"] == "HPF" and summary["processing"] == "AEC+HPF"
    tone_off, echo_off = analyse(plain)
    tone_on, echo_on = analyse(processed)
    erle = 10 * np.log10(echo_off / echo_on)
    tone_change = 10 * np.log10(tone_on / tone_off)
    print(
        f"ERLE {erle:.1f} dB, near-end tone {tone_change:+.1f} dB, panel estimate {summary['erle_db_estimate']}"
    )
    assert erle >= 25, f"ERLE {erle:.1f} dB"
    assert summary["erle_db_estimate"] is not None and summary["erle_db_estimate"] > 10
    assert abs(tone_change) <= 6, f"the near-end tone changed by {tone_change:+.1f} dB"
