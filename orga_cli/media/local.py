"""The call's local media: what goes up, what comes down, and what is kept of both.

Up:   a BlockSource (microphone, file, tone) → MicProcessor (AEC, NS, AGC: a real
      microphone only) → AudioSourceTrack (paced Opus packets) → the sent taps
      (the mic recording, the stereo recording, meters).
Down: RTP packets → AudioReceiver (reorder, delay, stretch, conceal) → pulled by the
      Speaker's PortAudio callback, or on the wall clock when there is no speaker or it
      failed → the played taps (the AEC's far end, the recordings, meters).

`LocalMedia` opens all of it as an async context and hands `CallSession` a track to
send and a receiver to feed; the CLI only reads labels, meters and warnings from it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MediaError
from .audio import StereoWavWriter, WavWriter
from .receive import AudioReceiver, WallClockPull
from .sources import (
    AudioSourceTrack,
    BlockSource,
    ToneSource,
    VideoInput,
    open_video,
    parse_audio_in,
)
from .turns import Turn, TurnTracker

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
        self.receiver = AudioReceiver()
        self.speaker: Any = None  # media.devices.Speaker
        self.processor: Any = None  # media.processing.MicProcessor
        self.puller: WallClockPull | None = None
        self.recorder: WavWriter | None = None
        self.mic_recorder: WavWriter | None = None
        self.both_recorder: StereoWavWriter | None = None
        # Called with each block as it is sent (the event loop) and with what is handed
        # to the sound card (PortAudio's thread: a tap must only copy and hand over).
        self.sent_taps: list[Tap] = []
        self.played_taps: list[Tap] = []
        self.muted = config.muted
        self._track: AudioSourceTrack | None = None
        self._recording = False
        self.echo_cancel: str | None = None  # the processing label, None without processing
        self.turns: TurnTracker | None = None  # set up when the devices are open
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
        if config.record:
            self.recorder = WavWriter(config.record)
        if config.record_mic:
            self.mic_recorder = WavWriter(config.record_mic)
        if config.record_both:
            self.both_recorder = StereoWavWriter(config.record_both)
        if self.speaker is None:
            self._pull_on_wall_clock()
        self.turns = TurnTracker(
            in_latency=self.source.latency if self.source is not None else 0.0,
            out_latency=self.speaker.latency if self.speaker is not None else 0.0,
            on_turn=lambda turn: self.on_turn(turn) if self.on_turn is not None else None,
        )

    def _open_audio_in(self) -> BlockSource:
        config = self.config
        if config.audio_in:
            return parse_audio_in(config.audio_in)
        from .devices import MicrophoneSource

        try:
            return MicrophoneSource(config.input_device)
        except MediaError as exc:
            if config.stand_ins and config.input_device is None:
                self._note(
                    f"no microphone ({exc.message}): sending a 440 Hz tone instead (--audio-in to choose)"
                )
                return ToneSource(440)
            raise

    def _open_speaker(self) -> Any:
        config = self.config
        if config.no_speaker:
            return None
        from .devices import Speaker

        try:
            return Speaker(config.output_device, source=self.receiver.pull)
        except MediaError as exc:
            if config.stand_ins and config.output_device is None:
                self._note(
                    f"no speaker ({exc.message}): playing nothing (--record FILE keeps the audio)"
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
                    f"no camera ({exc.message}): sending a test pattern instead (--no-video to send none)"
                )
                return open_video("testsrc", None, config.video_quality)
            raise

    def _setup_processing(self) -> None:
        """AEC, NS, AGC and HPF on a real microphone (or on any input with --aec)."""
        from .devices import MicrophoneSource
        from .processing import MicProcessor, ProcessedSource, ProcessingOptions, far_end_tap

        config = self.config
        assert self.source is not None
        if not isinstance(self.source, MicrophoneSource) and config.aec is not True:
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
        self._recording = True

    @property
    def audio_in_label(self) -> str:
        return self.source.label if self.source is not None else "none"

    @property
    def audio_out_label(self) -> str:
        return self.speaker.label if self.speaker is not None else "no speaker"

    def _sent(self, block: np.ndarray) -> None:
        if self.mic_recorder is not None:
            self.mic_recorder.write(block)
        if self.both_recorder is not None:
            self.both_recorder.write(0, block)
        if self.turns is not None:
            self.turns.sent(block)
        for tap in self.sent_taps:
            tap(block)

    def _played(self, samples: np.ndarray) -> None:
        if self._recording:
            if self.recorder is not None:
                self.recorder.write(samples)
            if self.both_recorder is not None:
                self.both_recorder.write(1, samples)
            if self.turns is not None:
                self.turns.played(samples)
        for tap in self.played_taps:
            tap(samples)

    def check(self) -> list[str]:
        """Once a second: what has gone wrong with the devices, as warnings to show."""
        warnings = []
        if self.source is not None and self.source.failed:
            warnings.append("the microphone stopped; sending silence")
        if self.processor is not None:
            if self.processor.failed:
                warnings.append(self.processor.failed)
            erle = self.processor.erle_db()
            label = self.processor.options.label()
            if not self.processor.ready:
                label += " (starting)"
            self.echo_cancel = label if erle is None else f"{label} · ERLE est. {erle:.0f} dB"
        if self.speaker is not None:
            self.speaker.check()
            if self.speaker.failed:
                warnings.append("the speaker stopped; no sound")
                self._pull_on_wall_clock(self.speaker.last_pull)  # --record keeps the wall clock
        if self.both_recorder is not None:
            self.both_recorder.catch_up()
        return warnings

    def summary(self) -> dict[str, Any]:
        config, processor = self.config, self.processor
        erle = processor.erle_db() if processor is not None else None
        return {
            "record": str(config.record) if config.record else None,
            "record_seconds": round(self.recorder.seconds, 3) if self.recorder else None,
            "record_mic": str(config.record_mic) if config.record_mic else None,
            "record_both": str(config.record_both) if config.record_both else None,
            "mic_overflows": self.source.overflows if self.source is not None else 0,
            "processing": processor.options.label() if processor else "off",
            "erle_db_estimate": None if erle is None else round(erle, 1),
            **(self.turns.summary() if self.turns is not None else TurnTracker().summary()),
        }

    # ------------------------------------------------------------------ close

    async def close(self) -> None:
        """Devices closed and every file complete, whatever ended the call."""
        if self.source is not None:
            self.source.close()
        if self.video is not None:
            self.video.close()
        if self.puller is not None:
            await self.puller.stop()
        if self.speaker is not None:
            self.speaker.close()
        for recorder in (self.recorder, self.mic_recorder, self.both_recorder):
            if recorder is not None:
                recorder.close()
