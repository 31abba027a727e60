"""The picture sent up: encoded here, at the size, rate and bitrate the link allows.

aiortc encodes video itself, with a bitrate clamped to 250 kbit/s-1.5 Mbit/s for VP8
(500 kbit/s-3 Mbit/s for H.264), a new encoder and a keyframe for each step of its
target, and never a smaller picture or a lower frame rate. A track that returns
encoded packets is sent as it is (aiortc's encoder only packetizes them), so
orga encodes here, with whichever codec the answer picked:

- VP8 through libvpx itself (media/vp8.py): the bitrate follows the allocation
  between any two frames, without a keyframe; H.264 (and VP8 where libvpx cannot be
  used directly) through PyAV, where a new bitrate means a new encoder, so it is
  changed only when it moves by a quarter, or falls by a fifth.
- The size and frame rate come from the allocator's ladder (media/allocator.py);
  frames are scaled by libswscale and dropped to lower the rate.
- Keyframes when the picture changes size, when the camera comes back, and when the
  receiver asks (PLI/FIR), at most once a second: on a lossy link each answer to a
  request brings more loss and more requests.
- Frames are dropped, not queued, while the pacer still holds more than a quarter
  of a second of video: what reaches the model is recent.
- Below the ladder the camera is paused: frames are read and dropped, nothing is sent.

Encoding runs on a thread of the track's own (libvpx and PyAV release the GIL).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fractions
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

log = logging.getLogger(__name__)

CLOCK = 90_000
TIME_BASE = fractions.Fraction(1, CLOCK)
KEYFRAME_INTERVAL_S = 1.0  # at most one keyframe a second for the receiver's requests
MAX_PACER_S = 0.25  # drop frames while the pacer holds more video than this
PYAV_STEP_UP, PYAV_STEP_DOWN = 1.25, 0.8  # a new PyAV encoder only past these ratios
PYAV_HOLD_S = 4.0  # ... and not more often than this


class PyAvEncoder:
    """libx264 (or libvpx) through PyAV: a new encoder when the bitrate moves enough."""

    def __init__(self, codec: str, width: int, height: int, bitrate: int, fps: float) -> None:
        self.codec_name = codec
        self.width, self.height = width, height
        self.fps = fps
        self.bitrate = bitrate
        self._wanted = bitrate
        self._ctx: Any = None
        self._open()

    def _open(self) -> None:
        ctx: Any = av.CodecContext.create(self.codec_name, "w")
        ctx.width, ctx.height = self.width, self.height
        ctx.pix_fmt = "yuv420p"
        ctx.bit_rate = self.bitrate
        ctx.time_base = TIME_BASE
        ctx.framerate = fractions.Fraction(round(self.fps * 1000), 1000)
        ctx.gop_size = 100_000  # keyframes when asked for
        rate = str(self.bitrate)
        if self.codec_name == "libx264":
            ctx.profile = "Constrained Baseline"
            ctx.options = {
                "preset": "veryfast",
                "tune": "zerolatency",
                "level": "31",
                "maxrate": rate,
                "bufsize": str(self.bitrate // 2),  # half a second: bounds a keyframe
            }
        else:
            ctx.options = {
                "deadline": "realtime",
                "cpu-used": "-6",
                "lag-in-frames": "0",
                "minrate": rate,
                "maxrate": rate,
                "bufsize": rate,
                "undershoot-pct": "100",
                "overshoot-pct": "15",
                "static-thresh": "1",
                "max-intra-rate": "300",
            }
        ctx.thread_count = 1 if self.width * self.height < 640 * 480 else 2
        self._ctx = ctx
        self._fresh = True
        self._opened = time.monotonic()

    def set_bitrate(self, bitrate: int) -> None:
        """A new encoder (so a keyframe) only for a step of a quarter up, or a fifth down, and
        not within PYAV_HOLD_S of the last, unless the bitrate fell by half (congestion)."""
        self._wanted = bitrate
        ratio = bitrate / max(1, self.bitrate)
        held = time.monotonic() - self._opened >= PYAV_HOLD_S
        if (held and (ratio >= PYAV_STEP_UP or ratio <= PYAV_STEP_DOWN)) or ratio <= 0.5:
            self.bitrate = bitrate
            self._open()

    def encode(
        self, i420: np.ndarray, pts: int, duration: int, *, keyframe: bool = False
    ) -> tuple[bytes, bool] | None:
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts = pts
        frame.time_base = TIME_BASE
        if keyframe or self._fresh:
            frame.pict_type = av.video.frame.PictureType.I
        self._fresh = False
        packets = self._ctx.encode(frame)
        data = b"".join(bytes(p) for p in packets)
        key = any(p.is_keyframe for p in packets)
        return (data, key) if data else None

    def close(self) -> None:
        self._ctx = None


def make_encoder(codec: str, width: int, height: int, bitrate: int, fps: float) -> Any:
    """VP8 through libvpx when it can be used directly, else PyAV; H.264 through PyAV."""
    if codec == "vp8":
        from .vp8 import Vp8Encoder, VpxUnavailable

        try:
            return Vp8Encoder(width, height, bitrate, fps=fps)
        except VpxUnavailable as exc:
            log.info("VP8 through PyAV (a keyframe for each bitrate step): %s", exc)
            return PyAvEncoder("libvpx", width, height, bitrate, fps)
    return PyAvEncoder("libx264", width, height, bitrate, fps)


class EncodedVideoTrack(MediaStreamTrack):
    """Wraps the camera (or file, or test pattern) track; its frames leave as encoded packets."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, width: int, height: int, fps: float) -> None:
        super().__init__()
        self.source = source
        self.max_pixels = width * height  # the preset's: a larger source is scaled down
        self.source_fps = fps
        self.codec = "vp8"  # set from the answer before the first frame is asked for
        self.scale, self.fps = 1.0, fps
        self.width, self.height = 0, 0  # the size sent (known at the first frame)
        self.bitrate = 300_000
        self.paused = False  # by the link
        self.pacer_seconds: Callable[[], float] = lambda: 0.0
        self.frames_in = 0
        self.frames_sent = 0
        self.frames_dropped = 0  # for the frame rate, the pacer's queue, or a pause
        self.keyframes = 0
        self.keyframe_requests = 0
        self.encode_seconds = 0.0
        self.time_at: dict[str, float] = {}  # seconds spent at each "WxH" (or "paused")
        self._encoder: Any = None
        self._keyframe_wanted = True
        self._last_keyframe = -1e9
        self._next_due: float | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="orga-video")
        self._since: float | None = None
        self._shown = ""
        self._encoded: deque[tuple[float, int, int]] = deque()  # (when, bits, target bits/s)

    def configure(self, scale: float, fps: float, bitrate: int, paused: bool) -> None:
        """What the allocator gives the picture now: a share of the source's size, a frame
        rate, a bitrate, or a pause."""
        if self.paused and not paused:
            self._keyframe_wanted = True  # the receiver's picture is stale
        self.paused = paused
        self.scale, self.fps, self.bitrate = scale, min(fps, self.source_fps), bitrate

    def used(self) -> float:
        """The share of its target bitrate the encoder used over the last 2 s (1: no data)."""
        if len(self._encoded) < 5:
            return 1.0
        span = self._encoded[-1][0] - self._encoded[0][0]
        if span <= 0:
            return 1.0
        bits = sum(b for _, b, _ in self._encoded)
        target = sum(t for _, _, t in self._encoded) / len(self._encoded)
        return bits / span / max(target, 1.0)

    def request_keyframe(self) -> None:
        """The receiver lost the picture (PLI/FIR); answered at most once a second."""
        self.keyframe_requests += 1
        self._keyframe_wanted = True

    def _account(self, now: float) -> None:
        """Time at each size sent (or paused), from the first frame on."""
        if self._since is not None and self._shown:
            self.time_at[self._shown] = self.time_at.get(self._shown, 0.0) + now - self._since
        self._since = now
        self._shown = (
            "paused" if self.paused else f"{self.width}x{self.height}" if self.width else ""
        )

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        while True:
            frame = await self.source.recv()
            self.frames_in += 1
            now = time.monotonic()
            self._account(now)
            if self.paused:
                self.frames_dropped += 1
                continue
            # the frame rate: a frame is due every 1/fps seconds (a little early is fine)
            if self._next_due is not None and now < self._next_due - 0.25 / max(self.fps, 1):
                self.frames_dropped += 1
                continue
            if self.pacer_seconds() > MAX_PACER_S:
                self.frames_dropped += 1
                continue
            interval = 1 / max(self.fps, 1)
            due = self._next_due
            self._next_due = (due if due is not None and now - due < interval else now) + interval
            keyframe = self._keyframe_wanted and now - self._last_keyframe >= KEYFRAME_INTERVAL_S
            pts = self._pts(frame, now)
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            try:
                out = await loop.run_in_executor(self._pool, self._encode, frame, pts, keyframe)
            except RuntimeError as exc:
                if self.readyState != "live":
                    raise MediaStreamError from exc
                raise
            self.encode_seconds += time.perf_counter() - started
            if out is None:
                self.frames_dropped += 1  # the encoder's rate control skipped it
                continue
            data, key = out
            self._encoded.append((now, 8 * len(data), self.bitrate))
            while self._encoded and self._encoded[0][0] < now - 2.0:
                self._encoded.popleft()
            if key:
                self.keyframes += 1
                self._last_keyframe = now
                self._keyframe_wanted = False
            self.frames_sent += 1
            packet = av.Packet(data)
            packet.pts = pts
            packet.time_base = TIME_BASE
            return packet

    def _pts(self, frame: Any, now: float) -> int:
        if frame.pts is not None and frame.time_base is not None:
            return int(frame.pts * frame.time_base * CLOCK)
        return int(now * CLOCK)

    def _size(self, frame: Any) -> tuple[int, int]:
        """The size to send: the source's (at most the preset's pixels), times the scale."""
        w, h = frame.width, frame.height
        fit = min(1.0, (self.max_pixels / max(1, w * h)) ** 0.5) * self.scale
        return max(16, int(w * fit) // 2 * 2), max(16, int(h * fit) // 2 * 2)

    def _encode(self, frame: Any, pts: int, keyframe: bool) -> tuple[bytes, bool] | None:
        """On the track's thread: scale, then encode (a new encoder for a new size or codec)."""
        width, height = self._size(frame)
        self.width, self.height = width, height
        fps, bitrate = self.fps, self.bitrate
        enc = self._encoder
        if (
            enc is None
            or (enc.width, enc.height) != (width, height)
            or self._codec_of(enc) != self.codec
        ):
            if enc is not None:
                enc.close()
            enc = self._encoder = make_encoder(self.codec, width, height, bitrate, fps)
            keyframe = True
        else:
            enc.set_bitrate(bitrate)
        if (frame.width, frame.height) != (width, height) or frame.format.name != "yuv420p":
            frame = frame.reformat(width=width, height=height, format="yuv420p")
        i420 = frame.to_ndarray()
        duration = int(CLOCK / max(fps, 1))
        return enc.encode(i420, pts, duration, keyframe=keyframe)  # type: ignore[no-any-return]

    @staticmethod
    def _codec_of(encoder: Any) -> str:
        return "h264" if getattr(encoder, "codec_name", "") == "libx264" else "vp8"

    def stop(self) -> None:
        # The source is the caller's (a re-dial sends it again): only this track ends.
        super().stop()
        self._account(time.monotonic())
        if self._encoder is not None:  # closed on its own thread, after any encode running
            enc, self._encoder = self._encoder, None
            self._pool.submit(enc.close)
        self._pool.shutdown(wait=False)
