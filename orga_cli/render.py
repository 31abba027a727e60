"""Output: stdout carries data, stderr carries everything meant for a person.

rich is imported only when something is drawn for a person, so that
`orga token` stays as fast as a bare script.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .errors import OrgaError, mask, redact_bearer, secrets
from .models import IceServer, IceUrl, Token, Voice, iso_utc

if TYPE_CHECKING:
    from rich.console import Console


@lru_cache(maxsize=1)
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


@lru_cache(maxsize=1)
def out_console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def scrub(text: str) -> str:
    """Remove every known secret and bearer value from text meant for a person."""
    return redact_bearer(secrets.scrub(text))


def data(text: str) -> None:
    """Write data to stdout, newline-terminated."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def emit_json(obj: Any) -> None:
    data(json.dumps(obj, indent=2, ensure_ascii=False))


def error(exc: OrgaError | str) -> None:
    line = exc.one_line() if isinstance(exc, OrgaError) else exc
    line = scrub(line).replace("\n", " ")
    if sys.stderr.isatty():
        err_console().print(f"[bold red]orga:[/] {_escape(line)}")
    else:
        sys.stderr.write(f"orga: {line}\n")
        sys.stderr.flush()


def note(text: str) -> None:
    """A line for a person on stderr (dim on a terminal)."""
    text = scrub(text)
    if sys.stderr.isatty():
        err_console().print(f"[dim]{_escape(text)}[/]")
    else:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def human_seconds(seconds: float) -> str:
    seconds = round(abs(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 120:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def expiry_phrase(token: Token) -> str:
    left = token.seconds_left()
    if left is None or token.expires_at is None:
        return "expiry unknown (no exp claim)"
    when = iso_utc(token.expires_at)
    if left <= 0:
        return f"expired {human_seconds(left)} ago ({when})"
    return f"expires in {human_seconds(left)} ({when})"


def token_claims(token: Token) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in token.claims.items():
        shown = value
        if key in ("iat", "exp", "nbf") and isinstance(value, (int, float)):
            moment = datetime.fromtimestamp(value, tz=timezone.utc)
            shown = f"{value}  ({iso_utc(moment)})"
        table.add_row(key, str(shown))
    table.add_row("status", expiry_phrase(token))
    out_console().print(table)


def ice_table(servers: Sequence[IceServer]) -> None:
    from rich.table import Table

    if not servers:
        note("no ICE servers configured (host candidates only)")
        return
    table = Table(title=None, header_style="bold")
    table.add_column("URL", overflow="fold")
    for col in ("kind", "transport", "username", "credential"):
        table.add_column(col, no_wrap=True)
    for server in servers:
        for url in server.urls:
            try:
                parsed = IceUrl.parse(url)
                kind, transport = parsed.scheme, parsed.transport
            except ValueError:
                kind, transport = "?", "?"
            table.add_row(
                url,
                kind,
                transport,
                server.username or "",
                mask(server.credential) if server.credential else "",
            )
    out_console().print(table)


def probe_table(results: Sequence[Any]) -> None:
    from rich.table import Table

    if not results:
        return
    table = Table(header_style="bold")
    table.add_column("URL", overflow="fold")
    for col in ("DNS", "STUN (reflexive, RTT)", "TURN (relay, time)"):
        table.add_column(col, overflow="fold")

    def step(ok: bool, good: str, error: str | None) -> str:
        return f"[green]{good}[/]" if ok else f"[red]{_escape(error or 'failed')}[/]"

    def took(ms: float | None) -> str:
        return "" if ms is None else f" ({ms:.0f} ms)"

    for r in results:
        dns = step(r.dns.ok, f"{', '.join(r.dns.addresses)}{took(r.dns.ms)}", r.dns.error)
        stun = (
            ""
            if r.stun is None
            else step(r.stun.ok, f"{r.stun.address}{took(r.stun.ms)}", r.stun.error)
        )
        turns = "\n".join(
            f"{t.transport}: " + step(t.ok, f"{t.relay}{took(t.ms)}", t.error) for t in r.turn
        )
        table.add_row(_escape(r.url), dns, stun, turns)
    out_console().print(table)


def voices_table(voices: Iterable[Voice]) -> None:
    from rich.table import Table

    table = Table(header_style="bold")
    for col in ("name", "language", "gender", "description"):
        table.add_column(col)
    for voice in voices:
        table.add_row(voice.name, voice.language, voice.gender, voice.description)
    out_console().print(table)


def devices_table(devices: Sequence[dict[str, Any]]) -> None:
    from rich.table import Table

    if not devices:
        note("no audio devices (PortAudio found none)")
        return
    table = Table(header_style="bold")
    for col in ("index", "name", "host API", "in", "out", "rate", "default"):
        table.add_column(col, overflow="fold")
    for dev in devices:
        marks = [
            m
            for m, flag in (("input", dev["default_input"]), ("output", dev["default_output"]))
            if flag
        ]
        table.add_row(
            str(dev["index"]),
            dev["name"],
            dev["hostapi"],
            str(dev["max_input_channels"]),
            str(dev["max_output_channels"]),
            f"{dev['default_samplerate']:.0f}",
            ", ".join(marks),
        )
    out_console().print(table)


def settings_table(rows: Sequence[tuple[str, str, str]], title: str | None = None) -> None:
    from rich.table import Table

    table = Table(header_style="bold", title=title)
    for col in ("key", "value", "source"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    out_console().print(table)


class ScrubFilter(logging.Filter):
    """Scrubs secrets from every log record before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler on whatever sys.stderr is when a record is written (a call may move
    it: see native_stderr)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class native_stderr:
    """C libraries' writes to file descriptor 2 (PortAudio's ALSA code and libasound print
    a few lines whenever a device vanishes) go to the debug log instead of the screen.

    Python keeps the terminal: sys.stderr becomes a new file on a copy of descriptor 2,
    and descriptor 2 a pipe that a thread reads. Not on Windows (nothing prints there).
    """

    def __enter__(self) -> native_stderr:
        self._saved: Any = None
        if sys.platform == "win32":
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


def setup_logging(verbose: int, *, always_info: Sequence[str] = ()) -> None:
    """Route library logs to stderr: DEBUG with -v, and INFO for the named loggers."""
    root = logging.getLogger("orga_cli")
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(
            console=err_console(),
            show_path=False,
            markup=False,
            rich_tracebacks=False,
            log_time_format="%H:%M:%S.%f",
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(ScrubFilter())
    root.addHandler(handler)
    root.propagate = False
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in always_info:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def cameras_table(cameras: Sequence[Any]) -> None:
    from rich.table import Table

    if not cameras:
        note("no cameras found (--video-in testsrc sends a test pattern)")
        return
    table = Table(header_style="bold")
    for col in ("--camera", "name", "format"):
        table.add_column(col, overflow="fold")
    for cam in cameras:
        table.add_row(cam.camera, cam.name, cam.format)
    out_console().print(table)


def doctor_line(check: Any) -> None:
    """One `orga doctor` check on stdout: ✓, ✗ (with the fix) or – (skipped, why)."""
    mark = {"ok": "✓", "fail": "✗", "skip": "–"}[check.status]
    line = f"{mark} {check.name:<13} {check.detail}"
    if check.fix:
        line += f" — {check.fix}"
    line = scrub(line)
    if sys.stdout.isatty():
        style = {"ok": "green", "fail": "bold red", "skip": "dim"}[check.status]
        out_console().print(f"[{style}]{mark}[/] {_escape(line[2:])}")
    else:
        data(line)
