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


def _opus_payload_types(text: str) -> list[int]:
    description = sdplib.parse(text)
    return [
        codec.payload_type
        for media in description.media
        if media.kind == "audio"
        for codec in media.codecs
        if codec.name.lower() == "opus"
    ]


def with_opus_fec(text: str, parameters: dict[str, str] | None = None) -> str:
    """*text* with the Opus fmtp of its audio section asking for in-band FEC."""
    wanted = dict(OPUS_PARAMETERS if parameters is None else parameters)
    eol = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(eol)
    for pt in _opus_payload_types(text):
        prefix = f"a=fmtp:{pt} "
        existing = next((i for i, line in enumerate(lines) if line.startswith(prefix)), None)
        if existing is not None:
            params: dict[str, str] = {}
            for item in lines[existing][len(prefix) :].split(";"):
                key, _, value = item.strip().partition("=")
                if key:
                    params[key] = value
            params.update(wanted)
            lines[existing] = prefix + ";".join(f"{k}={v}" for k, v in params.items())
            continue
        rtpmap = next(i for i, line in enumerate(lines) if line.startswith(f"a=rtpmap:{pt} "))
        lines.insert(rtpmap + 1, prefix + ";".join(f"{k}={v}" for k, v in wanted.items()))
    return eol.join(lines)


def fec_requested(text: str) -> bool:
    """Does the description's Opus fmtp say ``useinbandfec=1``?"""
    description = sdplib.parse(text)
    for media in description.media:
        if media.kind != "audio":
            continue
        for codec in media.codecs:
            if codec.name.lower() == "opus" and codec.fmtp:
                params = dict(p.strip().split("=", 1) for p in codec.fmtp.split(";") if "=" in p)
                if params.get("useinbandfec") == "1":
                    return True
    return False


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
