"""`orga doctor`: is everything ready for a call? Each check passes, fails with the fix, or
is skipped with the reason (no account, no network needed for the rest).

The checks, in order: PortAudio; the default input and output devices; a 2 s
microphone level check (peak and noise floor, digital silence flagged); a tone on the
speaker (--play); the configuration and API key; a token minted; the ICE servers
probed; a call to an in-process sandbox on loopback (connect time, its echo heard at
the frequency sent).
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ExitCode, MediaError, OrgaError, mask

OK, FAIL, SKIP = "ok", "fail", "skip"
TONE_HZ = 440.0


@dataclass
class Check:
    name: str
    status: str  # ok, fail or skip
    detail: str
    fix: str | None = None
    exit_code: ExitCode | None = None  # the kind of failure, for the process's exit code

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def _failed(name: str, exc: OrgaError) -> Check:
    return Check(name, FAIL, exc.message, exc.hint, exc.exit_code)


class Doctor:
    def __init__(
        self,
        settings: Any,
        *,
        play: bool = False,
        timeout: float = 10.0,
        insecure_http: bool = False,
    ) -> None:
        self.settings = settings
        self.play = play
        self.timeout = timeout
        self.insecure_http = insecure_http
        self.checks: list[Check] = []
        self._input: int | None = None
        self._output: int | None = None
        self._token: Any = None

    def run(self, report: Callable[[Check], None]) -> list[Check]:
        steps = (
            self.portaudio,
            self.devices,
            self.microphone,
            self.speaker,
            self.key,
            self.token,
            self.ice,
            self.sandbox_call,
        )
        for step in steps:
            try:
                check = step()
            except OrgaError as exc:
                check = _failed(step.__name__.replace("_", " "), exc)
            self.checks.append(check)
            report(check)
        return self.checks

    @property
    def exit_code(self) -> int:
        failed = [c for c in self.checks if c.status == FAIL]
        return int(failed[0].exit_code or ExitCode.UNEXPECTED) if failed else 0

    # ------------------------------------------------------------------ audio

    def _sd(self) -> Any:
        from ..media.devices import sounddevice

        return sounddevice()

    def portaudio(self) -> Check:
        try:
            sd = self._sd()
        except MediaError as exc:
            return _failed("PortAudio", exc)
        return Check("PortAudio", OK, sd.get_portaudio_version()[1])

    def devices(self) -> Check:
        if not self._has_portaudio():
            return Check("devices", SKIP, "no PortAudio")
        sd = self._sd()
        names = []
        missing = []
        for kind in ("input", "output"):
            try:
                info = sd.query_devices(kind=kind)
                index = int(info["index"])
                names.append(f"{kind}: {info['name']}")
                setattr(self, f"_{kind}", index)
            except Exception:
                missing.append(kind)
        if missing:
            return Check(
                "devices",
                FAIL,
                f"no default {' or '.join(missing)} device" + (f" ({names[0]})" if names else ""),
                "`orga devices` lists what PortAudio sees; plug in a headset or start the "
                "sound server (PulseAudio/PipeWire), or call with --audio-in FILE and --no-speaker",
                ExitCode.MEDIA,
            )
        return Check("devices", OK, "; ".join(names))

    def _has_portaudio(self) -> bool:
        return any(c.name == "PortAudio" and c.status == OK for c in self.checks)

    def microphone(self) -> Check:
        if self._input is None:
            return Check("microphone", SKIP, "no input device")
        import numpy as np

        from ..media.audio import level_dbfs
        from ..media.devices import MicrophoneSource

        async def listen() -> list[Any]:
            mic = MicrophoneSource(str(self._input))
            try:
                # The 2 s count from the first block: a sound server may take a moment to
                # start a stream.
                blocks = [await asyncio.wait_for(mic.read(), 3.0)]
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline:
                    blocks.append(await asyncio.wait_for(mic.read(), 1.0))
                return blocks
            finally:
                mic.close()

        try:
            blocks = asyncio.run(listen())
        except asyncio.TimeoutError:
            return Check(
                "microphone", FAIL, "the microphone stopped delivering sound",
                "check that no other program holds it; `orga devices` lists the inputs",
                ExitCode.MEDIA,
            )  # fmt: skip
        samples = np.concatenate(blocks) if blocks else np.zeros(0, np.int16)
        if samples.size == 0 or not samples.any():
            hint = (
                "grant the terminal the microphone: System Settings → Privacy & Security → "
                "Microphone, then restart the terminal"
                if sys.platform == "darwin"
                else "the input is muted or disconnected: unmute it (pavucontrol, alsamixer) "
                "or choose another with --input-device"
            )
            return Check(
                "microphone", FAIL, "2 s of digital silence (all zeros)", hint, ExitCode.MEDIA
            )
        peak = 20 * math.log10(max(1, int(np.abs(samples.astype(np.int32)).max())) / 32768)
        levels = sorted(level_dbfs(b) for b in blocks if b.size)
        floor = levels[len(levels) // 10]
        return Check("microphone", OK, f"2 s: peak {peak:.1f} dBFS, noise floor {floor:.1f} dBFS")

    def speaker(self) -> Check:
        if self._output is None:
            return Check("speaker", SKIP, "no output device")
        if not self.play:
            return Check("speaker", SKIP, "--play sounds a short tone on it")
        from ..media.audio import tone
        from ..media.devices import Speaker

        played = [0]

        def source(n: int) -> Any:
            block = tone(TONE_HZ, played[0], n, amplitude=0.2)
            played[0] += n
            return block

        speaker = Speaker(str(self._output), source=source)
        try:
            time.sleep(1.0)
        finally:
            speaker.close()
        if played[0] < 0.5 * 48_000:
            return Check(
                "speaker", FAIL, f"the device took only {played[0] / 48:.0f} ms of a 1 s tone",
                "the output is stalled: check the sound server, or choose another with --output-device",
                ExitCode.MEDIA,
            )  # fmt: skip
        return Check(
            "speaker", OK, f"played 1 s of {TONE_HZ:.0f} Hz on {speaker.label}: did you hear it?"
        )

    # ------------------------------------------------------------------ account

    def key(self) -> Check:
        setting = self.settings.get("api_key")
        base = self.settings.get("base_url")
        if not setting.value:
            return Check(
                "API key", SKIP,
                f"none set (config {self.settings.file.path}); the token and ICE checks are skipped",
                "set ORGA_API_KEY or run `orga config set api_key` to check them",
            )  # fmt: skip
        return Check(
            "API key", OK, f"{mask(setting.value)} from {setting.source}; API {base.value}"
        )

    def _client(self) -> Any:
        from ..api import SyncOrgaClient

        return SyncOrgaClient(
            self.settings.value("base_url"),
            self.settings.value("api_key"),
            timeout=self.timeout,
            insecure_http=self.insecure_http,
        )

    def token(self) -> Check:
        if not self.settings.value("api_key"):
            return Check("token", SKIP, "no API key")
        with self._client() as client:
            self._token = client.create_token(email=self.settings.value("email"))
        left = self._token.seconds_left()
        expiry = "no expiry in the token" if left is None else f"expires in {left:.0f} s"
        return Check("token", OK, f"minted ({expiry})")

    def ice(self) -> Check:
        if self._token is None:
            return Check("ICE servers", SKIP, "no token")
        from ..probe import probe_servers, verdict

        with self._client() as client:
            servers = client.ice_servers(self._token)
        results = asyncio.run(probe_servers(servers, 5.0))
        usable, diagnosis = verdict(results)
        if not usable:
            return Check(
                "ICE servers", FAIL, diagnosis, "`orga ice --probe` shows each server and transport",
                ExitCode.CALL,
            )  # fmt: skip
        return Check("ICE servers", OK, f"{len(servers)} probed: {diagnosis}")

    # ------------------------------------------------------------------ a call

    def sandbox_call(self) -> Check:
        connected_ms, hz = asyncio.run(_sandbox_call())
        if hz is None or abs(hz - TONE_HZ) > 10:
            heard = "nothing" if hz is None else f"{hz:.0f} Hz"
            return Check(
                "sandbox call", FAIL, f"connected in {connected_ms:.0f} ms but the echo was {heard}",
                "run `orga call --sandbox -v` to see the media path",
                ExitCode.CALL,
            )  # fmt: skip
        return Check(
            "sandbox call", OK, f"connected in {connected_ms:.0f} ms; echo heard at {hz:.0f} Hz"
        )


async def _sandbox_call(seconds: float = 2.5) -> tuple[float, float | None]:
    """A call to an in-process sandbox with a tone: (ms to connect, the echo's frequency)."""
    import numpy as np

    from .. import (
        AudioReceiver,
        AudioSourceTrack,
        CallParams,
        CallSession,
        OrgaClient,
        WallClockPull,
        start_sandbox,
    )
    from ..media.sources import ToneSource
    from ..sandbox.peer import PeerConfig

    box = await start_sandbox(peer=PeerConfig(delay=0.3))
    played: list[Any] = []
    receiver = AudioReceiver()
    puller = WallClockPull(receiver, [played.append])
    session: CallSession | None = None
    try:
        async with OrgaClient(box.base_url, box.api_key) as client:
            source = ToneSource(TONE_HZ)
            session = CallSession(
                client, AudioSourceTrack(source), None, CallParams(), receiver=receiver
            )
            started = time.monotonic()
            await session.start()
            connected_ms = 1000 * (time.monotonic() - started)
            puller.start()
            await asyncio.sleep(seconds)
    finally:
        await puller.stop()
        if session is not None:
            await session.close()
        await box.stop()
    audio = np.concatenate(played).astype(np.float64) if played else np.zeros(0)
    tail = audio[-48_000:]
    if tail.size < 4800 or np.abs(tail).max() < 100:
        return connected_ms, None
    spectrum = np.abs(np.fft.rfft(tail * np.hanning(tail.size)))
    return connected_ms, float(np.argmax(spectrum) * 48_000 / tail.size)
