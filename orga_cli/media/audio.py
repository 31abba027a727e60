"""Audio building blocks: 20 ms frames at 48 kHz, Opus packets, levels, tones.

numpy and av are imported here; nothing in this module touches PortAudio.
"""

from __future__ import annotations

import asyncio
import math
import time
from fractions import Fraction
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
