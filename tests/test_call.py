"""`orga call` end to end against the sandbox's echo peer, and every way a call ends."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from .helpers.audio import dominant_hz, read_wav, rms
from .helpers.faults import ICE_REPLY, ScriptedServer, answer_then_vanish, response, token_reply
from .helpers.orga import KNOWN_KEY, clean_env, jsonl, orga, start_orga, wait_for_line
from .helpers.sandbox import Sandbox
from .helpers.tokens import make_jwt

Scripted = Callable[[list], ScriptedServer]


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_echo_of_a_tone(tmp_path: Path, loop: str) -> None:
    out = tmp_path / "out.wav"
    result = orga(
        "call", "--sandbox", "--audio-in", "tone:440", "--record", str(out),
        "--duration", "2.5", "--no-video", "--json",
        env={"ORGA_EVENT_LOOP": loop},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stdout)
    for key in (
        "conversation_id",
        "duration_s",
        "ms_to_connected",
        "ms_to_first_audio",
        "packets_sent",
        "bytes_sent",
        "packets_received",
        "bytes_received",
        "loss_pct",
        "jitter_ms",
        "rtt_ms",
        "ended_by",
    ):
        assert key in summary, key
    assert summary["ended_by"] == "duration"
    assert summary["conversation_id"].startswith("conv_")
    assert 2.4 <= summary["duration_s"] <= 3.5
    assert summary["packets_sent"] > 100 and summary["packets_received"] > 100
    assert summary["ms_to_first_audio"] >= summary["ms_to_connected"] > 0
    samples, rate = read_wav(out)
    # the recording keeps the wall clock from the moment the call connected
    assert rate == 48000 and len(samples) / rate == pytest.approx(summary["duration_s"], rel=0.02)
    assert rms(samples) > 1000, "the recording is silent"
    assert abs(dominant_hz(samples, rate) - 440) <= 10


def test_video_events_and_session_update(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    dump = tmp_path / "sdp"
    result = orga(
        *[
            "call",
            "--sandbox",
            "--audio-in",
            "tone:300",
            "--video-in",
            "testsrc",
            "--no-speaker",
            "--events",
            str(log),
            "--duration",
            "3",
            "--dump-sdp",
            str(dump),
            "--json",
        ]
    )
    assert result.returncode == 0, result.stderr
    records = jsonl(log)
    incoming = [r["event"] for r in records if r["dir"] == "in" and "event" in r]
    outgoing = [r["event"] for r in records if r["dir"] == "out"]
    types = [e.get("type") for e in incoming]
    assert "session.created" in types and "conversation.created" in types
    created = next(e for e in incoming if e.get("type") == "session.created")
    assert created["session"]["voice"] == "Sofía"
    assert created["session"]["modalities"] == ["audio", "video"]
    assert outgoing[0] == {
        "event": "session.update",
        "data": {
            "model": "orga-1-beta",
            "voice": "Sofía",
            "temperature": 0.5,
            "modalities": ["audio", "video"],
        },
    }
    stats = [e for e in incoming if e.get("type") == "sandbox.stats"]
    assert stats and stats[-1]["video_frames_decoded"] > 10
    # the camera's full size reached the far end (a machine busy with other tests may delay
    # feedback enough for the uplink to step down for a moment at the end)
    assert any(e["video_size"] == "640x480" for e in stats), stats
    assert stats[-1]["session_updates"] >= 1  # the update was not lost at channel open
    assert all(isinstance(r["t"], float) for r in records)
    summary = json.loads(result.stdout)
    assert summary["video_packets_sent"] > 0 and summary["modalities"] == ["audio", "video"]
    # --dump-sdp: the four files, no token in them
    for name in ("offer.sdp", "answer.sdp", "request.json", "response.json"):
        assert (dump / name).stat().st_size > 0
    assert (dump / "offer.sdp").read_text().startswith("v=0")
    request = json.loads((dump / "request.json").read_text())
    assert request["params"]["modalities"] == ["audio", "video"] and request["offer"]["candidates"]
    assert "eyJ" not in "".join((dump / n).read_text() for n in ("request.json", "response.json"))


def test_transcripts_on_screen(tmp_path: Path) -> None:
    burst = tmp_path / "burst.wav"
    rate = 48000
    t = np.arange(int(1.2 * rate)) / rate
    speech = (np.sin(2 * np.pi * 500 * t) * 12000).astype(np.int16)
    with wave.open(str(burst), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            np.concatenate(
                [np.zeros(rate // 2, np.int16), speech, np.zeros(rate, np.int16)]
            ).tobytes()
        )
    result = orga(
        *[
            "call",
            "--sandbox",
            "--audio-in",
            str(burst),
            "--no-video",
            "--no-speaker",
            "--transcribe",
            "--duration",
            "3.5",
        ]
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    you = [line for line in lines if " you: " in line]
    assistant = [line for line in lines if " orga: " in line]
    assert you and "s of speech]" in you[0]
    assert assistant and "Echoing back" in assistant[0] and "<emotion" not in assistant[0]
    assert "sandbox.stats" not in result.stderr  # unknown event types only with -v
    verbose = orga(
        *[
            "call",
            "--sandbox",
            "--audio-in",
            "tone:300",
            "--no-video",
            "--no-speaker",
            "--duration",
            "1.5",
            "-v",
        ]
    )
    assert "sandbox.stats" in verbose.stderr


def test_sigint_mid_call_keeps_valid_recordings(tmp_path: Path) -> None:
    rec, mic = tmp_path / "rec.wav", tmp_path / "mic.wav"
    proc = start_orga(
        "call", "--sandbox", "--audio-in", "tone:440", "--no-video", "--no-speaker",
        "--record", str(rec), "--record-mic", str(mic), "--duration", "60", "--json",
    )  # fmt: skip
    wait_for_line(proc, "phase connected")
    time.sleep(1.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 2.5
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert json.loads(stdout)["ended_by"] == "interrupt"
    for path in (rec, mic):
        samples, _ = read_wav(path)
        assert len(samples) > 48000, path
    assert abs(dominant_hz(read_wav(mic)[0], 48000) - 440) <= 10


# --------------------------------------------------------------------------- faults


def call_env(server: ScriptedServer) -> dict[str, str]:
    return {"ORGA_API_KEY": KNOWN_KEY, "ORGA_BASE_URL": server.base_url}


BASE_ARGS = ["call", "--audio-in", "tone:440", "--no-video", "--no-speaker", "--duration", "2"]


@pytest.mark.parametrize(
    ("calls_reply", "code", "fragment"),
    [
        (response(500, b'{"error": {"message": "media server down"}}'), 4, "media server down"),
        (
            response(401, b'{"error": {"message": "Invalid ephemeral token"}}'),
            3,
            "Invalid ephemeral token",
        ),
        (
            response(
                200, b'{"conversation_id": "c1", "answer": {"type": "answer", "sdp": "hello"}}'
            ),
            6,
            "not SDP",
        ),
        (
            response(
                200,
                json.dumps(
                    {
                        "conversation_id": "c1",
                        "answer": {
                            "type": "answer",
                            "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
                        },
                    }
                ).encode(),
            ),
            6,
            "no audio section",
        ),
        (response(200, b'{"answer": {"type": "answer", "sdp": "v=0"}}'), 6, "no conversation_id"),
    ],
    ids=["500", "401", "not-sdp", "no-audio", "no-conversation-id"],
)
def test_calls_answer_faults(
    scripted: Scripted, calls_reply: bytes, code: int, fragment: str
) -> None:
    server = scripted([token_reply(), ICE_REPLY, calls_reply])
    result = orga(*BASE_ARGS, env=call_env(server))
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("orga:")]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_ice_failure_names_the_candidates(scripted: Scripted) -> None:
    server = scripted([token_reply(), ICE_REPLY, answer_then_vanish])
    started = time.monotonic()
    result = orga(*BASE_ARGS, "--connect-timeout", "3", env=call_env(server))
    assert result.returncode == 6, result.stderr
    line = next(x for x in result.stderr.splitlines() if x.startswith("orga:"))
    assert "ICE" in line and "local candidates: host" in line and "remote: host" in line
    assert "orga ice --probe" in line and "--relay-only" in line
    assert time.monotonic() - started < 20


def test_sigint_before_connection(scripted: Scripted) -> None:
    server = scripted([token_reply(), ICE_REPLY, None])  # /calls never answers
    proc = start_orga(*BASE_ARGS, "--timeout", "30", env=call_env(server))
    wait_for_line(proc, "phase negotiating")
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 2.0
    assert proc.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr


def test_expired_token_sends_nothing(scripted: Scripted) -> None:
    server = scripted([])
    expired = make_jwt({"exp": int(time.time()) - 30})
    result = orga(*BASE_ARGS, "--token", expired, env={"ORGA_BASE_URL": server.base_url})
    assert result.returncode == 2
    assert "expired" in result.stderr and "orga token" in result.stderr
    assert server.requests == []


@pytest.mark.parametrize("kind", ["missing", "garbage"])
def test_bad_audio_in_fails_before_any_request(
    scripted: Scripted, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "voice.wav"
    if kind == "garbage":
        path.write_bytes(b"this is not audio at all" * 100)
    server = scripted([])
    result = orga(
        *["call", "--audio-in", str(path), "--no-video", "--no-speaker"], env=call_env(server)
    )
    assert result.returncode == 5, result.stderr
    assert str(path) in result.stderr and "Traceback" not in result.stderr
    assert server.requests == []


def test_bad_video_in_fails_before_any_request(scripted: Scripted, tmp_path: Path) -> None:
    server = scripted([])
    result = orga(
        *[
            "call",
            "--audio-in",
            "tone:440",
            "--video-in",
            str(tmp_path / "none.mp4"),
            "--no-speaker",
        ],
        env=call_env(server),
    )
    assert result.returncode == 5, result.stderr
    assert server.requests == []


def test_no_audio_devices_names_the_alternatives(scripted: Scripted) -> None:
    # No PulseAudio for this process: PortAudio finds no device at all.
    server = scripted([])
    result = orga("call", "--no-video", env=call_env(server))
    assert result.returncode == 5, result.stderr
    assert "--audio-in" in result.stderr and "--no-speaker" in result.stderr
    assert server.requests == []


def test_portaudio_missing(cli: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    """libportaudio2 is installed here, so its absence is simulated: sounddevice raises OSError."""
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    result = cli(["call", "--no-video", "--api-key", KNOWN_KEY, "--base-url", "http://127.0.0.1:9"])
    assert result.exit_code == 5
    assert (
        "libportaudio2" in result.stderr
        and "--audio-in" in result.stderr
        and "--no-speaker" in result.stderr
    )


def test_unknown_voice_suggests(cli: Callable) -> None:
    result = cli(["call", "--sandbox", "--voice", "Sofia2", "--no-video"])
    assert result.exit_code == 2
    assert "Sofía" in result.stderr


def test_server_disappears_mid_call(sandbox_with: Callable[..., Sandbox], tmp_path: Path) -> None:
    box = sandbox_with()
    rec = tmp_path / "rec.wav"
    proc = start_orga(*BASE_ARGS[:-1], "60", "--record", str(rec), "--json", env=box.env())
    wait_for_line(proc, "phase connected")
    time.sleep(1.0)
    box.process.kill()
    killed = time.monotonic()
    stdout, stderr = proc.communicate(timeout=20)
    # noticed at once (its port refuses), not after ICE consent's 30 s nor as an outage
    assert time.monotonic() - killed < 5, stderr
    assert proc.returncode == 6, stderr
    assert "reconnecting" not in stderr
    assert "the server ended the call" in stderr and "recordings are kept" in stderr
    assert json.loads(stdout)["ended_by"] == "peer"
    assert len(read_wav(rec)[0]) > 24000


class FingerprintSwapper(http.server.BaseHTTPRequestHandler):
    """Forwards to a real sandbox, with the DTLS fingerprint of the /calls answer changed.

    ICE then connects to the sandbox's real peer, and the DTLS handshake fails when
    the client checks the certificate against the answer: a real DTLS failure.
    """

    upstream = ""

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))) or None
        headers = {
            k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")
        }
        request = urllib.request.Request(
            self.upstream + self.path, data=body, headers=headers, method=self.command
        )
        with urllib.request.urlopen(request, timeout=20) as reply:
            status, data = reply.status, reply.read()
        if self.path.endswith("/calls"):
            answer = json.loads(data)
            sdp = answer["answer"]["sdp"]
            answer["answer"]["sdp"] = re.sub(
                r"a=fingerprint:sha-256 [0-9A-F:]+",
                "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
                sdp,
            )
            data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward

    def log_message(self, *args: object) -> None:
        pass


def test_dtls_failure_after_ice_says_so(sandbox: Sandbox) -> None:
    handler = type("Swapper", (FingerprintSwapper,), {"upstream": sandbox.base_url})
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{proxy.server_address[1]}"
        result = orga(
            *[*BASE_ARGS, "--connect-timeout", "8", "-v"],
            env={"ORGA_API_KEY": sandbox.api_key, "ORGA_BASE_URL": base},
        )
    finally:
        proxy.shutdown()
    assert result.returncode == 6, result.stderr
    assert "Traceback" not in result.stderr
    line = next(x for x in result.stderr.splitlines() if x.startswith("orga:"))
    assert "DTLS handshake failed after ICE connected" in line, line
    assert "local candidates: host" in line and "remote: host" in line
    assert "does not match the fingerprint in its answer" in line and "--dump-sdp" in line


def test_instructions_from_file(tmp_path: Path) -> None:
    text = tmp_path / "prompt.txt"
    text.write_text("Answer in rhymes.\n")
    log = tmp_path / "ev.jsonl"
    result = orga(
        *[
            "call",
            "--sandbox",
            "--audio-in",
            "tone:300",
            "--no-video",
            "--no-speaker",
            "--duration",
            "1.5",
            "--instructions",
            f"@{text}",
            "--voice",
            "ethan",
            "--temperature",
            "0.2",
            "--events",
            str(log),
        ]
    )
    assert result.returncode == 0, result.stderr
    created = next(
        r["event"] for r in jsonl(log) if r.get("event", {}).get("type") == "session.created"
    )
    assert created["session"]["instructions"] == "Answer in rhymes."
    assert created["session"]["voice"] == "Ethan" and created["session"]["temperature"] == 0.2


def test_sandbox_main_job_runs_headless() -> None:
    """The README's first command: on a machine with no sound card, no camera."""
    result = orga("call", "--sandbox", "--duration", "2")
    assert result.returncode == 0, result.stderr
    assert (
        "no microphone" in result.stderr
        and "no speaker" in result.stderr
        and "no camera" in result.stderr
    )
    assert "call ended (duration)" in result.stderr


def test_an_unknown_event_loop_is_a_usage_error() -> None:
    result = orga("call", "--sandbox", "--duration", "1", env={"ORGA_EVENT_LOOP": "trio"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ORGA_EVENT_LOOP" in lines[0] and "uvloop or asyncio" in lines[0]


def test_a_machine_with_only_127_0_0_1_is_told_what_to_do() -> None:
    """A network namespace with nothing but 127.0.0.1: aioice has no candidate to offer."""
    import shutil

    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root to make a network namespace")
    script = f"ip link set lo up && exec {sys.executable} -m orga_cli call --sandbox --audio-in tone:440 --no-video --no-speaker --duration 1"
    out = subprocess.run(
        ["unshare", "--net", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert out.returncode == 6, out.stderr
    assert "no ICE candidates" in out.stderr and "127.0.0.2/8" in out.stderr


def test_processing_defaults(tmp_path: Path) -> None:
    """File and tone inputs skip processing unless --aec forces it."""
    base = [
        sys.executable,
        "-m",
        "orga_cli",
        "call",
        "--sandbox",
        "--audio-in",
        "tone:440",
        "--no-video",
        "--no-speaker",
        "--duration",
        "1",
        "--json",
    ]
    env = clean_env()
    plain = json.loads(
        subprocess.run(base, capture_output=True, text=True, timeout=60, env=env).stdout
    )
    assert plain["processing"] == "off"
    forced = subprocess.run(
        [*base, "--aec", "--no-agc"], capture_output=True, text=True, timeout=60, env=env
    )
    assert json.loads(forced.stdout)["processing"] == "NS+HPF"  # no speaker: nothing to cancel
