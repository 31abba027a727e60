"""--transcript FILE: the conversation with wall-clock times and speakers, as it happens.

The extension picks the format: ``.md`` and ``.txt`` (a line per utterance),
``.srt`` and ``.vtt`` (subtitle cues timed from the call's start, from the turn
times when they are known), ``.jsonl`` (one JSON object per utterance). Every entry
is written and flushed as it arrives, so the file is complete after any ending.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TextIO

from ..errors import UsageError, secrets, setting

FORMATS = {
    ".md": "md",
    ".markdown": "md",
    ".txt": "txt",
    ".srt": "srt",
    ".vtt": "vtt",
    ".jsonl": "jsonl",
}
SPEAKERS = {"you": "You", "orga": "Orga"}


def transcript_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"{setting('transcript', str(path))}: unknown format {path.suffix or '(no extension)'}",
            "use .md, .txt, .srt, .vtt or .jsonl",
        )
    return fmt


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def _cue_time(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    sec, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{sec:02d}{sep}{ms:03d}"


def spoken_seconds(text: str) -> float:
    """How long *text* takes to say (about 2.5 words a second), for a cue with no end."""
    return max(1.0, len(text.split()) / 2.5)


class Transcript:
    """Writes the conversation to *path* as it happens; times are epoch seconds."""

    def __init__(self, path: Path, started: float | None = None) -> None:
        self.path = path
        self.format = transcript_format(path)
        self.started = time.time() if started is None else started
        self.entries = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: TextIO | None = path.open("w", encoding="utf-8", buffering=1)
        except OSError as exc:
            raise UsageError(
                f"cannot write transcript {path}: {exc.strerror or exc}",
                "choose another file or directory",
            ) from exc
        if self.format == "md":
            self._write(
                f"# orga call, {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.started))}\n\n"
            )
        elif self.format == "vtt":
            self._write("WEBVTT\n\n")

    def set_start(self, started: float) -> None:
        """The call connected: cues count from here (before any entry is written)."""
        if self.entries == 0:
            self.started = started

    def add(self, speaker: str, text: str, start: float, end: float | None = None) -> None:
        """One utterance: *speaker* ("you" or "orga") said *text* from *start* (to *end*)."""
        if self._fh is None:
            return
        text = secrets.scrub(text.strip())
        if not text:
            return
        self.entries += 1
        name = SPEAKERS.get(speaker, speaker)
        if end is None or end <= start:
            end = start + spoken_seconds(text)
        if self.format == "md":
            self._write(f"**{_clock(start)} {name}:** {text}\n\n")
        elif self.format == "txt":
            self._write(f"[{_clock(start)}] {name}: {text}\n")
        elif self.format == "jsonl":
            record = {
                "t": round(start, 3),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start)),
                "speaker": speaker,
                "text": text,
                "end": round(end, 3),
            }
            self._write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            sep = "," if self.format == "srt" else "."
            a, b = start - self.started, end - self.started
            number = f"{self.entries}\n" if self.format == "srt" else ""
            self._write(f"{number}{_cue_time(a, sep)} --> {_cue_time(b, sep)}\n{name}: {text}\n\n")

    def _write(self, text: str) -> None:
        assert self._fh is not None
        self._fh.write(text)
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
