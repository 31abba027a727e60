"""`orga call` against `orga serve` on loopback: time to connect, CPU and memory.

    python bench/call_perf.py connect [--runs 10]   # process start -> connected / first audio
    python bench/call_perf.py cpu [--seconds 60]    # client CPU and RSS, audio only and with video
                                                    # (and with PulseAudio devices, if present)
    python bench/call_perf.py soak [--seconds 600]  # RSS growth over a long call (run by hand)

`cpu` measures the client with a tone and no speaker (its own work), and where
PulseAudio and PortAudio are installed, again with a real microphone and speaker
(PulseAudio null sinks, microphone processing on, as users call), beside a bare
PortAudio process that opens the same two streams with callbacks that do nothing:
the floor of any PortAudio client there.

`connect` also runs a minimal aiortc client (token, ICE, offer, /calls, answer,
connected; no media devices, no UI) in the same run, alternating, as the baseline
of what any Python WebRTC client pays; medians and the ratio are reported.
Targets: connected <= 1000 ms, first audio <= 1300 ms, CPU <= 10 % of a core
(audio) and <= 60 % (640x480 at 24 fps), RSS <= 200 MB, growth <= 10 MB in 10 min.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

KEY = "sk_orga_ai_bench_0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")

BASELINE = r"""
import asyncio, json, os, sys, time
def start():
    with open("/proc/self/stat", "rb") as fh:
        ticks = int(fh.read().rsplit(b")", 1)[1].split()[19])
    with open("/proc/uptime") as fh:
        up = float(fh.read().split()[0])
    return time.time() - (up - ticks / os.sysconf("SC_CLK_TCK"))
T0 = start()
import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription, RTCConfiguration
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import AudioStreamTrack
async def main(base, key):
    async with httpx.AsyncClient(base_url=base) as c:
        tok = (await c.post("/v1/realtime/client-secrets", headers={"Authorization": "Bearer " + key})).json()["ephemeral_token"]
        h = {"Authorization": "Bearer " + tok}
        ice = (await c.get("/v1/realtime/ice-config", headers=h)).json()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(AudioStreamTrack(), direction="sendrecv")
        pc.createDataChannel("orga-realtime-client-events")
        first = asyncio.get_running_loop().create_future()
        @pc.on("track")
        def on_track(track):
            async def read():
                await track.recv()
                if not first.done(): first.set_result(time.time())
                while True: await track.recv()
            asyncio.ensure_future(read())
        await pc.setLocalDescription(await pc.createOffer())
        r = await c.post("/v1/realtime/calls", headers=h, json={"offer": {"sdp": pc.localDescription.sdp, "type": "offer"}})
        await pc.setRemoteDescription(RTCSessionDescription(**r.json()["answer"]))
        while pc.connectionState != "connected": await asyncio.sleep(0.005)
        connected = time.time()
        audio = await first
        print(json.dumps({"ms_to_connected": round((connected - T0) * 1000), "ms_to_first_audio": round((audio - T0) * 1000)}))
        await pc.close()
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


# A minimal aiortc client's audio: a 440 Hz tone, 20 ms frames on the wall clock, encoded
# by aiortc itself (the scripts below that send audio start with it).
TONE_TRACK = r"""
import asyncio, sys, time, fractions, numpy as np, httpx, av
from aiortc import RTCPeerConnection, RTCSessionDescription, RTCConfiguration, MediaStreamTrack
class Tone(MediaStreamTrack):
    kind="audio"
    def __init__(s): super().__init__(); s.n=0; s.t0=None
    async def recv(s):
        if s.t0 is None: s.t0=time.monotonic()
        w=s.t0+s.n/48000-time.monotonic()
        if w>0: await asyncio.sleep(w)
        t=np.arange(s.n,s.n+960)/48000; d=(np.sin(2*np.pi*440*t)*9000).astype(np.int16)
        f=av.AudioFrame.from_ndarray(d.reshape(1,-1),format="s16",layout="mono"); f.sample_rate=48000; f.pts=s.n; f.time_base=fractions.Fraction(1,48000); s.n+=960; return f
"""

BASELINE_CPU = (
    TONE_TRACK
    + r"""
async def main(base,key,secs):
    async with httpx.AsyncClient(base_url=base) as c:
        tok=(await c.post("/v1/realtime/client-secrets",headers={"Authorization":"Bearer "+key})).json()["ephemeral_token"]
        pc=RTCPeerConnection(RTCConfiguration(iceServers=[])); pc.addTransceiver(Tone(),direction="sendrecv"); pc.createDataChannel("orga-realtime-client-events")
        @pc.on("track")
        def on(track):
            async def r():
                while True: await track.recv()
            asyncio.ensure_future(r())
        await pc.setLocalDescription(await pc.createOffer())
        r=await c.post("/v1/realtime/calls",headers={"Authorization":"Bearer "+tok},json={"offer":{"sdp":pc.localDescription.sdp,"type":"offer"}})
        await pc.setRemoteDescription(RTCSessionDescription(**r.json()["answer"]))
        while pc.connectionState!="connected": await asyncio.sleep(0.01)
        import os; t0=time.monotonic(); c0=sum(os.times()[:2])
        await asyncio.sleep(secs)
        print("minimal aiortc CPU %:", round(100*(sum(os.times()[:2])-c0)/(time.monotonic()-t0),1))
        await pc.close()
asyncio.run(main(sys.argv[1],sys.argv[2],float(sys.argv[3])))
"""
)


BARE_PORTAUDIO = r"""
import os, sys, time, sounddevice as sd
from orga_cli.media.devices import FRAME_SAMPLES, INPUT_LATENCY, OUTPUT_LATENCY_S
def silence(out, frames, t, status): out.fill(0)
def nothing(indata, frames, t, status): pass
i = sd.InputStream(samplerate=48000, channels=1, dtype="int16", blocksize=FRAME_SAMPLES, latency=INPUT_LATENCY, callback=nothing)
o = sd.OutputStream(samplerate=48000, channels=2, dtype="int16", blocksize=0, latency=OUTPUT_LATENCY_S, callback=silence)
i.start(); o.start(); time.sleep(3)
c0, t0 = sum(os.times()[:2]), time.monotonic()
time.sleep(float(sys.argv[1]))
print(round(100 * (sum(os.times()[:2]) - c0) / (time.monotonic() - t0), 1))
"""


def start_serve(*extra: str, stderr: Any = subprocess.DEVNULL) -> tuple[subprocess.Popen[str], str]:
    """`orga serve` on a free loopback port, and its base URL (every bench uses this one);
    its log goes to *stderr*."""
    serve = subprocess.Popen(
        [sys.executable, "-m", "orga_cli", "serve", "--api-key", KEY, *extra],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    assert serve.stdout is not None
    if not select.select([serve.stdout], [], [], 20)[0]:
        serve.kill()
        raise SystemExit("orga serve did not start")
    return serve, serve.stdout.readline().strip()


def client_env(base: str, *, devices: bool = False) -> dict[str, str]:
    drop = ("ORGA_",) if devices else ("ORGA_", "PULSE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(ORGA_API_KEY=KEY, ORGA_BASE_URL=base, ORGA_CONFIG="/nonexistent/orga.toml")
    return env


def orga_call(base: str, *extra: str, devices: bool = False) -> list[str]:
    media = [] if devices else ["--audio-in", "tone:440", "--no-speaker"]
    return [sys.executable, "-m", "orga_cli", "call", *media, "--json", *extra]


def connect(runs: int) -> dict[str, object]:
    serve, base = start_serve()
    script = Path(os.environ.get("TMPDIR", "/tmp")) / "orga_bench_min_client.py"
    script.write_text(BASELINE)
    ours: list[dict[str, int]] = []
    theirs: list[dict[str, int]] = []
    try:
        for _ in range(runs):
            out = subprocess.run(
                orga_call(base, "--no-video", "--duration", "0.5"),
                capture_output=True,
                text=True,
                env=client_env(base),
                timeout=60,
            )
            ours.append(json.loads(out.stdout))
            out = subprocess.run(
                [sys.executable, str(script), base, KEY],
                capture_output=True,
                text=True,
                env=client_env(base),
                timeout=60,
            )
            theirs.append(json.loads(out.stdout))
    finally:
        serve.terminate()
        serve.wait(10)

    def med(rows: list[dict[str, int]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    c, a = med(ours, "ms_to_connected"), med(ours, "ms_to_first_audio")
    bc, ba = med(theirs, "ms_to_connected"), med(theirs, "ms_to_first_audio")
    return {
        "runs": runs,
        "orga_ms_to_connected_median": c,
        "orga_ms_to_first_audio_median": a,
        "minimal_aiortc_ms_to_connected_median": bc,
        "minimal_aiortc_ms_to_first_audio_median": ba,
        "ratio_connected": round(c / bc, 3),
        "ratio_first_audio": round(a / ba, 3),
        "targets_ms": {"connected": 1000, "first_audio": 1300},
        "ok": c <= 1000 and a <= 1300,
    }


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int, key: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(
    base: str, seconds: float, *extra: str, sample_every: float = 5.0, devices: bool = False
) -> dict[str, object]:
    """CPU share and memory of one `orga call`, from the moment it is connected."""
    proc = subprocess.Popen(
        orga_call(base, "--duration", str(seconds), *extra, devices=devices),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=client_env(base, devices=devices),
    )
    assert proc.stderr is not None
    line = ""
    while "phase connected" not in line:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise SystemExit(f"the call failed: {proc.stderr.read()}")
    cpu0, t0 = proc_cpu_seconds(proc.pid), time.monotonic()
    rss: list[tuple[float, float]] = []
    while proc.poll() is None and time.monotonic() - t0 < seconds - 0.5:
        rss.append((time.monotonic() - t0, proc_rss_mb(proc.pid)))
        time.sleep(min(sample_every, max(0.1, seconds - 0.5 - (time.monotonic() - t0))))
    cpu1, t1 = proc_cpu_seconds(proc.pid), time.monotonic()
    peak = proc_rss_mb(proc.pid, "VmHWM")
    proc.communicate(timeout=30)
    return {
        "seconds": round(t1 - t0, 1),
        "cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        "rss_peak_mb": round(peak, 1),
        "rss_samples_mb": [(round(t, 1), round(m, 1)) for t, m in rss],
    }


def cpu(seconds: float) -> dict[str, object]:
    serve, base = start_serve()
    script = Path(os.environ.get("TMPDIR", "/tmp")) / "orga_bench_min_cpu.py"
    script.write_text(BASELINE_CPU)
    try:
        out = subprocess.run(
            [sys.executable, str(script), base, KEY, str(seconds)],
            capture_output=True,
            text=True,
            env=client_env(base),
            timeout=seconds + 60,
        )
        baseline = float(out.stdout.rsplit(":", 1)[1])
        audio = measure(base, seconds, "--no-video")
        video = measure(base, seconds, "--video-in", "testsrc", "--video-quality", "low")
        with_devices = devices_row(base, seconds)
    finally:
        serve.terminate()
        serve.wait(10)
    for row in (audio, video):
        row.pop("rss_samples_mb")
    return {
        "minimal_aiortc_tone_call_cpu_pct": baseline,
        "audio_only": audio,
        "audio_ratio_to_minimal": round(audio["cpu_pct_of_one_core"] / baseline, 2),  # type: ignore[operator]
        "audio_only_with_pulseaudio_devices": with_devices,
        "video_640x480_24fps": video,
        "targets": {"audio_cpu_pct": 10, "video_cpu_pct": 60, "rss_mb": 200},
        "ok": audio["cpu_pct_of_one_core"] <= 10  # type: ignore[operator]
        and video["cpu_pct_of_one_core"] <= 60  # type: ignore[operator]
        and audio["rss_peak_mb"] <= 200,  # type: ignore[operator]
    }


def devices_row(base: str, seconds: float) -> dict[str, object] | str:
    """The audio call on a real (virtual) microphone and speaker, and PortAudio's own floor."""
    import shutil
    import tempfile

    from client_latency import start_pulse

    if shutil.which("pulseaudio") is None:
        return "skipped: PulseAudio is not installed"
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        pulse = start_pulse(Path(tmp))
        try:
            bare = subprocess.run(
                [sys.executable, "-c", BARE_PORTAUDIO, str(seconds / 2)],
                capture_output=True,
                text=True,
                env=client_env(base, devices=True),
                timeout=seconds + 30,
            )
            if bare.returncode != 0:
                return f"skipped: PortAudio did not open the devices ({bare.stderr.strip()[-200:]})"
            row = measure(
                base, seconds, "--no-video", "--no-aec", "--no-ns", "--no-agc", devices=True
            )
        finally:
            pulse.terminate()
            pulse.wait(10)
            os.environ.clear()
            os.environ.update(saved)
    row.pop("rss_samples_mb")
    floor = float(bare.stdout.strip().splitlines()[-1])
    row["bare_portaudio_streams_cpu_pct"] = floor
    row["cpu_pct_above_portaudio_floor"] = round(row["cpu_pct_of_one_core"] - floor, 1)  # type: ignore[operator]
    return row


def soak(seconds: float) -> dict[str, object]:
    serve, base = start_serve()
    try:
        row = measure(base, seconds, "--no-video", sample_every=10)
    finally:
        serve.terminate()
        serve.wait(10)
    samples = row["rss_samples_mb"]
    assert isinstance(samples, list)
    settled = next((m for t, m in samples if t >= 30), samples[0][1])
    last = samples[-1][1]
    return {
        "seconds": row["seconds"],
        "rss_at_30s_mb": settled,
        "rss_at_end_mb": last,
        "growth_mb": round(last - settled, 1),
        "cpu_pct_of_one_core": row["cpu_pct_of_one_core"],
        "target_growth_mb": 10,
        "ok": last - settled <= 10,
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["connect", "cpu", "soak"])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    if args.what == "connect":
        report = connect(args.runs)
    elif args.what == "cpu":
        report = cpu(args.seconds or 60)
    else:
        report = soak(args.seconds or 600)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
