"""Single keys from the terminal during a call, on POSIX and on Windows.

One small interface: ``open_keys(on_key, note)`` starts delivering each key pressed (a
one-character string) to *on_key* on the event loop, and returns a reader whose
``close()`` gives the terminal back as it was, or None when keys cannot be read here
(a Python without termios, a terminal that refuses cbreak mode): *note* then says so
and how to hang up, and the call goes on. No POSIX-only module is imported at module
level, so this imports everywhere. ``read_command_lines`` is the other input: each line
of a stdin that is not a terminal is a command.

- POSIX: the terminal in cbreak mode (termios), read when the loop says stdin is
  readable (``add_reader``).
- Windows: there is no ``add_reader`` for a console; ``msvcrt.kbhit()`` is polled
  every 50 ms and ``getwch()`` reads what was typed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any, Protocol


class KeyReader(Protocol):
    def close(self) -> None: ...


class PosixKeys:
    """cbreak mode on *fd* (a terminal), keys read as the loop sees them arrive."""

    def __init__(self, on_key: Callable[[str], None], fd: int | None = None) -> None:
        import termios
        import tty

        self._on_key = on_key
        self.fd = sys.stdin.fileno() if fd is None else fd
        self._saved: Any = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 32).decode(errors="ignore")
        except OSError:
            return
        for char in without_escape_sequences(data):
            self._on_key(char)

    def close(self) -> None:
        import termios

        with contextlib.suppress(Exception):
            self._loop.remove_reader(self.fd)
        with contextlib.suppress(Exception):
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)


class WindowsKeys:
    """The console's keys through msvcrt, polled every *interval* seconds."""

    def __init__(
        self, on_key: Callable[[str], None], msvcrt: Any = None, interval: float = 0.05
    ) -> None:
        if msvcrt is None:
            import msvcrt  # type: ignore[import-not-found,no-redef,unused-ignore]
        self._msvcrt = msvcrt
        self._on_key = on_key
        self._interval = interval
        self._task = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        while True:
            while self._msvcrt.kbhit():
                char = self._msvcrt.getwch()
                if char in ("\x00", "\xe0"):  # a function or arrow key: its code follows
                    self._msvcrt.getwch()
                    continue
                self._on_key(char)
            await asyncio.sleep(self._interval)

    def close(self) -> None:
        self._task.cancel()


def without_escape_sequences(data: str) -> str:
    """What was typed, without the sequences arrow and function keys send (ESC [ ... or
    ESC O x); a lone ESC (the Esc key) stays."""
    out = []
    i = 0
    while i < len(data):
        char = data[i]
        if char == "\x1b" and i + 1 < len(data) and data[i + 1] in "[O":
            i += 2
            while i < len(data) and not (data[i].isalpha() or data[i] == "~"):
                i += 1
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


def open_keys(
    on_key: Callable[[str], None], note: Callable[[str], None] | None = None
) -> KeyReader | None:
    """Start reading keys from this process's terminal (the caller checked it is one);
    None, said once through *note*, when this Python or terminal cannot."""
    try:
        if sys.platform == "win32":
            return WindowsKeys(on_key)
        return PosixKeys(on_key)
    except Exception as exc:  # ImportError (no termios), termios.error, OSError, ...
        reason = (
            f"no {exc.name} module"
            if isinstance(exc, ImportError)
            else str(exc) or type(exc).__name__
        )
        if note is not None:
            note(f"keys are unavailable here ({reason}): Ctrl-C hangs up")
        return None


def read_command_lines(run: Callable[[str], None]) -> None:
    """Each line of stdin (not a terminal) is a command, carried out on the running loop.

    A daemon thread reads the file descriptor itself: a thread blocked in
    sys.stdin's buffered reader would hold its lock at interpreter exit.
    """
    import threading

    loop = asyncio.get_running_loop()

    def deliver(raw: bytes) -> None:
        line = raw.decode(errors="replace").strip()
        if line:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(run, line)

    def reader() -> None:
        pending = b""
        while True:
            try:
                data = os.read(0, 4096)
            except OSError:
                return
            if not data:
                break
            pending += data
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                deliver(raw)
        if pending:
            deliver(pending)

    threading.Thread(target=reader, name="orga-commands", daemon=True).start()
