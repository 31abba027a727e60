"""Echo cancellation, noise suppression, high-pass filter and gain control on the mic path.

The WebRTC audio processing module, from the maintained `livekit` wheel
(`rtc.AudioProcessingModule`, which runs offline). It takes 10 ms frames: the
near end (the microphone) through process_stream, the far end (exactly what was
handed to the speaker) through process_reverse_stream, and the delay between the
two from PortAudio's reported latencies; its own delay estimation does the rest.

livekit takes ~0.35 s to import: it is loaded in a background thread when the
call starts, and the microphone passes through unprocessed until it is ready.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .sources import BlockSource

from ..errors import MediaError, setting
from .audio import FRAME_SAMPLES, RATE

log = logging.getLogger(__name__)

TEN_MS = RATE // 100  # 480 samples


@dataclass(frozen=True)
class ProcessingOptions:
    aec: bool = True
    ns: bool = True
    agc: bool = True
    hpf: bool = True

    def label(self) -> str:
        parts = [
            name
            for name, on in (
                ("AEC", self.aec),
                ("NS", self.ns),
                ("AGC", self.agc),
                ("HPF", self.hpf),
            )
            if on
        ]
        return "+".join(parts) if parts else "off"


def load_apm(options: ProcessingOptions) -> Any:
    try:
        from livekit import rtc
    except ImportError as exc:
        raise MediaError(
            "echo cancellation needs the livekit package",
            f"pip install livekit, or pass {setting('no_processing')}",
        ) from exc
    return rtc.AudioProcessingModule(
        echo_cancellation=options.aec,
        noise_suppression=options.ns,
        high_pass_filter=options.hpf,
        auto_gain_control=options.agc,
    )


class MicProcessor:
    """Runs the audio processing module on 20 ms mic blocks, fed with the far end."""

    def __init__(self, options: ProcessingOptions, delay_ms: float) -> None:
        self.options = options
        self.delay_ms = round(delay_ms)
        self.ready = False
        self.failed: str | None = None
        self._apm: Any = None
        self._frame_cls: Any = None
        self._far: collections.deque[np.ndarray] = collections.deque(
            maxlen=50
        )  # 500 ms of 10 ms frames
        self._pending_far = np.zeros(0, np.int16)
        # ERLE estimate: per-frame in/out ratios (dB) while the far end is active
        self._far_energy = 0.0
        self._ratios: collections.deque[float] = collections.deque(maxlen=300)
        self._thread = threading.Thread(target=self._load, name="orga-apm-load", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            apm = load_apm(self.options)
            from livekit import rtc

            self._frame_cls = rtc.AudioFrame
            self._apm = apm
            self.ready = True
        except MediaError as exc:
            self.failed = exc.one_line()
        except Exception as exc:  # the native module failed to start
            self.failed = f"audio processing could not start ({exc})"

    def wait_ready(self, timeout: float = 10.0) -> bool:
        self._thread.join(timeout)
        return self.ready

    # ---------------------------------------------------------------- far end

    def far_end(self, samples: np.ndarray) -> None:
        """48 kHz mono int16 exactly as handed to the speaker (any length)."""
        if not self.options.aec:
            return
        pending = np.concatenate([self._pending_far, samples.astype(np.int16, copy=False)])
        whole = pending.size // TEN_MS * TEN_MS
        for start in range(0, whole, TEN_MS):
            frame = pending[start : start + TEN_MS].copy()
            self._far.append(frame)
            self._far_energy = float(np.mean(frame.astype(np.float64) ** 2))
        self._pending_far = pending[whole:]

    # ---------------------------------------------------------------- near end

    def process(self, block: np.ndarray) -> np.ndarray:
        """One 20 ms mic block in, the processed block out."""
        if not self.ready:
            return block
        out = np.empty(FRAME_SAMPLES, np.int16)
        for half in range(FRAME_SAMPLES // TEN_MS):
            if self.options.aec:
                # Render before capture: the far-end frames that reached the speaker so far.
                while self._far:
                    reverse = self._frame(self._far.popleft())
                    self._apm.process_reverse_stream(reverse)
                self._apm.set_stream_delay_ms(self.delay_ms)
            chunk = block[half * TEN_MS : (half + 1) * TEN_MS]
            frame = self._frame(chunk)
            self._apm.process_stream(frame)
            processed = np.frombuffer(frame.data, dtype=np.int16).copy()
            out[half * TEN_MS : (half + 1) * TEN_MS] = processed
            self._measure(chunk, processed)
        return out

    def _frame(self, samples: np.ndarray) -> Any:
        return self._frame_cls(bytearray(samples.astype("<i2").tobytes()), RATE, 1, TEN_MS)

    def _measure(self, before: np.ndarray, after: np.ndarray) -> None:
        if self._far_energy < 1e4:  # the far end is quiet (below about -50 dBFS)
            return
        e_in = float(np.mean(before.astype(np.float64) ** 2))
        if e_in < 1e3:
            return
        e_out = float(np.mean(after.astype(np.float64) ** 2))
        self._ratios.append(10 * math.log10(e_in / max(e_out, 1.0)))

    def erle_db(self) -> float | None:
        """Echo return loss enhancement, estimated: the 90th percentile of the mic path's
        in/out energy ratio over the last 3 s of frames in which the far end was
        active (frames where you speak over the model read lower and are left out
        by the percentile). None until there is enough to say."""
        if not self.options.aec or not self.ready or len(self._ratios) < 50:
            return None
        return float(np.percentile(np.fromiter(self._ratios, float), 90))


class ProcessedSource:
    """A BlockSource (the microphone) whose blocks go through a MicProcessor."""

    def __init__(self, inner: BlockSource, processor: MicProcessor) -> None:
        self.inner = inner
        self.processor = processor
        self.label = inner.label
        self.paced = inner.paced

    @property
    def failed(self) -> bool:
        return self.inner.failed

    @property
    def overflows(self) -> int:
        return self.inner.overflows

    @property
    def latency(self) -> float:
        return self.inner.latency

    async def read(self) -> np.ndarray:
        return self.processor.process(await self.inner.read())

    def close(self) -> None:
        self.inner.close()


def far_end_tap(processor: MicProcessor, loop: asyncio.AbstractEventLoop) -> Any:
    """A function for the speaker's PortAudio thread: copy and hand over, nothing else."""

    def tap(samples: np.ndarray) -> None:
        copy = samples.copy()
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(processor.far_end, copy)

    return tap
