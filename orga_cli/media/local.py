"""The call's local media: what goes up, what comes down, and what is kept of both.

Up:   a BlockSource (microphone, file, tone) → MicProcessor (AEC, NS, AGC: a real
      microphone only) → AudioSourceTrack (paced Opus packets) → the sent taps
      (the mic recording, the stereo recording, meters).
Down: RTP packets → AudioReceiver (reorder, delay, stretch, conceal) → pulled by the
      Speaker's PortAudio callback, or on the wall clock when there is no speaker or it
      failed → the played taps (the AEC's far end, the recordings, meters).

`LocalMedia` opens all of it as an async context and hands `CallSession` a track to
send and a receiver to feed; a call reads labels and meters from it, and once a second
its figures (``figures()``: the receive buffer, the turns, what is wrong now).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MediaError, setting
from ..figures import MediaFigures
from .devices import DeviceWatch
from .receive import AudioReceiver
from .recording import Recordings
from .sources import (
    AudioSourceTrack,
    BlockSource,
    ToneSource,
    VideoInput,
    open_video,
    parse_audio_in,
)
from .turns import Turn, TurnTracker
from .wallclock import WallClockPull

if TYPE_CHECKING:
    from .devices import MicrophoneSource, Speaker
    from .processing import MicProcessor

log = logging.getLogger(__name__)

Tap = Callable[[np.ndarray], None]


@dataclass
class MediaConfig:
    """What goes up, where the model's voice goes, and what is recorded."""

    audio_in: str | None = None  # a file or tone:HZ; None: the microphone
    input_device: str | None = None
    video_in: str | None = None
    no_video: bool = False
    camera: str | None = None
    video_quality: str = "low"
    output_device: str | None = None
    no_speaker: bool = False
    aec: bool | None = None  # None: on for a real microphone; True: forced (--aec); False: --no-aec
    ns: bool = True
    agc: bool = True
    record: Path | None = None  # what was played (the model's voice), on the wall clock
    record_mic: Path | None = None  # what was sent
    record_both: Path | None = None  # stereo: left sent, right played, on one clock
    muted: bool = False  # the microphone starts muted
    # Missing devices are stood in for (a tone, no speaker, a test pattern) instead of
    # failing: the sandbox's offline default.
    stand_ins: bool = False


class LocalMedia:
    """Opens and owns the local audio and video of a call (async context)."""

    def __init__(self, config: MediaConfig, note: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._note = note or log.warning
        self.source: BlockSource | None = None
        self.video: VideoInput | None = None
        self.receiver = AudioReceiver()  # the one receive buffer of the call, across re-dials
        self.speaker: Speaker | None = None
        self.microphone: MicrophoneSource | None = None  # when a real one is used
        self.processor: MicProcessor | None = None
        self.puller: WallClockPull | None = None
        self.recordings: Recordings | None = None
        # Called with each block as it is sent (the event loop) and with what is handed
        # to the sound card (PortAudio's thread: a tap must only copy and hand over).
        self.sent_taps: list[Tap] = []
        self.played_taps: list[Tap] = []
        self.muted = config.muted
        self._track: AudioSourceTrack | None = None
        self.echo_cancel: str | None = None  # the processing label, None without processing
        # Your turns and the replies; the devices' latencies are added when they open.
        self.turns = TurnTracker(
            on_turn=lambda turn: self.on_turn(turn) if self.on_turn is not None else None
        )
        self.watches: list[DeviceWatch] = []  # the devices that may come and go
        self._underruns: deque[tuple[float, int]] = deque()
        self._warnings: list[str] = []
        # (device, "lost", "reopened" (its stream opened again) or "back" (sound flows again),
        # seconds it has been gone): for --events
        self.on_device: Callable[[str, str, float], None] = lambda device, what, seconds: None
        self.on_turn: Callable[[Turn], None] | None = None  # a turn's reply was heard

    # ------------------------------------------------------------------ open

    async def __aenter__(self) -> LocalMedia:
        try:
            await self.open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        self.source = self._open_audio_in()
        self.video = self._open_video()
        self.speaker = self._open_speaker()
        if self.speaker is not None:
            self.speaker.taps.append(self._played)
        self._setup_processing()
        config = self.config
        self.recordings = Recordings(config.record, config.record_mic, config.record_both)
        if self.speaker is None:
            self._pull_on_wall_clock()
        self.turns.in_latency = self.source.latency if self.source is not None else 0.0
        self.turns.out_latency = self.speaker.latency if self.speaker is not None else 0.0
        if self.microphone is not None:
            mic = self.microphone
            self.watches.append(
                DeviceWatch(
                    "microphone",
                    mic,
                    working=lambda: not mic.failed,
                    gone_for=lambda: 0.5,  # a microphone fails after 0.5 s without blocks
                    on_change=self._device_changed,
                )
            )
        if self.speaker is not None:
            speaker = self.speaker
            self.watches.append(
                DeviceWatch(
                    "speaker",
                    speaker,
                    working=speaker.alive,
                    gone_for=lambda: time.monotonic() - speaker.last_pull,
                    on_change=self._device_changed,
                )
            )

    def _open_audio_in(self) -> BlockSource:
        config = self.config
        if config.audio_in:
            return parse_audio_in(config.audio_in)
        from .devices import MicrophoneSource

        try:
            mic = MicrophoneSource(config.input_device)
            self.microphone = mic
            return mic
        except MediaError as exc:
            if config.stand_ins and config.input_device is None:
                self._note(
                    f"no microphone ({exc.message}): sending a 440 Hz tone instead"
                    f" ({setting('audio_in')} to choose)"
                )
                return ToneSource(440)
            raise

    def _open_speaker(self) -> Speaker | None:
        config = self.config
        if config.no_speaker:
            return None
        from .devices import Speaker

        try:
            return Speaker(config.output_device, source=self.receiver.pull)
        except MediaError as exc:
            if config.stand_ins and config.output_device is None:
                self._note(
                    f"no speaker ({exc.message}): playing nothing"
                    f" ({setting('record', 'FILE')} keeps the audio)"
                )
                return None
            raise

    def _open_video(self) -> VideoInput | None:
        config = self.config
        if config.no_video:
            return None
        try:
            return open_video(config.video_in, config.camera, config.video_quality)
        except MediaError as exc:
            if config.stand_ins and config.video_in is None and config.camera is None:
                self._note(
                    f"no camera ({exc.message}): sending a test pattern instead"
                    f" ({setting('no_video')} to send none)"
                )
                return open_video("testsrc", None, config.video_quality)
            raise

    def _setup_processing(self) -> None:
        """AEC, NS, AGC and HPF on a real microphone (or on any input when aec is True)."""
        from .processing import MicProcessor, ProcessedSource, ProcessingOptions, far_end_tap

        config = self.config
        assert self.source is not None
        if self.microphone is None and config.aec is not True:
            return  # files and tones are sent as they are
        aec = config.aec is not False and self.speaker is not None
        if config.aec is not False and self.speaker is None:
            log.info("echo cancellation is off: there is no speaker to echo")
        options = ProcessingOptions(aec=aec, ns=config.ns, agc=config.agc, hpf=True)
        out_latency = self.speaker.latency if self.speaker is not None else 0.0
        self.processor = MicProcessor(options, 1000 * (self.source.latency + out_latency))
        self.source = ProcessedSource(self.source, self.processor)
        if self.speaker is not None and aec:
            self.speaker.taps.append(far_end_tap(self.processor, asyncio.get_running_loop()))
        self.echo_cancel = options.label()
        log.info(
            "microphone processing: %s, stream delay %d ms",
            options.label(),
            self.processor.delay_ms,
        )

    def _pull_on_wall_clock(self, since: float | None = None) -> None:
        """No sound card pulls the receiver (no speaker, or it failed): the wall clock does,
        from *since* (when the speaker stopped) so that the recording misses nothing."""
        if self.puller is None:
            self.puller = WallClockPull(self.receiver, [self._played])
            self.puller.start(since)

    # ------------------------------------------------------------------ the call's use

    def audio_track(self) -> AudioSourceTrack:
        """A new track to send (one per dial), muted as the last one was."""
        assert self.source is not None
        if self._track is not None:
            self.muted = self._track.muted
        track = AudioSourceTrack(self.source)
        track.muted = self.muted
        track.taps.append(self._sent)
        self._track = track
        return track

    def start_recording(self) -> None:
        """Received audio is recorded from the call's first connection on."""
        if self.recordings is not None and not self.recordings.recording:
            self.recordings.start()

    @property
    def audio_in_label(self) -> str:
        return self.source.label if self.source is not None else "none"

    @property
    def audio_out_label(self) -> str:
        return self.speaker.label if self.speaker is not None else "no speaker"

    def utterance_times(self, speaker: str) -> tuple[float, float | None]:
        """When the utterance a transcript line of *speaker* is about was said."""
        return self.turns.utterance_times(speaker)

    def _sent(self, block: np.ndarray) -> None:
        if self.recordings is not None:
            self.recordings.sent_block(block)
        self.turns.sent(block)
        for tap in self.sent_taps:
            tap(block)

    def _played(self, samples: np.ndarray) -> None:
        recordings = self.recordings
        if recordings is not None and recordings.recording:
            recordings.played_block(samples)
            self.turns.played(samples)
        for tap in self.played_taps:
            tap(samples)

    # ------------------------------------------------------------------ once a second

    def figures(self) -> MediaFigures:
        """Once a second: the receive buffer's figures, the turns, and what is wrong now
        (each warning names its fix)."""
        receiver = self.receiver
        rx = receiver.stats
        latencies = self.turns.latencies_ms()
        self._warnings = self._check()
        return MediaFigures(
            receive=replace(rx),
            loss_pct=rx.loss_pct if rx.decoded + rx.lost else None,
            buffer_ms=receiver.buffer_ms if receiver.playing else None,
            buffer_target_ms=receiver.target_ms,
            concealed_pct=rx.concealed_pct if rx.samples_out else None,
            turn_ms=latencies[-1] if latencies else None,
            turn_median_ms=statistics.median(latencies) if latencies else None,
            turn_count=len(latencies),
            warnings=list(self._warnings),
            echo_cancel=self.echo_cancel,
        )

    def _check(self) -> list[str]:
        warnings = []
        if self.source is not None and self.source.failed:
            warnings.append("the microphone stopped: sending silence until it comes back")
        if self.processor is not None:
            if self.processor.failed:
                warnings.append(self.processor.failed)
            erle = self.processor.erle_db()
            label = self.processor.options.label()
            if not self.processor.ready:
                label += " (starting)"
            self.echo_cancel = label if erle is None else f"{label} · ERLE est. {erle:.0f} dB"
        if self.speaker is not None and not self.speaker.pulling:
            warnings.append("the speaker stopped: no sound until it comes back")
        warnings += self._advice()
        if self.recordings is not None:
            self.recordings.catch_up()
        return warnings

    def _advice(self) -> list[str]:
        """Warnings that name the fix: a silent or clipping input, echo, a jittery network."""
        out = []
        now = time.monotonic()
        mic = self.microphone
        if mic is not None and not mic.failed:
            if mic.zeros_since is not None and now - mic.zeros_since >= 3.0:
                where = (
                    "allow the terminal to use the microphone (System Settings → Privacy & "
                    "Security → Microphone) and restart it"
                    if sys.platform == "darwin"
                    else "unmute the input or choose another with"
                    f" {setting('input_device')} (orga devices)"
                )
                out.append(f"the microphone gives only digital silence: {where}")
            if now - mic.clipped_at < 3.0:
                out.append("the microphone clips: turn its input gain down")
        if self._echo_heard():
            out.append("the model hears itself: use headphones, or leave echo cancellation on")
        rx = self.receiver.stats
        self._underruns.append((now, rx.underruns))
        while self._underruns and self._underruns[0][0] < now - 10:
            self._underruns.popleft()
        if rx.underruns - self._underruns[0][1] >= 5:
            out.append("the network is jittery (the voice breaks up): see -v and the buffer line")
        return out

    def _echo_heard(self) -> bool:
        """Echo: with AEC, its ERLE is low while the model speaks; without it (aec off, or a
        speaker and microphone that are the same room), the microphone is as loud when the
        model speaks as when you do."""
        processor = self.processor
        if processor is not None and processor.options.aec:
            erle = processor.erle_db()
            return erle is not None and erle < 6.0
        if self.microphone is None or self.speaker is None:
            return False
        return self.turns.echo_suspected()

    # ------------------------------------------------------------------ devices

    async def watch_devices(self) -> None:
        """Often (4 times a second): a device that stopped is noticed, and opened again
        every half second until it comes back (devices.DeviceWatch)."""
        for watch in self.watches:
            watch.watch()

    @property
    def reopened(self) -> dict[str, float]:
        """device -> seconds it was gone, at its last return."""
        return {w.name: w.back_after for w in self.watches if w.back_after is not None}

    def _device_changed(self, device: str, what: str, seconds: float) -> None:
        """Exactly one clock pulls the receiver: the speaker's while it calls back, the
        wall clock's while it does not (from its last pull, so the recording misses nothing)."""
        if device == "speaker":
            speaker = self.speaker
            assert speaker is not None
            if what == "lost":
                speaker.pulling = False
                self._pull_on_wall_clock(speaker.last_pull)
                log.warning("the speaker stopped; the call goes on without sound")
            elif what == "back":
                if self.puller is not None:
                    self.puller.stop_soon()
                    self.puller = None
                speaker.pulling = True
        if what == "back":
            label = self.speaker.name if device == "speaker" and self.speaker else None
            if device == "microphone" and self.microphone is not None:
                label = self.microphone.label
            self._note(f"the {device} is back ({label})")
        self.on_device(device, what, seconds)

    def summary(self) -> dict[str, Any]:
        """The --json fields of the local media (their defaults before they open)."""
        config, processor = self.config, self.processor
        erle = processor.erle_db() if processor is not None else None
        recordings = self.recordings
        return {
            "record": str(config.record) if config.record else None,
            "record_seconds": recordings.played_seconds if recordings else None,
            "record_mic": str(config.record_mic) if config.record_mic else None,
            "record_both": str(config.record_both) if config.record_both else None,
            "mic_overflows": self.source.overflows if self.source is not None else 0,
            "processing": processor.options.label() if processor else "off",
            "erle_db_estimate": None if erle is None else round(erle, 1),
            **self.turns.summary(),
        }

    # ------------------------------------------------------------------ close

    async def close(self) -> None:
        """Devices closed and every file complete, whatever ended the call."""
        if self.puller is not None:  # first: the recordings end when the call does
            await self.puller.stop()
            self.puller = None
        if self.watches:
            await asyncio.gather(*(w.settle() for w in self.watches))
        if self.source is not None:
            self.source.close()
        if self.video is not None:
            self.video.close()
        if self.speaker is not None:
            self.speaker.close()
        if self.recordings is not None:
            self.recordings.close()
