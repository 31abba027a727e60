"""What goes up the call: the microphone, a file, a tone; the camera, a file, a test pattern.

Every audio source yields 20 ms blocks of 48 kHz mono int16; one aiortc track
(AudioSourceTrack) turns them into paced Opus packets and feeds the taps (the mic
recording, the level meter).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import fractions
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from ..errors import MediaError, setting
from .audio import (
    FRAME_SAMPLES,
    RATE,
    SILENCE,
    MonoResampler,
    OpusPackets,
    Pacer,
    probe_audio_file,
    tone,
)

log = logging.getLogger(__name__)


class BlockSource(Protocol):
    """What every audio source has: 20 ms blocks of 48 kHz mono int16, and its health.

    ``paced`` is fixed for the source's life: True, the track paces reads to real
    time (files, tones); False, ``read()`` waits on a clock of its own (a sound
    card's, or its own pacing of silence while that card is gone).
    """

    label: str
    paced: bool

    @property
    def failed(self) -> bool:
        """The source has stopped delivering (a vanished device); it sends silence."""

    @property
    def overflows(self) -> int:
        """Blocks dropped because the reader fell behind."""

    @property
    def latency(self) -> float:
        """Seconds between the sound and its block (the input device's latency), or 0."""

    async def read(self) -> np.ndarray: ...

    def close(self) -> None: ...


class ToneSource:
    """A sine at *hz* (``--audio-in tone:440``)."""

    paced = True
    failed = False
    overflows = 0
    latency = 0.0

    def __init__(self, hz: float, amplitude: float = 0.3) -> None:
        if not 20 <= hz <= 20_000:
            raise MediaError(f"tone frequency {hz:g} Hz is out of range", "use 20 to 20000 Hz")
        self.hz = hz
        self.amplitude = amplitude
        self.label = f"tone {hz:g} Hz"
        self._n = 0
        # A whole number of hertz repeats every second, and a second is 50 blocks:
        # compute it once and hand out read-only views.
        self._second: np.ndarray | None = None
        if float(hz).is_integer():
            self._second = tone(hz, 0, RATE, amplitude)
            self._second.flags.writeable = False

    async def read(self) -> np.ndarray:
        if self._second is not None:
            at = self._n % RATE
            block = self._second[at : at + FRAME_SAMPLES]
        else:
            block = tone(self.hz, self._n, FRAME_SAMPLES, self.amplitude)
        self._n += FRAME_SAMPLES
        return block

    def close(self) -> None:
        pass


class FileSource:
    """Any file ffmpeg decodes, played once in real time, then silence."""

    paced = True
    failed = False
    overflows = 0
    latency = 0.0

    def __init__(self, path: str, *, loop: bool = False) -> None:
        probe_audio_file(path)
        self.path = path
        self.loop = loop
        self.label = f"file {path}"
        self.finished = False
        self._container: Any = None
        self._frames: Any = None
        self._resample = MonoResampler()
        self._pending = np.zeros(0, dtype=np.int16)
        self._open()

    def _open(self) -> None:
        self._container = av.open(self.path)
        self._frames = self._container.decode(audio=0)

    async def read(self) -> np.ndarray:
        while self._pending.size < FRAME_SAMPLES and not self.finished:
            try:
                frame = next(self._frames)
            except StopIteration:
                if self.loop:
                    self._container.close()
                    self._open()
                    continue
                self.finished = True
                break
            except av.FFmpegError as exc:
                log.warning("decoding %s failed mid-file (%s); sending silence", self.path, exc)
                self.finished = True
                break
            self._pending = np.concatenate([self._pending, self._resample(frame)])
        if self._pending.size >= FRAME_SAMPLES:
            block, self._pending = self._pending[:FRAME_SAMPLES], self._pending[FRAME_SAMPLES:]
            return block
        if self._pending.size:
            block = np.concatenate(
                [self._pending, np.zeros(FRAME_SAMPLES - self._pending.size, np.int16)]
            )
            self._pending = np.zeros(0, dtype=np.int16)
            return block
        return SILENCE

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def parse_audio_in(value: str) -> BlockSource:
    """``tone:HZ`` or a file path; errors before any request is made."""
    if value.startswith("tone:"):
        try:
            hz = float(value[5:] or "440")
        except ValueError as exc:
            raise MediaError(
                f"{setting('audio_in', value)}: not a frequency", "use e.g. tone:440"
            ) from exc
        return ToneSource(hz)
    return FileSource(value)


class OpusTrack(MediaStreamTrack):
    """An audio track of 20 ms Opus packets: subclasses say what each block holds.

    aiortc sends the packets as they are (see OpusPackets); next_block() paces
    itself to real time where its source does not.
    """

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.frames_sent = 0
        self._pts = 0
        self._pacer = Pacer()
        self._packets = OpusPackets()
        self.encoder = self._packets.encoder  # libopus: FEC and expected loss (media/fec.py)

    @abc.abstractmethod
    async def next_block(self) -> np.ndarray:
        """The next 20 ms block to send, when it is due."""

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        packet = self._packets.encode(await self.next_block(), self._pts)
        self._pts += FRAME_SAMPLES
        self.frames_sent += 1
        return packet


class AudioSourceTrack(OpusTrack):
    """The audio track sent to the peer, from a BlockSource, with mute and taps.

    The taps (the mic recording, the level meter) see each block as it is sent.
    """

    def __init__(self, source: BlockSource) -> None:
        super().__init__()
        self.source = source
        self.muted = False
        self.taps: list[Callable[[np.ndarray], None]] = []

    async def next_block(self) -> np.ndarray:
        block = await self.source.read()
        if self.source.paced:
            await self._pacer.wait()
        else:
            self._pacer.reset()
        if self.muted:
            block = SILENCE
        for tap in self.taps:
            tap(block)
        return block


# --------------------------------------------------------------------------- video

VIDEO_PRESETS: dict[str, tuple[int, int, int]] = {
    # the SDK presets' ideal values (orga-api.md)
    "low": (640, 480, 24),
    "medium": (1280, 720, 30),
    "high": (1920, 1080, 30),
}
VIDEO_CLOCK = 90_000


class TestPatternTrack(MediaStreamTrack):
    """A generated test pattern (``--video-in testsrc``): bars and a moving block."""

    kind = "video"

    def __init__(self, width: int, height: int, fps: int) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.enabled = True
        self.frames_sent = 0
        y = np.repeat(np.linspace(16, 235, 8, dtype=np.uint8), width // 8 + 1)[:width]
        self._y = np.tile(y, (height, 1))
        self._u = np.full((height // 2, width // 2), 128, np.uint8)
        self._v = np.full((height // 2, width // 2), 128, np.uint8)
        self._black = np.concatenate(
            [
                np.full((height, width), 16, np.uint8),
                self._u.reshape(-1, width),
                self._v.reshape(-1, width),
            ]
        )
        self._start: float | None = None
        self._index = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index / self.fps
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if self.enabled:
            plane = self._y.copy()
            size = self.height // 6
            x = (self._index * 8) % max(1, self.width - size)
            plane[self.height // 2 - size // 2 : self.height // 2 + size // 2, x : x + size] = 235
            data = np.concatenate(
                [plane, self._u.reshape(-1, self.width), self._v.reshape(-1, self.width)]
            )
        else:
            data = self._black
        frame = av.VideoFrame.from_ndarray(data, format="yuv420p")
        frame.pts = int(self._index * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._index += 1
        self.frames_sent += 1
        return frame


class FileVideoTrack(MediaStreamTrack):
    """A video file played in real time and looped (``--video-in FILE``).

    aiortc's MediaPlayer is not used for files: with PyAV 14 and later the end of a
    file raises ``av.EOFError`` where it expects ``StopIteration``, so it stops instead
    of looping; after a loop its timestamps restart at 0 and its pacing lets frames out
    as fast as they are decoded. Here a thread decodes ahead (at most a few frames,
    waiting for the sender), frames leave at the file's own rate against one clock,
    and their timestamps keep growing across loops.
    """

    kind = "video"
    AHEAD = 6  # frames decoded ahead of the sender

    def __init__(self, path: str) -> None:
        super().__init__()
        try:
            container = av.open(path)
        except (OSError, av.FFmpegError) as exc:
            raise MediaError(f"cannot open video file {path}: {exc}") from exc
        if not container.streams.video:
            container.close()
            raise MediaError(f"{path} has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 24
        self.fps = float(rate) if 1 <= float(rate) <= 120 else 24.0
        self.path = path
        self._container = container
        self._frames: asyncio.Queue[av.VideoFrame | None] | None = None
        self._room = threading.Semaphore(self.AHEAD)
        self._quit = threading.Event()
        self._thread: threading.Thread | None = None
        self._start: float | None = None
        self._index = 0

    def _decode(self, loop: asyncio.AbstractEventLoop) -> None:
        container = self._container
        queue = self._frames
        assert queue is not None
        try:
            while not self._quit.is_set():
                got = False
                try:
                    for frame in container.decode(video=0):
                        got = True
                        while not self._room.acquire(timeout=0.2):
                            if self._quit.is_set():
                                return
                        loop.call_soon_threadsafe(queue.put_nowait, frame)
                        if self._quit.is_set():
                            return
                except (av.EOFError, StopIteration):
                    pass
                if not got:
                    break  # an empty file: nothing to loop
                container.seek(0)
        except (av.FFmpegError, OSError, RuntimeError) as exc:
            log.warning("decoding %s failed (%s); the picture stops", self.path, exc)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop may be closing
                loop.call_soon_threadsafe(queue.put_nowait, None)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._frames is None:
            self._frames = asyncio.Queue()
            self._thread = threading.Thread(
                target=self._decode,
                args=(asyncio.get_running_loop(),),
                name="orga-video-file",
                daemon=True,
            )
            self._thread.start()
        frame = await self._frames.get()
        if frame is None:
            raise MediaStreamError
        self._room.release()
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._index / self.fps
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 0.5:  # far behind (the loop was busy): start the clock again
            self._start = now - self._index / self.fps
        frame.pts = int(self._index * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._index += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._quit.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._container.close()


class SwitchableVideoTrack(MediaStreamTrack):
    """Wraps a camera or file track so that `v` can black it out without renegotiating."""

    kind = "video"

    def __init__(self, inner: MediaStreamTrack, width: int, height: int) -> None:
        super().__init__()
        self.inner = inner
        self.enabled = True
        self.frames_sent = 0
        self._black: av.VideoFrame | None = None
        self._size = (width, height)

    async def recv(self) -> av.VideoFrame:
        frame = await self.inner.recv()
        assert isinstance(frame, av.VideoFrame)
        self.frames_sent += 1
        if self.enabled:
            return frame
        if self._black is None or (self._black.width, self._black.height) != (
            frame.width,
            frame.height,
        ):
            data = np.zeros((frame.height * 3 // 2, frame.width), np.uint8)
            data[: frame.height] = 16
            data[frame.height :] = 128
            self._black = av.VideoFrame.from_ndarray(data, format="yuv420p")
        black = self._black
        out = av.VideoFrame.from_ndarray(black.to_ndarray(), format="yuv420p")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    def stop(self) -> None:
        super().stop()
        self.inner.stop()


def camera_format() -> tuple[str, str | None]:
    """(ffmpeg input format, default device) for this platform; on Windows the default is
    the first camera DirectShow lists (there is no fixed name)."""
    if sys.platform == "darwin":
        return "avfoundation", "0:none"
    if sys.platform.startswith("win"):
        return "dshow", None
    return "v4l2", "/dev/video0"


class VideoInput:
    """The video sent up: a test pattern, a file or the camera, and what owns it."""

    def __init__(
        self,
        track: MediaStreamTrack,
        label: str,
        player: Any = None,
        size: tuple[int, int, int] = VIDEO_PRESETS["low"],
    ) -> None:
        self.track = track
        self.label = label
        self._player = player
        self.width, self.height, self.fps = size  # the most that is sent

    @property
    def enabled(self) -> bool:
        return bool(getattr(self.track, "enabled", True))

    @enabled.setter
    def enabled(self, value: bool) -> None:
        setattr(self.track, "enabled", value)  # noqa: B010 - our tracks all have it

    def close(self) -> None:
        self.track.stop()
        if self._player is not None:
            # MediaPlayer has no public stop: stopping its tracks ends its worker thread.
            for inner in (self._player.audio, self._player.video):
                if inner is not None:
                    with contextlib.suppress(Exception):
                        inner.stop()


def open_video(video_in: str | None, camera: str | None, quality: str) -> VideoInput:
    """``testsrc``, a file, or the camera (``camera`` overrides the device)."""
    width, height, fps = VIDEO_PRESETS[quality]
    if video_in == "testsrc":
        return VideoInput(
            TestPatternTrack(width, height, fps),
            f"test pattern {width}x{height}@{fps}",
            size=(width, height, fps),
        )
    from aiortc.contrib.media import MediaPlayer

    if video_in:
        track = FileVideoTrack(video_in)
        return VideoInput(
            SwitchableVideoTrack(track, width, height),
            f"file {video_in}",
            size=(width, height, fps),
        )
    fmt, default_device = camera_format()
    if camera is None and default_device is None:
        from .cameras import list_cameras

        cameras = list_cameras()
        if not cameras:
            raise MediaError(
                "no camera found",
                f"`orga devices` lists them; {setting('video_in', 'testsrc|FILE')} or {setting('no_video')}",
            )
        default_device = cameras[0].camera
    device = camera or default_device or ""
    if fmt == "dshow" and camera and not camera.startswith("video="):
        device = f"video={camera}"
    options = {"video_size": f"{width}x{height}", "framerate": str(fps)}
    try:
        player = MediaPlayer(device, format=fmt, options=options)
    except (OSError, av.FFmpegError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise MediaError(
            f"cannot open the camera {device} ({reason})",
            f"pass {setting('camera', 'DEVICE')}, {setting('video_in', 'testsrc|FILE')}, or {setting('no_video')}",
        ) from exc
    if player.video is None:
        raise MediaError(f"the camera {device} gave no video stream", f"try {setting('no_video')}")
    return VideoInput(
        SwitchableVideoTrack(player.video, width, height),
        f"camera {device}",
        player,
        (width, height, fps),
    )
