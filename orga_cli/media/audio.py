"""Audio building blocks: 20 ms frames at 48 kHz, Opus packets, levels, WAV files.

numpy and av are imported here; nothing in this module touches PortAudio.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..errors import MediaError

RATE = 48_000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000  # 960
TIME_BASE = Fraction(1, RATE)
SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)


class MonoResampler:
    """Any received frame (Opus arrives as 48 kHz packed stereo) to 48 kHz mono int16.

    The common case, 48 kHz s16 stereo or mono, is a numpy average of the two
    channels (a tenth of the cost of a resampler graph on every 20 ms frame);
    other rates and layouts (G.711 at 8 kHz, a file) go through av's resampler.
    """

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None

    def __call__(self, frame: av.AudioFrame) -> np.ndarray:
        if frame.sample_rate == RATE and frame.format.name == "s16":
            channels = len(frame.layout.channels)
            if channels in (1, 2):
                data: np.ndarray = np.frombuffer(
                    memoryview(frame.planes[0]), np.int16, frame.samples * channels
                )
                if channels == 1:
                    return np.array(data, dtype=np.int16)
                mixed: np.ndarray = (data[0::2].astype(np.int32) + data[1::2]) >> 1
                out: np.ndarray = mixed.astype(np.int16)
                return out
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        chunks = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


class Pacer:
    """Real-time pacing of 20 ms blocks for a track's recv().

    One block every 20 ms from the first; after a stall of more than 0.2 s the
    clock starts again instead of sending a burst to catch up.
    """

    def __init__(self) -> None:
        self._next: float | None = None

    async def wait(self) -> None:
        now = time.monotonic()
        if self._next is None or now - self._next > 0.2:
            self._next = now
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next += FRAME_SAMPLES / RATE

    def reset(self) -> None:
        self._next = None


class OpusPackets:
    """20 ms mono blocks to Opus packets, encoded right here on the event loop.

    A track that returns encoded packets is sent by aiortc as they are. Handing
    it frames instead costs, on every 20 ms frame: a round trip through a thread
    pool, an upmix to stereo and a stereo encode, and a per-sample Python loop
    for the RTP audio-level header extension. Encoding mono 20 ms blocks inline
    is what a browser sends (Opus mono in an opus/48000/2 stream) and costs
    about a third of that. The audio-level header extension is not sent.

    The encoder is libopus itself (media/opus.py), so in-band FEC and the
    expected loss can follow the far end (``encoder.set_fec``,
    ``encoder.set_expected_loss``).
    """

    def __init__(self, bitrate: int = 64_000) -> None:
        from .opus import Encoder

        self.encoder = Encoder(bitrate, fec=False)

    def encode(self, block: np.ndarray, pts: int) -> av.Packet[Any]:
        """The packet for one 20 ms block whose first sample is number *pts*."""
        packet = av.Packet(self.encoder.encode(block))
        packet.pts = pts
        packet.time_base = TIME_BASE
        return packet


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
    """A 16-bit WAV (mono unless told) written as it goes.

    Python's wave module rewrites the header after every write on a seekable
    file, so the file is valid at every moment: after q, Ctrl-C, a crash or a
    kill, it holds everything written so far. Writes are thread-safe.
    """

    def __init__(self, path: Path, rate: int = RATE, channels: int = 1) -> None:
        self.path = path
        self.rate = rate
        self.channels = channels
        self.frames = 0
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._wav: wave.Wave_write | None = wave.open(str(path), "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise MediaError(
                f"cannot write {path}: {exc.strerror or exc}", "choose another file or directory"
            ) from exc
        self._wav.setnchannels(channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self._wav.writeframes(b"")  # a valid, empty file from the start

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            if self._wav is not None:
                self._wav.writeframes(samples.astype("<i2", copy=False).tobytes())
                self.frames += samples.size // self.channels

    def close(self) -> None:
        with self._lock:
            if self._wav is not None:
                self._wav.close()
                self._wav = None

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


class StereoWavWriter:
    """Two mono streams on one wall clock, left and right of a stereo WAV (--record-both).

    Each channel's blocks are placed where the clock says they end: a channel that
    falls behind by more than SLACK_S (nothing sent while a call is dialled again, a
    device that stalled) is padded with silence, and its first block is placed
    exactly, so that the two stay aligned within the pace of their sources. The file
    holds what both channels have reached; closing pads the shorter one.
    """

    # A sound card pulls in bursts of tens of ms, and its clock drifts from this one by
    # up to ~0.01 %: neither is a gap.
    SLACK_S = 0.3

    def __init__(self, path: Path, rate: int = RATE, clock: Any = time.monotonic) -> None:
        self._wav = WavWriter(path, rate, channels=2)
        self.rate = rate
        self._clock = clock
        self._start: float | None = None
        self._lock = threading.Lock()
        self._pending: list[list[np.ndarray]] = [[], []]
        self._placed = [0, 0]  # samples placed per channel (written or pending)
        self._started = [False, False]

    def write(self, channel: int, samples: np.ndarray) -> None:
        with self._lock:
            if self._start is None:
                self._start = self._clock() - samples.size / self.rate
            due = int((self._clock() - self._start) * self.rate) - samples.size
            behind = due - self._placed[channel]
            if behind > 0 and (not self._started[channel] or behind > self.SLACK_S * self.rate):
                self._place(channel, np.zeros(behind, np.int16))
            self._started[channel] = True
            self._place(channel, samples.astype(np.int16, copy=False))
            self._flush()

    def catch_up(self) -> None:
        """Pad a channel that has stopped (called now and then), so the other is written."""
        with self._lock:
            if self._start is None:
                return
            due = int((self._clock() - self._start - self.SLACK_S) * self.rate)
            for channel in (0, 1):
                if due > self._placed[channel]:
                    self._place(channel, np.zeros(due - self._placed[channel], np.int16))
            self._flush()

    def _place(self, channel: int, samples: np.ndarray) -> None:
        self._pending[channel].append(samples)
        self._placed[channel] += samples.size

    def _flush(self, pad: bool = False) -> None:
        left, right = (np.concatenate(p) if p else np.zeros(0, np.int16) for p in self._pending)
        n = max(left.size, right.size) if pad else min(left.size, right.size)
        if n == 0:
            return
        both = np.zeros((n, 2), np.int16)
        both[: min(n, left.size), 0] = left[:n]
        both[: min(n, right.size), 1] = right[:n]
        self._wav.write(both.reshape(-1))
        self._pending = [[left[n:]] if left.size > n else [], [right[n:]] if right.size > n else []]

    def close(self) -> None:
        with self._lock:
            self._flush(pad=True)
            self._wav.close()

    @property
    def seconds(self) -> float:
        return self._wav.seconds


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
