"""The latency `orga call` adds: capture -> send and receive -> playout, with a click train.

A private PulseAudio daemon provides a virtual microphone and speaker (null sinks);
a click every 0.5 s is played into the microphone; the call goes to `orga serve`
(echo delay 0.3 s) on loopback. Each click is timed at five points of the client:
when its sample was captured (PortAudio's ADC time), when its block was encoded
and handed to aiortc to send, when the RTP packet carrying the echo arrived (the
bench decodes a copy of each packet to find the click), when aiortc's jitter
buffer and decoder handed the frame to the client, and when its sample reaches
the speaker's DAC (PortAudio's DAC time). The sandbox and the network lie
between the second and third points, so they are not counted; everything from
the packet's arrival on is the client's.

A click is timed by its own sample at the two devices (PortAudio's ADC and DAC
times) and by the moment its block or packet was handed over in between; so the
20 ms a block takes to fill is counted once, in capture -> send, and the time a
sample waits for its turn within a playing block once, in receive -> playout.

PortAudio's ADC time for a captured block is used unless it is impossible (later
than the block's last sample could have been captured, as ALSA's PulseAudio
plugin reports); then the latest possible capture time is used, so any input
buffering the plugin hides is not counted.

Reported: medians of each part, their sum (target <= 60 ms), and in the same run
the latencies PortAudio reports for the two devices.

    python bench/client_latency.py [--seconds 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
from call_perf import KEY, start_serve

CLICK_EVERY = 0.5
THRESHOLD = 6000


def start_pulse(runtime: Path) -> subprocess.Popen[bytes]:
    sock = runtime / "native"
    config = runtime / "default.pa"
    config.write_text(
        f"load-module module-native-protocol-unix auth-anonymous=1 socket={sock}\n"
        "load-module module-null-sink sink_name=speaker rate=48000 channels=2\n"
        "load-module module-null-sink sink_name=mic rate=48000 channels=1\n"
        "set-default-sink speaker\nset-default-source mic.monitor\n"
    )
    os.environ.update(
        PULSE_RUNTIME_PATH=str(runtime), PULSE_SERVER=f"unix:{sock}", HOME=str(runtime)
    )
    proc = subprocess.Popen(
        ["pulseaudio", "-n", "-F", str(config), "--exit-idle-time=-1", "--daemonize=no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["pactl", "info"], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    else:
        raise SystemExit("PulseAudio did not start")
    # A null sink that wakes from idle stalls its first stream for up to 2 s (measured:
    # a 20 s pacat takes 22 s, at 48 kHz once it runs); a real sound card does not.
    # A silent low-latency stream keeps the speaker running, so the client's stream
    # starts at once and the figures are not those of a start-up stall.
    silence = ["--raw", "--format=s16le", "--rate=48000", "--channels=2", "/dev/zero"]
    subprocess.Popen(  # ends with the daemon
        ["pacat", "--playback", "--device=speaker", "--latency-msec=10", *silence],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    return proc


def click_train(path: Path, seconds: float) -> None:
    rate = 48000
    data = np.zeros(int(seconds * rate), np.int16)
    burst = (np.hanning(96) * 20000).astype(np.int16)
    for start in np.arange(0.25, seconds - 0.1, CLICK_EVERY):
        i = int(start * rate)
        data[i : i + burst.size] = burst
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())


class Onsets:
    """Times of click onsets seen by one stage (a new click: loud after 0.2 s of quiet)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last = -10.0

    def feed(
        self, samples: np.ndarray, start_time: float, rate: int = 48000, *, at_once: bool = False
    ) -> None:
        """*start_time*: when the first sample was at this point; each later one
        is 1/rate later (a device's clock), or, with *at_once*, all of them are
        there at *start_time* (a block handed over, a packet arriving)."""
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > THRESHOLD)
        if loud.size == 0:
            return
        first, last = (0, 0) if at_once else (loud[0], loud[-1])
        at = start_time + first / rate
        if at - self._last > 0.2:
            self.times.append(at)
        self._last = start_time + last / rate


async def run(seconds: float, base_url: str) -> dict[str, Any]:
    import av

    from orga_cli import seams
    from orga_cli.api import OrgaClient
    from orga_cli.media.devices import MicrophoneSource, Speaker
    from orga_cli.media.receive import AudioReceiver
    from orga_cli.media.sources import AudioSourceTrack
    from orga_cli.session import CallOptions, CallParams, CallSession

    captured, sent, arrived, pulled, played = Onsets(), Onsets(), Onsets(), Onsets(), Onsets()
    opus = av.CodecContext.create("libopus", "r")

    def seen(receiver: Any, packet: Any) -> None:
        # A copy of each audio packet decoded here, to see when the click's packet came.
        if receiver.track is not None and receiver.track.kind == "audio" and packet.payload:
            now = time.monotonic()
            for frame in opus.decode(av.Packet(packet.payload)):
                samples = frame.to_ndarray().reshape(-1)[:: len(frame.layout.channels)]
                arrived.feed(samples, now, at_once=True)

    restore = seams.on_rtp_received(seen)
    dac_ahead: list[float] = []
    buffered: list[float] = []
    receiver = AudioReceiver()

    class TimedMic(MicrophoneSource):
        def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            # monotonic time of the block's first sample at the ADC: PortAudio's
            # figure, unless it is later than physics allows (the block cannot reach
            # the callback before its last sample was captured), as ALSA's PulseAudio
            # plugin often reports for capture; then the latest possible time.
            now = time.monotonic()
            age = time_info.currentTime - time_info.inputBufferAdcTime
            captured.feed(indata[:, 0], min(now - age, now - frames / 48000))
            super()._callback(indata, frames, time_info, status)

    class TimedSpeaker(Speaker):
        def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            now = time.monotonic()
            super()._callback(outdata, frames, time_info, status)
            ahead = time_info.outputBufferDacTime - time_info.currentTime
            before = len(played.times)
            pulled.feed(outdata[:, 0], now, at_once=True)
            played.feed(outdata[:, 0], now + ahead)
            if len(played.times) > before:
                dac_ahead.append(1000 * ahead)
                delay = receiver.buffer_ms
                if delay is not None:
                    buffered.append(delay)

    mic = TimedMic(None)
    speaker = TimedSpeaker(None, source=receiver.pull)
    track = AudioSourceTrack(mic)
    track.taps.append(lambda block: sent.feed(block, time.monotonic(), at_once=True))
    try:
        async with OrgaClient(base_url, KEY) as client:
            session = CallSession(
                client, track, None, CallParams(), CallOptions(), receiver=receiver
            )
            await session.start()
            await asyncio.sleep(seconds)
            await session.close()
    finally:
        speaker.close()
        mic.close()
        restore()

    def pairs(first: list[float], then: list[float]) -> list[float]:
        """ms from each click at one point to the same click at the next (within 0.4 s).

        A click lost on the way (dropped by a stalled device) is left out instead of
        shifting every later pair."""
        out = []
        for t in first:
            later = [u for u in then if t <= u < t + 0.4]
            if later:
                out.append(1000 * (later[0] - t))
        return out

    up = pairs(captured.times, sent.times)
    down = pairs(arrived.times, played.times)
    buffer = pairs(arrived.times, pulled.times)
    device = pairs(pulled.times, played.times)
    n = min(len(up), len(down))
    if n < 5:
        raise SystemExit(
            "too few clicks made it through: "
            f"{[len(o.times) for o in (captured, sent, arrived, pulled, played)]}"
        )
    up_m, down_m = statistics.median(up), statistics.median(down)
    rx = receiver.stats
    return {
        "clicks": n,
        "capture_to_send_ms_median": round(up_m, 1),
        "receive_to_playout_ms_median": round(down_m, 1),
        "of_which_packet_to_speaker_pull_ms": round(statistics.median(buffer), 1),
        "of_which_speaker_pull_to_dac_ms": round(statistics.median(device), 1),
        "client_added_ms_median": round(up_m + down_m, 1),
        "target_ms": 60,
        "receive_buffer_ms_median_at_click": round(statistics.median(buffered), 1)
        if buffered
        else None,
        "dac_ahead_ms_median_at_click": round(statistics.median(dac_ahead), 1),
        "time_stretch_ms": {
            "accelerated": round(1000 * rx.accelerated / 48000),
            "expanded": round(1000 * rx.expanded / 48000),
        },
        "playout_underruns": rx.underruns,
        "receive_target_ms_at_end": round(receiver.target_ms, 1),
        "portaudio_input_latency_ms": round(1000 * mic.latency, 1),
        "portaudio_output_latency_ms": round(1000 * speaker.latency, 1),
        "ok": bool(up_m + down_m <= 60),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Path(tmp)
        pulse = start_pulse(runtime)
        serve, base = start_serve("--echo-delay", "0.3")
        try:
            clicks = runtime / "clicks.wav"
            click_train(clicks, args.seconds + 5)
            player = subprocess.Popen(["paplay", "--device=mic", str(clicks)])
            try:
                report = asyncio.run(run(args.seconds, base))
            finally:
                player.terminate()
            print(json.dumps(report, indent=2))
        finally:
            serve.terminate()
            serve.wait(10)
            pulse.terminate()
            pulse.wait(10)


if __name__ == "__main__":
    main()
