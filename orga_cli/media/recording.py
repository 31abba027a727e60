"""What a call records, on its own: WAV files written as they go, complete after any ending.

- ``WavWriter``: 16-bit PCM whose header is right at every moment (a kill leaves a
  valid file holding everything written so far).
- ``StereoWavWriter``: two mono streams on one wall clock, left and right.
- ``Recordings``: a call's three recordings (what was played, what was sent, both on one
  clock), fed from the local media's taps, on the wall clock from the call's connection.
"""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MediaError
from .audio import RATE


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


class Recordings:
    """``record`` (what was played: the model's voice), ``record_mic`` (what was sent) and
    ``record_both`` (stereo: left sent, right played), each only when given a path."""

    def __init__(
        self, record: Path | None, record_mic: Path | None, record_both: Path | None
    ) -> None:
        self.played: WavWriter | None = None
        self.sent: WavWriter | None = None
        self.both: StereoWavWriter | None = None
        try:
            self.played = WavWriter(record) if record else None
            self.sent = WavWriter(record_mic) if record_mic else None
            self.both = StereoWavWriter(record_both) if record_both else None
        except BaseException:
            self.close()
            raise
        self._on = False
        self._since: float | None = None  # when recording began, until its first block

    def start(self) -> None:
        """What is played is recorded from the call's first connection on."""
        self._since = time.monotonic()  # before the flag: the speaker's thread reads both
        self._on = True

    def sent_block(self, block: np.ndarray) -> None:
        """A block that was sent (the event loop)."""
        if self.sent is not None:
            self.sent.write(block)
        if self.both is not None:
            self.both.write(0, block)

    def played_block(self, samples: np.ndarray) -> None:
        """Samples handed to the speaker (PortAudio's thread) or pulled on the wall clock."""
        if not self._on:
            return
        if self.played is not None:
            if self._since is not None:
                # The first block since the call connected: a speaker whose stream starts
                # late (a PulseAudio null sink: ~0.6 s) played silence until now, and the
                # recording keeps the wall clock.
                late = time.monotonic() - self._since
                self._since = None
                if late > 0.02:
                    self.played.write(np.zeros(int(late * RATE), np.int16))
            self.played.write(samples)
        if self.both is not None:
            self.both.write(1, samples)

    @property
    def recording(self) -> bool:
        return self._on

    def catch_up(self) -> None:
        """Now and then: the stereo file's stopped channel is padded, so the other is written."""
        if self.both is not None:
            self.both.catch_up()

    @property
    def played_seconds(self) -> float | None:
        return round(self.played.seconds, 3) if self.played is not None else None

    def close(self) -> None:
        for recorder in (self.played, self.sent, self.both):
            if recorder is not None:
                recorder.close()
