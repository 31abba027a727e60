"""`orga report`: a call's record as a page to read in a minute."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..boundary import run, setup
from ..options import DebugOpt


def report(
    records: Annotated[
        list[Path],
        typer.Argument(
            metavar="RECORD...",
            help="What `orga call --stats FILE` wrote, and/or a chrome://webrtc-internals dump"
            " (two files: side by side on one page).",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE.html",
            help="Where the page goes [default: the first record's name, .html].",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the page's path.")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Turn a call's record into one self-contained HTML page, and summarize it here.

    The page (no network needed to open it) has the connection's timeline (token, ICE
    servers, candidates, pair checks, DTLS, first audio, outages, re-dials, turns) with
    each phase's duration, plots of the call (bitrates and the uplink estimate; RTT,
    jitter, loss; the receive buffer, concealment and FEC; levels; turn latency; the
    camera's size and rate), the offer and answer paired, and hints. The terminal gets
    the summary, the phases and sparklines; the page's path goes to stdout.
    """
    setup(0, debug)

    def work() -> None:
        from ...report import summary_lines, write_report
        from .. import render

        target, loaded = write_report(records, output)
        if not quiet:
            for record in loaded:
                for line in summary_lines(record):
                    render.note(line)
        render.data(str(target))

    run(work)
