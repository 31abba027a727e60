"""Audio building blocks: 20 ms frames at 48 kHz, levels, WAV files, the playout buffer.

numpy and av are imported here; nothing in this module touches PortAudio.
"""

from __future__ import annotations

import math
import threading
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import MediaError

RATE = 48_000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000  # 960
TIME_BASE = Fraction(1, RATE)
SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)


def to_frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    """A mono s16 av.AudioFrame at 48 kHz with the given pts (in samples)."""
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


class MonoResampler:
    """Any received frame (Opus arrives as 48 kHz packed stereo) to 48 kHz mono int16."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)

    def __call__(self, frame: av.AudioFrame) -> np.ndarray:
        chunks = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dBFS (-100 for digital silence)."""
    if samples.size == 0:
        return -100.0
    rms = math.sqrt(float(np.mean(np.square(samples.astype(np.float32)))))
    return max(-100.0, 20 * math.log10(rms / 32768)) if rms > 0 else -100.0


def tone(hz: float, start: int, count: int, amplitude: float = 0.3) -> np.ndarray:
    """*count* samples of a sine at *hz*, continuing from sample index *start*."""
    t = (np.arange(start, start + count, dtype=np.float64)) / RATE
    return (np.sin(2 * np.pi * hz * t) * amplitude * 32767).astype(np.int16)


class WavWriter:
    """A mono 16-bit WAV written as it goes.

    Python's wave module rewrites the header after every write on a seekable
    file, so the file is valid at every moment: after q, Ctrl-C, a crash or a
    kill, it holds everything written so far. Writes are thread-safe.
    """

    def __init__(self, path: Path, rate: int = RATE) -> None:
        self.path = path
        self.rate = rate
        self.frames = 0
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._wav: wave.Wave_write | None = wave.open(str(path), "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise MediaError(
                f"cannot write {path}: {exc.strerror or exc}", "choose another file or directory"
            ) from exc
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self._wav.writeframes(b"")  # a valid, empty file from the start

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            if self._wav is not None:
                self._wav.writeframes(samples.astype("<i2", copy=False).tobytes())
                self.frames += samples.size

    def close(self) -> None:
        with self._lock:
            if self._wav is not None:
                self._wav.close()
                self._wav = None

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


class PlayoutBuffer:
    """A small, bounded FIFO of int16 samples between the network and the sound card.

    The producer (the event loop) pushes decoded audio; the consumer (PortAudio's
    thread) pulls exactly what the device asks for. Playback starts once
    ``target`` is buffered; when a push would go above ``high`` (the device runs
    slower than the sender, or a burst arrived) the oldest audio is dropped down
    to ``target``, so that the delay stays between the two; an underrun yields
    silence and waits for ``target`` again.
    """

    def __init__(self, channels: int, rate: int, target_ms: int = 40, high_ms: int = 80) -> None:
        self.channels = channels
        self.rate = rate
        self.target = rate * target_ms // 1000
        self.high = rate * high_ms // 1000
        self._buf = np.zeros((self.high * 2, channels), dtype=np.int16)
        self._len = 0
        self._lock = threading.Lock()
        self._primed = False
        self.dropped = 0  # samples dropped above the high watermark
        self.underruns = 0  # callbacks that found too little audio
        self.played = 0  # samples handed to the device

    def push(self, samples: np.ndarray) -> None:
        block = samples.reshape(-1, self.channels)
        with self._lock:
            n = block.shape[0]
            if n > self.high:
                self.dropped += n - self.high
                block, n = block[-self.high :], self.high
            if self._len + n > self.high:
                # Drop the oldest audio so that what remains is about `target` long.
                keep = max(0, self.target - n)
                drop = max(0, self._len - keep)
                self._buf[: self._len - drop] = self._buf[drop : self._len]
                self._len -= drop
                self.dropped += drop
            self._buf[self._len : self._len + n] = block
            self._len += n
            if self._len >= self.target:
                self._primed = True

    def pull(self, out: np.ndarray) -> None:
        """Fill *out* (frames x channels) from the buffer, silence where it runs dry."""
        need = out.shape[0]
        with self._lock:
            if not self._primed:
                out.fill(0)
                return
            take = min(need, self._len)
            out[:take] = self._buf[:take]
            if take:
                self._buf[: self._len - take] = self._buf[take : self._len]
                self._len -= take
            if take < need:
                out[take:] = 0
                self.underruns += 1
                self._primed = False  # rebuild the cushion before playing again
            self.played += take

    @property
    def buffered_ms(self) -> float:
        return 1000 * self._len / self.rate


def probe_audio_file(path: str) -> None:
    """Raise MediaError unless *path* opens and decodes as audio."""
    try:
        container = av.open(path)
    except (OSError, av.FFmpegError) as exc:
        raise MediaError(f"cannot open audio file {path}: {_av_reason(exc)}") from exc
    try:
        if not container.streams.audio:
            raise MediaError(f"{path} has no audio stream")
        for _ in container.decode(audio=0):
            return
        raise MediaError(f"{path} holds no decodable audio")
    except av.FFmpegError as exc:
        raise MediaError(f"cannot decode audio file {path}: {_av_reason(exc)}") from exc
    finally:
        container.close()


def _av_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0] if text else type(exc).__name__
