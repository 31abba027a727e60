"""The live panel, driven in tmux as a person would: m, v and q, and what the screen shows."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10).stdout


def wait_for(read: Callable[[], str], text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = read()
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; screen:\n{screen}")


@pytest.fixture
def session_name() -> str:
    if not shutil.which("tmux"):
        if os.environ.get("CI"):
            pytest.fail("tmux is not installed")
        pytest.skip("tmux is not installed")
    name = f"orga-test-{os.getpid()}-{time.monotonic_ns()}"
    yield name
    tmux("kill-session", "-t", name)


def test_keys_drive_the_call(session_name: str, tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    done = tmp_path / "exit.txt"
    env = " ".join(
        f"{k}={shlex.quote(v)}" for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")
    )
    command = (
        f"env -i {env} TERM=xterm-256color {shlex.quote(sys.executable)} -m orga_cli call --sandbox"
        f" --audio-in tone:440 --video-in testsrc --no-speaker --events {shlex.quote(str(log))};"
        f" echo EXIT=$? > {shlex.quote(str(done))}; sleep 30"
    )
    tmux(
        "new-session",
        "-d",
        "-s",
        session_name,
        "-x",
        "110",
        "-y",
        "40",
        "-c",
        str(Path.cwd()),
        command,
    )

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", session_name)

    shown = wait_for(screen, "connected")
    assert "orga call" in shown and "m mute" in shown and "camera" in shown and "live" in shown
    wait_for(screen, "RTT")
    tmux("send-keys", "-t", session_name, "m")
    wait_for(screen, "MUTED")
    tmux("send-keys", "-t", session_name, "v")
    shown = wait_for(screen, "OFF")
    assert "MUTED" in shown
    tmux("send-keys", "-t", session_name, "m")
    wait_for(screen, "live")
    tmux("send-keys", "-t", session_name, "q")
    deadline = time.monotonic() + 15
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert done.read_text().strip() == "EXIT=0"
    final = screen()
    assert "call ended (user)" in final
    updates = [
        json.loads(line)["event"] for line in log.read_text().splitlines() if '"dir": "out"' in line
    ]
    modalities = [u["data"]["modalities"] for u in updates if u.get("event") == "session.update"]
    assert modalities == [["audio", "video"], ["video"], [], ["audio"]]
