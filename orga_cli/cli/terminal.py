"""The terminal a command runs in, as one object that tests can replace.

``current()`` is the process's own: its three streams, whether each is a terminal, and
how wide and colourful output may be. Everything in the CLI that asks "is this a
terminal?" asks it here, never ``sys.stderr.isatty()``, so that a test can give a
command a terminal of its own (``use(Terminal.fake(...))``) and read what a person would
see, without tmux.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class Terminal:
    """Streams and their nature. ``streams_from_sys``: the streams are read from ``sys``
    when used (a call moves ``sys.stderr``: see ``native_stderr``)."""

    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    stdin_tty: bool
    stdout_tty: bool
    stderr_tty: bool
    width: int | None = None  # columns; None: rich's own guess (COLUMNS, the terminal)
    color: bool = True  # False: no colours even on a terminal (NO_COLOR)
    streams_from_sys: bool = False
    _consoles: dict[str, Console] = field(default_factory=dict, repr=False)

    @classmethod
    def from_sys(cls) -> Terminal:
        return cls(
            sys.stdin,
            sys.stdout,
            sys.stderr,
            _isatty(sys.stdin),
            _isatty(sys.stdout),
            _isatty(sys.stderr),
            color="NO_COLOR" not in os.environ,
            streams_from_sys=True,
        )

    @classmethod
    def fake(
        cls, *, tty: bool = True, stdin: str = "", width: int = 100, color: bool = False
    ) -> Terminal:
        """A terminal in memory: read what was written from ``.stdout`` and ``.stderr``
        (``StringIO``); *tty* says whether the three streams pass for terminals."""
        return cls(io.StringIO(stdin), io.StringIO(), io.StringIO(), tty, tty, tty, width, color)

    @property
    def keys(self) -> bool:
        """Single keys can be read: stdin is a terminal, and so is stderr (the panel)."""
        return self.stdin_tty and self.stderr_tty

    def out(self) -> TextIO:
        return sys.stdout if self.streams_from_sys else self.stdout

    def err(self) -> TextIO:
        return sys.stderr if self.streams_from_sys else self.stderr

    def console(self, which: str) -> Console:
        """The rich console on "out" or "err", made once per terminal."""
        made = self._consoles.get(which)
        if made is None:
            from rich.console import Console

            tty = self.stdout_tty if which == "out" else self.stderr_tty
            if self.streams_from_sys:  # rich reads sys.stdout/sys.stderr when it writes
                made = Console(stderr=which == "err", highlight=False, soft_wrap=True)
            else:
                made = Console(
                    file=self.stdout if which == "out" else self.stderr,
                    force_terminal=tty,
                    width=self.width,
                    color_system="standard" if self.color and tty else None,
                    highlight=False,
                    soft_wrap=True,
                )
            self._consoles[which] = made
        return made


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


_current: Terminal | None = None  # what use() set
_process: Terminal | None = None  # the process's own, for the streams sys has now


def current() -> Terminal:
    """The terminal of this command: the one ``use`` set, else this process's."""
    global _process
    if _current is not None:
        return _current
    if _process is None or (_process.stdin, _process.stdout, _process.stderr) != (
        sys.stdin,
        sys.stdout,
        sys.stderr,
    ):
        _process = Terminal.from_sys()
    return _process


@contextlib.contextmanager
def use(terminal: Terminal) -> Iterator[Terminal]:
    """Run the block with *terminal* as ``current()``."""
    global _current
    saved, _current = _current, terminal
    try:
        yield terminal
    finally:
        _current = saved


def forget() -> None:
    """Make ``current()`` look at the process's streams again (tests, between commands:
    a console reads COLUMNS when it is made)."""
    global _process
    _process = None


class native_stderr:
    """C libraries' writes to file descriptor 2 (PortAudio's ALSA code and libasound print
    a few lines whenever a device vanishes) go to the debug log instead of the screen.

    Python keeps the terminal: sys.stderr becomes a new file on a copy of descriptor 2,
    and descriptor 2 a pipe that a thread reads. Not on Windows (nothing prints there),
    nor when stderr is not the process's own (a fake terminal).
    """

    def __enter__(self) -> native_stderr:
        self._saved: Any = None
        if sys.platform == "win32" or not current().streams_from_sys:
            return self
        try:
            sys.stderr.flush()
            copy = os.dup(2)
            read_end, write_end = os.pipe()
        except (OSError, ValueError):
            return self
        self._saved = sys.stderr
        self._copy = copy
        sys.stderr = os.fdopen(
            os.dup(copy), "w", buffering=1, encoding=self._saved.encoding or "utf-8",
            errors="backslashreplace",
        )  # fmt: skip
        os.dup2(write_end, 2)
        os.close(write_end)
        import threading

        threading.Thread(target=self._drain, args=(read_end,), daemon=True).start()
        return self

    @staticmethod
    def _drain(fd: int) -> None:
        log = logging.getLogger("orga_cli.native")
        with os.fdopen(fd, "rb") as pipe:
            for line in pipe:
                text = line.decode(errors="replace").rstrip()
                if text:
                    log.debug("native: %s", text)

    def __exit__(self, *exc: object) -> None:
        if self._saved is None:
            return
        ours = sys.stderr
        with contextlib.suppress(Exception):
            ours.flush()
        os.dup2(self._copy, 2)  # the pipe's last writer closes: the thread ends
        os.close(self._copy)
        sys.stderr = self._saved
        with contextlib.suppress(Exception):
            ours.close()
