"""What can be tested here of the platforms CI does not run: the key readers and imports.

The POSIX key reader is driven through a real pseudo-terminal; the Windows one
through a stand-in for msvcrt (the one thing a Linux machine cannot provide); and
every module must import on a Python without termios, tty and fcntl (Windows).
"""

from __future__ import annotations

import asyncio
import os
import pkgutil
import subprocess
import sys
from collections.abc import Callable

import pytest

import orga_cli
from orga_cli.cli.keys import PosixKeys, WindowsKeys


async def until(done: Callable[[], bool], seconds: float = 0.5) -> None:
    for _ in range(int(seconds / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals only")
async def test_posix_keys_through_a_pty() -> None:
    import pty
    import termios

    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        got: list[str] = []
        reader = PosixKeys(got.append, fd=slave)
        assert not termios.tcgetattr(slave)[3] & termios.ICANON  # cbreak: no line editing
        os.write(master, b"mv")
        os.write(master, b"q")
        await until(lambda: len(got) == 3)
        reader.close()
        assert got == ["m", "v", "q"]
        assert termios.tcgetattr(slave) == before  # the terminal is given back as it was
    finally:
        os.close(master)
        os.close(slave)


class FakeConsole:
    """msvcrt's kbhit/getwch over a scripted list of typed characters."""

    def __init__(self, typed: str) -> None:
        self.typed = list(typed)

    def kbhit(self) -> bool:
        return bool(self.typed)

    def getwch(self) -> str:
        return self.typed.pop(0)


async def test_windows_keys_skip_function_key_codes() -> None:
    got: list[str] = []
    console = FakeConsole("m\xe0Hv\x00;q")  # an arrow key and F1 between the letters
    reader = WindowsKeys(got.append, msvcrt=console, interval=0.01)
    await until(lambda: len(got) == 3)
    reader.close()
    assert got == ["m", "v", "q"]


def test_every_module_imports_without_posix_terminal_modules() -> None:
    names = [
        m.name
        for m in pkgutil.walk_packages(orga_cli.__path__, "orga_cli.")
        # the locustfile runs under Locust only, whose gevent needs fcntl (POSIX)
        if m.name not in ("orga_cli.__main__", "orga_cli.load.locustfile")
    ]
    program = (
        "import sys\n"
        "for name in ('termios', 'tty', 'fcntl'):\n"
        "    sys.modules[name] = None  # as on Windows: importing it fails\n"
        "import importlib\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print('ok', len(sys.argv))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(names) > 20


# --------------------------------------------------------------------------- cameras

# What FFmpeg 6/7 logs for `-f avfoundation -list_devices true -i ""` on a MacBook, and for
# `-f dshow -list_devices true -i dummy` on Windows (new style, then FFmpeg 4's).
AVFOUNDATION_LOG = [
    "AVFoundation indev @ 0x7f8: AVFoundation video devices:\n",
    "AVFoundation indev @ 0x7f8: [0] FaceTime HD Camera\n",
    "AVFoundation indev @ 0x7f8: [1] Capture screen 0\n",
    "AVFoundation indev @ 0x7f8: AVFoundation audio devices:\n",
    "AVFoundation indev @ 0x7f8: [0] MacBook Pro Microphone\n",
]
DSHOW_LOG = [
    '"Integrated Webcam" (video)\n',
    '  Alternative name "@device_pnp_\\\\?\\usb#vid_0c45&pid_6a10"\n',
    '"OBS Virtual Camera" (none)\n',
    '"Microphone Array (Realtek(R) Audio)" (audio)\n',
]
DSHOW_OLD_LOG = [
    "DirectShow video devices (some may be both video and audio devices)\n",
    ' "USB2.0 HD UVC WebCam"\n',
    "DirectShow audio devices\n",
    ' "Microphone (USB Audio)"\n',
]


def test_camera_lists_are_read_from_ffmpeg_logs() -> None:
    from orga_cli.media.cameras import parse_avfoundation, parse_dshow

    assert parse_avfoundation(AVFOUNDATION_LOG) == [
        (0, "FaceTime HD Camera"),
        (1, "Capture screen 0"),
    ]
    assert parse_dshow(DSHOW_LOG) == ["Integrated Webcam"]
    assert parse_dshow(DSHOW_OLD_LOG) == ["USB2.0 HD UVC WebCam"]


def test_each_platform_lists_its_cameras(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from orga_cli.media import cameras

    logs = {"avfoundation": AVFOUNDATION_LOG, "dshow": DSHOW_LOG}
    monkeypatch.setattr(cameras, "ffmpeg_device_log", lambda fmt, url: logs[fmt])
    monkeypatch.setattr(sys, "platform", "darwin")
    assert [c.camera for c in cameras.list_cameras()] == ["0:none", "1:none"]
    monkeypatch.setattr(sys, "platform", "win32")
    assert [c.camera for c in cameras.list_cameras()] == ["video=Integrated Webcam"]
    # Linux: sysfs, capture nodes only (a USB camera's metadata node has index 1)
    for node, name, index in (
        ("video0", "HD Webcam", "0"),
        ("video1", "HD Webcam", "1"),
        ("video2", "Capture", "0"),
    ):
        (tmp_path / node).mkdir()
        (tmp_path / node / "name").write_text(name + "\n")
        (tmp_path / node / "index").write_text(index + "\n")
    found = cameras.v4l2_cameras(tmp_path)
    assert [(c.camera, c.name) for c in found] == [
        ("/dev/video0", "HD Webcam"),
        ("/dev/video2", "Capture"),
    ]


def test_ffmpeg_device_log_is_captured() -> None:
    """The capture itself, with the v4l2 input this machine has: FFmpeg's message about a
    missing device comes back as a log line, not on stderr."""
    from orga_cli.media.cameras import ffmpeg_device_log

    lines = ffmpeg_device_log("v4l2", "/dev/orga-no-such-camera")
    assert any("orga-no-such-camera" in line for line in lines)
