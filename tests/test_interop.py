"""orga against a peer that is not orga: a plain aiortc peer written here with aiortc's own
objects (a tone track encoded by aiortc's Opus encoder, MediaRecorder for what it hears),
and an in-process CallSession whose server vanishes."""

from __future__ import annotations

import asyncio
import fractions
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRecorder

from orga_cli.sandbox import start_sandbox

from .helpers.audio import dominant_hz, read_wav, rms
from .helpers.orga import account, clean_env


def heard(path: Path) -> tuple[float, float]:
    """The dominant frequency of a recording after its first half second, and its level."""
    x, rate = read_wav(path)
    x = x[rate // 2 :]
    return dominant_hz(x, rate), rms(x)


class AiortcTone(MediaStreamTrack):
    """A 660 Hz tone as av.AudioFrames, which aiortc encodes itself (stereo Opus)."""

    kind = "audio"

    def __init__(self, hz: float = 660.0) -> None:
        super().__init__()
        self.hz = hz
        self.n = 0
        self.start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        wait = self.start + self.n / 48000 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(self.n, self.n + 960) / 48000).astype(np.float64)
        samples = (np.sin(2 * np.pi * self.hz * t) * 10000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.n
        frame.time_base = fractions.Fraction(1, 48000)
        self.n += 960
        return frame


class PlainPeer:
    """The /calls handler: an aiortc peer that records what it hears and sends a tone."""

    def __init__(self, record: Path) -> None:
        self.record = record
        self.pcs: list[RTCPeerConnection] = []
        self.recorders: list[MediaRecorder] = []
        self.tasks: list[asyncio.Future[None]] = []

    async def __call__(self, offer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        pc = RTCPeerConnection()
        self.pcs.append(pc)
        recorder = MediaRecorder(str(self.record))
        self.recorders.append(recorder)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                recorder.addTrack(track)
                self.tasks.append(asyncio.ensure_future(recorder.start()))

        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        pc.addTrack(AiortcTone())
        await pc.setLocalDescription(await pc.createAnswer())
        return {
            "conversation_id": "conv_plain",
            "answer": {"sdp": pc.localDescription.sdp, "type": "answer"},
        }

    async def close(self) -> None:
        for recorder in self.recorders:
            await recorder.stop()
        for pc in self.pcs:
            await pc.close()


@pytest.mark.timeout(60)
async def test_a_call_with_a_plain_aiortc_peer(tmp_path: Path) -> None:
    heard_by_peer = tmp_path / "peer.wav"
    played = tmp_path / "played.wav"
    peer = PlainPeer(heard_by_peer)
    box = await start_sandbox(call_handler=peer)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orga_cli", "call", "--audio-in", "tone:440", "--no-video",
            "--no-speaker", "--record", str(played), "--duration", "3", "--json",
            env=clean_env(**account(box.base_url, box.api_key)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 40)
    finally:
        await peer.close()
        await box.stop()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(stdout)
    assert summary["packets_lost"] == 0 and summary["concealed_pct"] < 2, summary
    hz, level = heard(played)  # aiortc's stereo Opus, decoded by orga's receiver
    assert level > 1000 and abs(hz - 660) <= 10, (hz, level)
    hz, level = heard(heard_by_peer)  # orga's mono Opus, decoded by aiortc
    assert level > 1000 and abs(hz - 440) <= 10, (hz, level)


@pytest.mark.timeout(30)
async def test_in_process_call_notices_a_vanished_server_at_once() -> None:
    """A CallSession against an in-process sandbox whose media sockets close without a
    word (a killed process): the port refuses, and the call ends within seconds."""
    from orga_cli import seams
    from orga_cli.api import OrgaClient
    from orga_cli.errors import CallError
    from orga_cli.media.receive import AudioReceiver
    from orga_cli.media.sources import AudioSourceTrack, ToneSource
    from orga_cli.session import CallOptions, CallParams, CallSession

    box = await start_sandbox()
    echo = box.peer
    assert echo is not None
    try:
        async with OrgaClient(box.base_url, box.api_key) as client:
            session = CallSession(
                client,
                AudioSourceTrack(ToneSource(440)),
                None,
                CallParams(),
                CallOptions(reconnect_timeout=20),
                receiver=AudioReceiver(),
            )
            try:
                await session.start()
                await asyncio.sleep(1)
                assert session.receiver.stats.packets > 20
                (call,) = echo.calls.values()
                for conn in seams._ice_connections(call.pc, gatherer=False):
                    for protocol in conn._protocols:
                        protocol.transport.close()  # the server's sockets are gone
                gone = time.monotonic()
                await asyncio.wait_for(session.ended.wait(), 5)
                assert time.monotonic() - gone < 5
                assert session.end_reason == "peer"
                assert isinstance(session.end_error, CallError)
                assert "port unreachable" in session.end_error.message
            finally:
                await session.close()
    finally:
        await box.stop()
