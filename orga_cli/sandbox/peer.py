"""The sandbox's media peer: answers POST /calls with an aiortc peer that echoes.

What it hears comes back after ``delay`` seconds (the sound check of calling
apps), or each utterance is repeated ``delay`` seconds after it ends (``parrot``:
a model's turn-taking, so a client can measure turn latency against a known
delay), or it sends silence, or loops a file as the model's voice. Video is
decoded and counted. On the data channel it sends ``session.created`` (echoing
the params) and ``conversation.created``; with ``return_transcription`` it
detects utterances by energy and sends a transcription event whose text says
how long the utterance was: there is no speech recognizer here. The events' names are
written as the API reference spells them (shared/orga-api.md), not taken from the
client's models.py: a client that misnamed one would not be tested against itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets as pysecrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import MediaStreamError

from ..media.audio import (
    FRAME_SAMPLES,
    RATE,
    SILENCE,
    level_dbfs,
)
from ..media.fec import fec_requested, follow_reported_loss, with_opus_fec
from ..media.receive import AudioReceiver
from ..media.recording import WavWriter
from ..media.sources import FileSource, OpusTrack
from ..media.wallclock import WallClockPull
from ..models import DEFAULT_VOICE, MODEL, IceServer
from ..seams import feed_receiver
from .server import Busy, FieldError

if TYPE_CHECKING:
    from ..media.feedback import FeedbackSender
    from .network import Impairments

log = logging.getLogger(__name__)

REPLIES = ("echo", "parrot", "silence")  # or an audio file
SPEECH_DBFS = -42.0  # a block louder than this counts as speech
MIN_UTTERANCE_S = 0.25
END_SILENCE_S = 0.5


@dataclass
class PeerConfig:
    delay: float = 0.5  # echo delay, seconds
    reply: str = "echo"  # "echo", "parrot", "silence", or an audio file looped as the model's voice
    save_received: Path | None = None
    ice_servers: tuple[IceServer, ...] = ()
    stats_interval: float = 1.0
    fec: bool = True  # answer useinbandfec=1 when the offer has it, and send FEC
    network: Impairments | None = None  # a lossy relay in front of each call
    remb: bool = True  # estimate the video's bandwidth and send REMB (aiortc's receiver)
    transport_cc: bool = True  # accept transport-cc and send transport-wide feedback
    video_codec: str | None = None  # "vp8" or "h264": the one the answer picks, if offered
    max_calls: int | None = None  # more at once are refused (429 with Retry-After)
    max_loop_lag_ms: float | None = 40.0  # refuse new calls while the loop runs this late


class LoopLag:
    """How late this event loop runs: a 100 ms tick's lateness, the median of the last 2 s.

    Every call's packets go through the one loop of the sandbox; when its ticks come late,
    the loop is saturated and one call more would make every call's audio late. Started
    with the first call, stopped with the sandbox."""

    TICK = 0.1

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=20)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.TICK
            await asyncio.sleep(self.TICK)
            self.samples.append(max(0.0, loop.time() - due))

    def median_ms(self) -> float:
        if len(self.samples) < 5:
            return 0.0
        return 1000 * sorted(self.samples)[len(self.samples) // 2]

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


class ReplyTrack(OpusTrack):
    """The sandbox's voice: paced 20 ms packets of delayed echo, a file, or silence."""

    def __init__(
        self, delay: float, file: FileSource | None, *, echo: bool, parrot: bool = False
    ) -> None:
        super().__init__()
        self.delay = delay
        self.file = file
        self.echo = echo
        self.parrot = parrot
        blocks = int(10 * RATE / FRAME_SAMPLES)
        self._line: deque[tuple[float, np.ndarray]] = deque(maxlen=blocks)
        self._heard: deque[np.ndarray] = deque(maxlen=blocks)  # parrot: the last 10 s

    def hear(self, block: np.ndarray) -> None:
        if self.echo:
            self._line.append((time.monotonic() + self.delay, block))
        elif self.parrot:
            self._heard.append(block)

    def repeat(self, length: float) -> None:
        """Parrot: an utterance of *length* s ended END_SILENCE_S ago; say it again
        ``delay`` s after its end (at once if that is already past)."""
        step = FRAME_SAMPLES / RATE
        quiet, voiced = round(END_SILENCE_S / step), round(length / step)
        heard = list(self._heard)[-(voiced + quiet) : -quiet]
        start = max(time.monotonic(), time.monotonic() - END_SILENCE_S + self.delay)
        self._line.extend((start + i * step, block) for i, block in enumerate(heard))
        self._heard.clear()

    async def next_block(self) -> np.ndarray:
        await self._pacer.wait()
        if self.file is not None:
            return await self.file.read()
        if self._line and self._line[0][0] <= time.monotonic():
            return self._line.popleft()[1]
        return SILENCE


@dataclass
class Utterances:
    """Energy-based utterance detection on 20 ms blocks."""

    speaking: bool = False
    voiced: int = 0
    quiet: int = 0
    count: int = 0

    def feed(self, block: np.ndarray) -> float | None:
        """Returns an utterance's length in seconds when one ends."""
        loud = level_dbfs(block) > SPEECH_DBFS
        step = FRAME_SAMPLES / RATE
        if loud:
            self.speaking = True
            self.voiced += 1 + self.quiet
            self.quiet = 0
            return None
        if not self.speaking:
            return None
        self.quiet += 1
        if self.quiet * step < END_SILENCE_S:
            return None
        length = self.voiced * step
        self.speaking, self.voiced, self.quiet = False, 0, 0
        if length < MIN_UTTERANCE_S:
            return None
        self.count += 1
        return length


@dataclass
class EchoCall:
    conversation_id: str
    params: dict[str, Any]
    pc: RTCPeerConnection
    reply: ReplyTrack
    started: float = field(default_factory=time.monotonic)
    channel: Any = None
    audio_ms: float = 0.0
    video_frames: int = 0
    video_size: str | None = None
    session_updates: int = 0
    recording: WavWriter | None = None
    receiver: AudioReceiver = field(default_factory=AudioReceiver)
    puller: WallClockPull | None = None
    relay: Any = None
    feedback: FeedbackSender | None = None  # with transport-cc
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    utterances: Utterances = field(default_factory=Utterances)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    blackhole: MediaBlackhole = field(default_factory=MediaBlackhole)  # the unplayed track
    closed: bool = False

    def send(self, message: dict[str, Any]) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(json.dumps(message))


def without_remb(offer_sdp: str) -> str:
    """The offer without abs-send-time and goog-remb: aiortc's receiver then has nothing
    to estimate from and sends no REMB, and the answer does not ask for either (a receiver
    that sends receiver reports alone, as some do)."""
    eol = "\r\n" if "\r\n" in offer_sdp else "\n"
    keep = [
        line
        for line in offer_sdp.split(eol)
        if not (line.startswith("a=extmap:") and "abs-send-time" in line)
        and not (line.startswith("a=rtcp-fb:") and "goog-remb" in line)
    ]
    return eol.join(keep)


def preferring(offer_sdp: str, codec: str) -> str:
    """The offer's video section with *codec* alone (and its RTX), when it has it: the
    sandbox then answers with that codec (aiortc takes the first it knows otherwise)."""
    eol = "\r\n" if "\r\n" in offer_sdp else "\n"
    lines = offer_sdp.split(eol)
    sections: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    out = sections[0]
    for section in sections[1:]:
        if not section[0].startswith("m=video"):
            out += section
            continue
        names = {}
        for line in section:
            if line.startswith("a=rtpmap:"):
                pt, _, name = line[len("a=rtpmap:") :].partition(" ")
                names[pt] = name.split("/")[0].lower()
        keep = {pt for pt, name in names.items() if name == codec.lower()}
        for line in section:
            if line.startswith("a=fmtp:"):
                pt, _, params = line[len("a=fmtp:") :].partition(" ")
                apt = dict(p.split("=", 1) for p in params.split(";") if "=" in p).get("apt")
                if names.get(pt) == "rtx" and apt in keep:
                    keep.add(pt)
        if not any(names[pt] == codec.lower() for pt in keep):
            out += section
            continue
        for line in section:
            if line.startswith("m="):
                parts = line.split()
                line = " ".join(parts[:3] + [f for f in parts[3:] if f in keep])
            elif line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
                pt = line.split(":", 1)[1].split(" ", 1)[0]
                if pt != "*" and pt not in keep:
                    continue
            out.append(line)
    return eol.join(out)


class EchoPeer:
    """The /calls handler of the sandbox: one EchoCall per offer."""

    def __init__(self, config: PeerConfig | None = None) -> None:
        self.config = config or PeerConfig()
        self.calls: dict[str, EchoCall] = {}
        self._closing: set[asyncio.Future[None]] = set()
        self.lag = LoopLag()
        if self.config.reply not in REPLIES:
            FileSource(self.config.reply).close()  # fail at start-up, not at the first call

    async def __call__(self, offer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        limit, lag_limit = self.config.max_calls, self.config.max_loop_lag_ms
        if limit is not None and len(self.calls) >= limit:  # before any await: no race
            log.info("refused a call: %d of %d running", len(self.calls), limit)
            raise Busy(f"at its limit of {limit} concurrent calls")
        lag = self.lag.median_ms()
        if lag_limit is not None and lag > lag_limit:
            log.info("refused a call: %d running, the loop %.0f ms late", len(self.calls), lag)
            raise Busy(f"busy with {len(self.calls)} calls (its event loop runs {lag:.0f} ms late)")
        self.lag.start()
        conversation_id = "conv_" + pysecrets.token_hex(8)
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self.config.ice_servers
        ]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        file = None if self.config.reply in REPLIES else FileSource(self.config.reply, loop=True)
        echo, parrot = self.config.reply == "echo", self.config.reply == "parrot"
        delay = self.config.delay if echo or parrot else 0.0
        reply = ReplyTrack(delay, file, echo=echo, parrot=parrot)
        call = EchoCall(conversation_id, params, pc, reply)
        if self.config.save_received is not None:
            call.recording = WavWriter(self.config.save_received / f"{conversation_id}.wav")
        self.calls[conversation_id] = call
        pc.on("track", lambda track: self._track(call, track))
        pc.on("datachannel", lambda channel: self._channel(call, channel))
        pc.on("connectionstatechange", lambda: self._state(call))
        offer_sdp = offer["sdp"]
        if not self.config.remb:
            offer_sdp = without_remb(offer_sdp)
        if self.config.video_codec:
            offer_sdp = preferring(offer_sdp, self.config.video_codec)
        if self.config.network is not None:
            from .network import Relay

            call.relay = Relay(self.config.network, name=conversation_id)
        try:
            if call.relay is not None:
                offer_sdp = await call.relay.rewrite_offer(offer_sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:
            await self._close(call)
            raise FieldError("offer.sdp", f"offer.sdp could not be parsed: {exc}") from exc
        if not any(t.kind == "audio" for t in pc.getTransceivers()):
            await self._close(call)
            raise FieldError("offer.sdp", "offer.sdp has no audio section.")
        pc.addTrack(call.reply)  # the offer's audio transceiver becomes sendrecv
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio":
                # What it hears goes through the same kind of receive buffer as a client's.
                feed_receiver(transceiver.receiver, call.receiver.insert)
        call.puller = WallClockPull(call.receiver, [lambda block: self._heard(call, block)])
        call.puller.start()
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        sdp = pc.localDescription.sdp
        fec = self.config.fec and fec_requested(offer["sdp"])
        if fec:
            sdp = with_opus_fec(sdp, {"useinbandfec": "1"})
            call.reply.encoder.set_fec(True)
            sender = next(t.sender for t in pc.getTransceivers() if t.kind == "audio")
            call.tasks.append(
                asyncio.ensure_future(follow_reported_loss(sender, call.reply.encoder))
            )
        if self.config.transport_cc:
            sdp = self._transport_cc(call, offer["sdp"], sdp)
        if call.relay is not None:
            sdp = await call.relay.rewrite_answer(sdp)
        call.tasks.append(asyncio.ensure_future(self._report(call)))
        log.info(
            "call %s answered (voice %s, FEC %s)",
            conversation_id,
            params.get("voice", DEFAULT_VOICE),
            "on" if fec else "off",
        )
        return {
            "conversation_id": conversation_id,
            "answer": {"sdp": sdp, "type": "answer"},
        }

    @staticmethod
    def _transport_cc(call: EchoCall, offer_sdp: str, answer_sdp: str) -> str:
        """Accept transport-cc when the offer asks, and answer every numbered packet the
        peer receives with transport-wide feedback (aiortc knows neither)."""
        from .. import sdp as sdplib
        from ..media.feedback import FeedbackSender, accept_transport_cc
        from ..seams import intercept_srtp, srtp_send

        sdp, ident = accept_transport_cc(answer_sdp, offer_sdp)
        transports = [t.receiver.transport for t in call.pc.getTransceivers()]
        if ident is None or not transports:
            return answer_sdp
        ssrcs = [s for m in sdplib.parse(answer_sdp).media for s in m.ssrcs]
        dtls = transports[0]
        call.feedback = FeedbackSender(ident, srtp_send(dtls), ssrcs[0] if ssrcs else 1)
        intercept_srtp(dtls, incoming_rtp=call.feedback.on_packet)
        call.feedback.start()
        return sdp

    # ------------------------------------------------------------------ media

    def _track(self, call: EchoCall, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            # Its packets go to call.receiver (see __call__); the track itself stays empty.
            call.blackhole.addTrack(track)
            call.tasks.append(asyncio.ensure_future(call.blackhole.start()))
        else:
            call.tasks.append(asyncio.ensure_future(self._video(call, track)))

    def _heard(self, call: EchoCall, samples: np.ndarray) -> None:
        """What the receive buffer plays, on the wall clock, cut into 20 ms blocks."""
        if not call.receiver.playing:
            return
        call.pending = np.concatenate([call.pending, samples])
        while call.pending.size >= FRAME_SAMPLES:
            block, call.pending = call.pending[:FRAME_SAMPLES], call.pending[FRAME_SAMPLES:]
            call.audio_ms += 1000 * FRAME_SAMPLES / RATE
            call.reply.hear(block)
            if call.recording is not None:
                call.recording.write(block)
            length = call.utterances.feed(block)
            if length is not None:
                self._utterance(call, length)

    def _utterance(self, call: EchoCall, length: float) -> None:
        item = f"item_{call.utterances.count}"
        if call.params.get("return_transcription"):
            call.send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item,
                    "transcript": f"[{length:.1f} s of speech]",
                }
            )
        if call.reply.parrot:
            call.reply.repeat(length)
        if self.config.reply in ("echo", "parrot"):
            text = f'<emotion value="neutral"/>Echoing back {length:.1f} s of audio.'
            loop = asyncio.get_running_loop()
            loop.call_later(
                call.reply.delay,
                call.send,
                {"type": "response.output_item.done", "item_id": item, "text": text},
            )

    async def _video(self, call: EchoCall, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                call.video_frames += 1
                call.video_size = f"{frame.width}x{frame.height}"

    # ------------------------------------------------------------------ channel

    def _channel(self, call: EchoCall, channel: Any) -> None:
        call.channel = channel
        channel.on(
            "message", lambda message: self._message(call, message)
        )  # attached at once (aiortc #1194)
        params = call.params
        call.send(
            {
                "type": "session.created",
                "session": {
                    "id": "sess_" + call.conversation_id[5:],
                    "object": "realtime.session",
                    "model": params.get("model", MODEL),
                    "voice": params.get("voice", DEFAULT_VOICE),
                    "temperature": params.get("temperature", 0.5),
                    "instructions": params.get("instructions"),
                    "modalities": params.get("modalities", ["audio", "video"]),
                    "return_transcription": params.get("return_transcription", False),
                },
            }
        )
        call.send({"type": "conversation.created", "conversation": {"id": call.conversation_id}})

    def _message(self, call: EchoCall, message: Any) -> None:
        try:
            data = json.loads(message)
        except (TypeError, ValueError):
            log.info("call %s: non-JSON message on the data channel", call.conversation_id)
            return
        if isinstance(data, dict) and data.get("event") == "session.update":
            call.session_updates += 1
            update = data.get("data")
            if isinstance(update, dict):
                call.params.update({k: v for k, v in update.items() if k != "event"})
            log.info("call %s: session.update %s", call.conversation_id, json.dumps(update))

    async def _report(self, call: EchoCall) -> None:
        """A sandbox.stats event every second: what the sandbox received."""
        while not call.closed:
            await asyncio.sleep(self.config.stats_interval)
            call.send(
                {
                    "type": "sandbox.stats",
                    "audio_ms_received": round(call.audio_ms),
                    "video_frames_decoded": call.video_frames,
                    "video_size": call.video_size,
                    "session_updates": call.session_updates,
                    "voice": call.params.get("voice"),
                    "temperature": call.params.get("temperature"),
                    "buffer_ms": None
                    if call.receiver.buffer_ms is None
                    else round(call.receiver.buffer_ms, 1),
                    # what its receive buffer played, and of that what it concealed
                    "audio_played_ms": round(1000 * call.receiver.stats.samples_out / RATE),
                    "audio_concealed_ms": round(1000 * call.receiver.stats.concealed / RATE),
                    **self._network(call),
                }
            )

    @staticmethod
    def _network(call: EchoCall) -> dict[str, Any]:
        """The relay's bottlenecks over the last second, for a client to see its queue."""
        relay = call.relay
        if relay is None:
            return {}
        links = {"up": relay.up, "down": relay.down}
        shown = {name: link.last_second() for name, link in links.items() if link.imp.limited}
        return {"network": shown} if shown else {}

    # ------------------------------------------------------------------ end

    def _state(self, call: EchoCall) -> None:
        if call.pc.connectionState in ("failed", "closed"):
            self._closing.add(asyncio.ensure_future(self._close(call)))

    async def _close(self, call: EchoCall) -> None:
        if call.closed:
            return
        call.closed = True
        for task in call.tasks:
            task.cancel()
        if call.feedback is not None:
            await call.feedback.stop()
        if call.puller is not None:
            await call.puller.stop()
        await call.blackhole.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(call.pc.close(), 2)
        if call.relay is not None:
            call.relay.close()
        if call.reply.file is not None:
            call.reply.file.close()
        if call.recording is not None:
            call.recording.close()
        self.calls.pop(call.conversation_id, None)
        log.info(
            "call %s ended after %.1f s: %.1f s of audio and %d video frames received",
            call.conversation_id,
            time.monotonic() - call.started,
            call.audio_ms / 1000,
            call.video_frames,
        )

    async def close(self) -> None:
        self.lag.stop()
        await asyncio.gather(*(self._close(call) for call in list(self.calls.values())))
