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
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .api import OrgaClient, usable_token
from .callui import CallView, LivePanel, PlainLines
from .errors import CallError, ExitCode, Interrupted, OrgaError, UsageError, secrets
from .keys import open_keys
from .loop import handling
from .media.local import LocalMedia, MediaConfig
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
class Outputs:
    """Files the call keeps besides its recordings (those are MediaConfig's)."""

    events: Path | None = None
    transcript: Path | None = None
    stats: Path | None = None  # --stats: one JSON line a second


@dataclass
class Screen:
    """The terminal: a live panel (stderr is a terminal) and keys (stdin too)."""

    tty: bool = False
    keys: bool = False
    ptt: bool = False  # push-to-talk: the space bar switches the microphone on and off
    commands_from_stdin: bool = False  # stdin is not a terminal: each line is a command


@dataclass
class CallRequest:
    """Everything `orga call` was asked to do, by concern (the CLI builds it once from flags)."""

    connection: Connection = field(default_factory=Connection)
    params: CallParams = field(default_factory=CallParams)
    media: MediaConfig = field(default_factory=MediaConfig)
    outputs: Outputs = field(default_factory=Outputs)
    screen: Screen = field(default_factory=Screen)
    sandbox: Sandbox = field(default_factory=Sandbox)
    duration: float | None = None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


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


def read_command_lines(loop: asyncio.AbstractEventLoop, run: Callable[[str], None]) -> None:
    """Each line of stdin (not a terminal) is a command, carried out on *loop*.

    A daemon thread reads the file descriptor itself: a thread blocked in
    sys.stdin's buffered reader would hold its lock at interpreter exit.
    """
    import threading

    def reader() -> None:
        pending = b""
        while True:
            try:
                data = os.read(0, 4096)
            except OSError:
                return
            if not data:
                break
            pending += data
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                _deliver(raw)
        if pending:
            _deliver(pending)

    def _deliver(raw: bytes) -> None:
        line = raw.decode(errors="replace").strip()
        if line:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(run, line)

    threading.Thread(target=reader, name="orga-commands", daemon=True).start()


class JsonLines:
    """A file of JSON lines written as they come (line-buffered: complete after any ending)."""

    what = "file"

    def __init__(self, path: Path | None) -> None:
        self._fh: TextIO | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = path.open("w", encoding="utf-8", buffering=1)
            except OSError as exc:
                raise UsageError(f"cannot write {self.what} {path}: {exc.strerror or exc}") from exc

    def line(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(secrets.scrub(json.dumps(record, ensure_ascii=False)) + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class EventLog(JsonLines):
    """--events FILE.jsonl: every data-channel message both ways, with time and direction."""

    what = "events file"

    def write(self, direction: str, payload: Any, raw: str | None = None) -> None:
        record: dict[str, Any] = {"t": round(time.time(), 3), "dir": direction}
        if raw is not None and payload is None:
            record["raw"] = raw
        else:
            record["event"] = payload
        self.line(record)


class StatsLog(JsonLines):
    """--stats FILE.jsonl: the call's figures once a second."""

    what = "stats file"


class CallRunner:
    def __init__(self, request: CallRequest) -> None:
        self.req = request
        self.view = CallView()
        self.session: CallSession | None = None
        self.ui: LivePanel | PlainLines | None = None
        self.events = EventLog(None)
        self.stats_log = StatsLog(None)
        self.transcript: Any = None  # transcript.Transcript with --transcript
        self.media: LocalMedia | None = None
        self.reconnects = 0
        self.outage_s = 0.0
        self.first_session: CallSession | None = None
        self.sandbox: Any = None
        self.peer: Any = None
        self.ended_by = "error"
        self._on_interrupt: Callable[[], None] | None = None
        self._deadline: float | None = None
        self._last: StatsSnapshot | None = None
        self._queued: list[str] = []  # commands given before the call connected
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ set-up

    def _note(self, text: str) -> None:
        if self.ui is not None:
            self.ui.note(text)
        else:
            from .render import note

            note(text)

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
        from .render import native_stderr

        with handling((signal.SIGINT, signal.SIGTERM), on_sigint), native_stderr():
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
            req.media.stand_ins = req.sandbox.enabled
            self.media = media = LocalMedia(req.media, self._note)
            await media.open()
            media.sent_taps.append(self._sent)
            media.played_taps.append(self._played)
            self.view.audio_in = media.audio_in_label
            self.view.video = media.video.label if media.video else None
            self.view.audio_out = media.audio_out_label
            self.view.echo_cancel = media.echo_cancel
            self.events = EventLog(req.outputs.events)
            self.stats_log = StatsLog(req.outputs.stats)
            if req.outputs.transcript is not None:
                from .transcript import Transcript

                self.transcript = Transcript(req.outputs.transcript)
            loop = asyncio.get_running_loop()
            media.on_turn = lambda turn: self._call_soon(loop, self._turn, turn)
            media.on_device = lambda device, what, seconds: self.events.write(
                "local",
                {"type": f"orga.device_{what}", "device": device, "gone_s": round(seconds, 2)},
            )
            base_url, api_key = req.connection.base_url, req.connection.api_key
            if req.sandbox.enabled:
                base_url, api_key = await self._start_sandbox()
            client = OrgaClient(
                base_url or DEFAULT_BASE_URL,
                api_key,
                timeout=req.connection.timeout,
                insecure_http=req.connection.insecure_http,
            )
            self.view.ptt = req.screen.ptt
            self.view.muted = req.media.muted
            self._show_params()
            keys = open_keys(self.key) if req.screen.keys else None
            if req.screen.commands_from_stdin:
                read_command_lines(asyncio.get_running_loop(), self.command)
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
        media = self.media
        assert media is not None
        return CallSession(
            client,
            media.audio_track(),
            media.video,
            self.req.params,
            self.req.connection.options,
            token=token,
            on_phase=self._phase,
            on_event=self._event,
            receiver=media.receiver,
            on_media=self._media,
            on_uplink=self._uplink_event,
        )

    async def _dial(self, client: OrgaClient, token: Any) -> None:
        self.session = self._new_session(client, token)
        if self.first_session is None:
            self.first_session = self.session
            self.session.timeline.origin = process_start()  # what the user waited for
        await self.session.start()
        if self.view.connected_at is None:
            self.view.connected_at = time.monotonic()
            if self.transcript is not None:
                self.transcript.set_start(time.time())
        queued, self._queued = self._queued, []
        for line in queued:
            self.command(line)
        assert self.media is not None
        self.media.start_recording()

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
            assert self.media is not None
            await self.media.watch_devices()
            if time.monotonic() >= next_stats:  # getStats is not free: once a second
                next_stats = time.monotonic() + 1.0
                await self._update_stats()
            self.ui.refresh()
        self.ended_by = session.end_reason or "error"
        # The summary's counts are the call's last, not up to a second old.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._update_stats(), 2)

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
        if line is not None and self.transcript is not None:
            self.transcript.add(line[0], line[1], *self._utterance_times(line[0]))
        if line is not None and self.ui is not None:
            self.ui.line(*line)
        elif event.type is None:
            log.info("non-JSON message on the data channel: %s", event.raw[:200])
        elif event.type not in ("session.created", "conversation.created"):
            log.info("event %s: %s", event.type, event.raw[:300])

    def _utterance_times(self, speaker: str) -> tuple[float, float | None]:
        """When the utterance a transcript line is about was said: your last turn, or the
        reply to it if it came in the last few seconds; else now."""
        now = time.time()
        turns = self.media.turns.turns if self.media is not None else []
        last = turns[-1] if turns else None
        if last is not None and speaker == "you" and now - last.end < 10:
            return last.start, last.end
        if last is not None and speaker == "orga" and last.reply and now - last.reply < 5:
            return last.reply, None
        return now, None

    @staticmethod
    def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
        """From PortAudio's thread to the loop (a closing loop drops it)."""
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, *args)

    def _turn(self, turn: Any) -> None:
        """A reply was heard: the turn's latency on the panel and in --events."""
        assert self.media is not None
        latencies = self.media.turns.latencies_ms()
        self.view.turn_ms = turn.latency_ms
        self.view.turn_median_ms = statistics.median(latencies) if latencies else None
        self.view.turn_count = len(latencies)
        self.events.write("local", {"type": "orga.turn", **turn.to_json()})

    def _sent(self, block: Any) -> None:
        self.view.mic_block = block

    def _played(self, samples: Any) -> None:
        """What was handed to the speaker (or pulled on the wall clock): the meter."""
        self.view.remote_block = samples

    def _media(self, what: str, seconds: float) -> None:
        if what == "lost":
            self._note("no media from the server: reconnecting…")
            self.events.write("local", {"type": "orga.reconnecting", "silent_s": round(seconds, 1)})
        else:
            self._note(f"media is back after {seconds:.1f} s")
            self.events.write("local", {"type": "orga.reconnected", "outage_s": round(seconds, 1)})

    def _uplink_event(self, kind: str, data: dict[str, Any]) -> None:
        """The camera paused for the link, or back: on the panel and in --events."""
        kbps = data.get("uplink_kbps")
        if kind == "camera_paused":
            self._note(f"camera paused: uplink ~{kbps} kbit/s")
        elif kind == "camera_resumed":
            self._note(f"camera back: uplink ~{kbps} kbit/s")
        self.events.write("local", {"type": f"orga.{kind}", **data})

    async def _update_stats(self) -> None:
        session = self.session
        if session is None:
            return
        snap = await session.stats()
        self.view.uplink = session.uplink.snapshot()
        last, self._last = self._last, snap
        v = self.view
        v.local, v.remote = snap.local_candidate, snap.remote_candidate
        v.rtt_ms, v.jitter_ms = snap.rtt_ms, snap.jitter_ms
        media = self.media
        assert media is not None
        receiver = media.receiver
        rx = receiver.stats
        v.loss_pct = rx.loss_pct if rx.decoded + rx.lost else None
        # During an outage the delay only says how long it has lasted: the panel says so.
        playing = receiver.playing and not session.reconnecting
        v.buffer_ms = receiver.buffer_ms if playing else None
        v.buffer_target_ms = receiver.target_ms
        v.concealed_pct = rx.concealed_pct if rx.samples_out else None
        if last is not None and snap.at > last.at:
            span = snap.at - last.at
            v.up_kbps = 8 * (snap.audio_bytes_sent - last.audio_bytes_sent) / span / 1000
            v.video_up_kbps = 8 * (snap.video_bytes_sent - last.video_bytes_sent) / span / 1000
            v.down_kbps = 8 * (snap.bytes_received - last.bytes_received) / span / 1000
        v.video_on = session.video_on
        self._write_stats(snap, session, span_ok=last is not None and snap.at > last.at)
        v.warnings = await media.check()
        for warning in v.warnings:
            if warning not in self._warned:  # once each: the panel shows them as they last
                self._warned.add(warning)
                self.events.write("local", {"type": "orga.warning", "text": warning})
                if isinstance(self.ui, PlainLines):
                    self.ui.note(f"warning: {warning}")
        v.echo_cancel = media.echo_cancel

    def _write_stats(self, snap: StatsSnapshot, session: CallSession, *, span_ok: bool) -> None:
        """One line of --stats: the uplink, bitrates each way, RTT, loss, the buffer."""
        if self.stats_log._fh is None:
            return
        v = self.view
        u = v.uplink
        receiver = self.media.receiver if self.media is not None else None
        connected = self.view.connected_at
        record: dict[str, Any] = {
            "t": round(time.time(), 3),
            "since_connected_s": None
            if connected is None
            else round(time.monotonic() - connected, 2),
            "phase": v.phase,
            "sent_kbps": None
            if not span_ok
            else {"audio": _round(v.up_kbps, 1), "video": _round(v.video_up_kbps, 1)},
            "received_kbps": _round(v.down_kbps, 1) if span_ok else None,
            "rtt_ms": _round(v.rtt_ms, 1),
            "jitter_ms": _round(v.jitter_ms, 2),
            "loss_pct": _round(v.loss_pct, 2),
            "buffer_ms": _round(v.buffer_ms, 1),
            "concealed_pct": _round(v.concealed_pct, 2),
            "packets_sent": snap.packets_sent,
            "video_packets_sent": snap.video_packets_sent,
        }
        if u is not None:
            record["uplink"] = {
                "mode": u.mode,
                "estimate_kbps": round(u.estimate_bps / 1000, 1),
                "audio_kbps": round(u.audio_bps / 1000, 1),
                "video_kbps": round(u.video_bps / 1000, 1),
                "video_size": u.video_size,
                "video_fps": u.video_fps,
                "video_paused": u.video_paused,
                "queue_ms": _round(u.queue_ms, 1),
                "rtt_ms": _round(u.rtt_ms, 1),
                "loss_pct": round(u.loss_pct, 2),
                "remb_kbps": None if u.remb_bps is None else round(u.remb_bps / 1000, 1),
                "retransmitted": u.retransmitted,
                "probes": u.probes,
                "keyframes": u.keyframes,
                "frames_sent": u.frames_sent,
            }
        if receiver is not None:
            record["buffer_target_ms"] = _round(receiver.target_ms, 1)
        self.stats_log.line(record)

    # ------------------------------------------------------------------ keys

    def key(self, char: str) -> None:
        """One key from the terminal: the command line's while it is open, else a shortcut."""
        if self.view.command is not None:
            self._edit_command(char)
        elif char == "/":
            self.view.command = "/"
        elif char == " " and self.req.screen.ptt:
            self._set_muted(not self.view.muted)
        else:
            self._shortcut(char.lower())
        if self.ui is not None:
            self.ui.refresh()

    def _shortcut(self, char: str) -> None:
        session = self.session
        if char == "q":
            if session is None or session.timeline.connected is None:
                self._interrupt_start()
            else:
                session.end("user")
        elif char == "m":
            self._set_muted(not self.view.muted)
        elif char == "v":
            self._toggle_camera()

    def _set_muted(self, muted: bool) -> None:
        self.view.muted = muted
        if self.media is not None:
            self.media.muted = muted
        if self.session is not None:
            self.session.set_muted(muted)

    def _toggle_camera(self) -> None:
        session = self.session
        if session is None or session.video is None:
            self._note("there is no camera in this call")
            return
        session.set_video(not session.video_on)
        self.view.video_on = session.video_on

    def _edit_command(self, char: str) -> None:
        line = self.view.command or ""
        if char in ("\r", "\n"):
            self.view.command = None
            self.command(line)
        elif char == "\x1b":  # Esc
            self.view.command = None
        elif char in ("\x7f", "\x08"):
            self.view.command = line[:-1] or None
        elif char == "\t":
            from .commands import complete
            from .voices import all_voices

            self.view.command, matches = complete(line, [voice.name for voice in all_voices()])
            if matches:
                self._note("   ".join(matches[:12]) + ("   …" if len(matches) > 12 else ""))
        elif char.isprintable():
            self.view.command = line + char

    def command(self, line: str) -> None:
        """Carry out one command (commands.py): /voice, /temperature, /instructions,
        /mute, /camera, /help, /quit. A change sends one session.update."""
        from .commands import help_text, parse

        session = self.session
        if session is None or session.timeline.connected is None:
            # Before the call connects, commands wait for it: each change is then one
            # session.update, in the order given (what a script piping commands expects).
            self._queued.append(line)
            return
        try:
            cmd = parse(line)
            if cmd is None:
                return
            params = self.req.params
            if cmd.name == "voice":
                params.voice = resolve_voice(cmd.arg)
            elif cmd.name == "temperature":
                params.temperature = float(cmd.arg)
            elif cmd.name == "instructions":
                params.instructions = read_instructions(cmd.arg)
        except UsageError as exc:
            self._note(f"{exc.message}; {exc.hint}" if exc.hint else exc.message)
            return
        if cmd.name == "help":
            self._note(help_text())
        elif cmd.name == "quit":
            self._shortcut("q")
        elif cmd.name == "mute":
            self._set_muted(not self.view.muted)
            self._note("microphone muted" if self.view.muted else "microphone on")
        elif cmd.name == "camera":
            self._toggle_camera()
        else:
            self._show_params()
            shown = {"voice": params.voice, "temperature": f"{params.temperature:g}"}
            self._note(f"{cmd.name}: {shown.get(cmd.name, 'updated')}")
            if self.session is not None:  # before the call, the new value goes in POST /calls
                self.session.send_session_update()
        if self.ui is not None:
            self.ui.refresh()

    def _show_params(self) -> None:
        self.view.voice = self.req.params.voice
        self.view.temperature = self.req.params.temperature

    def _interrupt_start(self) -> None:
        """q before the call connected: the same as Ctrl-C (no signal sent: on Windows
        os.kill would terminate the process instead of interrupting it)."""
        if self._on_interrupt is not None:
            self._on_interrupt()

    # ------------------------------------------------------------------ end

    async def _cleanup(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.media is not None:
            await self.media.close()
        self.events.close()
        self.stats_log.close()
        if self.transcript is not None:
            self.transcript.close()
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
        receiver = self.media.receiver if self.media is not None else None
        rx = receiver.stats if receiver is not None else None
        mean_delay = rx.mean_delay_ms if rx else None
        current_delay = receiver.buffer_ms if receiver is not None else None
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
                "target": round(receiver.target_ms, 1) if receiver else None,
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
        }
        if self.media is not None:
            out.update(self.media.summary())
        else:
            out.update(LocalMedia(self.req.media).summary())
        if session is not None:
            out.update(session.uplink.summary())
        return out
