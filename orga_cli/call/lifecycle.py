"""A call's life, without its terminal: open the media, dial, watch, dial again, end.

`Call(request, screen).run()` does what `orga call` does and returns a `CallOutcome`
(the `--json` summary, the exit code, the error if any). The CLI gives it a screen (the
live panel or plain lines), feeds it keys and command lines (`key`, `command`: see
`controls.py`), and turns Ctrl-C into `interrupt()`; a Python caller can run it as it is.

Everything that can be checked is checked before the first request: the token's expiry,
the credentials, the input files, the devices, the output files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..api import OrgaClient, usable_token
from ..errors import CallError, ExitCode, Interrupted, OrgaError, UsageError, setting
from ..figures import CallFigures
from ..media.audio import level_dbfs
from ..media.local import LocalMedia
from ..models import DEFAULT_BASE_URL, ChannelEvent
from ..session import CallOptions, CallParams, CallSession
from .controls import Controls
from .records import Records
from .request import CallRequest
from .state import CallState, LogScreen, Screen

if TYPE_CHECKING:
    from ..sandbox import RunningSandbox

log = logging.getLogger(__name__)


@dataclass
class CallOutcome:
    summary: dict[str, Any]  # the --json summary
    exit_code: ExitCode
    error: OrgaError | None = None


@dataclass
class _Target:
    """Where this call goes: the API with the account's credentials, or a sandbox here."""

    base_url: str
    api_key: str | None
    options: CallOptions
    offline: bool  # a sandbox in this process: missing devices are stood in for


class Call:
    """One call from the request to its outcome (see the module docstring)."""

    def __init__(
        self, request: CallRequest, screen: Screen | None = None, *, origin: float | None = None
    ) -> None:
        self.req = request
        self.screen: Screen = screen or LogScreen()
        self.origin = origin  # what the call's milestones count from (default: now)
        self.state = CallState(muted=request.media.muted)
        self.controls = Controls(self.state, self, ptt=request.ptt)
        self.media = LocalMedia(request.media, self.note)
        self.records: Records | None = None
        self.session: CallSession | None = None
        self.first_session: CallSession | None = None
        self.sandbox: RunningSandbox | None = None  # with request.sandbox
        self.reconnects = 0
        self.outage_s = 0.0
        self.ended_by = "error"
        self._interrupted = False
        self._main: asyncio.Task[Any] | None = None
        self._deadline: float | None = None
        self._warned: set[str] = set()
        self._levels = [-100.0, -100.0]  # the loudest sent and played block since the last tick

    @property
    def params(self) -> CallParams:
        return self.req.params

    # ------------------------------------------------------------------ run

    async def run(self) -> CallOutcome:
        self._main = asyncio.current_task()
        error: OrgaError | None = None
        try:
            await self._run()
        except asyncio.CancelledError:
            if not self._interrupted:
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
        code = ExitCode.OK if error is None else error.exit_code
        outcome = CallOutcome(self.summary(), code, error)
        if self.records is not None:  # the record ends with how the call did, whatever it was
            self.records.stats.end(
                ended_by=self.ended_by,
                exit_code=int(code),
                error=None if error is None else error.one_line(),
                summary=outcome.summary,
            )
            self.records.close()
        return outcome

    def interrupt(self) -> None:
        """Ctrl-C: a connected call hangs up (its outputs complete); before that, the
        start is abandoned."""
        self._interrupted = True
        if self.connected():
            assert self.session is not None
            self.session.end("interrupt")
        elif self._main is not None:
            self._main.cancel()

    async def _run(self) -> None:
        req = self.req
        self.records = records = Records(
            req.outputs, self.origin if self.origin is not None else time.time()
        )
        records.stats.header(
            sandbox=req.sandbox is not None,
            base_url=None if req.sandbox is not None else req.connection.base_url,
            voice=req.params.voice,
            model=req.params.model,
            temperature=req.params.temperature,
            duration_s=req.duration,
            relay_only=req.connection.options.relay_only,
            ptt=req.ptt,
        )
        if req.connection.token is not None:
            usable_token(req.connection.token)
        target = await self._target()
        media = self.media
        media.config = replace(req.media, stand_ins=target.offline, muted=self.state.muted)
        media.muted = self.state.muted  # push-to-talk starts muted (controls.py)
        await media.open()
        media.sent_taps.append(self._sent)
        media.played_taps.append(self._played)
        self.state.audio_in = media.audio_in_label
        self.state.video = media.video.label if media.video else None
        self.state.audio_out = media.audio_out_label
        self.state.echo_cancel = media.echo_cancel
        self._moment(
            "media",
            audio_in=media.audio_in_label,
            audio_out=media.audio_out_label,
            video=self.state.video,
            processing=media.echo_cancel,
        )
        loop = asyncio.get_running_loop()
        media.on_turn = lambda turn: self._call_soon(loop, self._turn, turn)
        media.on_device = self._device
        client = OrgaClient(
            target.base_url,
            target.api_key,
            timeout=req.connection.timeout,
            insecure_http=req.connection.insecure_http,
        )
        async with client:
            await self._dial(client, target.options, req.connection.token)
            while True:
                await self._connected_loop()
                if not self._should_redial():
                    break
                await self._redial(client, target.options)

    async def _target(self) -> _Target:
        """The API and the account's credentials, or, with ``request.sandbox``, a sandbox
        started in this process (its URL and key; no email; devices stood in for)."""
        conn = self.req.connection
        spec = self.req.sandbox
        if spec is None:
            if conn.token is None and not conn.api_key:
                raise UsageError(
                    "no API key",
                    f"pass {setting('api_key')}, set ORGA_API_KEY, run `orga config set api_key`,"
                    f" or try {setting('sandbox')}",
                )
            return _Target(conn.base_url or DEFAULT_BASE_URL, conn.api_key, conn.options, False)
        from ..sandbox import start_sandbox
        from ..sandbox.peer import PeerConfig
        from ..sandbox.server import SandboxConfig

        ice = tuple(conn.options.ice_servers or ())  # handed out, and used by its peer
        peer = PeerConfig(reply=spec.reply, save_received=spec.save_received)
        self.sandbox = await start_sandbox(SandboxConfig(ice_servers=ice), peer)
        log.info("sandbox listening on %s", self.sandbox.base_url)
        options = replace(conn.options, email=None)
        return _Target(self.sandbox.base_url, self.sandbox.api_key, options, True)

    def _new_session(self, client: OrgaClient, options: CallOptions, token: Any) -> CallSession:
        media = self.media
        return CallSession(
            client,
            media.audio_track(),
            media.video,
            self.req.params,
            options,
            token=token,
            receiver=media.receiver,
            on_phase=self._phase,
            on_event=self._event,
            on_media=self._media,
            on_uplink=self._uplink_event,
            on_moment=self._moment,
        )

    async def _dial(self, client: OrgaClient, options: CallOptions, token: Any) -> None:
        self.session = self._new_session(client, options, token)
        if self.first_session is None:
            self.first_session = self.session
            if self.origin is not None:
                self.session.timeline.origin = self.origin
        await self.session.start()
        if self.state.connected_at is None:
            self.state.connected_at = time.monotonic()
            assert self.records is not None
            self.records.connected(time.time())
        self.controls.connected()
        self.media.start_recording()

    def _should_redial(self) -> bool:
        session = self.session
        return (
            session is not None
            and session.end_reason == "media"
            and self.req.connection.reconnect
            and not self._deadline_passed()
        )

    async def _redial(self, client: OrgaClient, options: CallOptions) -> None:
        """Media stayed away past the reconnect timeout: a new call on the same devices."""
        old = self.session
        assert old is not None and self.records is not None
        self.outage_s += old.outage_seconds()
        self.reconnects += 1
        self.note(f"media did not come back: dialing again (reconnect {self.reconnects})")
        self.records.events.local("redial", reconnects=self.reconnects)
        self._moment("redial", reconnects=self.reconnects)
        token = old.token
        if token is not None and not isinstance(token, str):
            left = token.seconds_left()
            if left is not None and left < 5:
                conn = self.req.connection
                if conn.token is not None and conn.api_key is None:
                    raise CallError(
                        f"the media was lost and the {setting('token')} given has expired:"
                        " cannot dial again",
                        f"leave out {setting('token')} so that orga can mint a new one",
                    )
                token = None  # a new one is minted
        await old.close()
        await self._dial(client, options, token)

    def _deadline_passed(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    async def _connected_loop(self) -> None:
        session = self.session
        assert session is not None
        if self._deadline is None and self.req.duration is not None:
            self._deadline = time.monotonic() + self.req.duration
        deadline = self._deadline
        next_tick = 0.0
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
            await self.media.watch_devices()
            if time.monotonic() >= next_tick:  # getStats is not free: once a second
                next_tick = time.monotonic() + 1.0
                await self._tick()
            self.screen.refresh()
        self.ended_by = session.end_reason or "error"
        # The summary's counts are the call's last, not up to a second old.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._tick(), 2)

    async def _tick(self) -> None:
        """Once a second: one snapshot of the call's figures, for every reader."""
        session = self.session
        if session is None:
            return
        connected = self.state.connected_at
        media = self.media.figures()
        (media.mic_dbfs, media.speaker_dbfs), self._levels = self._levels, [-100.0, -100.0]
        figures = CallFigures.take(
            await session.figures(),
            media,
            self.state.figures,
            phase=self.state.phase,
            connected_s=None if connected is None else time.monotonic() - connected,
        )
        self.state.figures = figures
        self.state.video_on = figures.session.video_on
        self.state.echo_cancel = figures.media.echo_cancel
        if self.records is not None:
            self.records.figures(figures)
        for warning in figures.media.warnings:
            if warning not in self._warned:  # once each: the panel shows them as they last
                self._warned.add(warning)
                if self.records is not None:
                    self.records.events.local("warning", text=warning)
                self._moment("warning", text=warning)
                self.screen.warning(warning)

    # ------------------------------------------------------------------ the controls' target

    def connected(self) -> bool:
        return self.session is not None and self.session.connected

    def key(self, char: str) -> None:
        """One key from a terminal (see controls.py)."""
        self.controls.key(char)
        self.screen.refresh()

    def command(self, line: str) -> None:
        """One command line (/voice NAME, /mute, ...; see controls.py)."""
        self.controls.command(line)
        self.screen.refresh()

    def hang_up(self) -> None:
        if self.connected():
            assert self.session is not None
            self.session.end("user")
        else:  # before the call connected: as Ctrl-C
            self.interrupt()

    def set_muted(self, muted: bool) -> None:
        self._moment("mute", muted=muted)
        self.media.muted = muted
        if self.session is not None:
            self.session.set_muted(muted)

    def set_camera(self, on: bool) -> bool:
        session = self.session
        if session is None or session.video is None:
            return False
        session.set_video(on)
        self._moment("camera", on=on)
        return True

    def send_session_update(self) -> None:
        if self.session is not None:  # before the call, the new values go in POST /calls
            self.session.send_session_update()

    def note(self, text: str) -> None:
        self.screen.note(text)

    # ------------------------------------------------------------------ callbacks

    def _phase(self, phase: str) -> None:
        self.state.phase = phase
        self.screen.refresh()

    def _event(self, direction: str, event: ChannelEvent | dict[str, Any]) -> None:
        events = self.records.events if self.records is not None else None
        if isinstance(event, dict):
            if events is not None:
                events.write(direction, event)
            return
        if events is not None:
            payload = event.data if event.type is not None or event.data else None
            events.write(direction, payload, event.raw)
        if self.session is not None:
            self.state.session_id = self.session.session_id
            self.state.conversation_id = self.session.conversation_id
        line = event.conversation_line()
        if line is not None:
            if self.records is not None:
                self.records.utterance(line[0], line[1], *self.media.utterance_times(line[0]))
            self.screen.line(*line)
        elif event.type is None:
            log.info("non-JSON message on the data channel: %s", event.raw[:200])
        elif event.type not in ("session.created", "conversation.created"):
            log.info("event %s: %s", event.type, event.raw[:300])

    @staticmethod
    def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
        """From PortAudio's thread to the loop (a closing loop drops it)."""
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, *args)

    def _turn(self, turn: Any) -> None:
        """A reply was heard: the turn's latency on the screen at once, and in --events."""
        figures = self.state.figures
        if figures is not None:
            latencies = self.media.turns.latencies_ms()
            figures.media.turn_ms = turn.latency_ms
            figures.media.turn_median_ms = statistics.median(latencies) if latencies else None
            figures.media.turn_count = len(latencies)
        if self.records is not None:
            self.records.events.local("turn", **turn.to_json())
        self._moment("turn", **turn.to_json())

    def _sent(self, block: Any) -> None:
        self.state.mic_block = block
        if self.records is not None and self.records.stats.open:
            self._levels[0] = max(self._levels[0], level_dbfs(block))

    def _played(self, samples: Any) -> None:
        """What was handed to the speaker (or pulled on the wall clock): the meter."""
        self.state.remote_block = samples
        if self.records is not None and self.records.stats.open:
            self._levels[1] = max(self._levels[1], level_dbfs(samples))

    def _moment(self, name: str, data: dict[str, Any] | None = None, **more: Any) -> None:
        """A moment of the call, in its record (--stats)."""
        if self.records is not None:
            self.records.moment(name, **(data or {}), **more)

    def _device(self, device: str, what: str, seconds: float) -> None:
        if self.records is not None:
            self.records.events.local(f"device_{what}", device=device, gone_s=round(seconds, 2))
        self._moment(f"device_{what}", device=device, gone_s=round(seconds, 2))

    def _media(self, what: str, seconds: float) -> None:
        events = self.records.events if self.records is not None else None
        if what == "lost":
            self.note("no media from the server: reconnecting…")
            if events is not None:
                events.local("reconnecting", silent_s=round(seconds, 1))
        else:
            self.note(f"media is back after {seconds:.1f} s")
            if events is not None:
                events.local("reconnected", outage_s=round(seconds, 1))

    def _uplink_event(self, kind: str, data: dict[str, Any]) -> None:
        """The camera paused for the link, or back: on the screen and in --events."""
        kbps = data.get("uplink_kbps")
        if kind == "camera_paused":
            self.note(f"camera paused: uplink ~{kbps} kbit/s")
        elif kind == "camera_resumed":
            self.note(f"camera back: uplink ~{kbps} kbit/s")
        if self.records is not None:
            self.records.events.local(kind, **data)
        self._moment(kind, **data)

    # ------------------------------------------------------------------ end

    async def _cleanup(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.media.close()
        if self.sandbox is not None:
            await self.sandbox.stop()

    def summary(self) -> dict[str, Any]:
        """The --json summary: the last figures, the milestones, what the media kept."""
        session, first = self.session, self.first_session
        figures = self.state.figures
        net = figures.session.net if figures is not None else None
        timeline = first.timeline if first is not None else None
        connected = timeline.connected if timeline else None
        duration = (time.time() - connected) if connected else 0.0
        outage_s = self.outage_s + (session.outage_seconds() if session is not None else 0.0)
        receiver = self.media.receiver
        rx = receiver.stats
        mean_delay = rx.mean_delay_ms
        out: dict[str, Any] = {
            "conversation_id": session.conversation_id if session else None,
            "session_id": session.session_id if session else None,
            "duration_s": round(duration, 3),
            "ms_to_connected": timeline.ms(timeline.connected) if timeline else None,
            "ms_to_first_audio": timeline.ms(timeline.first_audio) if timeline else None,
            "ended_by": self.ended_by,
            "packets_sent": net.packets_sent if net else 0,
            "bytes_sent": net.bytes_sent if net else 0,
            "packets_received": rx.packets,
            "bytes_received": net.bytes_received if net else 0,
            "video_packets_sent": net.video_packets_sent if net else 0,
            "video_bytes_sent": net.video_bytes_sent if net else 0,
            "packets_lost": rx.lost,
            "packets_late": rx.late,
            "loss_pct": round(rx.loss_pct, 2),
            "concealed_pct": round(rx.concealed_pct, 2),
            "fec_recovered": rx.fec_recovered,
            "jitter_buffer_ms": {
                "mean": None if mean_delay is None else round(mean_delay, 1),
                "current": None if receiver.buffer_ms is None else round(receiver.buffer_ms, 1),
                "target": round(receiver.target_ms, 1),
            },
            "time_stretch_ms": {
                "accelerated": round(1000 * rx.accelerated / 48000),
                "expanded": round(1000 * rx.expanded / 48000),
            },
            "playout_underruns": rx.underruns,
            "reconnects": self.reconnects,
            "outage_ms": round(1000 * outage_s),
            "jitter_ms": None if net is None or net.jitter_ms is None else round(net.jitter_ms, 2),
            "rtt_ms": None if net is None or net.rtt_ms is None else round(net.rtt_ms, 2),
            "local_candidate": net.local_candidate if net else None,
            "remote_candidate": net.remote_candidate if net else None,
            "modalities": session.modalities() if session else None,
        }
        out.update(self.media.summary())
        if session is not None:
            out.update(session.uplink.summary())
        return out
