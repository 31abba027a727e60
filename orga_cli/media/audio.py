"""Audio building blocks: 20 ms frames at 48 kHz, levels, WAV files, the playout buffer.

numpy and av are imported here; nothing in this module touches PortAudio.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import wave
from collections.abc import Callable
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
    """

    def __init__(self, bitrate: int = 64_000) -> None:
        codec = av.CodecContext.create("libopus", "w")
        codec.bit_rate = bitrate
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = RATE
        codec.time_base = TIME_BASE
        codec.options = {"application": "voip"}
        self._codec = codec
        # One frame, refilled for every block: the encoder has consumed it by the
        # time encode() returns.
        self._frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        self._frame.sample_rate = RATE
        self._frame.time_base = TIME_BASE
        self._samples = np.frombuffer(memoryview(self._frame.planes[0]), np.int16, FRAME_SAMPLES)

    def encode(self, block: np.ndarray, pts: int) -> av.Packet[Any] | None:
        """The packet for one 20 ms block whose first sample is number *pts*."""
        self._samples[:] = block
        self._frame.pts = pts
        packets = self._codec.encode(self._frame)
        if not packets:  # libopus answers every whole 20 ms frame at once; never seen
            return None
        packet = packets[0]  # one frame in, one packet out
        packet.pts = pts  # libopus shifts pts by its look-ahead; RTP wants the block's
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
    ``target`` is buffered. The target follows the network: it starts at
    ``min_ms``, grows by ``step_ms`` after each underrun (up to ``max_ms``) and
    shrinks by a step after ``relax_s`` without one, so a steady link plays with
    the least delay and a jittery one stops stuttering. When a push would go
    above ``high`` (target + ``headroom_ms``: the device runs slower than the
    sender, or a burst arrived) the oldest audio is dropped down to the target.
    An underrun yields silence and waits for the target again.
    """

    def __init__(
        self,
        channels: int,
        rate: int,
        *,
        min_ms: int = 20,
        max_ms: int = 100,
        headroom_ms: int = 20,
        step_ms: int = 10,
        relax_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channels = channels
        self.rate = rate
        self._min = rate * min_ms // 1000
        self._max = rate * max_ms // 1000
        self._headroom = rate * headroom_ms // 1000
        self._step = rate * step_ms // 1000
        self._relax_s = relax_s
        self._clock = clock
        self.target = self._min
        self._changed = clock()
        self._buf = np.zeros(((self._max + self._headroom) * 2, channels), dtype=np.int16)
        self._len = 0
        self._lock = threading.Lock()
        self._primed = False
        self.dropped = 0  # samples dropped above the high watermark
        self.underruns = 0  # callbacks that found too little audio
        self.played = 0  # samples handed to the device

    @property
    def high(self) -> int:
        return self.target + self._headroom

    @property
    def target_ms(self) -> float:
        return 1000 * self.target / self.rate

    def push(self, samples: np.ndarray) -> None:
        block = samples.reshape(-1, self.channels)
        with self._lock:
            if self.target > self._min and self._clock() - self._changed >= self._relax_s:
                self.target = max(self._min, self.target - self._step)
                self._changed = self._clock()
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
                self.target = min(self._max, self.target + self._step)
                self._changed = self._clock()
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
