"""`orga call`: wires sources, sinks, the session, the screen, keys and signals together.

Everything that can be checked is checked before the first request: the
voice, the instructions file, the token's expiry, the input files, the devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .api import OrgaClient, usable_token
from .callui import CallView, LivePanel, PlainLines
from .errors import CallError, ExitCode, Interrupted, MediaError, OrgaError, UsageError, secrets
from .keys import open_keys
from .loop import handling
from .media.audio import WavWriter
from .media.sources import (
    AudioSourceTrack,
    BlockSource,
    ToneSource,
    VideoInput,
    open_video,
    parse_audio_in,
)
from .models import DEFAULT_BASE_URL, ChannelEvent
from .session import CallOptions, CallParams, CallSession
from .stats import StatsSnapshot
from .voices import find_voice, suggest_voices

log = logging.getLogger(__name__)


@dataclass
class Connection:
    """Where and how to call: the API, the credentials, ICE, reconnection."""

    base_url: str | None = None
    api_key: str | None = None
    token: str | None = None
    timeout: float = 10.0
    insecure_http: bool = False
    options: CallOptions = field(default_factory=CallOptions)
    reconnect: bool = True  # dial again when media stays away past options.reconnect_timeout


@dataclass
class Sandbox:
    """`--sandbox`: a sandbox in this process, and what its peer does."""

    enabled: bool = False
    reply: str = "echo"
    save_received: Path | None = None


@dataclass
class Media:
    """What goes up and where the model's voice goes."""

    audio_in: str | None = None
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


@dataclass
class Outputs:
    """Files kept while the call runs."""

    record: Path | None = None
    record_mic: Path | None = None
    events: Path | None = None


@dataclass
class Screen:
    """The terminal: a live panel (stderr is a terminal) and keys (stdin too)."""

    tty: bool = False
    keys: bool = False


@dataclass
class CallRequest:
    """Everything `orga call` was asked to do, by concern (the CLI builds it once from flags)."""

    connection: Connection = field(default_factory=Connection)
    params: CallParams = field(default_factory=CallParams)
    media: Media = field(default_factory=Media)
    outputs: Outputs = field(default_factory=Outputs)
    screen: Screen = field(default_factory=Screen)
    sandbox: Sandbox = field(default_factory=Sandbox)
    duration: float | None = None


def process_start() -> float:
    """When this process started (epoch seconds, ±10 ms); from /proc on Linux, else now.

    The process's age is the system uptime minus its start time since boot (both
    in /proc, in clock ticks and centiseconds); btime would only give whole seconds.
    """
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        start_ticks = int(fields[19])
        with open("/proc/uptime", "rb") as fh:
            uptime = float(fh.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - max(0.0, age)
    except (OSError, ValueError, IndexError):
        return time.time()


@dataclass
class CallOutcome:
    summary: dict[str, Any]
    exit_code: ExitCode
    error: OrgaError | None = None


def resolve_voice(name: str) -> str:
    voice = find_voice(name)
    if voice is None:
        close = suggest_voices(name)
        hint = f"did you mean {' or '.join(close)}?" if close else "see `orga voices`"
        raise UsageError(f"unknown voice {name!r}", hint)
    return voice.name


def read_instructions(value: str | None) -> str | None:
    if value is None or not value.startswith("@"):
        return value
    path = Path(value[1:]).expanduser()
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"cannot read instructions file {path}: {exc.strerror or exc}") from exc


class EventLog:
    """--events FILE.jsonl: every data-channel message both ways, with time and direction."""

    def __init__(self, path: Path | None) -> None:
        self._fh: TextIO | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = path.open("w", encoding="utf-8", buffering=1)
            except OSError as exc:
                raise UsageError(f"cannot write events file {path}: {exc.strerror or exc}") from exc

    def write(self, direction: str, payload: Any, raw: str | None = None) -> None:
        if self._fh is None:
            return
        record: dict[str, Any] = {"t": round(time.time(), 3), "dir": direction}
        if raw is not None and payload is None:
            record["raw"] = raw
        else:
            record["event"] = payload
        self._fh.write(secrets.scrub(json.dumps(record, ensure_ascii=False)) + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class CallRunner:
    def __init__(self, request: CallRequest) -> None:
        self.req = request
        self.view = CallView()
        self.session: CallSession | None = None
        self.ui: LivePanel | PlainLines | None = None
        self.recorder: WavWriter | None = None
        self.mic_recorder: WavWriter | None = None
        self.events = EventLog(None)
        self.speaker: Any = None
        self.receiver: Any = None  # media.receive.AudioReceiver: packets in, sound out
        self.puller: Any = None  # pulls the receiver on the wall clock when no speaker does
        self.reconnects = 0
        self.outage_s = 0.0
        self._recording = False  # received audio is recorded from the first connection on
        self.first_session: CallSession | None = None
        self.source: BlockSource | None = None
        self.video: VideoInput | None = None
        self.sandbox: Any = None
        self.peer: Any = None
        self.processor: Any = None
        self.ended_by = "error"
        self._on_interrupt: Callable[[], None] | None = None
        self._deadline: float | None = None
        self._last: StatsSnapshot | None = None

    # ------------------------------------------------------------------ set-up

    def _note(self, text: str) -> None:
        if self.ui is not None:
            self.ui.note(text)
        else:
            from .render import note

            note(text)

    async def _open_audio_in(self) -> BlockSource:
        req = self.req
        if req.media.audio_in:
            return parse_audio_in(req.media.audio_in)
        from .media.devices import MicrophoneSource

        try:
            return MicrophoneSource(req.media.input_device)
        except MediaError as exc:
            if req.sandbox.enabled and req.media.input_device is None:
                self._note(
                    f"no microphone ({exc.message}): sending a 440 Hz tone instead (--audio-in to choose)"
                )
                return ToneSource(440)
            raise

    def _open_speaker(self) -> Any:
        req = self.req
        if req.media.no_speaker:
            return None
        from .media.devices import Speaker

        try:
            return Speaker(req.media.output_device, source=self.receiver.pull)
        except MediaError as exc:
            if req.sandbox.enabled and req.media.output_device is None:
                self._note(
                    f"no speaker ({exc.message}): playing nothing (--record FILE keeps the audio)"
                )
                return None
            raise

    def _open_video(self) -> VideoInput | None:
        req = self.req
        if req.media.no_video:
            return None
        try:
            return open_video(req.media.video_in, req.media.camera, req.media.video_quality)
        except MediaError as exc:
            if req.sandbox.enabled and req.media.video_in is None and req.media.camera is None:
                self._note(
                    f"no camera ({exc.message}): sending a test pattern instead (--no-video to send none)"
                )
                return open_video("testsrc", None, req.media.video_quality)
            raise

    def _setup_processing(self) -> None:
        """AEC, NS, AGC and HPF on a real microphone (or on any input with --aec)."""
        from .media.devices import MicrophoneSource
        from .media.processing import MicProcessor, ProcessedSource, ProcessingOptions, far_end_tap

        req = self.req
        if not isinstance(self.source, MicrophoneSource) and req.media.aec is not True:
            return  # files and tones are sent as they are
        aec = req.media.aec is not False and self.speaker is not None
        if req.media.aec is not False and self.speaker is None:
            log.info("echo cancellation is off: there is no speaker to echo")
        options = ProcessingOptions(aec=aec, ns=req.media.ns, agc=req.media.agc, hpf=True)
        assert self.source is not None
        in_latency = self.source.latency
        out_latency = self.speaker.latency if self.speaker is not None else 0.0
        self.processor = MicProcessor(options, 1000 * (in_latency + out_latency))
        self.source = ProcessedSource(self.source, self.processor)
        if self.speaker is not None and aec:
            self.speaker.taps.append(far_end_tap(self.processor, asyncio.get_running_loop()))
        self.view.echo_cancel = options.label()
        log.info(
            "microphone processing: %s, stream delay %d ms",
            options.label(),
            self.processor.delay_ms,
        )

    async def _start_sandbox(self) -> tuple[str, str]:
        from .sandbox.peer import EchoPeer, PeerConfig
        from .sandbox.server import SandboxConfig, SandboxServer

        config = SandboxConfig()
        secrets.add(config.api_key)
        ice = tuple(self.req.connection.options.ice_servers or ())
        self.peer = EchoPeer(
            PeerConfig(
                reply=self.req.sandbox.reply,
                save_received=self.req.sandbox.save_received,
                ice_servers=ice,
            )
        )
        config.ice_servers = ice
        self.sandbox = SandboxServer(config, call_handler=self.peer)
        base_url = await self.sandbox.start()
        log.info("sandbox listening on %s", base_url)
        return base_url, config.api_key

    # ------------------------------------------------------------------ run

    async def run(self) -> CallOutcome:
        main_task = asyncio.current_task()
        assert main_task is not None
        interrupted = False

        def on_sigint() -> None:
            nonlocal interrupted
            interrupted = True
            if self.session is not None and self.session.timeline.connected is not None:
                self.session.end("interrupt")
            else:
                main_task.cancel()

        error: OrgaError | None = None
        self._on_interrupt = on_sigint
        with handling((signal.SIGINT, signal.SIGTERM), on_sigint):
            try:
                await self._run()
            except asyncio.CancelledError:
                if not interrupted:
                    raise
                error = Interrupted("interrupted before the call connected")
                self.ended_by = "interrupt"
            except OrgaError as exc:
                error = exc
            finally:
                await asyncio.shield(self._cleanup())
        if error is None and self.session is not None and self.session.end_error is not None:
            error = self.session.end_error
        if self.ended_by == "interrupt" and error is None:
            error = Interrupted("interrupted")
        summary = await self._summary()
        code = ExitCode.OK if error is None else error.exit_code
        return CallOutcome(summary, code, error)

    async def _run(self) -> None:
        req = self.req
        # Checks and local resources first: nothing is requested until they pass.
        if req.connection.token is not None:
            usable_token(req.connection.token)
        self.ui = LivePanel(self.view) if req.screen.tty else PlainLines(self.view)
        with self.ui:
            self.source = await self._open_audio_in()
            self.view.audio_in = self.source.label
            self.video = self._open_video()
            self.view.video = self.video.label if self.video else None
            from .media.receive import AudioReceiver

            self.receiver = AudioReceiver()
            self.speaker = self._open_speaker()
            self.view.audio_out = self.speaker.label if self.speaker else "no speaker"
            if self.speaker is not None:
                self.speaker.taps.append(self._played)
            self._setup_processing()
            if req.outputs.record:
                self.recorder = WavWriter(req.outputs.record)
            if req.outputs.record_mic:
                self.mic_recorder = WavWriter(req.outputs.record_mic)
            self.events = EventLog(req.outputs.events)
            if self.speaker is None:
                self._pull_on_wall_clock()
            base_url, api_key = req.connection.base_url, req.connection.api_key
            if req.sandbox.enabled:
                base_url, api_key = await self._start_sandbox()
            client = OrgaClient(
                base_url or DEFAULT_BASE_URL,
                api_key,
                timeout=req.connection.timeout,
                insecure_http=req.connection.insecure_http,
            )
            keys = open_keys(lambda char: self.key(char.lower())) if req.screen.keys else None
            try:
                async with client:
                    await self._dial(client, req.connection.token)
                    while True:
                        await self._connected_loop()
                        if not self._should_redial():
                            break
                        await self._redial(client)
            finally:
                if keys is not None:
                    keys.close()

    def _new_session(self, client: OrgaClient, token: Any) -> CallSession:
        assert self.source is not None
        audio = AudioSourceTrack(self.source)
        audio.taps.append(self._mic_block)
        if self.session is not None:
            audio.muted = self.session.audio.muted
        return CallSession(
            client,
            audio,
            self.video,
            self.req.params,
            self.req.connection.options,
            token=token,
            on_phase=self._phase,
            on_event=self._event,
            receiver=self.receiver,
            on_media=self._media,
        )

    async def _dial(self, client: OrgaClient, token: Any) -> None:
        self.session = self._new_session(client, token)
        if self.first_session is None:
            self.first_session = self.session
            self.session.timeline.origin = process_start()  # what the user waited for
        await self.session.start()
        if self.view.connected_at is None:
            self.view.connected_at = time.monotonic()
        self._recording = True

    def _should_redial(self) -> bool:
        session = self.session
        return (
            session is not None
            and session.end_reason == "media"
            and self.req.connection.reconnect
            and not self._deadline_passed()
        )

    async def _redial(self, client: OrgaClient) -> None:
        """Media stayed away past --reconnect-timeout: a new call on the same devices and files."""
        old = self.session
        assert old is not None
        self._absorb(old)
        self.reconnects += 1
        self._note(f"media did not come back: dialing again (reconnect {self.reconnects})")
        self.events.write("local", {"type": "orga.redial", "reconnects": self.reconnects})
        token = old.token
        if token is not None and not isinstance(token, str):
            left = token.seconds_left()
            if left is not None and left < 5:
                if self.req.connection.token is not None and self.req.connection.api_key is None:
                    raise CallError(
                        "the media was lost and the --token given has expired: cannot dial again",
                        "leave out --token so that orga can mint a new one",
                    )
                token = None  # a new one is minted
        await old.close()
        self._last = None
        await self._dial(client, token)

    def _absorb(self, session: CallSession) -> None:
        """Keep what an ended session counted (its outages) for the call's summary."""
        self.outage_s += session.outage_seconds()

    def _deadline_passed(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _pull_on_wall_clock(self, since: float | None = None) -> None:
        """No sound card pulls the receiver (no speaker, or it failed): the wall clock does,
        from *since* (when the speaker stopped) so that the recording misses nothing."""
        from .media.receive import WallClockPull

        if self.puller is None:
            self.puller = WallClockPull(self.receiver, [self._played])
            self.puller.start(since)

    async def _connected_loop(self) -> None:
        session = self.session
        assert session is not None and self.ui is not None
        if self._deadline is None and self.req.duration is not None:
            self._deadline = time.monotonic() + self.req.duration
        deadline = self._deadline
        next_stats = 0.0
        while not session.ended.is_set():
            timeout = 0.25
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    session.end("duration")
                    break
                timeout = min(timeout, left)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(session.ended.wait(), timeout)
            if time.monotonic() >= next_stats:  # getStats is not free: once a second
                next_stats = time.monotonic() + 1.0
                await self._update_stats()
            self.ui.refresh()
        self.ended_by = session.end_reason or "error"

    # ------------------------------------------------------------------ callbacks

    def _phase(self, phase: str) -> None:
        self.view.phase = phase
        if self.ui is not None:
            self.ui.refresh()

    def _event(self, direction: str, event: ChannelEvent | dict[str, Any]) -> None:
        if isinstance(event, dict):
            self.events.write(direction, event)
            return
        self.events.write(
            direction, event.data if event.type is not None or event.data else None, event.raw
        )
        if self.session is not None:
            self.view.session_id = self.session.session_id
            self.view.conversation_id = self.session.conversation_id
        line = event.conversation_line()
        if line is not None and self.ui is not None:
            self.ui.line(*line)
        elif event.type is None:
            log.info("non-JSON message on the data channel: %s", event.raw[:200])
        elif event.type not in ("session.created", "conversation.created"):
            log.info("event %s: %s", event.type, event.raw[:300])

    def _mic_block(self, block: Any) -> None:
        self.view.mic_block = block
        if self.mic_recorder is not None:
            self.mic_recorder.write(block)

    def _played(self, samples: Any) -> None:
        """What was handed to the speaker (or pulled on the wall clock): meter and --record."""
        self.view.remote_block = samples
        if self.recorder is not None and self._recording:
            self.recorder.write(samples)

    def _media(self, what: str, seconds: float) -> None:
        if what == "lost":
            self._note("no media from the server: reconnecting…")
            self.events.write("local", {"type": "orga.reconnecting", "silent_s": round(seconds, 1)})
        else:
            self._note(f"media is back after {seconds:.1f} s")
            self.events.write("local", {"type": "orga.reconnected", "outage_s": round(seconds, 1)})

    async def _update_stats(self) -> None:
        session = self.session
        if session is None:
            return
        snap = await session.stats()
        last, self._last = self._last, snap
        v = self.view
        v.local, v.remote = snap.local_candidate, snap.remote_candidate
        v.rtt_ms, v.jitter_ms = snap.rtt_ms, snap.jitter_ms
        rx = self.receiver.stats
        v.loss_pct = rx.loss_pct if rx.decoded + rx.lost else None
        # During an outage the delay only says how long it has lasted: the panel says so.
        playing = self.receiver.playing and not session.reconnecting
        v.buffer_ms = self.receiver.buffer_ms if playing else None
        v.buffer_target_ms = self.receiver.target_ms
        v.concealed_pct = rx.concealed_pct if rx.samples_out else None
        if last is not None and snap.at > last.at:
            span = snap.at - last.at
            v.up_kbps = 8 * (snap.audio_bytes_sent - last.audio_bytes_sent) / span / 1000
            v.video_up_kbps = 8 * (snap.video_bytes_sent - last.video_bytes_sent) / span / 1000
            v.down_kbps = 8 * (snap.bytes_received - last.bytes_received) / span / 1000
        v.muted = session.audio.muted
        v.video_on = session.video_on
        if self.source is not None and self.source.failed:
            self._warn_once("the microphone stopped; sending silence")
        if self.processor is not None:
            if self.processor.failed:
                self._warn_once(self.processor.failed)
            erle = self.processor.erle_db()
            label = self.processor.options.label()
            if not self.processor.ready:
                label += " (starting)"
            v.echo_cancel = label if erle is None else f"{label} · ERLE est. {erle:.0f} dB"
        if self.speaker is not None:
            self.speaker.check()
            if self.speaker.failed:
                self._warn_once("the speaker stopped; no sound")
                self._pull_on_wall_clock(self.speaker.last_pull)  # --record keeps the wall clock

    def _warn_once(self, message: str) -> None:
        if message not in self.view.warnings:
            self.view.warnings.append(message)

    # ------------------------------------------------------------------ keys

    def key(self, char: str) -> None:
        session = self.session
        if session is None:
            if char == "q":
                self._interrupt_start()
            return
        if char == "m":
            session.set_muted(not session.audio.muted)
            self.view.muted = session.audio.muted
        elif char == "v" and session.video is not None:
            session.set_video(not session.video_on)
            self.view.video_on = session.video_on
        elif char == "q":
            if session.timeline.connected is None:
                self._interrupt_start()
            else:
                session.end("user")
        if self.ui is not None:
            self.ui.refresh()

    def _interrupt_start(self) -> None:
        """q before the call connected: the same as Ctrl-C (no signal sent: on Windows
        os.kill would terminate the process instead of interrupting it)."""
        if self._on_interrupt is not None:
            self._on_interrupt()

    # ------------------------------------------------------------------ end

    async def _cleanup(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.source is not None:
            self.source.close()
        if self.video is not None:
            self.video.close()
        if self.puller is not None:
            await self.puller.stop()
        if self.speaker is not None:
            self.speaker.close()
        for recorder in (self.recorder, self.mic_recorder):
            if recorder is not None:
                recorder.close()
        self.events.close()
        if self.peer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.peer.close(), 3)
        if self.sandbox is not None:
            with contextlib.suppress(Exception):
                await self.sandbox.stop()

    async def _summary(self) -> dict[str, Any]:
        session = self.session
        first = self.first_session
        snap = self._last or StatsSnapshot()
        timeline = first.timeline if first is not None else None
        connected = timeline.connected if timeline else None
        duration = (time.time() - connected) if connected else 0.0
        outage_s = self.outage_s + (session.outage_seconds() if session is not None else 0.0)
        rx = self.receiver.stats if self.receiver is not None else None
        mean_delay = rx.mean_delay_ms if rx else None
        current_delay = self.receiver.buffer_ms if self.receiver is not None else None
        out: dict[str, Any] = {
            "conversation_id": session.conversation_id if session else None,
            "session_id": session.session_id if session else None,
            "duration_s": round(duration, 3),
            "ms_to_connected": timeline.ms(timeline.connected) if timeline else None,
            "ms_to_first_audio": timeline.ms(timeline.first_audio) if timeline else None,
            "ended_by": self.ended_by,
            "packets_sent": snap.packets_sent,
            "bytes_sent": snap.bytes_sent,
            "packets_received": rx.packets if rx else 0,
            "bytes_received": snap.bytes_received,
            "video_packets_sent": snap.video_packets_sent,
            "video_bytes_sent": snap.video_bytes_sent,
            "packets_lost": rx.lost if rx else 0,
            "packets_late": rx.late if rx else 0,
            "loss_pct": round(rx.loss_pct, 2) if rx else 0.0,
            "concealed_pct": round(rx.concealed_pct, 2) if rx else 0.0,
            "fec_recovered": rx.fec_recovered if rx else 0,
            "jitter_buffer_ms": {
                "mean": None if mean_delay is None else round(mean_delay, 1),
                "current": None if current_delay is None else round(current_delay, 1),
                "target": round(self.receiver.target_ms, 1) if self.receiver else None,
            },
            "time_stretch_ms": {
                "accelerated": round(1000 * rx.accelerated / 48000) if rx else 0,
                "expanded": round(1000 * rx.expanded / 48000) if rx else 0,
            },
            "playout_underruns": rx.underruns if rx else 0,
            "reconnects": self.reconnects,
            "outage_ms": round(1000 * outage_s),
            "jitter_ms": None if snap.jitter_ms is None else round(snap.jitter_ms, 2),
            "rtt_ms": None if snap.rtt_ms is None else round(snap.rtt_ms, 2),
            "local_candidate": snap.local_candidate,
            "remote_candidate": snap.remote_candidate,
            "modalities": session.modalities() if session else None,
            "record": str(self.req.outputs.record) if self.req.outputs.record else None,
            "record_seconds": round(self.recorder.seconds, 3) if self.recorder else None,
            "record_mic": str(self.req.outputs.record_mic) if self.req.outputs.record_mic else None,
            "mic_overflows": self.source.overflows if self.source is not None else 0,
            "processing": self.processor.options.label() if self.processor else "off",
            "erle_db_estimate": None
            if self.processor is None or self.processor.erle_db() is None
            else round(self.processor.erle_db(), 1),
        }
        return out
