"""One allocator per call: the voice first, the picture the rest.

Given the uplink estimate (bits/s with every packet's headers), the voice gets what
it needs first: Opus between 16 and 64 kbit/s plus its packets' headers (about
23 kbit/s at 50 packets a second). The picture gets the rest, less a margin for
RTCP and retransmissions, and chooses its size and frame rate from a ladder
(640x480 at 24 fps, 480x360, 320x240, then 320x240 at 15 and 160x120 at 10, for
the default camera; other sizes scale it), with hysteresis both ways: it steps down at once
when its bitrate falls under what its step needs to stay, and up only after that
of the next step has held for a while. Below the last step the camera is paused
(the voice goes on), and it comes back by itself when the link does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

AUDIO_MAX = 64_000
AUDIO_MIN = 16_000
AUDIO_PACKET_OVERHEAD = 12 + 8 + 10 + 8 + 20  # RTP, mid extension, SRTP tag, UDP, IPv4
AUDIO_PACKETS_PER_S = 50
HEADROOM = 0.95  # of the estimate, for RTCP and the estimate's own error
RTX_SHARE = 0.05  # of the video's part, kept for retransmissions
UP_HOLD_S = 2.0  # a higher step's rate must hold this long before stepping up
SIMPLE_PICTURE = 0.6  # an encoder using less of its bitrate than this has a simple picture
PAUSE_HOLD_S = 2.0  # ... and this long to come back from a pause
START_S, START_HOLD_S = 5.0, 0.5  # in the call's first seconds, a shorter hold to step up


@dataclass(frozen=True)
class Step:
    """One rung of the ladder: a share of the source's size, a frame rate, and the video
    bitrate needed to enter it and to stay on it."""

    scale: float
    fps: float
    enter: float
    stay: float


# For 640x480 at 24 fps; other sources scale the rates by their pixels a second. The
# frame rate falls only on the narrowest links: frames decoded matter as much as pixels.
LADDER = (
    Step(1.0, 24, 500_000, 380_000),
    Step(0.75, 24, 280_000, 200_000),
    Step(0.5, 24, 150_000, 110_000),
    Step(0.5, 15, 100_000, 70_000),
    Step(0.25, 10, 50_000, 35_000),
)
REFERENCE_PIXEL_RATE = 640 * 480 * 24


@dataclass(frozen=True)
class Allocation:
    audio_bps: int  # Opus bitrate
    video_bps: int  # what the video may send, its packets' headers included (0: none)
    scale: float  # of the source's size
    fps: float
    paused: bool  # the camera is paused for the link (not by the user)
    step: int | None  # index into the ladder


class Allocator:
    def __init__(
        self, width: int | None = None, height: int | None = None, fps: float | None = None
    ) -> None:
        self.has_video = width is not None and height is not None
        self.width, self.height = width or 0, height or 0
        self.fps = float(fps or 24)
        rate = self.width * self.height * self.fps
        scale = (rate / REFERENCE_PIXEL_RATE) ** 0.75 if rate else 1.0
        self.ladder = [
            Step(s.scale, min(s.fps, self.fps), s.enter * scale, s.stay * scale) for s in LADDER
        ]
        self.step: int | None = 0 if self.has_video else None
        self.paused = False
        self.audio_bps = AUDIO_MAX
        self._up_since: dict[int, float] = {}  # step -> since when its rate has been met
        self._started = False
        self._start = 0.0

    @staticmethod
    def audio_overhead() -> float:
        return AUDIO_PACKET_OVERHEAD * 8 * AUDIO_PACKETS_PER_S

    def max_useful(self) -> float:
        """The most this call can use: the estimate need not grow past it."""
        audio = AUDIO_MAX + self.audio_overhead()
        if not self.has_video:
            return audio / HEADROOM
        top = self.ladder[0].enter * 3.0  # a detailed picture at the top step
        return (audio + top / (1 - RTX_SHARE)) / HEADROOM

    def first(self, estimate: float, now: float = 0.0) -> Allocation:
        """The starting allocation: the step the estimate allows. Not the full picture at a
        low bitrate: a first keyframe of 640x480 cannot be made small (the quantizer has a
        ceiling), and on a narrow link it alone fills the queue. In the first seconds a
        higher step is taken after a short hold (probes measure the link then)."""
        self._started = True
        self._start = now
        video = self._video_share(estimate)
        if self.has_video:
            self.step = next((i for i, s in enumerate(self.ladder) if video >= s.stay), None)
            self.paused = self.step is None
        return self._allocation(video)

    def update(self, now: float, estimate: float, used: float = 1.0) -> Allocation:
        """The allocation for *estimate*; *used* is the share of its bitrate the video
        encoder has been using (under 1 when the picture is simple: then it need not
        shrink for a bitrate that would not fill it)."""
        if not self._started:
            return self.first(estimate, now)
        video = self._video_share(estimate)
        if self.has_video:
            self._choose_step(now, video, used)
        return self._allocation(video)

    def next_need(self) -> float:
        """The estimate the next step up needs (the estimate may grow to it on a clean link
        even while the picture does not fill what it has: so that it can try)."""
        if not self.has_video:
            return self.max_useful()
        if self.paused or self.step is None:
            video = self.ladder[-1].enter
        elif self.step == 0:
            return 0.0
        else:
            video = self.ladder[self.step - 1].enter
        return (video / (1 - RTX_SHARE) + self.audio_bps + self.audio_overhead()) / HEADROOM

    def _video_share(self, estimate: float) -> float:
        usable = HEADROOM * estimate
        audio = min(AUDIO_MAX, max(AUDIO_MIN, usable - self.audio_overhead()))
        audio = 2000 * math.floor(audio / 2000)
        # Hysteresis for the voice: down at once, up by 4 kbit/s steps.
        if audio < self.audio_bps or audio >= self.audio_bps + 4000:
            self.audio_bps = int(audio)
        return max(0.0, (usable - self.audio_bps - self.audio_overhead()) * (1 - RTX_SHARE))

    def _choose_step(self, now: float, video: float, used: float) -> None:
        ladder = self.ladder
        if self.paused or self.step is None:
            last = len(ladder) - 1
            if video >= ladder[last].enter:
                since = self._up_since.setdefault(last, now)
                if now - since >= PAUSE_HOLD_S:
                    self.paused = False
                    self.step = last
                    self._up_since.clear()
            else:
                self._up_since.clear()
            return
        step = self.step
        # Down at once, as far as needed; a picture that leaves most of its bitrate unused
        # keeps its size until the bitrate is half what the step needs.
        floor = ladder[step].stay * (1.0 if used >= SIMPLE_PICTURE else 0.5)
        if video < floor:
            lower: int | None = step
            while lower is not None and video < ladder[lower].stay:
                lower = lower + 1 if lower + 1 < len(ladder) else None
            self.step = lower
            self.paused = lower is None
            self._up_since.clear()
            return
        # Up to the highest step whose rate has held for UP_HOLD_S (after a probe finds a
        # link much wider, that is several steps at once).
        hold = START_HOLD_S if now - self._start < START_S else UP_HOLD_S
        for upper in range(step):
            if video >= ladder[upper].enter:
                since = self._up_since.setdefault(upper, now)
                if now - since >= hold:
                    self.step = upper
                    self._up_since.clear()
                    return
            else:
                self._up_since.pop(upper, None)

    def _allocation(self, video: float) -> Allocation:
        if not self.has_video or self.paused or self.step is None:
            return Allocation(self.audio_bps, 0, 0.0, 0.0, self.has_video, None)
        s = self.ladder[self.step]
        cap = self.ladder[0].enter * 3.0  # what the top step can use
        return Allocation(self.audio_bps, int(min(video, cap)), s.scale, s.fps, False, self.step)
