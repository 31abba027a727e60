"""The terminal layer with a terminal of its own (cli/terminal.py): what a person would see
on a terminal or in a pipe, read without tmux; the error boundary; flags in messages for
the command line and settings for a Python caller."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from orga_cli.call.state import CallState
from orga_cli.cli import terminal
from orga_cli.cli.keys import open_keys
from orga_cli.cli.panel import LivePanel, PlainLines
from orga_cli.errors import CallError, setting
from orga_cli.figures import CallFigures, MediaFigures, SessionFigures
from orga_cli.media.uplink import UplinkStats
from orga_cli.stats import StatsSnapshot

from .helpers.orga import KNOWN_KEY, ORGA, clean_env, invoke
from .helpers.sandbox import Sandbox


def figures(**uplink: object) -> CallFigures:
    net = StatsSnapshot(
        rtt_ms=42.0,
        jitter_ms=3.5,
        local_candidate="host 127.0.0.2:5000",
        remote_candidate="host 127.0.0.2:6000",
    )
    media = MediaFigures(
        loss_pct=1.5,
        buffer_ms=61.0,
        buffer_target_ms=60.0,
        concealed_pct=0.4,
        turn_ms=820.0,
        turn_median_ms=800.0,
        turn_count=3,
        warnings=["the microphone clips: turn its input gain down"],
    )
    up = UplinkStats(estimate_bps=90_000, audio_bps=40_000, **uplink)  # type: ignore[arg-type]
    out = CallFigures(SessionFigures(net, up, True, False), media, phase="connected")
    out.sent_kbps, out.received_kbps = {"audio": 41.0, "video": 0.0}, 52.0
    return out


def test_the_live_panel_on_a_terminal_of_its_own() -> None:
    fake = terminal.Terminal.fake(tty=True, width=110)
    state = CallState(phase="connected", voice="Sofía", temperature=0.5, video="test pattern")
    state.figures = figures(video_paused=True)
    with terminal.use(fake):
        panel = LivePanel(state)
        fake.console("err").print(panel._render())
    shown = fake.stderr.getvalue()  # type: ignore[attr-defined]
    for text in (
        "connected",
        "voice Sofía",
        "host 127.0.0.2:5000  ⇄  host 127.0.0.2:6000",
        "RTT 42 ms",
        "loss 1.5 %",
        "61 ms (target 60 ms)",
        "last 820 ms   median 800 ms (3 turns)",
        "up audio 41 kbit/s",
        "camera paused: uplink ~90 kbit/s",
        "the microphone clips",
        "m mute · v camera · / command · q hang up",
    ):
        assert text in shown, (text, shown)


def test_plain_lines_off_a_terminal() -> None:
    fake = terminal.Terminal.fake(tty=False)
    state = CallState()
    with terminal.use(fake):
        lines = PlainLines(state)
        state.phase = "gathering"
        lines.refresh()
        lines.refresh()  # a phase is said once
        lines.line("orga", "hello there")
        lines.warning("the speaker stopped: no sound until it comes back")
    out = fake.stderr.getvalue().splitlines()  # type: ignore[attr-defined]
    assert [line[9:] for line in out] == [
        "phase gathering",
        "orga: hello there",
        "warning: the speaker stopped: no sound until it comes back",
    ]
    assert all(time.strptime(line[:8], "%H:%M:%S") for line in out)


def test_token_on_a_terminal_says_when_it_expires(sandbox: Sandbox) -> None:
    fake = terminal.Terminal.fake(tty=True)
    with terminal.use(fake):
        result = invoke(["token"], env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    assert fake.stdout.getvalue().count(".") == 2  # type: ignore[attr-defined]
    assert "expires in" in fake.stderr.getvalue()  # type: ignore[attr-defined]
    piped = invoke(["token"], env=sandbox.env())  # not a terminal: the token alone
    assert piped.stdout.count(".") == 2 and piped.stderr == ""


def test_errors_name_flags_on_the_command_line_and_settings_in_python() -> None:
    assert setting("relay_only") == "CallOptions.relay_only"
    assert setting("audio_in", "tone:440") == "MediaConfig.audio_in=tone:440"
    result = invoke(["call", "--relay-only", "--no-video", "--audio-in", "tone:abc",
                     "--api-key", KNOWN_KEY])  # fmt: skip
    assert result.exit_code == 5, result.stderr
    assert "--audio-in tone:abc: not a frequency" in result.stderr
    assert setting("audio_in") == "MediaConfig.audio_in"  # only while a command runs
    err = CallError(f"{setting('relay_only')} needs a TURN server")
    assert str(err) == "CallOptions.relay_only needs a TURN server"


def test_every_setting_has_a_flag_that_exists() -> None:
    import typer.main

    from orga_cli.cli.app import app
    from orga_cli.cli.options import FLAGS
    from orga_cli.errors import SETTINGS

    assert set(FLAGS) == set(SETTINGS)
    names: set[str] = set()
    for command in typer.main.get_command(app).commands.values():  # type: ignore[attr-defined]
        for param in command.params:
            names.update(param.opts, param.secondary_opts)
    for flag in FLAGS.values():
        for word in flag.replace("`", " ").split():
            if word.startswith("--"):
                assert word in names, word


async def test_keys_that_cannot_start_are_said_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "termios", None)  # a Python without termios
    notes: list[str] = []
    assert open_keys(lambda key: None, notes.append) is None
    assert notes == ["keys are unavailable here (no termios module): Ctrl-C hangs up"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals only")
def test_a_call_on_a_terminal_without_termios_goes_on(tmp_path: object) -> None:
    """A POSIX terminal and a Python without termios (some embedded builds): the call says
    keys are unavailable and how to hang up, and ends as asked (exit 0)."""
    import pty

    program = (
        "import sys\nsys.modules['termios'] = None\n"
        "sys.argv = ['orga', 'call', '--sandbox', '--audio-in', 'tone:440', '--no-video',"
        " '--no-speaker', '--duration', '2']\n"
        "from orga_cli.cli import main\nmain()\n"
    )
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [ORGA[0], "-c", program],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=clean_env(TERM="xterm", COLUMNS="100"),
        )
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
        code = proc.wait(10)
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    text = seen.decode(errors="replace")
    assert code == 0, text[-2000:]
    assert "keys are unavailable here (no termios module): Ctrl-C hangs up" in text
    assert "call ended (duration)" in text and "Traceback" not in text
