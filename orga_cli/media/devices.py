"""The sound card through PortAudio (sounddevice): the microphone and the speaker.

sounddevice loads PortAudio when imported and raises OSError where
libportaudio2 is missing; it is imported here only, when a device is opened,
and that error becomes a MediaError naming the package.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import MediaError
from .audio import FRAME_SAMPLES, RATE, SILENCE, Pacer

log = logging.getLogger(__name__)

INSTALL_HINT = {
    "linux": "install PortAudio (Debian/Ubuntu: `sudo apt-get install libportaudio2`)",
    "darwin": "install PortAudio (`brew install portaudio`)",
}
ALTERNATIVES = "or use --audio-in FILE|tone:HZ and --no-speaker"


def sounddevice() -> Any:
    """Import sounddevice, turning a missing PortAudio into a MediaError."""
    try:
        import sounddevice as sd
    except OSError as exc:
        platform = "linux" if sys.platform.startswith("linux") else sys.platform
        hint = INSTALL_HINT.get(platform, "install PortAudio")
        raise MediaError(f"PortAudio is not available ({exc})", f"{hint}, {ALTERNATIVES}") from exc
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
        raise MediaError(f"cannot list audio devices ({exc})", ALTERNATIVES) from exc
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
    return f"{server} {ALTERNATIVES}"


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
        sd = sounddevice()
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
        try:
            self._stream = sd.InputStream(
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
                f"cannot open the microphone {device_name(self.index)} ({exc})", ALTERNATIVES
            ) from exc
        self.latency = float(self._stream.latency)

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        block = indata[:, 0].copy()
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._loop.call_soon_threadsafe(self._put, block)

    def _put(self, block: np.ndarray) -> None:
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
                raise MediaError(f"cannot start the microphone ({exc})", ALTERNATIVES) from exc
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
        try:
            self._stream.stop()
            self._stream.close()
        except Exception:  # a vanished device may refuse even to close
            pass


INPUT_LATENCY = "high"
OUTPUT_LATENCY_S = 0.02


class Speaker:
    """The model's voice on the sound card, pulled at the card's pace.

    PortAudio's callback asks *source* (the receive component: it never answers
    with a hole) for exactly the samples the device wants, as 48 kHz mono, and
    copies them to every channel. A device that fails mid-call is reported once
    and then ignored.
    """

    def __init__(
        self, device: str | None = None, *, source: Callable[[int], np.ndarray] | None = None
    ) -> None:
        sd = sounddevice()
        self.index = find_device(device, "output")
        info = sd.query_devices(self.index)
        self.label = f"speaker {info['name']}"
        self.channels = 2 if info["max_output_channels"] >= 2 else 1
        self.rate = RATE
        self.failed = False
        self.source = source or (lambda n: np.zeros(n, np.int16))
        # Called in PortAudio's thread with what was just handed to the device (mono);
        # a tap must only copy and hand over.
        self.taps: list[Any] = []
        self._closing = False
        self.last_pull = time.monotonic()  # the last callback: the device's pace
        try:
            self._stream = sd.OutputStream(
                samplerate=self.rate,
                channels=self.channels,
                dtype="int16",
                blocksize=0,  # PortAudio's choice: through ALSA's PulseAudio plugin, 25 ms less delay than 480
                device=self.index,
                # 20 ms ahead of the DAC. PortAudio's "high" is 35 ms through ALSA's
                # PulseAudio plugin; "low" (9 ms), 10 and 15 ms stall there.
                latency=OUTPUT_LATENCY_S,
                callback=self._callback,
                finished_callback=self._finished,
            )
            self._stream.start()
        except Exception as exc:
            raise MediaError(
                f"cannot open the speaker {info['name']} ({exc})", ALTERNATIVES
            ) from exc
        self.latency = float(self._stream.latency)

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        self.last_pull = time.monotonic()
        mono = self.source(frames)
        outdata[:] = mono[:, None]
        for tap in self.taps:
            tap(mono)

    def _finished(self) -> None:
        if not self._closing and not self.failed:
            self.failed = True
            log.warning("the speaker stopped; the call goes on without sound")

    def check(self) -> None:
        """Notice a stream that stopped without telling (a vanished device or sound server):
        inactive, or no callback for half a second."""
        if self.failed or self._closing:
            return
        if not self._stream.active or time.monotonic() - self.last_pull > 0.5:
            self._finished()

    def close(self) -> None:
        self._closing = True
        try:
            self._stream.stop()
            self._stream.close()
        except Exception:
            pass


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
