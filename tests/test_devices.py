"""The real PortAudio path: PulseAudio null sinks as the microphone and the speaker."""

from __future__ import annotations

import json
import os
import signal
import time
import wave
from pathlib import Path

import pytest

from .helpers.audio import dominant_hz, read_wav, rms, tone_wav
from .helpers.orga import orga, start_orga, wait_for_line
from .helpers.pulse import Pulse

pytestmark = pytest.mark.devices


def test_devices_lists_pulse(pulse: Pulse) -> None:
    out = orga("devices", "--json", env=pulse.env, timeout=30)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert isinstance(listed["cameras"], list)  # none on this machine; see test_platforms
    devices = listed["audio"]
    assert any(d["default_input"] for d in devices) and any(d["default_output"] for d in devices)
    assert all(
        {"index", "name", "hostapi", "max_input_channels", "default_samplerate"} <= set(d)
        for d in devices
    )


def test_echo_through_the_sound_card(pulse: Pulse, tmp_path: Path) -> None:
    """A tone played into the virtual mic comes back, echoed by the sandbox, on the virtual speaker."""
    player = pulse.play(tone_wav(tmp_path / "tone.wav", 660, 9, amplitude=0.5))
    recording = tmp_path / "speaker.wav"
    recorder = pulse.record(recording)
    try:
        result = orga(
            "call", "--sandbox", "--no-video", "--duration", "5", "--json",
            "--record-mic", str(tmp_path / "mic.wav"), env=pulse.env,
        )  # fmt: skip
    finally:
        time.sleep(0.3)
        recorder.terminate()
        recorder.wait(5)
        player.terminate()
        player.wait(5)
    assert result.returncode == 0, result.stderr
    assert "no microphone" not in result.stderr and "no speaker" not in result.stderr
    mic, rate = read_wav(tmp_path / "mic.wav")
    assert rms(mic) > 1000 and abs(dominant_hz(mic, rate) - 660) <= 10
    heard, rate = read_wav(recording)
    summary = json.loads(result.stdout)
    assert rms(heard) > 300, "nothing reached the virtual speaker"
    # The echo, once it runs: the last 2.5 s (the call lasts 5 s, the echo starts after
    # connecting, 0.5 s of echo delay and the microphone's start-up).
    echo = heard[-int(2.5 * rate) :]
    assert abs(dominant_hz(echo, rate) - 660) <= 10, {
        k: summary[k]
        for k in ("concealed_pct", "time_stretch_ms", "playout_underruns", "jitter_buffer_ms")
    }
    # the speaker pulled the receive buffer at the device's pace, near its target
    assert summary["packets_lost"] == 0 and summary["packets_late"] == 0
    assert 20 <= summary["jitter_buffer_ms"]["target"] <= 100
    assert summary["jitter_buffer_ms"]["mean"] is not None


def test_sound_server_vanishing_mid_call(pulse: Pulse, tmp_path: Path) -> None:
    """The sound server dies mid-call (mic and speaker gone): warnings, and the call goes on with silence."""
    rec = tmp_path / "rec.wav"
    proc = start_orga(
        *[
            "call",
            "--sandbox",
            "--no-video",
            "--duration",
            "7",
            "--json",
            "--record",
            str(rec),
        ],
        env=pulse.env,
    )
    wait_for_line(proc, "phase connected")
    time.sleep(1.5)
    pulse.kill()
    stdout, stderr = proc.communicate(timeout=40)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["ended_by"] == "duration" and summary["duration_s"] >= 6.9
    assert "Traceback" not in stderr
    assert "the microphone stopped delivering audio; sending silence" in stderr, stderr[-2000:]
    assert len(read_wav(rec)[0]) > 5 * 48000  # the call and its recording went on


def test_devices_that_come_and_go(pulse: Pulse, tmp_path: Path) -> None:
    """Both PulseAudio devices unloaded mid-call (an unplugged headset: the streams have
    nowhere to go): reported, the call goes on, and both are opened again within 2 s of
    coming back; the echo is then heard on the speaker again."""
    events = tmp_path / "events.jsonl"
    player = pulse.play(tone_wav(tmp_path / "tone.wav", 660, 30, amplitude=0.5))
    proc = start_orga(
        *[
            "call",
            "--sandbox",
            "--no-video",
            "--duration",
            "13",
            "--json",
            "-v",
            "--events",
            str(events),
        ],
        env=pulse.env,
    )
    wait_for_line(proc, "phase connected")
    time.sleep(2.0)
    pulse.unload_null_sinks()
    player.wait(5)  # its sink went with them
    time.sleep(3.0)
    pulse.pactl("load-module", "module-null-sink", "sink_name=speaker", "rate=48000", "channels=2")
    pulse.pactl("load-module", "module-null-sink", "sink_name=mic", "rate=48000", "channels=1")
    back_at = time.time()
    pulse.pactl("set-default-sink", "speaker")
    pulse.pactl("set-default-source", "mic.monitor")
    player = pulse.play(tone_wav(tmp_path / "tone2.wav", 660, 30, amplitude=0.5))
    time.sleep(3.0)
    recording = tmp_path / "speaker.wav"
    recorder = pulse.record(recording)
    time.sleep(3.0)
    recorder.terminate()
    recorder.wait(5)
    stdout, stderr = proc.communicate(timeout=40)
    player.kill()
    assert proc.returncode == 0, stderr
    # PortAudio's and libasound's own lines go to the debug log (-v), never bare on the screen
    bare = "\n".join(line for line in stderr.splitlines() if "DEBUG native:" not in line)
    assert "Traceback" not in bare and "ALSA lib" not in bare and "Expression" not in bare
    assert "the speaker is back" in stderr and "the microphone is back" in stderr, stderr[-2000:]
    log = [json.loads(line) for line in events.read_text().splitlines()]
    changes = [(e["event"]["type"][len("orga.device_"):], e["event"]["device"], e["t"])
               for e in log if e["event"].get("type", "").startswith("orga.device_")]  # fmt: skip

    def first(what: str, name: str, after: float) -> float:
        return min(
            (t for w, n, t in changes if w == what and n == name and t >= after), default=1e18
        )

    for name in ("speaker", "microphone"):
        assert first("lost", name, 0) < back_at, (name, changes)
        # opened again within 2 s of coming back; sound flows once the device has started
        # (a freshly loaded null sink's monitor takes ~2 s: PulseAudio's, not ours). A
        # later stall (the monitor recording below starts) may be lost and found again.
        assert first("reopened", name, back_at - 0.5) - back_at <= 2.0, (name, changes)
        assert first("back", name, back_at - 0.5) - back_at <= 4.0, (name, changes)
    heard, rate = read_wav(recording)
    assert rms(heard) > 300 and abs(dominant_hz(heard, rate) - 660) <= 10
    summary = json.loads(stdout)
    assert summary["ended_by"] == "duration"


def test_a_sound_server_that_stops_answering_does_not_hold_the_call(
    pulse: Pulse, tmp_path: Path
) -> None:
    """PulseAudio frozen (SIGSTOP, as a hung sound server) after the devices went: the
    speaker's re-open blocks in PortAudio for good. The call still ends when it should,
    prints its summary and exits, instead of waiting on PortAudio at the end."""
    assert pulse.process is not None
    record = tmp_path / "call.wav"
    proc = start_orga(
        *["call", "--sandbox", "--no-video", "--duration", "8", "--json", "-v",
         "--record", str(record)],
        env=pulse.env,
    )  # fmt: skip
    wait_for_line(proc, "phase connected")
    time.sleep(1.0)
    pulse.unload_null_sinks()
    time.sleep(1.5)  # the speaker is found gone; its first re-open comes after START_GRACE_S
    os.kill(pulse.process.pid, signal.SIGSTOP)
    started = time.monotonic()
    try:
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        os.kill(pulse.process.pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert time.monotonic() - started < 20
    summary = json.loads(stdout)
    assert summary["ended_by"] == "duration"
    # the recording was closed and is whole: a WAV as long as the summary says
    with wave.open(str(record)) as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(
            summary["record_seconds"], abs=0.05
        )
    # it keeps the wall clock of the call (8 s): the speaker stream's late start is
    # silence in it, the device's absence the wall clock's pulls, and it ends with the call
    assert summary["record_seconds"] == pytest.approx(8.0, abs=0.25)


def test_warnings_name_the_fix(pulse: Pulse, tmp_path: Path) -> None:
    """Nothing plays into the virtual microphone (digital zeros), then a full-scale tone
    (clipping); the speaker's monitor is looped into the microphone with --no-aec (the
    model hears itself). Each warning says what to do."""
    events = tmp_path / "events.jsonl"
    proc = start_orga(
        *[
            "call",
            "--sandbox",
            "--no-video",
            "--no-aec",
            "--duration",
            "14",
            "--events",
            str(events),
        ],
        env=pulse.env,
    )
    wait_for_line(proc, "phase connected")
    deadline = time.monotonic() + 10  # 3 s of digital silence once the device runs, and a check
    while time.monotonic() < deadline and "digital silence" not in events.read_text():
        time.sleep(0.2)
    player = pulse.play(tone_wav(tmp_path / "loud.wav", 440, 2, amplitude=1.0))
    player.wait(10)
    pulse.pactl("load-module", "module-loopback", "source=speaker.monitor", "sink=mic",
                "latency_msec=20")  # fmt: skip
    pulse.play(tone_wav(tmp_path / "hello.wav", 440, 1.5, amplitude=0.3)).wait(10)
    _, stderr = proc.communicate(timeout=40)
    assert proc.returncode == 0, stderr
    warnings = [json.loads(line)["event"]["text"] for line in events.read_text().splitlines()
                if '"orga.warning"' in line]  # fmt: skip
    assert any("digital silence" in w and "--input-device" in w for w in warnings), warnings
    assert any("clips" in w and "gain down" in w for w in warnings), warnings
    assert any("use headphones" in w for w in warnings), warnings
    assert "warning: the microphone gives only digital silence" in stderr
