"""`orga doctor` through the real parts: PulseAudio null sinks, `orga serve`, coturn."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers.audio import tone_wav
from .helpers.orga import KNOWN_KEY, orga
from .helpers.pulse import Pulse
from .helpers.sandbox import Sandbox
from .helpers.turn import TURN_PASSWORD, TURN_USER, Turn


def doctor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return orga("doctor", *args, env=env, timeout=90)


def by_name(out: str) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(out)["checks"]}


def test_everything_ready(
    pulse: Pulse, coturn: Turn, sandbox_with: Callable[..., Sandbox], tmp_path: Path
) -> None:
    box = sandbox_with(
        "--ice-server", coturn.url, "--ice-username", TURN_USER, "--ice-credential", TURN_PASSWORD
    )
    player = pulse.play(tone_wav(tmp_path / "tone.wav", 440, 20.0))
    try:
        env = {**pulse.env, "ORGA_API_KEY": box.api_key, "ORGA_BASE_URL": box.base_url}
        result = doctor("--play", "--json", env=env)
        text = doctor(env=env)
    finally:
        player.kill()
    assert result.returncode == 0, result.stdout + result.stderr
    checks = by_name(result.stdout)
    assert all(c["status"] == "ok" for c in checks.values()), checks
    assert (
        "input: orga-test-mic" in checks["devices"]["detail"]
        or "input:" in checks["devices"]["detail"]
    )
    peak = float(checks["microphone"]["detail"].split("peak ")[1].split(" dBFS")[0])
    assert -13 < peak < -8  # a 0.3 tone is -10.5 dBFS
    assert "played 1 s of 440 Hz" in checks["speaker"]["detail"]
    assert "expires in" in checks["token"]["detail"]
    heard = checks["sandbox call"]["detail"].split("echo heard at ")[1]
    assert abs(int(heard.split(" Hz")[0]) - 440) <= 5, heard  # 443 on a busy machine
    assert box.api_key not in result.stdout + result.stderr + text.stdout + text.stderr
    assert text.returncode == 0 and "✓ token" in text.stdout
    assert "– speaker" in text.stdout and "--play sounds a short tone" in text.stdout


def test_silent_microphone_and_refused_key(pulse: Pulse, sandbox: Sandbox) -> None:
    """Nothing plays into the virtual microphone: its monitor gives digital zeros."""
    wrong = "sk_orga_ai_" + "WrongKeyThatMustNotShow99"
    env = {**pulse.env, "ORGA_API_KEY": wrong, "ORGA_BASE_URL": sandbox.base_url}
    result = doctor(env=env)
    assert result.returncode == 5, result.stdout  # the first failure: the microphone
    assert "✗ microphone    2 s of digital silence" in result.stdout
    assert "unmute it" in result.stdout
    token = next(line for line in result.stdout.splitlines() if " token" in line)
    assert token.startswith("✗") and wrong not in result.stdout + result.stderr
    assert "– ICE servers   no token" in result.stdout
    assert KNOWN_KEY not in result.stdout


def test_no_devices_and_no_account(tmp_path: Path) -> None:
    """No sound server, no key, no network: the failures say how to fix them, the rest
    says why it was skipped, and the loopback call still runs."""
    env = {"PULSE_SERVER": f"unix:{tmp_path}/none", "ORGA_CONFIG": str(tmp_path / "none.toml")}
    result = doctor("--json", env=env)
    checks = by_name(result.stdout)
    if checks["PortAudio"]["status"] != "ok":
        pytest.skip("PortAudio is not installed")
    assert result.returncode == 5
    assert checks["devices"]["status"] == "fail" and "orga devices" in checks["devices"]["fix"]
    assert checks["API key"]["status"] == "skip" and "ORGA_API_KEY" in checks["API key"]["fix"]
    assert [checks[n]["status"] for n in ("token", "ICE servers")] == ["skip", "skip"]
    assert checks["sandbox call"]["status"] == "ok"
