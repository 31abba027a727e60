"""`orga sdp`: an SDP's structure, or an offer and an answer paired, with warnings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ...errors import UsageError
from ..boundary import read_stdin_value, run, setup
from ..options import DebugOpt, JsonOpt


def sdp(
    first: Annotated[
        str,
        typer.Argument(
            metavar="FILE|-", help="An SDP, or the JSON that --dump-sdp writes; '-' reads stdin."
        ),
    ],
    second: Annotated[
        str | None,
        typer.Argument(
            metavar="[ANSWER]", help="The answer to pair with FILE (the offer).", show_default=False
        ),
    ] = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show an SDP's structure; given an offer and an answer, pair them and warn.

    The warnings name what really breaks calls: no common codec, a rejected
    m-line, an inactive or mismatched direction, no candidates in a non-trickle
    answer, an actpass or conflicting setup role, a missing fingerprint, a data
    channel without sctp-port. ICE passwords are never shown.
    """
    setup(0, debug)

    def read(name: str) -> str:
        if name == "-":
            return read_stdin_value("SDP")
        try:
            return Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from exc

    def work() -> None:
        from ...sdp import describe, describe_pairing, load, pair
        from .. import render

        offer, kind = load(read(first))
        if second is None:
            if json_out:
                render.emit_json({"type": kind, **offer.to_json()})
            else:
                render.data("\n".join(describe(offer, f"{kind or 'SDP'}: {first}")))
            return
        answer, _ = load(read(second))
        pairing = pair(offer, answer)
        if json_out:
            render.emit_json(
                {"offer": offer.to_json(), "answer": answer.to_json(), "pairing": pairing.to_json()}
            )
            return
        lines = [
            *describe(offer, f"offer: {first}"),
            "",
            *describe(answer, f"answer: {second}"),
            "",
            *describe_pairing(pairing),
        ]
        render.data("\n".join(lines))

    run(work)
