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


def start_call(session_name: str, done: Path, *args: str) -> Callable[[], str]:
    """`orga call --sandbox ARGS` in a 110x40 tmux window; returns a screen reader."""
    env = " ".join(
        f"{k}={shlex.quote(v)}" for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")
    )
    command = (
        f"env -i {env} TERM=xterm-256color {shlex.quote(sys.executable)} -m orga_cli call --sandbox"
        f" {' '.join(shlex.quote(a) for a in args)};"
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
    return lambda: tmux("capture-pane", "-p", "-t", session_name)


def wait_exit(done: Path) -> str:
    deadline = time.monotonic() + 15
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return done.read_text().strip()


def sent_events(log: Path) -> list[dict]:
    return [
        json.loads(line)["event"] for line in log.read_text().splitlines() if '"dir": "out"' in line
    ]


def test_keys_drive_the_call(session_name: str, tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    done = tmp_path / "exit.txt"
    screen = start_call(
        session_name,
        done,
        "--audio-in",
        "tone:440",
        "--video-in",
        "testsrc",
        "--no-speaker",
        "--events",
        str(log),
    )
    shown = wait_for(screen, "connected")
    assert "orga call" in shown and "m mute" in shown and "camera" in shown and "live" in shown
    wait_for(screen, "connected  0")  # keys act on the call from here
    tmux("send-keys", "-t", session_name, "m")
    wait_for(screen, "MUTED")
    tmux("send-keys", "-t", session_name, "v")
    shown = wait_for(screen, "OFF")
    assert "MUTED" in shown
    tmux("send-keys", "-t", session_name, "m")
    wait_for(screen, "live")
    tmux("send-keys", "-t", session_name, "q")
    assert wait_exit(done) == "EXIT=0"
    final = screen()
    assert "call ended (user)" in final
    updates = sent_events(log)
    modalities = [u["data"]["modalities"] for u in updates if u.get("event") == "session.update"]
    assert modalities == [["audio", "video"], ["video"], [], ["audio"]]


def test_command_line_and_push_to_talk(session_name: str, tmp_path: Path) -> None:
    """/ opens a command line while the panel keeps drawing; Tab completes command and
    voice names; the change reaches the sandbox as one session.update. With --ptt the
    space bar switches talking on and off, shown large on the panel."""
    log = tmp_path / "events.jsonl"
    done = tmp_path / "exit.txt"
    screen = start_call(
        session_name,
        done,
        "--audio-in",
        "tone:440",
        "--no-video",
        "--no-speaker",
        "--ptt",
        "--events",
        str(log),
    )
    shown = wait_for(screen, "PUSH SPACE TO TALK")
    assert "space talk" in shown and "voice Sofía" in shown
    wait_for(screen, "connected  0")  # keys act on the call from here
    tmux("send-keys", "-t", session_name, "Space")
    wait_for(screen, "TALKING")
    tmux("send-keys", "-t", session_name, "/voi")
    wait_for(screen, "/voi▌")
    assert "Tab complete" in screen()
    tmux("send-keys", "-t", session_name, "Tab")
    wait_for(screen, "/voice ▌")
    tmux("send-keys", "-t", session_name, "Eth")
    tmux("send-keys", "-t", session_name, "Tab")
    wait_for(screen, "/voice Ethan▌")
    tmux("send-keys", "-t", session_name, "Enter")
    wait_for(screen, "voice Ethan   temperature 0.5")
    tmux("send-keys", "-t", session_name, "/voice Nobody", "Enter")
    wait_for(screen, "unknown voice 'Nobody'")
    tmux("send-keys", "-t", session_name, "/temperature 0.9", "Enter")
    wait_for(screen, "temperature 0.9")
    deadline = time.monotonic() + 10  # the sandbox reports what it now has, once a second
    received: dict = {}
    while time.monotonic() < deadline and received.get("temperature") != 0.9:
        for line in log.read_text().splitlines():
            event = json.loads(line).get("event") or {}
            if event.get("type") == "sandbox.stats":
                received = event
        time.sleep(0.2)
    assert received.get("voice") == "Ethan" and received.get("temperature") == 0.9
    tmux("send-keys", "-t", session_name, "Space")
    wait_for(screen, "PUSH SPACE TO TALK")
    tmux("send-keys", "-t", session_name, "q")
    assert wait_exit(done) == "EXIT=0"
    updates = [u["data"] for u in sent_events(log) if u.get("event") == "session.update"]
    # the first (muted: no audio), space: talking, /voice, /temperature, space: not talking
    assert [u["modalities"] for u in updates] == [[], ["audio"], ["audio"], ["audio"], []]
    assert [u["voice"] for u in updates[2:]] == ["Ethan", "Ethan", "Ethan"]
    assert [u["temperature"] for u in updates[2:]] == [0.5, 0.9, 0.9]
