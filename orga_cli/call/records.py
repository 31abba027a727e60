"""What a call keeps on disk as it happens: `--events`, `--stats` and `--transcript`.

Every file is line-buffered and written as things happen, so that it is complete after
any ending (Ctrl-C, a crash of the far end, a failed connect); secrets are scrubbed from
every line.

`--stats FILE` is the call's record, which `orga report` reads. JSON lines, each with a
``type``: one ``call`` first (when, which orga, what was asked: no secret), a ``stats``
line a second (`CallFigures.stats_line`), an ``event`` for every moment of the call as
it happens (``name``: token, ice_servers, gathered, pair, dtls, connected, channel_open,
first_audio_sent, media_lost, redial, mute, turn, ...; ``at_s``: seconds since the call
began), and an ``end`` last (why, the exit code, the error, the `--json` summary).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TextIO

from ..errors import UsageError, secrets
from ..figures import CallFigures
from .request import Outputs
from .transcript import Transcript, transcript_format


class JsonLines:
    """A file of JSON lines written as they come (nothing when *path* is None)."""

    what = "file"

    def __init__(self, path: Path | None) -> None:
        self._fh: TextIO | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = path.open("w", encoding="utf-8", buffering=1)
            except OSError as exc:
                raise UsageError(f"cannot write {self.what} {path}: {exc.strerror or exc}") from exc

    @property
    def open(self) -> bool:
        return self._fh is not None

    def line(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(secrets.scrub(json.dumps(record, ensure_ascii=False)) + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class EventLog(JsonLines):
    """Every data-channel message both ways, with time and direction; the client's own
    events (``orga.*``: turns, outages, devices, warnings) as direction "local"."""

    what = "events file"

    def write(self, direction: str, payload: Any, raw: str | None = None) -> None:
        record: dict[str, Any] = {"t": round(time.time(), 3), "dir": direction}
        if raw is not None and payload is None:
            record["raw"] = raw
        else:
            record["event"] = payload
        self.line(record)

    def local(self, kind: str, **data: Any) -> None:
        """One of the client's own events: ``{"type": "orga.KIND", ...}``."""
        self.write("local", {"type": f"orga.{kind}", **data})


class StatsLog(JsonLines):
    """The call's record (see the module docstring)."""

    what = "stats file"
    RECORD_VERSION = 1

    def __init__(self, path: Path | None, origin: float) -> None:
        super().__init__(path)
        self.origin = origin

    def header(self, **data: Any) -> None:
        from .. import __version__

        self.line(
            {"type": "call", "record": self.RECORD_VERSION, "t": round(self.origin, 3),
             "orga": __version__, **data}
        )  # fmt: skip

    def moment(self, name: str, **data: Any) -> None:
        now = time.time()
        self.line(
            {"type": "event", "t": round(now, 3), "at_s": round(now - self.origin, 3),
             "name": name, **data}
        )  # fmt: skip

    def end(self, **data: Any) -> None:
        now = time.time()
        self.line({"type": "end", "t": round(now, 3), "at_s": round(now - self.origin, 3), **data})


class Records:
    """The call's files (each one only when asked for)."""

    def __init__(self, outputs: Outputs, origin: float | None = None) -> None:
        if outputs.transcript is not None:
            transcript_format(outputs.transcript)  # an unknown extension fails before the rest
        self.events = EventLog(outputs.events)
        self.stats = StatsLog(outputs.stats, time.time() if origin is None else origin)
        self.transcript: Transcript | None = None
        try:
            if outputs.transcript is not None:
                self.transcript = Transcript(outputs.transcript)
        except BaseException:
            self.close()
            raise

    def figures(self, figures: CallFigures) -> None:
        self.stats.line({"type": "stats", **figures.stats_line()})

    def moment(self, name: str, **data: Any) -> None:
        self.stats.moment(name, **data)

    def connected(self, at: float) -> None:
        if self.transcript is not None:
            self.transcript.set_start(at)

    def utterance(self, speaker: str, text: str, start: float, end: float | None) -> None:
        if self.transcript is not None:
            self.transcript.add(speaker, text, start, end)

    def close(self) -> None:
        self.events.close()
        self.stats.close()
        if self.transcript is not None:
            self.transcript.close()
