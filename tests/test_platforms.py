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
from orga_cli.keys import PosixKeys, WindowsKeys


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
        if m.name != "orga_cli.__main__"
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
