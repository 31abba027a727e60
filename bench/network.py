"""What the speaker plays on an impaired link: orga beside Chromium (libwebrtc's NetEq).

One `orga serve --network PROFILE --seed N --reply speech.wav` per call: the sandbox
loops a ~10 s speech passage (espeak-ng) as the model's voice, through a relay that
impairs the media going down (orga and Chromium, called in turn on the same server and
seed, meet the same packet fates; each call has its own seed).
Each receiver plays it on a PulseAudio null sink of its own, and the sink's monitor is
recorded: orga's speaker (PortAudio), and headless Chromium's <audio> element playing
the remote track of a page that makes the same calls as the official web SDK. The
recorded loop is aligned with the reference and scored with PESQ-WB (ITU-T P.862.2, 16
kHz), from the call's first audio and in steady state (2 s later). Each receiver's buffer delay comes from its own stats: orga's --json
jitter_buffer_ms.mean, Chromium's jitterBufferDelay / jitterBufferEmittedCount.
Besides each side's medians, the difference call by call (both receivers met the
same packet fates): its median, mean and worst, the fairest comparison, since a
call's score on a jittery link is bimodal (one wait for a very late frame or none).

Usage (as root it moves itself into a network namespace with only loopback):
    python bench/network.py [--calls 3] [--seconds 15] [--profile NAME ...] [--json]
                            [--first-seed 7] [--keep DIR]
Needs: pulseaudio, pulseaudio-utils, chromium, espeak-ng, sox, and `pip install pesq`.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from call_perf import KEY, client_env, start_serve

PROFILES = {
    "clean": "",
    "loss5": "down=loss:5%",
    "jitter30": "down=delay:40ms,jitter:30ms",
    "jitter30-inorder": "down=delay:40ms,jitter:30ms,inorder",
    "mixed": "down=loss:3%,delay:40ms,jitter:20ms,reorder:5%",
    "outage3s": "down=outage:3s@4s",
}

TEXT = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."
    " It is easy to tell the depth of a well. These days a chicken leg is a rare dish."
    " Rice is often served in round bowls. The juice of lemons makes fine punch."
)

PAGE = """<!doctype html><meta charset=utf-8><title>orga bench receiver</title>
<audio id=out autoplay></audio>
<script>
const q = new URLSearchParams(location.search);
const base = q.get("base"), key = q.get("key"), seconds = Number(q.get("seconds"));
async function run() {
  const post = (path, body, auth) => fetch(base + path, {method: "POST",
      headers: {"Authorization": "Bearer " + auth, "Content-Type": "application/json"},
      body: body === null ? undefined : JSON.stringify(body)}).then(r => r.json());
  const token = (await post("/v1/realtime/client-secrets", null, key)).ephemeral_token;
  const ice = await fetch(base + "/v1/realtime/ice-config",
      {headers: {"Authorization": "Bearer " + token}}).then(r => r.json());
  const pc = new RTCPeerConnection({iceServers: ice.iceServers || []});
  const ctx = new AudioContext({sampleRate: 48000});
  const osc = ctx.createOscillator(); const dest = ctx.createMediaStreamDestination();
  const gain = ctx.createGain(); gain.gain.value = 0.1;
  osc.connect(gain); gain.connect(dest); osc.start();
  pc.addTransceiver(dest.stream.getAudioTracks()[0], {direction: "sendrecv"});
  pc.createDataChannel("orga-realtime-client-events");
  pc.ontrack = (e) => { const a = document.getElementById("out");
      a.srcObject = new MediaStream([e.track]); a.play(); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((ok) => { if (pc.iceGatheringState === "complete") ok();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && ok();
      setTimeout(ok, 3000); });
  const call = await post("/v1/realtime/calls", {offer: {sdp: pc.localDescription.sdp,
      type: "offer"}, params: {modalities: ["audio"]}}, token);
  await pc.setRemoteDescription(call.answer);
  await new Promise((ok) => setTimeout(ok, seconds * 1000));
  let inbound = null;
  (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") inbound = s; });
  pc.close();
  return {inbound, offer_fec: /useinbandfec=1/.test(pc.localDescription.sdp)};
}
run().then((r) => fetch("/result", {method: "POST", body: JSON.stringify(r)}),
           (e) => fetch("/result", {method: "POST", body: JSON.stringify({error: String(e)})}));
</script>"""


# --------------------------------------------------------------------------- plumbing


def isolate_network() -> str:
    if os.geteuid() != 0 or os.environ.get("ORGA_BENCH_NETNS") == "0":
        return "host network"
    import ctypes

    if ctypes.CDLL(None, use_errno=True).unshare(0x40000000) != 0:
        return "host network (unshare failed)"
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", "127.0.0.2/8", "dev", "lo"], check=True)
    return "own namespace, loopback only"


def start_pulse(runtime: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    sock = runtime / "native"
    config = runtime / "default.pa"
    config.write_text(
        f"load-module module-native-protocol-unix auth-anonymous=1 socket={sock}\n"
        "load-module module-null-sink sink_name=orga rate=48000 channels=2\n"
        "load-module module-null-sink sink_name=chromium rate=48000 channels=2\n"
        "load-module module-null-sink sink_name=mic rate=48000 channels=1\n"
        "set-default-sink orga\nset-default-source mic.monitor\n"
    )
    env = {"PULSE_RUNTIME_PATH": str(runtime), "PULSE_SERVER": f"unix:{sock}", "HOME": str(runtime)}
    proc = subprocess.Popen(
        ["pulseaudio", "-n", "-F", str(config), "--exit-idle-time=-1", "--daemonize=no"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while subprocess.run(
        ["pactl", "info"], env={**os.environ, **env}, capture_output=True
    ).returncode:
        if time.monotonic() > deadline:
            raise SystemExit("PulseAudio did not start")
        time.sleep(0.1)
    for sink in ("orga", "chromium"):  # keep both sinks running: no start-up stall is measured
        subprocess.Popen(
            ["pacat", "--playback", f"--device={sink}", "--latency-msec=10", "--raw",
             "--format=s16le", "--rate=48000", "--channels=2", "/dev/zero"],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    time.sleep(1)
    return proc, env


def record(env: dict[str, str], sink: str, path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["parecord", f"--device={sink}.monitor", "--rate=48000", "--channels=1",
         "--format=s16le", "--file-format=wav", str(path)],
        env={**os.environ, **env},
    )  # fmt: skip


def stop(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32)
        if w.getnchannels() > 1:
            data = data.reshape(-1, w.getnchannels()).mean(axis=1)
        rate = w.getframerate()
    if rate != 48000:
        raise SystemExit(f"{path}: {rate} Hz")
    return data


def to16k(x: np.ndarray) -> np.ndarray:
    """48 kHz to 16 kHz, band-limited (the spectrum cut at 8 kHz)."""
    n = x.size - x.size % 3
    spectrum = np.fft.rfft(x[:n])[: n // 6 + 1]
    return (np.fft.irfft(spectrum, n // 3) / 3).astype(np.float32)


SKIP_S = 2.0  # the steady-state score leaves out the first seconds of the call


def score(reference: np.ndarray, recording: Path) -> tuple[float | None, float | None]:
    """PESQ-WB of one loop's length of *recording* (16 kHz): from the call's first audio,
    and in steady state (SKIP_S later, against the loop rotated by as much: the sandbox
    loops the file seamlessly, so that is exactly what it sent then)."""
    from pesq import pesq

    deg = to16k(read_wav(recording))
    ref = reference
    if deg.size < ref.size + 16000:
        return None, None
    # The loop starts when the call's audio does: find it by cross-correlation.
    n = 1 << int(np.ceil(np.log2(deg.size + ref.size)))
    corr = np.fft.irfft(np.fft.rfft(deg, n) * np.conj(np.fft.rfft(ref, n)), n)[
        : deg.size - ref.size
    ]
    start = int(np.argmax(corr))
    whole = deg[start : start + ref.size]
    skip = int(SKIP_S * 16000)
    later = deg[start + skip : start + skip + ref.size]
    first = float(pesq(16000, ref, whole, "wb")) if whole.size == ref.size else None
    rotated = np.roll(ref, -skip)
    steady = float(pesq(16000, rotated, later, "wb")) if later.size == ref.size else None
    return first, steady


# --------------------------------------------------------------------------- receivers


def orga_receiver(
    base: str, pulse_env: dict[str, str], seconds: float, out: Path
) -> dict[str, Any]:
    env = {**client_env(base, devices=True), **pulse_env, "PULSE_SINK": "orga"}
    rec = record(pulse_env, "orga", out)
    time.sleep(0.3)
    proc = subprocess.run(
        [sys.executable, "-m", "orga_cli", "call", "--audio-in", "tone:440", "--no-video",
         "--json", "--duration", str(seconds), "--record", str(out.with_suffix(".record.wav"))],
        env=env, capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    time.sleep(0.3)
    stop(rec)
    if proc.returncode != 0:
        raise SystemExit(f"orga call failed: {proc.stderr[-2000:]}")
    s = json.loads(proc.stdout)
    return {
        "buffer_ms": s["jitter_buffer_ms"]["mean"],
        "concealed_pct": s["concealed_pct"],
        "lost": s["packets_lost"],
        "late": s["packets_late"],
        "fec_recovered": s["fec_recovered"],
        "underruns": s["playout_underruns"],
        "stretched_ms": s["time_stretch_ms"],
    }


class _Results(http.server.BaseHTTPRequestHandler):
    result: dict[str, Any] | None = None
    arrived = threading.Event()

    def do_GET(self) -> None:
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).result = json.loads(data)
        type(self).arrived.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def chromium_receiver(
    base: str, pulse_env: dict[str, str], seconds: float, out: Path, profile_dir: Path
) -> dict[str, Any]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Results)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Results.result = None
    _Results.arrived.clear()
    query = urllib.parse.urlencode({"base": base, "key": KEY, "seconds": seconds})
    url = f"http://127.0.0.1:{server.server_port}/?{query}"
    rec = record(pulse_env, "chromium", out)
    time.sleep(0.3)
    browser = subprocess.Popen(
        [shutil.which("chromium") or "chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={profile_dir}",
         "--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection",
         "--disable-features=WebRtcHideLocalIpsWithMdns", url],
        env={**os.environ, **pulse_env, "PULSE_SINK": "chromium"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        if not _Results.arrived.wait(seconds + 40):
            raise SystemExit("Chromium's call did not report")
    finally:
        stop(browser)
        time.sleep(0.3)
        stop(rec)
        server.shutdown()
    result = _Results.result or {}
    if "error" in result:
        raise SystemExit(f"Chromium's call failed: {result['error']}")
    s = result["inbound"] or {}
    emitted = s.get("jitterBufferEmittedCount") or 0
    samples = s.get("totalSamplesReceived") or 0
    return {
        "buffer_ms": round(1000 * s["jitterBufferDelay"] / emitted, 1) if emitted else None,
        "concealed_pct": round(100 * s.get("concealedSamples", 0) / samples, 2)
        if samples
        else None,
        "lost": s.get("packetsLost"),
        "fec_recovered": s.get("fecPacketsReceived"),
        "offer_fec": result.get("offer_fec"),
    }


# --------------------------------------------------------------------------- cost


def receiver_cost(speech: Path) -> dict[str, Any]:
    """The receive component's own CPU per 20 ms frame, beside the bare Opus decode.

    The speech is encoded once (with FEC at 5 %); then, on a fake clock, the packets
    are inserted with σ 30 ms jitter and 3 % loss while 10 ms blocks are pulled, as a
    sound card would; the wall time of insert + pull is divided by the frames played.
    The baseline in the same run decodes the same packets and nothing else.
    """
    import random

    from orga_cli.media.opus import FRAME, Decoder, Encoder
    from orga_cli.media.receive import AudioReceiver

    x = read_wav(speech).astype(np.int16)
    enc = Encoder()
    enc.set_fec(True)
    enc.set_expected_loss(5)
    packets = [enc.encode(x[i : i + FRAME]) for i in range(0, x.size - FRAME, FRAME)]
    rng = random.Random(1)
    arrivals = sorted(
        (0.05 + i * 0.02 + max(0.0, rng.gauss(0.04, 0.03)), i * FRAME, p)
        for i, p in enumerate(packets)
        if rng.random() >= 0.03
    )

    def decode_only() -> float:
        dec = Decoder()
        t0 = time.perf_counter()
        for p in packets:
            dec.decode(p)
        return (time.perf_counter() - t0) / len(packets)

    def component() -> float:
        now = [0.0]
        rx = AudioReceiver(clock=lambda: now[0])
        spent, t, i = 0.0, 0.0, 0
        end = len(packets) * 0.02
        while t < end:
            t0 = time.perf_counter()
            while i < len(arrivals) and arrivals[i][0] <= t:
                now[0] = arrivals[i][0]
                rx.insert(arrivals[i][2], arrivals[i][1], ssrc=1)
                i += 1
            now[0] = t
            rx.pull(480)
            spent += time.perf_counter() - t0
            t += 0.01
        return spent / (end / 0.02)

    base = statistics.median(decode_only() for _ in range(5))
    full = statistics.median(component() for _ in range(5))
    return {
        "per_frame_us": round(1e6 * full, 1),
        "decode_only_per_frame_us": round(1e6 * base, 1),
        "ratio_to_decode": round(full / base, 2),
        "core_pct": round(100 * full / 0.02, 2),
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--profile", action="append", choices=sorted(PROFILES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the recordings in this folder")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=7,
        help="call i uses seed FIRST_SEED + i; another value samples other packet fates",
    )
    args = parser.parse_args()
    network = isolate_network()
    for tool in ("pulseaudio", "parecord", "chromium", "espeak-ng", "sox"):
        if not shutil.which(tool):
            raise SystemExit(f"bench/network.py needs {tool}")
    results: dict[str, Any] = {
        "network": network,
        "calls": args.calls,
        "seconds": args.seconds,
        "profiles": {},
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = args.keep or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        raw, speech = tmp / "speech-22k.wav", tmp / "speech.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), TEXT], check=True)
        subprocess.run(["sox", str(raw), "-r", "48000", str(speech), "trim", "0", "10"], check=True)
        reference = to16k(read_wav(speech))
        results["receiver_cost"] = receiver_cost(speech)
        print(f"receive component: {results['receiver_cost']}", file=sys.stderr)
        pulse, pulse_env = start_pulse(tmp)
        try:
            for name in args.profile or list(PROFILES):
                rows: dict[str, list[dict[str, Any]]] = {"orga": [], "chromium": []}
                for i in range(args.calls):
                    # One server per call, with its own seed: both receivers meet the same
                    # packet fates in call i, and the calls sample different ones (where a
                    # loss falls in the passage moves PESQ more than anything else).
                    flags = (
                        ["--network", PROFILES[name], "--seed", str(args.first_seed + i)]
                        if PROFILES[name]
                        else []
                    )
                    serve, base = start_serve("--reply", str(speech), *flags)
                    try:
                        for who in ("orga", "chromium"):
                            wav_path = tmp / f"{name}-{who}-{i}.wav"
                            if who == "orga":
                                row = orga_receiver(base, pulse_env, args.seconds, wav_path)
                            else:
                                row = chromium_receiver(
                                    base,
                                    pulse_env,
                                    args.seconds,
                                    wav_path,
                                    tmp / f"chrome-{name}-{i}",
                                )
                            row["pesq_wb"], row["pesq_wb_steady"] = score(reference, wav_path)
                            if who == "orga":  # what the receive buffer handed the speaker
                                recorded = wav_path.with_suffix(".record.wav")
                                row["record_pesq_wb"], row["record_pesq_wb_steady"] = score(
                                    reference, recorded
                                )
                            rows[who].append(row)
                            print(f"{name:17s} {who:8s} call {i + 1}: {row}", file=sys.stderr)
                    finally:
                        stop(serve)
                results["profiles"][name] = summarize(PROFILES[name] or "clean", rows)
        finally:
            stop(pulse)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    report(results)


def report(results: dict[str, Any]) -> None:
    """The run's figures as text."""
    print(f"receive component per 20 ms frame: {results['receiver_cost']}")
    print("PESQ-WB medians (whole: from the call's first audio; steady: from 2 s later)")
    head = ("profile", "orga", "Chr.", "Δ", "steady", "Chr.", "Δ", "orga ms", "Chr. ms")
    print("{:18s} {:>6s} {:>6s} {:>6s} | {:>6s} {:>6s} {:>6s} | {:>8s} {:>8s}".format(*head))
    for name, s in results["profiles"].items():
        o, c = s["orga"], s["chromium"]
        cells = (
            o["pesq_wb_median"], c["pesq_wb_median"], s["pesq_orga_minus_chromium"],
            o["pesq_wb_steady_median"], c["pesq_wb_steady_median"], s["steady_orga_minus_chromium"],
            o["buffer_ms_median"], c["buffer_ms_median"],
        )  # fmt: skip
        print(
            "{:18s} {!s:>6} {!s:>6} {!s:>6} | {!s:>6} {!s:>6} {!s:>6} | {!s:>8} {!s:>8}".format(
                name, *cells
            )
        )
    print("Per call, orga − Chromium on the same packet fates: median / mean (worst)")
    for name, s in results["profiles"].items():
        p = s["per_call_orga_minus_chromium"]
        print(
            f"{name:18s} whole {p['pesq_wb']['median']} / {p['pesq_wb']['mean']}"
            f" ({p['pesq_wb']['worst']})  steady {p['pesq_wb_steady']['median']}"
            f" / {p['pesq_wb_steady']['mean']} ({p['pesq_wb_steady']['worst']})"
            f"  buffer ms {p['buffer_ms']['median']} / {p['buffer_ms']['mean']}"
            f" ({p['buffer_ms']['worst']})"
        )


def _median(values: list[Any], digits: int) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), digits) if present else None


def _minus(a: float | None, b: float | None, digits: int) -> float | None:
    return None if a is None or b is None else round(a - b, digits)


def summarize(link: str, rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"link": link}
    for who, got in rows.items():
        summary[who] = {
            "pesq_wb_median": _median([r["pesq_wb"] for r in got], 2),
            "pesq_wb_steady_median": _median([r["pesq_wb_steady"] for r in got], 2),
            "record_pesq_wb_steady_median": _median(
                [r.get("record_pesq_wb_steady") for r in got], 2
            ),
            "buffer_ms_median": _median([r["buffer_ms"] for r in got], 1),
            "calls": got,
        }
    o, c = summary["orga"], summary["chromium"]
    summary["pesq_orga_minus_chromium"] = _minus(o["pesq_wb_median"], c["pesq_wb_median"], 2)
    summary["steady_orga_minus_chromium"] = _minus(
        o["pesq_wb_steady_median"], c["pesq_wb_steady_median"], 2
    )
    summary["buffer_orga_minus_chromium_ms"] = _minus(
        o["buffer_ms_median"], c["buffer_ms_median"], 1
    )
    # Call i met the same packet fates in both receivers: the fairest comparison is call
    # by call (a call's score is bimodal on a jittery link, which the medians above hide).
    pairs = list(zip(rows["orga"], rows["chromium"], strict=True))
    summary["per_call_orga_minus_chromium"] = {
        key: _spread([_minus(a.get(key), b.get(key), 3) for a, b in pairs], worst)
        for key, worst in (("pesq_wb", min), ("pesq_wb_steady", min), ("buffer_ms", max))
    }
    return summary


def _spread(
    values: list[float | None], worst: Callable[[list[float]], float]
) -> dict[str, float | None]:
    got = [v for v in values if v is not None]
    if not got:
        return {"median": None, "mean": None, "worst": None}
    return {
        "median": round(statistics.median(got), 2),
        "mean": round(statistics.mean(got), 2),
        "worst": round(worst(got), 2),
    }


if __name__ == "__main__":
    main()
