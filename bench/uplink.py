"""The uplink through a bottleneck: orga beside a Chromium caller, to a Chromium answerer.

Each call sends speech (a ~30 s espeak-ng passage) and a camera-like picture (640x480
at 24 fps: a detailed background, a textured shape moving across it, sensor noise)
up through a relay with a capacity (orga's own `--network up=rate:…,queue:200ms`,
drop-tail) to a headless Chromium that answers the call (libwebrtc's receiver, with
transport-wide feedback, NACK and PLI, as a real server's stack would have). The
answerer plays what it hears on a PulseAudio null sink, whose monitor is recorded
and scored with PESQ-WB against the passage, and counts the video frames it decodes
(getStats, sampled every 250 ms: frames, size, freezes). The callers, in turn on
the same link with the same files: `orga call --audio-in speech.wav --video-in
scene.y4m`, and a headless Chromium page that makes the same API calls as the web
SDK with its fake camera and microphone fed from the same files.

Per call: PESQ-WB of what the far end heard (8 s windows, each aligned on its own,
averaged), the caller's packets dropped at the bottleneck, the bottleneck's median
and 95th-percentile queueing delay, frames decoded and freezes; for the step profile
(2 → 0.3 → 2 Mbit/s), the time the queue took to fall under 100 ms after the fall
and the time the picture took to come back to full size after the rise. Then orga −
Chromium call by call (the same link, the same files), medians over calls.

Usage (as root it moves itself into a network namespace with only loopback):
    python bench/uplink.py [--calls 3] [--profile NAME ...] [--json] [--keep DIR]
Needs: pulseaudio, pulseaudio-utils, chromium, espeak-ng, sox, ffmpeg, `pip install pesq`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from call_perf import KEY, client_env
from network import isolate_network, read_wav, record, start_pulse, stop, to16k

# name: (network spec of the uplink, seconds, video)
PROFILES: dict[str, tuple[str, float, bool]] = {
    "unlimited": ("", 15, True),
    "1000k": ("up=rate:1000kbit,queue:200ms", 15, True),
    "500k": ("up=rate:500kbit,queue:200ms", 15, True),
    "300k": ("up=rate:300kbit,queue:200ms", 15, True),
    "300k-voice": ("up=rate:300kbit,queue:200ms", 15, False),
    "60k-voice": ("up=rate:60kbit,queue:200ms", 15, False),
    "step": ("up=rate:2000kbit,rate:300kbit@10s,rate:2000kbit@20s,queue:200ms", 32, True),
}

SECONDS: dict[str, float] = {}  # --seconds: a shorter call than the profile's

TEXT = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."
    " It is easy to tell the depth of a well. These days a chicken leg is a rare dish."
    " Rice is often served in round bowls. The juice of lemons makes fine punch."
    " The box was thrown beside the parked truck. The hogs were fed chopped corn and garbage."
    " Four hours of steady work faced us. A large size in stockings is hard to sell."
    " The boy was there when the sun rose. A rod is used to catch pink salmon."
    " The source of the huge river is the clear spring. Kick the ball straight and follow"
    " through. Help the woman get back to her feet. A pot of tea helps to pass the evening."
    " Smoky fires lack flame and heat. The soft cushion broke the man's fall."
)

ANSWERER = """<!doctype html><meta charset=utf-8><title>bench answerer</title>
<audio id=a autoplay></audio><video id=v autoplay muted playsinline></video>
<script>
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
async function one() {
  const offer = await (await fetch("/bench/next")).json();
  if (!offer.sdp) return;
  const pc = new RTCPeerConnection({iceServers: []});
  pc.ontrack = (e) => {
    const el = document.getElementById(e.track.kind === "audio" ? "a" : "v");
    el.srcObject = new MediaStream([e.track]); el.play().catch(() => {});
  };
  pc.ondatachannel = (e) => { const ch = e.channel;
    ch.onopen = () => ch.send(JSON.stringify({type: "session.created", session: {id: "bench"}})); };
  await pc.setRemoteDescription({type: "offer", sdp: offer.sdp});
  // The model's side speaks too (a quiet tone), as a real server does: a caller that hears
  // nothing would take the call for lost.
  const ctx = new AudioContext({sampleRate: 48000});
  const osc = ctx.createOscillator(), gain = ctx.createGain(), dest = ctx.createMediaStreamDestination();
  gain.gain.value = 0.02; osc.connect(gain); gain.connect(dest); osc.start();
  const audio = pc.getTransceivers().find((t) => t.receiver.track.kind === "audio");
  if (audio) { audio.direction = "sendrecv"; await audio.sender.replaceTrack(dest.stream.getAudioTracks()[0]); }
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise((ok) => { if (pc.iceGatheringState === "complete") ok();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && ok();
      setTimeout(ok, 3000); });
  await fetch("/bench/answer", {method: "POST", body: JSON.stringify({id: offer.id, sdp: pc.localDescription.sdp})});
  const samples = [];
  while (true) {
    await sleep(250);
    const s = {t: Date.now() / 1000};
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") Object.assign(s, {
        frames: r.framesDecoded, width: r.frameWidth, height: r.frameHeight,
        freezes: r.freezeCount, freeze_s: r.totalFreezesDuration, nacks: r.nackCount,
        plis: r.pliCount, video_bytes: r.bytesReceived, video_lost: r.packetsLost});
      if (r.type === "inbound-rtp" && r.kind === "audio") Object.assign(s, {
        audio_bytes: r.bytesReceived, audio_lost: r.packetsLost,
        concealed: r.concealedSamples, samples: r.totalSamplesReceived});
    });
    samples.push(s);
    const ended = await (await fetch("/bench/ended?id=" + offer.id)).json();
    if (ended.ended || pc.connectionState === "failed" || pc.connectionState === "closed") break;
  }
  pc.close(); ctx.close();
  await fetch("/bench/stats", {method: "POST", body: JSON.stringify({id: offer.id, samples})});
}
(async () => { while (true) { try { await one(); } catch (e) {
  await fetch("/bench/log", {method: "POST", body: String(e)}); await sleep(500); } } })();
</script>"""

CALLER = """<!doctype html><meta charset=utf-8><title>bench caller</title>
<script>
const q = new URLSearchParams(location.search);
const base = q.get("base"), key = q.get("key"), seconds = Number(q.get("seconds"));
const video = q.get("video") === "1";
async function run() {
  const post = (path, body, auth) => fetch(base + path, {method: "POST",
      headers: {"Authorization": "Bearer " + auth, "Content-Type": "application/json"},
      body: body === null ? undefined : JSON.stringify(body)}).then(r => r.json());
  // The file as it is, as orga sends --audio-in: no echo cancellation, noise suppression
  // or gain control between the file and the encoder.
  const media = await navigator.mediaDevices.getUserMedia({
      audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false},
      video: video ? {width: 640, height: 480, frameRate: 24} : false});
  const token = (await post("/v1/realtime/client-secrets", null, key)).ephemeral_token;
  const ice = await fetch(base + "/v1/realtime/ice-config",
      {headers: {"Authorization": "Bearer " + token}}).then(r => r.json());
  const pc = new RTCPeerConnection({iceServers: ice.iceServers || []});
  for (const track of media.getTracks()) pc.addTransceiver(track,
      {direction: track.kind === "audio" ? "sendrecv" : "sendonly"});
  pc.createDataChannel("orga-realtime-client-events");
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((ok) => { if (pc.iceGatheringState === "complete") ok();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && ok();
      setTimeout(ok, 3000); });
  const call = await post("/v1/realtime/calls", {offer: {sdp: pc.localDescription.sdp,
      type: "offer"}, params: {modalities: video ? ["audio", "video"] : ["audio"]}}, token);
  await pc.setRemoteDescription(call.answer);
  await new Promise((ok) => setTimeout(ok, seconds * 1000));
  const out = {};
  (await pc.getStats()).forEach((s) => { if (s.type === "outbound-rtp") out[s.kind] = s; });
  pc.close(); media.getTracks().forEach((t) => t.stop());
  return out;
}
run().then((r) => fetch("/bench/caller", {method: "POST", body: JSON.stringify(r)}),
           (e) => fetch("/bench/caller", {method: "POST", body: JSON.stringify({error: String(e)})}));
</script>"""

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--use-fake-ui-for-media-stream",
    "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
]  # fmt: skip


# --------------------------------------------------------------------------- media


def camera_y4m(
    path: Path, seconds: float, width: int = 640, height: int = 480, fps: int = 24
) -> None:
    """A picture that loads a link as a camera does: a detailed background (blocks and fine
    texture), a textured shape that moves across it, and a little sensor noise each frame."""
    rng = np.random.default_rng(1)
    small = rng.integers(30, 220, (height // 16 + 1, width // 16 + 1)).astype(np.float32)
    background = np.kron(small, np.ones((16, 16), np.float32))[:height, :width]
    background = np.clip(background * 0.7 + 40 + rng.normal(0, 18, (height, width)), 0, 255)
    yy, xx = np.mgrid[0:height, 0:width]
    texture = (128 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0)).astype(np.float32)
    u = np.full((height // 2, width // 2), 120, np.uint8)
    v = np.full((height // 2, width // 2), 136, np.uint8)
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(int(seconds * fps)):
            t = i / fps
            cx = width / 2 + width / 5 * np.sin(2 * np.pi * t / 4)
            cy = height / 2 + height / 10 * np.sin(2 * np.pi * t / 3)
            shape = ((xx - cx) / (width / 8)) ** 2 + ((yy - cy) / (height / 5)) ** 2 < 1
            y = background.copy()
            y[shape] = texture[shape] + 20 * np.sin(t * 5)
            y += rng.normal(0, 2.0, (height, width))
            out.write(b"FRAME\n")
            out.write(np.clip(y, 0, 255).astype(np.uint8).tobytes())
            out.write(u.tobytes())
            out.write(v.tobytes())


def speech_wav(folder: Path) -> Path:
    raw, out = folder / "speech-22k.wav", folder / "speech.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), TEXT], check=True)
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", str(out)], check=True)
    return out


WINDOW_S = 5.0


def pesq_windows(reference: np.ndarray, recording: Path, seconds: float) -> float | None:
    """PESQ-WB of what was heard: the passage cut in 5 s windows, each found in the
    recording on its own (the receiver's delay moves, and a browser's fake microphone
    starts the file before the call does), scored where the whole window was heard,
    then averaged."""
    from pesq import pesq

    deg = to16k(read_wav(recording))
    n = int(WINDOW_S * 16000)
    if deg.size < n + 16000:
        return None
    scores = []
    for k in range(reference.size // n):
        ref = reference[k * n : (k + 1) * n]
        if np.abs(ref).max() < 100:
            continue
        m = 1 << int(np.ceil(np.log2(deg.size + ref.size)))
        corr = np.fft.irfft(np.fft.rfft(deg, m) * np.conj(np.fft.rfft(ref, m)), m)[: deg.size - n]
        at = int(np.argmax(corr))
        window = deg[at : at + n]
        # heard whole? (a window the call did not cover matches nothing well)
        coefficient = float(
            np.dot(window, ref) / (np.linalg.norm(window) * np.linalg.norm(ref) + 1e-9)
        )
        if coefficient < 0.5:
            continue
        try:
            scores.append(float(pesq(16000, ref, window, "wb")))
        except Exception:  # PESQ refuses silence ("no utterances")
            continue
    return round(statistics.mean(scores), 3) if scores else None


# --------------------------------------------------------------------------- the server


class Bench:
    """The API the callers dial (the sandbox's own server, its /calls answered by the
    Chromium answerer through a relay with the profile's bottleneck), and the pages."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.offers: asyncio.Queue[dict[str, Any]] | None = None
        self.answers: dict[str, asyncio.Future[str]] = {}
        self.stats: dict[str, Any] = {}
        self.stats_in = threading.Event()
        self.ended: set[str] = set()
        self.caller_result: dict[str, Any] | None = None
        self.caller_in = threading.Event()
        self.network = ""
        self.relays: list[Any] = []
        self.errors: list[str] = []
        self.api = ""
        self.pages = ""

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(20)

    async def _start(self) -> None:
        from aiohttp import web

        from orga_cli.sandbox import start_sandbox
        from orga_cli.sandbox.server import SandboxConfig

        self.offers = asyncio.Queue()
        self.sandbox = await start_sandbox(
            SandboxConfig(api_key=KEY), call_handler=self.answer_call
        )
        self.api = self.sandbox.base_url
        app = web.Application()
        app.router.add_get(
            "/answerer", lambda r: web.Response(text=ANSWERER, content_type="text/html")
        )
        app.router.add_get("/caller", lambda r: web.Response(text=CALLER, content_type="text/html"))
        app.router.add_get("/bench/next", self._next)
        app.router.add_post("/bench/answer", self._answer)
        app.router.add_get("/bench/ended", self._ended)
        app.router.add_post("/bench/stats", self._stats)
        app.router.add_post("/bench/caller", self._caller)
        app.router.add_post("/bench/log", self._log)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.pages = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def answer_call(self, offer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        from orga_cli.sandbox.network import Relay, parse_network

        assert self.offers is not None
        call_id = f"call{len(self.relays) + 1}"
        relay = Relay(parse_network(self.network or "up=", seed=1), name=call_id)
        self.relays.append(relay)
        sdp = await relay.rewrite_offer(offer["sdp"])
        future: asyncio.Future[str] = self.loop.create_future()
        self.answers[call_id] = future
        await self.offers.put({"id": call_id, "sdp": sdp})
        answer = await asyncio.wait_for(future, 20)
        answer = await relay.rewrite_answer(answer)
        return {"conversation_id": "conv_" + call_id, "answer": {"type": "answer", "sdp": answer}}

    async def _next(self, request: Any) -> Any:
        from aiohttp import web

        assert self.offers is not None
        try:
            offer = await asyncio.wait_for(self.offers.get(), 25)
        except asyncio.TimeoutError:
            offer = {}
        return web.json_response(offer)

    async def _answer(self, request: Any) -> Any:
        from aiohttp import web

        data = json.loads(await request.text())
        future = self.answers.pop(data["id"], None)
        if future is not None and not future.done():
            future.set_result(data["sdp"])
        return web.Response(status=204)

    async def _ended(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response({"ended": request.query.get("id") in self.ended})

    async def _stats(self, request: Any) -> Any:
        from aiohttp import web

        data = json.loads(await request.text())
        self.stats[data["id"]] = data["samples"]
        self.stats_in.set()
        return web.Response(status=204)

    async def _caller(self, request: Any) -> Any:
        from aiohttp import web

        self.caller_result = json.loads(await request.text())
        self.caller_in.set()
        return web.Response(status=204)

    async def _log(self, request: Any) -> Any:
        from aiohttp import web

        self.errors.append(await request.text())
        return web.Response(status=204)

    def link_figures(self, relay: Any) -> dict[str, Any]:
        """The caller's direction at the bottleneck: drops, queueing delay, timeline."""
        up = relay.up
        stats = up.stats
        total = stats.queued + stats.queue_dropped if up.imp.limited else stats.packets
        dropped = stats.queue_dropped if up.imp.limited else stats.dropped
        first = up._first
        wall_first = None if first is None else time.time() - (self.loop.time() - first)
        return {
            "packets": total,
            "dropped": dropped,
            "dropped_pct": round(100 * dropped / total, 2) if total else None,
            "queue_median_ms": stats.wait_quantile_ms(0.5) if up.imp.limited else None,
            "queue_p95_ms": stats.wait_quantile_ms(0.95) if up.imp.limited else None,
            "timeline": [(s.at, s.wait_max_ms) for s in up.timeline],
            "first_packet_wall": wall_first,
        }


def chromium(url: str, profile: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            shutil.which("chromium") or "chromium",
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            *extra,
            url,
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------- one call


def run_call(
    bench: Bench,
    who: str,
    name: str,
    index: int,
    files: dict[str, Path],
    pulse_env: dict[str, str],
    tmp: Path,
) -> dict[str, Any]:
    spec, seconds, video = PROFILES[name]
    seconds = SECONDS.get(name, seconds)
    bench.network = spec
    bench.stats_in.clear()
    bench.caller_in.clear()
    bench.caller_result = None
    before = len(bench.relays)
    wav = tmp / f"{name}-{who}-{index}.wav"
    rec = record(pulse_env, "chromium", wav)
    time.sleep(0.5)
    summary: dict[str, Any] = {}
    if who == "orga":
        flags = ["--video-in", str(files["video"])] if video else ["--no-video"]
        proc = subprocess.run(
            [sys.executable, "-m", "orga_cli", "call", "--audio-in", str(files["speech"]), *flags,
             "--no-speaker", "--json", "--duration", str(seconds)],
            env=client_env(bench.api), capture_output=True, text=True, timeout=seconds + 60,
        )  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"orga call failed: {proc.stderr[-1500:]}")
        summary = json.loads(proc.stdout)
    else:
        import urllib.parse

        query = urllib.parse.urlencode(
            {"base": bench.api, "key": KEY, "seconds": seconds, "video": int(video)}
        )
        browser = chromium(
            f"{bench.pages}/caller?{query}", tmp / f"caller-{name}-{index}", pulse_env,
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={files['video']}",
            f"--use-file-for-fake-audio-capture={files['speech']}",
        )  # fmt: skip
        try:
            if not bench.caller_in.wait(seconds + 40):
                raise SystemExit("the Chromium caller did not report")
        finally:
            stop(browser)
        if bench.caller_result and "error" in bench.caller_result:
            raise SystemExit(f"the Chromium caller failed: {bench.caller_result['error']}")
    if len(bench.relays) <= before:
        raise SystemExit(f"{who}'s call never reached /calls")
    relay = bench.relays[-1]
    call_id = relay.name
    bench.loop.call_soon_threadsafe(bench.ended.add, call_id)
    if not bench.stats_in.wait(20):
        raise SystemExit(f"the answerer sent no stats ({bench.errors[-3:]})")
    time.sleep(0.5)
    stop(rec)
    link = bench.link_figures(relay)
    samples = bench.stats.get(call_id, [])
    row: dict[str, Any] = {
        k: v for k, v in link.items() if k not in ("timeline", "first_packet_wall")
    }
    row["pesq_wb"] = pesq_windows(files["reference"], wav, seconds)
    last = samples[-1] if samples else {}
    if video:
        row["frames_decoded"] = last.get("frames")
        row["freezes"] = last.get("freezes")
        row["last_size"] = f"{last.get('width')}x{last.get('height')}"
        row["nacks"], row["plis"] = last.get("nacks"), last.get("plis")
    if samples and last.get("samples"):
        row["answerer_concealed_pct"] = round(100 * last.get("concealed", 0) / last["samples"], 2)
    if who == "orga":
        row["uplink"] = summary.get("uplink")
        row["video_time_ms"] = summary.get("video_time_ms")
        row["retransmitted"] = summary.get("packets_retransmitted")
    if name == "step":
        row.update(step_figures(link, samples))
    return row


def step_figures(link: dict[str, Any], samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The fall at 10 s: when the queue was under 100 ms for good after it (until the rise);
    the rise at 20 s: when the far end's picture was back at 640 wide."""
    timeline = link["timeline"]
    fall, rise = 10.0, 20.0
    late = [t for t, wait in timeline if fall <= t < rise and wait >= 100]
    queue_back = round(max(late) + 0.1 - fall, 2) if late else 0.0
    first = link["first_packet_wall"]
    full = None
    if first is not None:
        for s in samples:
            if s.get("t", 0) - first >= rise and (s.get("width") or 0) >= 640:
                full = round(s["t"] - first - rise, 2)
                break
    smallest = min(
        (s.get("width") or 9999 for s in samples if first and fall <= s["t"] - first < rise),
        default=None,
    )
    return {
        "queue_under_100ms_after_fall_s": queue_back,
        "full_size_after_rise_s": full,
        "width_during_fall": smallest,
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument(
        "--seconds", type=float, help="each call this long (not the step profile's): a quick run"
    )
    parser.add_argument("--profile", action="append", choices=list(PROFILES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the recordings and files in this folder")
    parser.add_argument(
        "--serve",
        metavar="PROFILE",
        choices=list(PROFILES),
        help="only run the API and the Chromium answerer behind PROFILE's link, and print the"
        " base URL (key: the bench's), to try any client by hand; Ctrl-C stops",
    )
    args = parser.parse_args()
    if args.serve:
        serve_only(args.serve, args.keep)
        return
    network = isolate_network()
    for tool in ("pulseaudio", "parecord", "chromium", "espeak-ng", "sox"):
        if not shutil.which(tool):
            raise SystemExit(f"bench/uplink.py needs {tool}")
    if args.seconds:
        SECONDS.update({name: args.seconds for name in PROFILES if name != "step"})
    results: dict[str, Any] = {"network": network, "calls": args.calls, "profiles": {}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = args.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        speech = speech_wav(tmp)
        video = tmp / "scene.y4m"
        if any(PROFILES[name][2] for name in args.profile or PROFILES):
            camera_y4m(video, 10)  # about 5 s of numpy: only when a profile has the camera
        files = {"speech": speech, "video": video, "reference": to16k(read_wav(speech))}
        pulse, pulse_env = start_pulse(tmp)
        answerer = None
        try:  # the sound server and the browser go whatever fails
            bench = Bench()
            bench.start()
            answerer = chromium(
                f"{bench.pages}/answerer", tmp / "answerer", {**pulse_env, "PULSE_SINK": "chromium"}
            )
            time.sleep(3)
            for name in args.profile or list(PROFILES):
                rows: dict[str, list[dict[str, Any]]] = {"orga": [], "chromium": []}
                for i in range(args.calls):
                    for who in ("orga", "chromium"):
                        row = run_call(bench, who, name, i, files, pulse_env, tmp)
                        rows[who].append(row)
                        print(f"{name:10s} {who:8s} call {i + 1}: {row}", file=sys.stderr)
                results["profiles"][name] = summarize(name, rows)
        finally:
            if answerer is not None:
                stop(answerer)
            stop(pulse)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    report(results)


def serve_only(name: str, keep: Path | None) -> None:
    network = isolate_network()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        pulse, pulse_env = start_pulse(tmp)
        bench = Bench()
        bench.network = PROFILES[name][0]
        bench.start()
        answerer = chromium(
            f"{bench.pages}/answerer", tmp / "answerer", {**pulse_env, "PULSE_SINK": "chromium"}
        )
        print(
            f"{bench.api}  key {KEY}  ({network}; uplink {bench.network or 'unlimited'})",
            flush=True,
        )
        import signal

        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        done.wait()
        for relay in bench.relays:
            figures = bench.link_figures(relay)
            timeline = figures.pop("timeline")
            print(relay.name, figures, flush=True)
            seconds: dict[int, float] = {}
            for at, wait in timeline:
                seconds[int(at)] = max(seconds.get(int(at), 0.0), wait)
            print(
                "   queue, the longest wait each second (ms):",
                [round(w) for _, w in sorted(seconds.items())],
                flush=True,
            )
        stop(answerer)
        stop(pulse)


KEYS = (
    ("pesq_wb", "PESQ-WB"),
    ("dropped_pct", "dropped %"),
    ("queue_median_ms", "queue ms"),
    ("queue_p95_ms", "queue p95"),
    ("frames_decoded", "frames"),
    ("freezes", "freezes"),
    ("queue_under_100ms_after_fall_s", "queue<100ms after fall s"),
    ("full_size_after_rise_s", "full size after rise s"),
)


def _median(values: list[Any]) -> float | None:
    got = [v for v in values if isinstance(v, (int, float))]
    return round(statistics.median(got), 2) if got else None


def summarize(name: str, rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "link": PROFILES[name][0] or "unlimited",
        "orga": {},
        "chromium": {},
        "per_call": {},
    }
    for who in ("orga", "chromium"):
        out[who] = {key: _median([r.get(key) for r in rows[who]]) for key, _ in KEYS}
        out[who]["calls"] = rows[who]
    for key, _ in KEYS:
        diffs = [
            a.get(key) - b.get(key)  # type: ignore[operator]
            for a, b in zip(rows["orga"], rows["chromium"], strict=True)
            if isinstance(a.get(key), (int, float)) and isinstance(b.get(key), (int, float))
        ]
        out["per_call"][key] = _median(diffs)
    return out


def report(results: dict[str, Any]) -> None:
    print(
        f"{results['calls']} calls a profile ({results['network']}); medians, orga / Chromium, and the per-call median of orga − Chromium"
    )
    for name, s in results["profiles"].items():
        print(f"{name} ({s['link']})")
        for key, label in KEYS:
            o, c, d = s["orga"].get(key), s["chromium"].get(key), s["per_call"].get(key)
            if o is None and c is None:
                continue
            print(f"   {label:26s} {o!s:>8} / {c!s:<8}  Δ {d}")


if __name__ == "__main__":
    main()
