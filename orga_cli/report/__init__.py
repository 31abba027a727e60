"""`orga report`: a call's record (or a browser's webrtc-internals dump) as one page.

``load(path)`` reads either kind into a ``CallRecord``; ``render([records])`` makes the
self-contained HTML page, several calls side by side; ``summary_lines(record)`` is what
the terminal shows. Standard library only; the page's plots are drawn by the browser.
"""

from __future__ import annotations

from pathlib import Path

from .page import render
from .record import CallRecord, finish
from .record import load as _load
from .text import summary_lines


def load(path: Path) -> CallRecord:
    return finish(_load(path))


def write_report(paths: list[Path], out: Path | None = None) -> tuple[Path, list[CallRecord]]:
    """Load *paths*, write their page to *out* (default: the first one's name, .html)."""
    from ..errors import UsageError

    records = [load(p) for p in paths]
    target = out or paths[0].with_suffix(".html")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(records), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target, records


__all__ = ["CallRecord", "load", "render", "summary_lines", "write_report"]
