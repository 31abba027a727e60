"""Output: stdout carries data, stderr carries everything meant for a person.

rich is imported only when something is drawn for a person, so that
`orga token` stays as fast as a bare script. Streams and their nature come from
``terminal.current()``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import OrgaError, mask, redact_bearer, secrets
from ..models import IceServer, IceUrl, Token, Voice, iso_utc
from .terminal import current

if TYPE_CHECKING:
    from rich.console import Console


def err_console() -> Console:
    return current().console("err")


def out_console() -> Console:
    return current().console("out")


def scrub(text: str) -> str:
    """Remove every known secret and bearer value from text meant for a person."""
    return redact_bearer(secrets.scrub(text))


def data(text: str) -> None:
    """Write data to stdout, newline-terminated."""
    out = current().out()
    out.write(text if text.endswith("\n") else text + "\n")
    out.flush()


def emit_json(obj: Any) -> None:
    data(json.dumps(obj, indent=2, ensure_ascii=False))


def error(exc: OrgaError | str) -> None:
    line = exc.one_line() if isinstance(exc, OrgaError) else exc
    line = scrub(line).replace("\n", " ")
    term = current()
    if term.stderr_tty:
        err_console().print(f"[bold red]orga:[/] {_escape(line)}")
    else:
        term.err().write(f"orga: {line}\n")
        term.err().flush()


def note(text: str) -> None:
    """A line for a person on stderr (dim on a terminal)."""
    text = scrub(text)
    term = current()
    if term.stderr_tty:
        err_console().print(f"[dim]{_escape(text)}[/]")
    else:
        term.err().write(text + "\n")
        term.err().flush()


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
    """A StreamHandler on whatever the terminal's stderr is when a record is written (a
    call may move sys.stderr: see terminal.native_stderr)."""

    def __init__(self) -> None:
        super().__init__(current().err())

    @property
    def stream(self) -> Any:
        return current().err()

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(verbose: int, *, always_info: Sequence[str] = ()) -> None:
    """Route library logs to stderr: DEBUG with -v, and INFO for the named loggers."""
    root = logging.getLogger("orga_cli")
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if current().stderr_tty:
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
    if current().stdout_tty:
        style = {"ok": "green", "fail": "bold red", "skip": "dim"}[check.status]
        out_console().print(f"[{style}]{mark}[/] {_escape(line[2:])}")
    else:
        data(line)
