"""The sound card through PortAudio (sounddevice): the microphone and the speaker.

sounddevice loads PortAudio when imported and raises OSError where
libportaudio2 is missing; it is imported here only, when a device is opened,
and that error becomes a MediaError naming the package.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import MediaError, setting
from .audio import FRAME_SAMPLES, RATE, SILENCE, Pacer

log = logging.getLogger(__name__)

INSTALL_HINT = {
    "linux": "install PortAudio (Debian/Ubuntu: `sudo apt-get install libportaudio2`)",
    "darwin": "install PortAudio (`brew install portaudio`)",
}


def alternatives() -> str:
    """What a call can do without the sound card."""
    return f"or use {setting('audio_in', 'FILE|tone:HZ')} and {setting('no_speaker')}"


def sounddevice() -> Any:
    """Import sounddevice, turning a missing PortAudio into a MediaError."""
    try:
        import sounddevice as sd
    except OSError as exc:
        platform = "linux" if sys.platform.startswith("linux") else sys.platform
        hint = INSTALL_HINT.get(platform, "install PortAudio")
        raise MediaError(
            f"PortAudio is not available ({exc})", f"{hint}, {alternatives()}"
        ) from exc
    return sd


def find_device(spec: str | None, kind: str) -> int | None:
    """A device index from an index or a unique part of a name; None for the default.

    kind is "input" or "output". An ambiguous name lists the matches.
    """
    sd = sounddevice()
    channels_key = "max_input_channels" if kind == "input" else "max_output_channels"
    try:
        devices = list(sd.query_devices())
    except Exception as exc:
        raise MediaError(f"cannot list audio devices ({exc})", alternatives()) from exc
    usable = [(i, d) for i, d in enumerate(devices) if d[channels_key] > 0]
    if spec is None:
        try:
            default = sd.default.device[0 if kind == "input" else 1]
        except Exception:
            default = -1
        if default is None or default < 0:
            if not usable:
                raise MediaError(f"no audio {kind} device", _no_device_hint(kind))
            return usable[0][0]
        return int(default)
    if spec.isdigit():
        index = int(spec)
        if index >= len(devices) or devices[index][channels_key] <= 0:
            raise MediaError(f"no audio {kind} device with index {index}", "see `orga devices`")
        return index
    matches = [(i, d) for i, d in usable if spec.casefold() in d["name"].casefold()]
    exact = [(i, d) for i, d in matches if d["name"].casefold() == spec.casefold()]
    if len(exact) == 1:
        return exact[0][0]
    if len(matches) == 1:
        return matches[0][0]
    if not matches:
        raise MediaError(f"no audio {kind} device matches {spec!r}", "see `orga devices`")
    names = "; ".join(f"{i}: {d['name']}" for i, d in matches[:6])
    raise MediaError(
        f"{spec!r} matches several {kind} devices ({names})", "give an index or a longer name"
    )


def _no_device_hint(kind: str) -> str:
    server = "is a sound server running? (Debian/Ubuntu: `sudo apt-get install pulseaudio libasound2-plugins`)"
    if not sys.platform.startswith("linux"):
        server = "is a microphone connected?" if kind == "input" else "is a speaker connected?"
    return f"{server} {alternatives()}"


def device_name(index: int | None) -> str:
    sd = sounddevice()
    try:
        return str(sd.query_devices(index)["name"])
    except Exception:
        return "?"


class MicrophoneSource:
    """The microphone: 48 kHz mono int16 in 20 ms blocks, clocked by the sound card.

    The PortAudio callback only copies its block and hands it to the event loop;
    the queue holds 200 ms and drops the oldest block when full (counted). If the
    device stops delivering (unplugged), reads turn into paced silence and a
    warning is logged once.
    """

    def __init__(self, device: str | None = None, *, queue_blocks: int = 10) -> None:
        sounddevice()  # PortAudio is there, or a MediaError says how to get it
        self.index = find_device(device, "input")
        self.label = f"microphone {device_name(self.index)}"
        self.paced = False  # read() waits on the sound card's clock (or paces its silence)
        self._silence_pacer = Pacer()
        self.overflows = 0  # blocks dropped because the queue was full
        self.failed = False
        self._started = False
        self._delivered = False
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=queue_blocks)
        self.opened_at = 0.0  # when the stream was last opened (monotonic)
        self.zeros_since: float | None = None  # blocks of digital zeros since then
        self.clipped_at = 0.0  # the last block with a clipped sample
        self._stream = self._open()
        self.latency = float(self._stream.latency)

    def _open(self) -> Any:
        try:
            stream = sounddevice().InputStream(
                samplerate=RATE,
                channels=1,
                dtype="int16",
                blocksize=FRAME_SAMPLES,
                device=self.index,
                # "low" stalls capture through ALSA's PulseAudio plugin; the queue
                # below, not the device, decides how much delay we keep.
                latency=INPUT_LATENCY,
                callback=self._callback,
            )
        except Exception as exc:
            raise MediaError(
                f"cannot open the microphone {device_name(self.index)} ({exc})", alternatives()
            ) from exc
        self.opened_at = time.monotonic()
        return stream

    def reopen(self) -> None:
        """A microphone that stopped: open it again (MediaError while it is still gone).
        Blocks then flow into the same queue, and read() says it is back."""
        _close_quietly(self._stream)
        self._stream = self._open()
        try:
            self._stream.start()
        except Exception as exc:
            _close_quietly(self._stream)
            raise MediaError(f"cannot start the microphone ({exc})", alternatives()) from exc

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        block = indata[:, 0].copy()
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._loop.call_soon_threadsafe(self._put, block)

    def _put(self, block: np.ndarray) -> None:
        # What the warnings need: how long the device has given only digital zeros (a
        # microphone without permission on macOS, a muted input), and clipped samples.
        now = time.monotonic()
        if block.any():
            self.zeros_since = None
            self.clipped_at = now if int(np.abs(block).max()) >= CLIP else self.clipped_at
        elif self.zeros_since is None:
            self.zeros_since = now
        if self._queue.full():
            self._queue.get_nowait()
            self.overflows += 1
        self._queue.put_nowait(block)

    async def read(self) -> np.ndarray:
        if not self._started:
            # Started at the first read (when the call begins sending), so that
            # the blocks of the set-up phase do not pile up as overflows.
            self._started = True
            try:
                self._stream.start()
            except Exception as exc:
                raise MediaError(f"cannot start the microphone ({exc})", alternatives()) from exc
        if self.failed:
            # Stalled: silence, paced here on the wall clock, until blocks come again.
            try:
                block = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                await self._silence_pacer.wait()
                return SILENCE
            self.failed = False
            log.warning("the microphone is delivering audio again")
            return self._sized(block)
        # Capture can take a while to start (ALSA's PulseAudio plugin: up to ~1 s).
        timeout = 0.5 if self._delivered else 3.0
        try:
            block = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            self.failed = True
            self._silence_pacer.reset()
            log.warning("the microphone stopped delivering audio; sending silence")
            return SILENCE
        self._delivered = True
        return self._sized(block)

    @staticmethod
    def _sized(block: np.ndarray) -> np.ndarray:
        return block if block.size == FRAME_SAMPLES else np.resize(block, FRAME_SAMPLES)

    def close(self) -> None:
        _close_quietly(self._stream)


def _close_quietly(stream: Any) -> None:
    try:
        stream.abort()  # not stop(): a vanished device may never drain its buffers
        stream.close()
    except Exception:  # a vanished device may refuse even to close
        pass


_OPENER: concurrent.futures.ThreadPoolExecutor | None = None
_PENDING: set[concurrent.futures.Future[None]] = set()


def in_thread(work: Callable[[], None]) -> asyncio.Future[None]:
    """*work* (a device open) on orga's one device-opening thread; its outcome as a future.

    One thread, so that PortAudio never opens two streams at once; not the loop's
    executor, which the loop joins when it closes: a sound server that stopped
    answering can hold a PortAudio call for good (seen under load: Pa_StartStream
    through PulseAudio, after its sinks went and came back), and the call would never
    end. ``stuck()`` tells the CLI to leave without waiting for it.
    """
    global _OPENER
    if _OPENER is None:
        _OPENER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="orga-open")
    submitted = _OPENER.submit(work)
    _PENDING.add(submitted)
    submitted.add_done_callback(_PENDING.discard)
    return asyncio.wrap_future(submitted)


def stuck() -> bool:
    """Is a device open still running in PortAudio (a sound server that stopped answering)?"""
    return bool(_PENDING)


# A stream just opened may take this long to start (a PulseAudio null sink: ~2 s).
START_GRACE_S = 2.5
REOPEN_EVERY_S = 0.5  # a device that went away is tried again this often


class DeviceWatch:
    """A device that may go away and come back (the microphone or the speaker), watched
    the same way for both: ``watch()`` is called often; when *working* turns false the
    device is lost (``on_change("lost", seconds)``, *gone_for* saying how long it has been
    silent), and it is opened again (``device.reopen()`` on the device thread, never two at
    once) every REOPEN_EVERY_S, each new stream given START_GRACE_S to start; when
    *working* is true again, it is back (``on_change("back", seconds gone)``). Between
    the two, ``on_change("reopened", ...)`` says a stream opened and sound is awaited."""

    def __init__(
        self,
        name: str,
        device: Any,
        *,
        working: Callable[[], bool],
        gone_for: Callable[[], float],
        on_change: Callable[[str, str, float], None],
    ) -> None:
        self.name = name
        self.device = device
        self._working = working
        self._gone_for = gone_for
        self._on_change = on_change
        self.lost_at: float | None = None
        self.back_after: float | None = None  # seconds it was gone, at its last return
        self._tried = 0.0
        self._reopening: asyncio.Future[None] | None = None

    def watch(self) -> None:
        now = time.monotonic()
        if self.lost_at is None:
            if not self._working():
                self.lost_at = now
                self._on_change(self.name, "lost", self._gone_for())
            return
        if self._working():
            gone, self.lost_at = now - self.lost_at, None
            self.back_after = gone
            self._on_change(self.name, "back", gone)
            return
        opened_at = getattr(self.device, "opened_at", 0.0)
        if now - self._tried >= REOPEN_EVERY_S and now - opened_at >= START_GRACE_S:
            self._tried = now
            self._reopen(self.lost_at)

    def _reopen(self, lost_at: float) -> None:
        """One attempt, in a thread: through a sound server that has lost its devices an
        open can take seconds, and the loop carries the call."""
        if self._reopening is not None:
            return

        async def attempt() -> None:
            try:
                await in_thread(self.device.reopen)
            except MediaError as exc:
                log.info("the %s is still gone: %s", self.name, exc.message)
            else:
                log.info("the %s is open again; waiting for sound", self.name)
                self._on_change(self.name, "reopened", time.monotonic() - lost_at)
            finally:
                self._reopening = None

        self._reopening = asyncio.ensure_future(attempt())

    async def settle(self, timeout: float = 5.0) -> None:
        """At the end of the call: wait for an open still running (bounded)."""
        attempt = self._reopening
        if attempt is None:
            return
        _, pending = await asyncio.wait([attempt], timeout=timeout)
        if pending:
            log.warning(
                "the sound server did not answer an open of the %s in %g s", self.name, timeout
            )
            attempt.cancel()


CLIP = 32_700  # a sample this loud was clipped by the input
INPUT_LATENCY = "high"
OUTPUT_LATENCY_S = 0.02


class Speaker:
    """The model's voice on the sound card, pulled at the card's pace.

    PortAudio's callback asks *source* (the receive component: it never answers
    with a hole) for exactly the samples the device wants, as 48 kHz mono, and
    copies them to every channel, while ``pulling`` is set. When the device stalls
    or vanishes, its owner (media.local) clears ``pulling`` and pulls on the wall
    clock instead, so that exactly one clock drains the receiver; ``reopen()`` opens
    the device again, and when its callbacks come back, pulling goes back to it.
    """

    def __init__(
        self, device: str | None = None, *, source: Callable[[int], np.ndarray] | None = None
    ) -> None:
        sd = sounddevice()
        self.index = find_device(device, "output")
        info = sd.query_devices(self.index)
        self.name = str(info["name"])
        self.label = f"speaker {self.name}"
        self.channels = 2 if info["max_output_channels"] >= 2 else 1
        self.rate = RATE
        self.pulling = True
        self.source = source or (lambda n: np.zeros(n, np.int16))
        # Called in PortAudio's thread with what was just handed to the device (mono);
        # a tap must only copy and hand over.
        self.taps: list[Any] = []
        self._closing = False
        self.last_pull = time.monotonic()  # the last callback: the device's pace
        self._underflows: deque[bool] = deque(maxlen=20)  # the last callbacks: underrun?
        self._stream = self._open()
        self.latency = float(self._stream.latency)

    def _open(self) -> Any:
        try:
            stream = sounddevice().OutputStream(
                samplerate=self.rate,
                channels=self.channels,
                dtype="int16",
                blocksize=0,  # PortAudio's choice: through ALSA's PulseAudio plugin, 25 ms less delay than 480
                device=self.index,
                # 20 ms ahead of the DAC. PortAudio's "high" is 35 ms through ALSA's
                # PulseAudio plugin; "low" (9 ms), 10 and 15 ms stall there.
                latency=OUTPUT_LATENCY_S,
                callback=self._callback,
            )
            stream.start()
        except Exception as exc:
            raise MediaError(
                f"cannot open the speaker {self.name} ({exc})", alternatives()
            ) from exc
        self.last_pull = self.opened_at = time.monotonic()
        self._underflows.clear()
        return stream

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        self.last_pull = time.monotonic()
        # A device that vanished may keep PortAudio calling back, each time after an
        # underrun it could not recover from: that is a dead device, not a live one.
        self._underflows.append(bool(status.output_underflow))
        if not self.pulling:
            outdata.fill(0)
            return
        mono = self.source(frames)
        outdata[:] = mono[:, None]
        for tap in self.taps:
            tap(mono)

    def alive(self, stall_s: float = 0.5) -> bool:
        """Is the device pulling? Its stream is active and called back in the last *stall_s*."""
        if self._closing:
            return False
        try:
            active = bool(self._stream.active)
        except Exception:
            return False
        if time.monotonic() - self.opened_at < START_GRACE_S + 0.5:
            stall_s = START_GRACE_S
        flags = list(self._underflows)
        if len(flags) >= 10 and sum(flags) > 0.5 * len(flags):
            return False
        return active and time.monotonic() - self.last_pull <= stall_s

    def reopen(self) -> None:
        """Open the device again (MediaError while it is still gone)."""
        _close_quietly(self._stream)
        self._stream = self._open()

    def close(self) -> None:
        self._closing = True
        _close_quietly(self._stream)


def list_devices() -> list[dict[str, Any]]:
    """Every PortAudio device with its host API, channels and rate; defaults marked."""
    sd = sounddevice()
    try:
        devices = list(sd.query_devices())
        apis = list(sd.query_hostapis())
        default_in, default_out = sd.default.device
    except Exception as exc:
        raise MediaError(f"cannot list audio devices ({exc})") from exc
    out = []
    for index, dev in enumerate(devices):
        out.append(
            {
                "index": index,
                "name": dev["name"],
                "hostapi": apis[dev["hostapi"]]["name"] if dev["hostapi"] < len(apis) else "?",
                "max_input_channels": dev["max_input_channels"],
                "max_output_channels": dev["max_output_channels"],
                "default_samplerate": dev["default_samplerate"],
                "default_input": index == default_in,
                "default_output": index == default_out,
            }
        )
    return out
