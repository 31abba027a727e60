"""Sound for the tests: WAV files in and out, tones, speech (espeak-ng), and what is in a
recording (its dominant frequency, its level)."""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

RATE = 48_000


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A WAV's first channel as float64 samples, and its rate."""
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        if w.getnchannels() > 1:
            data = data[:: w.getnchannels()]
        return data.astype(np.float64), w.getframerate()


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    """Mono 16-bit samples (clipped to the range) as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(samples, -32768, 32767).astype(np.int16).tobytes())
    return path


def tone_wav(path: Path, hz: float = 440.0, seconds: float = 5.0, amplitude: float = 0.3) -> Path:
    """A sine of *hz* at *amplitude* (of full scale) for *seconds*."""
    t = np.arange(int(seconds * RATE)) / RATE
    return write_wav(path, np.sin(2 * np.pi * hz * t) * amplitude * 32767)


def dominant_hz(samples: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def need(*tools: str) -> None:
    """Skip (fail under CI, where everything must be there) when a tool is missing."""
    for tool in tools:
        if not shutil.which(tool):
            if os.environ.get("CI"):
                pytest.fail(f"{tool} is not installed")
            pytest.skip(f"{tool} is not installed")


needs_speech = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox"
)


def speech_wav(folder: Path, text: str, name: str = "speech") -> Path:
    """*text* said by espeak-ng, as a 48 kHz mono WAV."""
    raw, out = folder / f"{name}-raw.wav", folder / f"{name}.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, timeout=60)
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", str(out)], check=True, timeout=60)
    return out
