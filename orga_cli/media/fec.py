"""Opus in-band FEC on both ends: what the SDP says, and an expected loss that follows the far end.

aiortc neither offers nor answers Opus parameters, and its codec preferences
cannot carry any; the parameters browsers send (``minptime=10;useinbandfec=1``)
are added to the description's Opus ``a=fmtp`` line before it is sent. What the
far end's description asks for is read with ``orga sdp``'s own parser.

The encoder's expected loss follows the fraction lost in the far end's RTCP
receiver reports (aiortc's public ``RTCRtpSender.getStats``): 0 % keeps FEC out
of the packets, so a clean link pays no bitrate for it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .. import sdp as sdplib

log = logging.getLogger(__name__)

OPUS_PARAMETERS = {"minptime": "10", "useinbandfec": "1"}


def _opus_codecs(text: str) -> list[sdplib.Codec]:
    """The Opus codecs of the description's audio sections."""
    return [
        codec
        for media in sdplib.parse(text).media
        if media.kind == "audio"
        for codec in media.codecs
        if codec.name.lower() == "opus"
    ]


def _fmtp(value: str | None) -> dict[str, str]:
    """``a=fmtp`` parameters (``minptime=10;useinbandfec=1``) as a dict, in order."""
    params: dict[str, str] = {}
    for item in (value or "").split(";"):
        key, _, param = item.strip().partition("=")
        if key:
            params[key] = param
    return params


def with_opus_fec(text: str, parameters: dict[str, str] | None = None) -> str:
    """*text* with the Opus fmtp of its audio section asking for in-band FEC."""
    wanted = dict(OPUS_PARAMETERS if parameters is None else parameters)
    eol = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(eol)
    for codec in _opus_codecs(text):
        prefix = f"a=fmtp:{codec.payload_type} "
        params = {**_fmtp(codec.fmtp), **wanted}
        line = prefix + ";".join(f"{k}={v}" for k, v in params.items())
        existing = next((i for i, old in enumerate(lines) if old.startswith(prefix)), None)
        if existing is not None:
            lines[existing] = line
        else:
            rtpmap = f"a=rtpmap:{codec.payload_type} "
            lines.insert(next(i for i, old in enumerate(lines) if old.startswith(rtpmap)) + 1, line)
    return eol.join(lines)


def fec_requested(text: str) -> bool:
    """Does the description's Opus fmtp say ``useinbandfec=1``?"""
    return any(_fmtp(codec.fmtp).get("useinbandfec") == "1" for codec in _opus_codecs(text))


async def follow_reported_loss(sender: Any, encoder: Any, interval: float = 1.0) -> None:
    """Keep *encoder*'s expected loss at what the far end reports (until cancelled).

    The figure rises with the worst report at once and decays by half a point
    per report, so one clean second does not switch FEC off in a lossy spell.
    """
    from aiortc.stats import RTCRemoteInboundRtpStreamStats

    expected = 0.0
    while True:
        await asyncio.sleep(interval)
        try:
            # No wait_for here: on 3.11 it can swallow a cancellation that meets a
            # result, and this loop would then outlive its call. getStats is local.
            report = await sender.getStats()
        except Exception:  # the sender is closing
            continue
        for stat in report.values():
            if isinstance(stat, RTCRemoteInboundRtpStreamStats) and stat.kind == "audio":
                fraction = stat.fractionLost or 0
                # RTCP carries it in 1/256ths; aiortc passes that integer on as it is.
                measured = 100.0 * (fraction / 256 if isinstance(fraction, int) else fraction)
                log.debug("far end reports %.1f %% loss", measured)
                expected = max(measured, expected - 0.5)
                pct = 0 if expected < 0.5 else min(30, round(expected + 1))
                if pct != encoder.loss_pct:
                    log.info("far end reports %.1f %% loss: FEC for %d %%", measured, pct)
                encoder.set_expected_loss(pct)
