"""CallSession: one realtime call, from the token to the hang-up.

token -> ICE servers -> RTCPeerConnection (exactly those servers) -> audio
sendrecv, video sendonly, data channel -> offer -> bounded gathering -> POST
/calls -> answer -> connected. It reports through callbacks and never prints.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

from .api import OrgaClient
from .channel import ChannelSender
from .errors import CallError, MediaError, OrgaError, redact_bearer, secrets, setting
from .figures import SessionFigures
from .ice import (
    candidate_facts,
    candidate_types,
    choose_ice_servers,
    has_audio_section,
    mask_candidate,
    mask_pair,
    sdp_explained,
)
from .media.fec import fec_requested, follow_reported_loss, with_opus_fec
from .media.receive import AudioReceiver
from .media.sources import AudioSourceTrack, VideoInput
from .media.uplink import Uplink, with_transport_cc
from .media.video import EncodedVideoTrack
from .models import DEFAULT_VOICE, MODEL, ChannelEvent, IceServer, Token
from .probe import port_refused
from .seams import (
    DtlsFailureReason,
    SeamMissing,
    bound_gathering,
    candidate_pairs,
    feed_receiver,
    nominated_pair,
)
from .stats import StatsSnapshot, read_report

log = logging.getLogger(__name__)

CHANNEL_LABEL = "orga-realtime-client-events"


@dataclass
class CallParams:
    """The ``params`` of POST /calls (the SDK's defaults)."""

    voice: str = DEFAULT_VOICE
    model: str = MODEL
    temperature: float = 0.5
    return_transcription: bool = False
    instructions: str | None = None
    history: bool = True

    def to_json(self, modalities: list[str]) -> dict[str, Any]:
        return {
            "voice": self.voice,
            "model": self.model,
            "temperature": self.temperature,
            "return_transcription": self.return_transcription,
            "instructions": self.instructions,
            "modalities": modalities,
            "history": self.history,
        }

    def session_update(self, modalities: list[str]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "voice": self.voice,
            "temperature": self.temperature,
            "modalities": modalities,
        }
        if self.instructions is not None:
            data["instructions"] = self.instructions
        return {"event": "session.update", "data": data}


@dataclass
class CallOptions:
    ice_timeout: float = 2.0  # bound on candidate gathering
    connect_timeout: float = 10.0  # bound on ICE + DTLS after the answer
    media_gap: float = 1.5  # no audio from the server this long: "reconnecting…"
    reconnect_timeout: float = 20.0  # ... this long: the call is lost (the caller may dial again)
    relay_only: bool = False
    ice_servers: list[IceServer] | None = None  # overrides the API's list
    email: str | None = None
    dump_sdp: Path | None = None


@dataclass
class Timeline:
    """Milestones as epoch seconds (None until reached), counted from ``origin``.

    The origin is when the call was created; the CLI moves it to the start of
    the process, so that `orga call --json` counts what a user waited for.
    """

    origin: float = field(default_factory=time.time)
    token: float | None = None
    ice_config: float | None = None
    offer: float | None = None
    answer: float | None = None
    connected: float | None = None
    first_audio: float | None = None

    def ms(self, moment: float | None) -> int | None:
        return None if moment is None else round((moment - self.origin) * 1000)


class CallSession:
    """One call. ``await start()`` connects; ``ended`` is set when it ends, ``close()`` cleans up.

    *audio* is the track to send (``AudioSourceTrack`` over any block source), *video* a
    camera or file (or None), and *receiver* the receive buffer that the model's voice goes
    to, packet by packet, for whoever plays it to pull (a ``Speaker``, ``WallClockPull``).
    """

    def __init__(
        self,
        client: OrgaClient,
        audio: AudioSourceTrack,
        video: VideoInput | None,
        params: CallParams,
        options: CallOptions | None = None,
        *,
        receiver: AudioReceiver,
        token: Token | str | None = None,
        on_phase: Callable[[str], None] | None = None,
        on_event: Callable[[str, ChannelEvent | dict[str, Any]], None] | None = None,
        on_media: Callable[[str, float], None] | None = None,
        on_uplink: Callable[[str, dict[str, Any]], None] | None = None,
        on_moment: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.client = client
        self.audio = audio
        self.video = video
        self.params = params
        self.options = options or CallOptions()
        self.token = token
        self.timeline = Timeline()
        self.phase = "starting"
        self.conversation_id: str | None = None
        self.session_id: str | None = None
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self.end_error: OrgaError | None = None
        self.ice_notes: list[str] = []
        self.local_types: list[str] = []
        self.remote_types: list[str] = []
        self.receiver = receiver
        self.reconnecting = False
        self.outage_s = 0.0
        self._on_phase = on_phase or (lambda phase: None)
        self._on_event = on_event or (lambda direction, event: None)
        self._on_media = on_media or (lambda what, seconds: None)
        # Each moment of the connection (token, ICE servers, candidates, pair checks, DTLS,
        # the data channel, first audio each way, outages, session.update): a call's record.
        self._on_moment = on_moment or (lambda name, data: None)
        # What is sent up: encoded here at the size and bitrate the link allows, paced,
        # and measured (media/uplink.py).
        self.encoded_video = (
            None
            if video is None
            else EncodedVideoTrack(video.track, video.width, video.height, video.fps)
        )
        self.uplink = Uplink(audio.encoder, self.encoded_video, on_event=on_uplink)
        self._next_probe = 0.0  # when media stops: is the server's port still open?
        self._pc: RTCPeerConnection | None = None
        self._sender: ChannelSender | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._blackhole = MediaBlackhole()  # remote tracks nobody plays are read all the same
        self._video_sending = video is not None
        self._closed = False
        self._connected_at: float | None = None  # when the state changed, not when polled
        self._dtls_failure = DtlsFailureReason()
        self._last_heard = time.monotonic()
        self._fec_asked = False
        self._outage_start = time.monotonic()

    # ------------------------------------------------------------------ public

    def modalities(self) -> list[str]:
        """What is really being sent: no "audio" while muted, no "video" with the camera off."""
        out = [] if self.audio.muted else ["audio"]
        return [*out, "video"] if self._video_sending else out

    @property
    def video_on(self) -> bool:
        return self._video_sending

    @property
    def connected(self) -> bool:
        """Has the call connected (it may have ended since)?"""
        return self.timeline.connected is not None

    async def start(self) -> None:
        """Connect, or raise an OrgaError saying which step failed."""
        self._dtls_failure.attach()
        token = await self._token()
        servers = await self._ice_servers(token)
        pc = self._peer_connection(servers)
        offer = await self._offer(pc)
        answer = await self._post_offer(token, offer)
        await self._apply_answer(pc, answer)
        await self._wait_connected(pc)

    def set_muted(self, muted: bool) -> None:
        if self.audio.muted != muted:
            self.audio.muted = muted
            self.send_session_update()

    def set_video(self, on: bool) -> None:
        if self.video is None or self._video_sending == on:
            return
        self.video.enabled = on
        self._video_sending = on
        self.send_session_update()

    def send_session_update(self) -> None:
        update = self.params.session_update(self.modalities())
        data = update["data"]
        self._moment(
            "session_update",
            modalities=data["modalities"],
            voice=data["voice"],
            temperature=data["temperature"],
        )
        self.send(update)

    def _moment(self, name: str, **data: Any) -> None:
        try:
            self._on_moment(name, data)
        except Exception:  # a record that fails must not end the call
            log.exception("recording the moment %s", name)

    def send(self, message: dict[str, Any]) -> None:
        if self._sender is not None:
            self._sender.send(message)

    def end(self, reason: str, error: OrgaError | None = None) -> None:
        """Mark the call as ended (first reason wins)."""
        if not self.ended.is_set():
            self.end_reason = reason
            self.end_error = error
            self.ended.set()

    async def stats(self) -> StatsSnapshot:
        snap = StatsSnapshot()
        if self._pc is None:
            return snap
        try:
            report = await asyncio.wait_for(self._pc.getStats(), 1.0)
        except (asyncio.TimeoutError, Exception):
            return snap
        read_report(report, snap)
        snap.local_candidate, snap.remote_candidate = self.selected_pair()
        return snap

    async def figures(self) -> SessionFigures:
        """What the session knows now: getStats, the nominated pair, the uplink."""
        return SessionFigures(
            await self.stats(), self.uplink.snapshot(), self._video_sending, self.reconnecting
        )

    def selected_pair(self) -> tuple[str | None, str | None]:
        """The nominated candidate pair as ``type addr:port`` strings."""
        pair = None if self._pc is None else nominated_pair(self._pc)
        if pair is None:
            return None, None
        local, remote = pair
        return (
            f"{local.type} {local.host}:{local.port}",
            f"{remote.type} {remote.host}:{remote.port}",
        )

    async def close(self) -> None:
        """Release everything, bounded: tracks, tasks, then the peer connection."""
        if self._closed:
            return
        self._closed = True
        self._dtls_failure.detach()
        await self.uplink.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # bounded, and never waiting on a task that will not end
            await asyncio.wait(self._tasks, timeout=1)
        await self._blackhole.stop()
        if self._pc is not None:
            try:
                await asyncio.wait_for(self._pc.close(), 2)
            except (asyncio.TimeoutError, Exception) as exc:
                log.debug("closing the peer connection: %r", exc)
        # Stop our track after the pc (stopping tracks first can hang pc.close, aiortc #283).
        # The sources behind the tracks belong to the caller: a new call may use them again.
        self.audio.stop()

    # ------------------------------------------------------------------ steps

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        log.debug("phase: %s", phase)
        self._on_phase(phase)

    async def _token(self) -> Token | str:
        if self.token is not None:
            return self.token
        self._set_phase("token")
        token = await self.client.create_token(email=self.options.email)
        self.timeline.token = time.time()
        self.token = token
        left = token.seconds_left()
        self._moment("token", expires_in_s=None if left is None else round(left))
        return token

    async def _ice_servers(self, token: Token | str) -> list[IceServer]:
        if self.options.ice_servers is not None:
            self._moment("ice_servers", source="options", urls=_urls(self.options.ice_servers))
            return self.options.ice_servers
        self._set_phase("ICE config")
        servers = await self.client.ice_servers(token)
        self.timeline.ice_config = time.time()
        self._moment("ice_servers", source="api", urls=_urls(servers))
        return servers

    def _peer_connection(self, servers: list[IceServer]) -> RTCPeerConnection:
        chosen, notes = choose_ice_servers(servers)
        self.ice_notes = notes
        self._moment("ice_choice", used=[str(s.urls) for s in chosen], notes=notes)
        for note in notes:
            log.info("ICE: %s", note)
        if not chosen:
            log.info("ICE: no STUN/TURN servers: host candidates only")
        if self.options.relay_only and not any(
            str(s.urls).startswith(("turn:", "turns:")) for s in chosen
        ):
            raise CallError(
                f"{setting('relay_only')} needs a TURN server",
                f"pass {setting('ice_servers', 'turn:…')} with credentials",
            )
        config = RTCConfiguration(
            iceServers=chosen,  # an explicit list: never aiortc's default public STUN server
            iceTransportPolicy=RTCIceTransportPolicy.RELAY
            if self.options.relay_only
            else RTCIceTransportPolicy.ALL,
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        )
        pc = RTCPeerConnection(configuration=config)
        self._pc = pc
        audio = pc.addTransceiver(self.audio, direction="sendrecv")
        try:  # received audio goes, packet by packet, to the receive buffer
            feed_receiver(audio.receiver, self.receiver.insert)
        except SeamMissing as exc:
            raise MediaError(
                f"this aiortc cannot hand received audio to orga ({exc})",
                "install the aiortc version orga pins (pip install -e .)",
            ) from exc
        if self.encoded_video is not None:
            pc.addTransceiver(self.encoded_video, direction="sendonly")
        channel = pc.createDataChannel(CHANNEL_LABEL)
        self._sender = ChannelSender(channel, lambda message: self._on_event("out", message))
        channel.on("message", self._channel_message)
        channel.on("open", lambda: self._moment("channel_open", label=CHANNEL_LABEL))
        channel.on("close", lambda: self._peer_gone("the server closed the data channel"))
        pc.on("track", self._remote_track)
        pc.on("connectionstatechange", lambda: self._state_changed(pc))
        pc.on("iceconnectionstatechange", lambda: self._ice_state(pc))
        pc.on(
            "icegatheringstatechange", lambda: log.info("ICE gathering: %s", pc.iceGatheringState)
        )
        self.send_session_update()  # queued until the channel is open and heard from
        return pc

    async def _offer(self, pc: RTCPeerConnection) -> dict[str, Any]:
        self._set_phase("gathering")
        offer = await pc.createOffer()
        # aioice's 5 s per STUN/TURN query, bounded by --ice-timeout (seams.py)
        bound_gathering(pc, self.options.ice_timeout)
        started = time.monotonic()
        await pc.setLocalDescription(offer)
        local = pc.localDescription
        self.local_types = candidate_types(local.sdp)
        gathering_ms = (time.monotonic() - started) * 1000
        log.info(
            "ICE gathering took %.0f ms: %s",
            gathering_ms,
            ", ".join(self.local_types) or "no candidates",
        )
        self._moment("gathered", ms=round(gathering_ms), candidates=candidate_facts(local.sdp))
        if not self.local_types:
            raise CallError(
                "no ICE candidates: this machine has no network address aioice can use"
                " (it never offers 127.0.0.1)",
                "connect a network, or on Linux add a loopback address: `sudo ip addr add 127.0.0.2/8 dev lo`",
            )
        self.timeline.offer = time.time()
        candidates = []
        for line in local.sdp.splitlines():
            if line.startswith("a=candidate:"):
                candidates.append({"candidate": line[2:], "sdpMid": "0", "sdpMLineIndex": 0})
        # Ask for Opus in-band FEC as browsers do; our receiver decodes it (media/receive.py).
        # And transport-wide congestion control feedback (media/uplink.py).
        sdp = with_transport_cc(with_opus_fec(local.sdp))
        return {"sdp": sdp, "type": "offer", "candidates": candidates}

    async def _post_offer(self, token: Token | str, offer: dict[str, Any]) -> Any:
        self._set_phase("negotiating")
        params = self.params.to_json(self.modalities())
        self._dump("request.json", {"offer": offer, "params": params})
        self._dump("offer.sdp", offer["sdp"])
        answer = await self.client.create_call(token, offer, params)
        self._dump(
            "response.json",
            {
                "conversation_id": answer.conversation_id,
                "answer": {"type": answer.type, "sdp": answer.sdp},
            },
        )
        self._dump("answer.sdp", answer.sdp)
        self.timeline.answer = time.time()
        self.conversation_id = answer.conversation_id
        self._moment("answer", conversation_id=answer.conversation_id)
        return answer

    async def _apply_answer(self, pc: RTCPeerConnection, answer: Any) -> None:
        sdp = answer.sdp
        if not sdp.startswith("v=0"):
            raise CallError(
                "/calls answered with something that is not SDP",
                f"check the server or {setting('dump_sdp', 'DIR')}",
            )
        if not has_audio_section(sdp):
            raise CallError(
                "the answer has no audio section (m=audio)", "the server rejected audio"
            )
        try:
            self._moment("sdp", **sdp_explained(pc.localDescription.sdp, sdp))
        except OrgaError as exc:  # the record explains what it can; the call goes on
            log.info("the answer could not be explained for the record: %s", exc.message)
        self.remote_types = candidate_types(sdp)
        self._fec_asked = fec_requested(sdp)
        self.audio.encoder.set_fec(self._fec_asked)
        log.info(
            "the answer %s Opus in-band FEC", "asks for" if self._fec_asked else "does not ask for"
        )
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:
            raise CallError(
                f"the answer SDP was rejected: {exc}",
                f"run with {setting('dump_sdp', 'DIR')} and inspect answer.sdp",
            ) from exc
        transports = [t.sender.transport for t in pc.getTransceivers() if t.sender.transport]
        if transports:
            self.uplink.attach(transports[0], pc.localDescription.sdp, sdp)
            dtls = transports[0]
            dtls.on("statechange", lambda: self._dtls_state(dtls))
        self._moment("answer_applied", fec=self._fec_asked, remote_candidates=candidate_facts(sdp))
        self._tasks.append(asyncio.ensure_future(self._watch_pairs(pc)))
        self._set_phase("connecting")

    async def _wait_connected(self, pc: RTCPeerConnection) -> None:
        deadline = self.options.connect_timeout
        try:
            await asyncio.wait_for(self._until_connected(pc), deadline)
        except asyncio.TimeoutError:
            raise self._connect_error(pc, f"not connected within {deadline:g} s") from None

    async def _until_connected(self, pc: RTCPeerConnection) -> None:
        while pc.connectionState != "connected":
            if pc.connectionState in ("failed", "closed"):
                raise self._connect_error(pc, "failed")
            await asyncio.sleep(0.01)
        self.timeline.connected = self._connected_at or time.time()
        self._last_heard = time.monotonic()
        local, remote = self.selected_pair()
        self._moment("connected", local=mask_pair(local), remote=mask_pair(remote))
        self.audio.taps.append(self._first_sent)
        self._tasks.append(asyncio.ensure_future(self._watchdog()))
        if self._fec_asked:
            sender = next(t.sender for t in pc.getTransceivers() if t.kind == "audio")
            self._tasks.append(
                asyncio.ensure_future(follow_reported_loss(sender, self.audio.encoder))
            )
        self._set_phase("connected")

    async def _watchdog(self) -> None:
        """Media that stops is an outage until it comes back, or until reconnect_timeout.

        A server that really vanished is noticed sooner: its port answers our
        packets with ICMP "port unreachable" (or its data channel closes).
        """
        opts = self.options
        while not self.ended.is_set():
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if self.receiver.last_arrival is not None:
                self._last_heard = max(self._last_heard, self.receiver.last_arrival)
            first = self.receiver.first_arrival
            if self.timeline.first_audio is None and first is not None:
                self.timeline.first_audio = time.time() - (now - first)
                self._moment("first_audio_received", at=self.timeline.first_audio)
            silent = now - self._last_heard
            if silent > 0.5 and now >= self._next_probe:
                self._next_probe = now + 1.0
                if await self._port_refused():
                    self._peer_gone('its address answers "port unreachable": it has gone away')
                    return
            if not self.reconnecting and silent > opts.media_gap:
                self.reconnecting = True
                log.info("no media from the server for %.1f s: reconnecting…", silent)
                self._moment("media_lost", silent_s=round(silent, 2))
                self._on_media("lost", silent)
                self._set_phase("reconnecting")
            elif self.reconnecting and silent < opts.media_gap:
                self.reconnecting = False
                outage = now - self._outage_start
                self.outage_s += outage
                log.info("media is back after %.1f s", outage)
                self._moment("media_back", outage_s=round(outage, 2))
                self._on_media("back", outage)
                self._set_phase("connected")
            if self.reconnecting:
                if silent > opts.reconnect_timeout:
                    self.end(
                        "media",
                        CallError(
                            f"no media from the server for {silent:.0f} s",
                            f"check the network; {setting('reconnect_timeout')} waits longer",
                        ),
                    )
                    return
            else:
                self._outage_start = self._last_heard

    def outage_seconds(self) -> float:
        """How long media has been away in this call, the outage going on included."""
        ongoing = time.monotonic() - self._outage_start if self.reconnecting else 0.0
        return self.outage_s + ongoing

    async def _port_refused(self) -> bool:
        """Does the server's address (the nominated pair's remote end) answer "port
        unreachable"? aioice's own sockets are not connected and never hear it."""
        pair = None if self._pc is None else nominated_pair(self._pc)
        return pair is not None and await port_refused(pair[1].host, pair[1].port)

    def _connect_error(self, pc: RTCPeerConnection, what: str) -> CallError:
        error = self._connect_error_for(pc, what)
        self._moment(
            "connect_failed",
            ice=pc.iceConnectionState,
            dtls_reason=self._dtls_failure.reason,
            error=error.one_line(),
        )
        return error

    def _connect_error_for(self, pc: RTCPeerConnection, what: str) -> CallError:
        local = ", ".join(self.local_types) or "none"
        remote = ", ".join(self.remote_types) or "none"
        tried = f"local candidates: {local}; remote: {remote}"
        if pc.iceConnectionState in ("completed", "connected"):
            if self._dtls_failure.reason == "fingerprint mismatch":
                return CallError(
                    f"DTLS handshake {what} after ICE connected ({tried}): the server's"
                    " certificate does not match the fingerprint in its answer",
                    "something between you and the server rewrote the answer or the handshake;"
                    f" check {setting('base_url')} and any proxy ({setting('dump_sdp', 'DIR')} keeps the answer)",
                )
            return CallError(
                f"DTLS handshake {what} after ICE connected ({tried})",
                f"a middlebox may be dropping DTLS; try TURN ({setting('relay_only')}) or `orga ice --probe`",
            )
        return CallError(
            f"ICE {what}: no working path ({tried})",
            f"run `orga ice --probe`, and try TURN with {setting('ice_servers', 'turn:…')} {setting('relay_only')}",
        )

    # ------------------------------------------------------------------ events

    def _state_changed(self, pc: RTCPeerConnection) -> None:
        log.info("connection: %s (ICE %s)", pc.connectionState, pc.iceConnectionState)
        if pc.connectionState == "connected" and self._connected_at is None:
            self._connected_at = time.time()
        if self.timeline.connected is not None and pc.connectionState in ("failed", "closed"):
            self._peer_gone(f"the connection {pc.connectionState}")

    def _ice_state(self, pc: RTCPeerConnection) -> None:
        log.info("ICE connection: %s", pc.iceConnectionState)
        self._moment("ice_state", state=pc.iceConnectionState)

    def _dtls_state(self, dtls: Any) -> None:
        reason = self._dtls_failure.reason if dtls.state == "failed" else None
        self._moment("dtls", state=dtls.state, reason=reason)

    def _first_sent(self, block: Any) -> None:
        self.audio.taps.remove(self._first_sent)
        self._moment("first_audio_sent")

    async def _watch_pairs(self, pc: RTCPeerConnection) -> None:
        """Each candidate pair's checks as they change (aioice's check list, seams.py),
        from the answer until ICE ends its checks."""
        seen: dict[tuple[str, str], str] = {}
        deadline = time.monotonic() + self.options.connect_timeout + 1
        while time.monotonic() < deadline:
            for local, remote, state, nominated in candidate_pairs(pc):
                key = (mask_candidate(local), mask_candidate(remote))
                shown = f"{state} nominated" if nominated else state
                if seen.get(key) != shown:
                    seen[key] = shown
                    self._moment("pair", local=key[0], remote=key[1], state=shown)
            if pc.iceConnectionState in ("completed", "failed", "closed"):
                return
            if self._connected_at is not None:  # the checks left go on a second at most
                deadline = min(deadline, time.monotonic() + 1.0)
            await asyncio.sleep(0.05)

    def _peer_gone(self, why: str) -> None:
        if self._closed or self.timeline.connected is None:
            return
        if not self.ended.is_set():
            self._moment("peer_gone", why=why)
        self.end("peer", CallError(f"the server ended the call ({why})", "recordings are kept"))

    def _channel_message(self, message: str | bytes) -> None:
        self._last_heard = time.monotonic()
        event = ChannelEvent.parse(message)
        if self._sender is not None:
            self._sender.mark_ready()  # the server listens on this channel
        self.session_id = event.session_id() or self.session_id
        self.conversation_id = event.conversation_id() or self.conversation_id
        self._on_event("in", event)

    def _remote_track(self, track: MediaStreamTrack) -> None:
        # Received audio never reaches the track: its packets go to self.receiver.
        log.info("remote %s track", track.kind)
        self._blackhole.addTrack(track)
        self._tasks.append(asyncio.ensure_future(self._blackhole.start()))

    def _dump(self, name: str, content: str | dict[str, Any]) -> None:
        folder = self.options.dump_sdp
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        (folder / name).write_text(redact_bearer(secrets.scrub(text)))


def _urls(servers: list[IceServer]) -> list[str]:
    """The servers' URLs (their credentials are not shown)."""
    return [url for server in servers for url in server.urls]
